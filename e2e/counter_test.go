package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// killedCounter starts counter.c, waits for COUNT 5, checkpoints it with
// --kill and returns the image, the original PID and the last number the
// original printed.
func killedCounter(t *testing.T) (img string, origPID int, last int64) {
	t.Helper()
	orig := testutil.StartTarget(t, target(t, "counter"))
	orig.WaitLine(t, "COUNT 5", timeout)
	img = imgDir(t, "img")
	cp := checkpoint(t, orig.PID, img, "--kill")
	if cp.PID != orig.PID {
		t.Errorf("checkpoint --json pid %d, want %d", cp.PID, orig.PID)
	}
	orig.ReadToEOF(t, timeout)
	last = numbered(t, "COUNT", orig.Lines(), 1)
	if code := orig.Wait(t, timeout); code != 128+int(unix.SIGKILL) {
		t.Errorf("original exit %d, want death by SIGKILL (137) from --kill", code)
	}
	return img, orig.PID, last
}

// expectCount consumes the next stdout line of r and checks it is COUNT n.
func expectCount(t *testing.T, r *testutil.Target, n int64) {
	t.Helper()
	if l := r.NextLine(t, timeout); l != fmt.Sprintf("COUNT %d", n) {
		t.Fatalf("got %q, want %q\n%s", l, fmt.Sprintf("COUNT %d", n), r.Log())
	}
}

// TestCounterKillRestart: checkpoint --kill, then restart in the
// foreground: the restored process continues exactly after the original's
// last line, on crbpf's stdout, with the original PID, and holds only the
// original's fds 0-2 although crbpf restart inherited one more; SIGTERM to
// crbpf is forwarded and crbpf exits 128+15.
func TestCounterKillRestart(t *testing.T) {
	testutil.RequireRoot(t)
	img, origPID, last := killedCounter(t)

	// crbpf restart gets fd 20 without close-on-exec, as from a shell or a
	// CI runner: the restored process must not. (Not fd 3: the restore
	// stub's page file takes fds from 3 and would replace it.)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	cmd := testutil.CrbpfCmd(t, "restart", img)
	cmd.ExtraFiles = make([]*os.File, 18)
	cmd.ExtraFiles[17] = pw
	r := testutil.StartCmd(t, cmd)
	expectCount(t, r, last+1)
	expectCount(t, r, last+2)
	pid := restoredPID(t, r, "counter")
	if pid != origPID {
		t.Errorf("restored as pid %d, want the original pid %d (it was free)", pid, origPID)
	}
	fds, err := testutil.Fds(pid)
	if err != nil {
		t.Fatal(err)
	}
	for fd, link := range fds {
		if fd > 2 {
			t.Errorf("restored process has fd %d (%s); counter had only fds 0-2", fd, link)
		}
	}
	r.WaitLine(t, fmt.Sprintf("COUNT %d", last+10), timeout)
	numbered(t, "COUNT", r.Lines(), last+1)

	r.Signal(t, unix.SIGTERM)
	if code := r.Wait(t, timeout); code != 128+int(unix.SIGTERM) {
		t.Errorf("crbpf restart exited %d after SIGTERM, want 143 (forwarded, target killed by it)\n%s", code, r.Log())
	}
	if testutil.Exists(pid) {
		t.Errorf("restored pid %d still exists after crbpf exited: %s", pid, describe(pid))
	}
}

// TestRestartTwice restores one image twice, both copies alive at once:
// the first gets the original PID, the second a new one, and each counts
// on from the same number. --pid strict refuses while the PID is taken.
func TestRestartTwice(t *testing.T) {
	testutil.RequireRoot(t)
	img, origPID, last := killedCounter(t)

	r1 := testutil.StartCrbpf(t, "restart", img)
	expectCount(t, r1, last+1)
	pid1 := restoredPID(t, r1, "counter")
	r2 := testutil.StartCrbpf(t, "restart", img)
	expectCount(t, r2, last+1)
	pid2 := restoredPID(t, r2, "counter")
	if pid1 != origPID {
		t.Errorf("first restore got pid %d, want the original %d", pid1, origPID)
	}
	if pid2 == pid1 || pid2 == origPID {
		t.Errorf("second restore got pid %d while %d is alive", pid2, pid1)
	}

	stdout, stderr, code := testutil.RunCrbpf(t, "restart", "--pid", "strict", img)
	expectError(t, "restart --pid strict with the pid taken", stdout, stderr, code, exitFailure,
		`\b`+regexp.QuoteMeta(strconv.Itoa(origPID))+`\b`)

	for _, r := range []*testutil.Target{r1, r2} {
		r.WaitLine(t, fmt.Sprintf("COUNT %d", last+20), timeout)
		numbered(t, "COUNT", r.Lines(), last+1)
	}
	for _, pid := range []int{pid1, pid2} {
		if !testutil.Alive(pid) {
			t.Errorf("restored pid %d died", pid)
		}
	}
}

// describe names a process for messages.
func describe(pid int) string {
	st, err := testutil.ReadStat(pid)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s, state %c, parent %d", st.Comm, st.State, st.PPID)
}
