package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestMapFD restarts the counter image with --map-fd 1=3 and a file as
// crbpf's fd 3: the COUNT lines must go to that file, continuing after the
// original's last line, and none to crbpf's stdout (the pipe that was the
// original's stdout would otherwise be replaced by crbpf's).
func TestMapFD(t *testing.T) {
	testutil.RequireRoot(t)
	img, _, last := killedCounter(t)

	outPath := filepath.Join(t.TempDir(), "out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := testutil.CrbpfCmd(t, "restart", "--map-fd", "1=3", img)
	cmd.ExtraFiles = []*os.File{out} // crbpf's fd 3
	r := testutil.StartCmd(t, cmd)
	pid := restoredPID(t, r, "counter")

	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid)); err != nil || link != outPath {
		t.Errorf("restored fd 1 is %q (%v), want %s", link, err, outPath)
	}
	want := fmt.Sprintf("COUNT %d", last+10)
	var lines []string
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		// Up to the wanted line: the counter may be writing the next one.
		if i := strings.Index(string(b), want+"\n"); i >= 0 {
			lines = strings.Split(string(b[:i+len(want)]), "\n")
			break
		}
		if r.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s never got %q; it holds %q\n%s", outPath, want, b, r.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	numbered(t, "COUNT", lines, last+1)

	r.Signal(t, unix.SIGTERM)
	if code := r.Wait(t, timeout); code != 128+int(unix.SIGTERM) {
		t.Errorf("crbpf restart exited %d after SIGTERM, want 143\n%s", code, r.Log())
	}
	if got := r.ReadToEOF(t, timeout); len(got) != 0 || len(r.Lines()) != 0 {
		t.Errorf("crbpf's stdout got %q; with --map-fd 1=3 it should get nothing", r.Lines())
	}
}
