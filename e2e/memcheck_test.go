package e2e

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

const memcheckMiB = 256

// verifyOK matches memcheck.c's success line.
var verifyOK = regexp.MustCompile(`^VERIFY OK (\d+) pages$`)

// expectVerify sends SIGUSR1 to pid and expects "VERIFY OK <pages>" on out.
func expectVerify(t *testing.T, out *testutil.Target, pid int, wantPages string) {
	t.Helper()
	kill(t, pid, unix.SIGUSR1)
	l := out.WaitLine(t, "VERIFY", timeout)
	m := verifyOK.FindStringSubmatch(l)
	if m == nil || m[1] != wantPages {
		t.Fatalf("pid %d: %q, want VERIFY OK %s pages\n%s", pid, l, wantPages, out.Log())
	}
}

var tickRe = regexp.MustCompile(`^TICK (\d+)$`)

// nextTick returns the number of the next TICK line.
func nextTick(t *testing.T, out *testutil.Target) int64 {
	t.Helper()
	n, _ := strconv.ParseInt(out.WaitLineMatch(t, tickRe, timeout)[1], 10, 64)
	return n
}

// startMemcheck starts memcheck.c with a 256 MiB heap, verifies it once
// and returns it with the page count of its VERIFY OK line.
func startMemcheck(t *testing.T) (*testutil.Target, string) {
	t.Helper()
	orig := testutil.StartTarget(t, target(t, "memcheck"), strconv.Itoa(memcheckMiB), t.TempDir())
	ready := orig.WaitLine(t, "READY", timeout)
	pages := fields(ready)["pages"]
	if pages == "" {
		t.Fatalf("READY line without pages=: %q", ready)
	}
	orig.WaitLine(t, "TICK", timeout)
	expectVerify(t, orig, orig.PID, pages)
	return orig, pages
}

// TestMemcheckKill checkpoints a 256 MiB self-checking address space with
// --kill and restores it with --detach: every region (heap, brk heap, RO,
// guard, sparse, private and read-only file mappings, shared anonymous,
// .data, .bss, stack) must verify OK and the ticks continue from the last.
func TestMemcheckKill(t *testing.T) {
	testutil.RequireRoot(t)
	orig, pages := startMemcheck(t)
	img := imgDir(t, "img")
	cp := checkpoint(t, orig.PID, img, "--kill")
	if heap := uint64(memcheckMiB) * 256; cp.PagesWritten < heap {
		t.Errorf("pages_written %d, want at least the %d heap pages", cp.PagesWritten, heap)
	}
	if cp.BytesWritten < cp.PagesWritten*4096 {
		t.Errorf("bytes_written %d < pages_written %d * 4096", cp.BytesWritten, cp.PagesWritten)
	}
	orig.ReadToEOF(t, timeout)
	var last int64
	for _, l := range orig.Lines() {
		if m := tickRe.FindStringSubmatch(l); m != nil {
			last, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	orig.Wait(t, timeout)

	out, pid := restartDetached(t, img)
	if pid != orig.PID {
		t.Errorf("restored as pid %d, want the original pid %d (it was free)", pid, orig.PID)
	}
	if n := nextTick(t, out); n != last+1 {
		t.Errorf("first restored TICK %d, want %d", n, last+1)
	}
	expectVerify(t, out, pid, pages)
	nextTick(t, out)
	expectVerify(t, out, pid, pages)
}

// TestMemcheckLive checkpoints without --kill: the original keeps running
// and still verifies OK, and a copy restored next to it (with a new PID,
// the original's is taken) verifies OK too.
func TestMemcheckLive(t *testing.T) {
	testutil.RequireRoot(t)
	orig, pages := startMemcheck(t)
	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img)
	before := nextTick(t, orig)
	if after := nextTick(t, orig); after != before+1 {
		t.Errorf("original ticks %d then %d after the checkpoint", before, after)
	}
	expectVerify(t, orig, orig.PID, pages)

	out, pid := restartDetached(t, img)
	if pid == orig.PID {
		t.Fatalf("restored copy has the original's pid %d, which is in use", pid)
	}
	nextTick(t, out)
	expectVerify(t, out, pid, pages)
	expectVerify(t, orig, orig.PID, pages)
	for _, p := range []int{orig.PID, pid} {
		if !testutil.Alive(p) {
			t.Errorf("pid %d is gone", p)
		}
	}
}
