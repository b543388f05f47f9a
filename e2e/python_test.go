package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestPythonLoop checkpoints a python3 interpreter running loop.py, which
// checks its own lists, dicts and bytearray on every line; the restored
// interpreter continues from the next number. SIGINT to crbpf reaches it
// as KeyboardInterrupt and its exit status 42 becomes crbpf's.
func TestPythonLoop(t *testing.T) {
	testutil.RequireRoot(t)
	orig := testutil.StartTarget(t, testutil.Python3(t), filepath.Join("testdata", "loop.py"))
	orig.WaitLine(t, "PY 10", timeout)
	origComm := comm(t, orig.PID)
	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img, "--kill")
	orig.ReadToEOF(t, timeout)
	last := numbered(t, "PY", orig.Lines(), 1)
	orig.Wait(t, timeout)

	r := testutil.StartCrbpf(t, "restart", img)
	if l := r.NextLine(t, timeout); l != fmt.Sprintf("PY %d", last+1) {
		t.Fatalf("first restored line %q, want PY %d\n%s", l, last+1, r.Log())
	}
	r.WaitLine(t, fmt.Sprintf("PY %d", last+25), timeout)
	pid := restoredPID(t, r, origComm)
	if pid != orig.PID {
		t.Errorf("restored as pid %d, want the original pid %d", pid, orig.PID)
	}

	r.Signal(t, unix.SIGINT)
	l := r.WaitLine(t, "PY SIGINT", timeout)
	if code := r.Wait(t, timeout); code != 42 {
		t.Errorf("crbpf restart exited %d after SIGINT (%q), want the target's status 42\n%s", code, l, r.Log())
	}
	lines := r.Lines()
	numbered(t, "PY", lines[:len(lines)-1], last+1)
}
