package e2e

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

var sigTickRe = regexp.MustCompile(`^TICK \d+ cpu_ok=(\d+) cpu_bad=(\d+)$`)

// waitCPUChecks waits for a TICK line reporting at least n good CPU checks
// and fails at once if one reports a bad check.
func waitCPUChecks(t *testing.T, out *testutil.Target, n int64) {
	t.Helper()
	for {
		m := out.WaitLineMatch(t, sigTickRe, timeout)
		if m[2] != "0" {
			t.Fatalf("sched_getcpu() disagreed with the pinned CPU (%s bad checks): rseq not restored?\n%s", m[2], out.Log())
		}
		if ok, _ := strconv.ParseInt(m[1], 10, 64); ok >= n {
			return
		}
	}
}

// TestSignals checkpoints signals.c and checks in the restored process:
// the SIGUSR1 handler (SA_SIGINFO|SA_ONSTACK) runs on the sigaltstack,
// SIGUSR2 is still blocked and still pending (sent before the checkpoint),
// and sched_getcpu(), served by glibc from the rseq area, keeps agreeing
// with the CPU the process pins itself to (rseq re-registered).
func TestSignals(t *testing.T) {
	testutil.RequireRoot(t)
	orig := testutil.StartTarget(t, target(t, "signals"))
	ready := orig.WaitLine(t, "READY", timeout)
	if f := fields(ready); f["cpus"] != "2" {
		t.Logf("%q: fewer than 2 CPUs, migrations are not exercised", ready)
	}
	waitCPUChecks(t, orig, 20)

	orig.Signal(t, unix.SIGUSR2) // blocked: stays pending across the checkpoint
	st, err := testutil.Status(orig.PID)
	if err != nil {
		t.Fatal(err)
	}
	if pend, _ := strconv.ParseUint(st["ShdPnd"], 16, 64); pend&(1<<(unix.SIGUSR2-1)) == 0 {
		t.Fatalf("SIGUSR2 not pending before the checkpoint: ShdPnd %s", st["ShdPnd"])
	}
	orig.Signal(t, unix.SIGUSR1)
	before := orig.WaitLine(t, "SIG usr1", timeout)
	wantFields(t, before, map[string]string{"altstack": "1", "usr2pending": "1", "blocked_usr2": "1",
		"cpu_bad": "0", "handler_ok": "1", "altstack_cfg": "1", "rseq_cpu_bad": "0", "count": "1"})
	rseq := fields(before)["rseq"]

	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img, "--kill")
	orig.ReadToEOF(t, timeout)
	orig.Wait(t, timeout)
	var base int64
	for _, l := range orig.Lines() {
		if m := sigTickRe.FindStringSubmatch(l); m != nil {
			base, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}

	r := testutil.StartCrbpf(t, "restart", img)
	pid := restoredPID(t, r, "signals")
	// Enough migrations after the restore to catch a stale rseq cpu_id.
	waitCPUChecks(t, r, base+40)
	kill(t, pid, unix.SIGUSR1)
	after := r.WaitLine(t, "SIG usr1", timeout)
	wantFields(t, after, map[string]string{"altstack": "1", "usr2pending": "1", "blocked_usr2": "1",
		"cpu_bad": "0", "handler_ok": "1", "altstack_cfg": "1", "rseq": rseq, "rseq_cpu_bad": "0", "count": "2"})
	if ok := intField(t, after, "cpu_ok"); ok <= intField(t, before, "cpu_ok") {
		t.Errorf("cpu_ok did not grow: %q then %q", before, after)
	}
	if t.Failed() {
		t.Log(r.Log())
	}
}
