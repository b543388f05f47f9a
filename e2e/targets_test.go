package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestTargetsSelfCheck runs every target without crbpf: each "selfcheck"
// mode must print its OK line and exit 0, and the modes the e2e tests drive
// (signals, stdin, SIGUSR1 reports) must behave as those tests expect. It
// needs gcc and python3 but not root.
func TestTargetsSelfCheck(t *testing.T) {
	selfchecks := []struct {
		name string
		argv func(t *testing.T) []string
		ok   string // prefix of the success line
	}{
		{"counter", func(t *testing.T) []string { return []string{target(t, "counter"), "selfcheck"} }, "SELFCHECK OK"},
		{"memcheck", func(t *testing.T) []string {
			return []string{target(t, "memcheck"), "8", t.TempDir(), "selfcheck"}
		}, "SELFCHECK OK corruptions_detected="},
		{"blocking", func(t *testing.T) []string { return []string{target(t, "blocking"), "selfcheck"} }, "SELFCHECK OK"},
		{"signals", func(t *testing.T) []string { return []string{target(t, "signals"), "selfcheck"} }, "SELFCHECK OK"},
		{"zombie", func(t *testing.T) []string { return []string{target(t, "zombie"), "selfcheck"} }, "SELFCHECK OK zombie="},
		{"threads", func(t *testing.T) []string { return []string{target(t, "threads"), "selfcheck"} }, "SELFCHECK OK threads=2"},
		{"socket", func(t *testing.T) []string { return []string{target(t, "socket"), "selfcheck"} }, "SELFCHECK OK socket"},
		{"python", func(t *testing.T) []string {
			return []string{testutil.Python3(t), filepath.Join("testdata", "loop.py"), "selfcheck"}
		}, "SELFCHECK OK"},
	}
	for _, sc := range selfchecks {
		t.Run(sc.name+"/selfcheck", func(t *testing.T) {
			tg := testutil.StartTarget(t, sc.argv(t)...)
			tg.WaitLine(t, sc.ok, timeout)
			if code := tg.Wait(t, timeout); code != 0 {
				t.Fatalf("exit %d\n%s", code, tg.Log())
			}
			for _, l := range tg.Lines() {
				if strings.Contains(l, "BAD") || strings.Contains(l, "FAILED") {
					t.Errorf("reported a problem: %q", l)
				}
			}
		})
	}

	t.Run("counter/count", func(t *testing.T) {
		tg := testutil.StartTarget(t, target(t, "counter"))
		tg.WaitLine(t, "COUNT 10", timeout)
		numbered(t, "COUNT", tg.Lines(), 1)
	})

	t.Run("memcheck/sigusr1", func(t *testing.T) {
		dir := t.TempDir()
		tg := testutil.StartTarget(t, target(t, "memcheck"), "8", dir)
		tg.WaitLine(t, "READY", timeout)
		tg.WaitLine(t, "TICK 3", timeout)
		tg.Signal(t, unix.SIGUSR1)
		if l := tg.WaitLine(t, "VERIFY", timeout); l != "VERIFY OK 2141 pages" {
			t.Errorf("got %q, want VERIFY OK 2141 pages", l)
		}
		tg.WaitLine(t, "TICK", timeout)
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 2 {
			t.Errorf("memcheck should have created 2 files in its dir, found %v (%v)", ents, err)
		}
	})

	bin := target(t, "blocking")
	for _, m := range blockingModes {
		t.Run("blocking/"+m.name, func(t *testing.T) { runBlockingMode(t, bin, m) })
	}

	t.Run("signals/sigusr1", func(t *testing.T) {
		tg := testutil.StartTarget(t, target(t, "signals"))
		ready := tg.WaitLine(t, "READY", timeout)
		if ready != "READY cpus=2 rseq=1" {
			t.Logf("signals: %q (tests expect 2 CPUs and rseq registered by glibc)", ready)
		}
		tg.WaitLine(t, "TICK 2", timeout)
		tg.Signal(t, unix.SIGUSR2)
		tg.Signal(t, unix.SIGUSR1)
		l := tg.WaitLine(t, "SIG usr1", timeout)
		wantFields(t, l, map[string]string{"altstack": "1", "usr2pending": "1", "blocked_usr2": "1",
			"cpu_bad": "0", "handler_ok": "1", "altstack_cfg": "1", "rseq_cpu_bad": "0", "count": "1"})
		if intField(t, l, "cpu_ok") == 0 {
			t.Errorf("no CPU checks ran: %q", l)
		}
	})

	for _, name := range []string{"zombie", "threads", "socket"} {
		t.Run(name+"/sigusr1", func(t *testing.T) {
			tg := testutil.StartTarget(t, target(t, name))
			tg.WaitLine(t, "TICK 2", timeout)
			tg.Signal(t, unix.SIGUSR1)
			tg.WaitLine(t, "SELFCHECK OK", timeout)
			tg.Signal(t, unix.SIGUSR1)
			tg.WaitLine(t, "SELFCHECK OK", timeout)
		})
	}

	t.Run("python/sigint", func(t *testing.T) {
		tg := testutil.StartTarget(t, testutil.Python3(t), filepath.Join("testdata", "loop.py"))
		tg.WaitLine(t, "PY 5", timeout)
		tg.Signal(t, unix.SIGINT)
		l := tg.WaitLine(t, "PY SIGINT", timeout)
		if code := tg.Wait(t, timeout); code != 42 {
			t.Errorf("exit %d after %q, want 42", code, l)
		}
		lines := tg.Lines()
		numbered(t, "PY", lines[:len(lines)-1], 1)
	})
}
