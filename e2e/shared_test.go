package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

const sharedPage = 4096

// checkSharedFile reads shared.c's file from disk and checks that pages
// 0-2 hold generation gen, written through the process's mapping.
func checkSharedFile(t *testing.T, path string, gen int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*sharedPage {
		t.Fatalf("%s has %d bytes, want %d", path, len(b), 4*sharedPage)
	}
	hdr := fmt.Sprintf("GEN %d\n", gen)
	want := append([]byte(hdr), bytes.Repeat([]byte{byte('a' + gen%26)}, 3*sharedPage-len(hdr))...)
	if !bytes.Equal(b[:3*sharedPage], want) {
		i := 0
		for i < len(want) && b[i] == want[i] {
			i++
		}
		end := min(len(b), strings.IndexByte(string(b), '\n')+1)
		t.Fatalf("%s on disk is not generation %d: first difference at byte %d (%q, want %q); it starts %q",
			path, gen, i, b[i], want[i], b[:end])
	}
}

// writeExt writes s, NUL-terminated, at the start of page 3 of the file on
// disk (with write(2), not through a mapping).
func writeExt(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(append([]byte(s), 0), 3*sharedPage); err != nil {
		t.Fatal(err)
	}
}

// sharedStep sends SIGUSR1 to pid and checks shared.c's SHM line: it saw
// generation gen-1 intact in both areas, both are still MAP_SHARED, and
// page 3 of its file mapping shows ext, written to the file on disk.
func sharedStep(t *testing.T, out *testutil.Target, pid int, path string, gen int, ext string) {
	t.Helper()
	kill(t, pid, unix.SIGUSR1)
	l := out.WaitLine(t, "SHM ", timeout)
	wantFields(t, l, map[string]string{"gen": fmt.Sprint(gen), "file_ok": "1", "anon_ok": "1",
		"filemap": "rw-s", "filepath": path, "anonmap": "rw-s", "ext": ext})
	if t.Failed() {
		maps, _ := testutil.Maps(pid)
		t.Fatalf("pid %d: %q\n/proc/PID/maps:\n%s", pid, l, strings.Join(maps, "\n"))
	}
	checkSharedFile(t, path, gen)
}

// TestSharedMappings checkpoints shared.c with --kill and restarts it: its
// MAP_SHARED file mapping must again be the file itself (what the process
// writes through it reaches the file on disk, what is written to the file
// shows in the mapping), and its MAP_SHARED|MAP_ANONYMOUS area keeps its
// contents and stays shared.
func TestSharedMappings(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	orig := testutil.StartTarget(t, target(t, "shared"), dir)
	path := fields(orig.WaitLine(t, "READY", timeout))["file"]
	if path == "" {
		t.Fatalf("READY line without file=\n%s", orig.Log())
	}
	checkSharedFile(t, path, 1)
	writeExt(t, path, "ext-before")
	sharedStep(t, orig, orig.PID, path, 2, "ext-before")

	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img, "--kill")
	orig.ReadToEOF(t, timeout)
	orig.Wait(t, timeout)
	checkSharedFile(t, path, 2)
	// Written while the process is away: the restored mapping is the file,
	// so it sees this.
	writeExt(t, path, "ext-between")

	r := testutil.StartCrbpf(t, "restart", img)
	pid := restoredPID(t, r, "shared")
	sharedStep(t, r, pid, path, 3, "ext-between")
	writeExt(t, path, "ext-after")
	sharedStep(t, r, pid, path, 4, "ext-after")
}
