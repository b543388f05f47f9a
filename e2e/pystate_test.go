package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// recordsFile writes n records "rec NNNNN\n" for rngstate.py.
func recordsFile(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "rec %05d\n", i)
	}
	path := filepath.Join(t.TempDir(), "records")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPythonStateCopy checkpoints a python3 interpreter running
// rngstate.py without --kill, restores a copy next to it, and asks both
// for their next values: the two Mersenne Twister states (seeded from
// os.urandom), a half-consumed generator, the position in an open file and
// a 100 000-entry dict must be identical copies, so both print the same
// lines.
func TestPythonStateCopy(t *testing.T) {
	testutil.RequireRoot(t)
	orig := testutil.StartTarget(t, testutil.Python3(t), filepath.Join("testdata", "rngstate.py"), recordsFile(t, 1000))
	orig.WaitLine(t, "READY", timeout)
	orig.WriteStdin(t, "next\n")
	first := orig.WaitLine(t, "NEXT ", timeout)
	// Blocked in read(0) for the next command while it is checkpointed.
	testutil.WaitBlocked(t, orig.PID, unix.SYS_READ, timeout)
	origComm := comm(t, orig.PID)

	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img)
	r := testutil.StartCrbpf(t, "restart", img)
	pid := restoredPID(t, r, origComm)
	if pid == orig.PID {
		t.Fatalf("restored copy has the original's pid %d, which is in use", pid)
	}

	prev := first
	for i := 0; i < 3; i++ {
		orig.WriteStdin(t, "next\n")
		r.WriteStdin(t, "next\n")
		a := orig.NextLine(t, timeout)
		b := r.NextLine(t, timeout)
		if a != b {
			t.Fatalf("step %d: the original printed\n  %q\nthe restored copy\n  %q\n%s%s", i+2, a, b, orig.Log(), r.Log())
		}
		if !strings.HasPrefix(a, "NEXT ") || fields(a)["step"] != fmt.Sprint(i+2) ||
			!strings.HasSuffix(fields(a)["dict"], ",1") || a == prev {
			t.Fatalf("step %d: unexpected line %q after %q", i+2, a, prev)
		}
		prev = a
	}
	for _, p := range []int{orig.PID, pid} {
		if !testutil.Alive(p) {
			t.Errorf("pid %d died", p)
		}
	}
	t.Logf("both printed, after %q:\n%s", first, prev)
}
