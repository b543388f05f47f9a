package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// blockingMode describes one mode of testdata/blocking.c: how to wake it
// and what its result line must say.
type blockingMode struct {
	name   string
	sleeps bool   // takes a duration in ms and wakes by itself
	result string // prefix of the result line
	// wake drives the process out of its blocking call: pid is the blocked
	// process, stdin the Target whose stdin is the process's fd 0.
	wake  func(t testing.TB, pid int, stdin *testutil.Target)
	check func(t testing.TB, line string, wantMS int)
}

const stdinLine = "hello from the test"

var blockingModes = []blockingMode{
	{
		name: "nanosleep", sleeps: true, result: "WOKE nanosleep",
		check: checkSlept,
	},
	{
		name: "clocknanosleep_abs", sleeps: true, result: "WOKE clocknanosleep_abs",
		check: func(t testing.TB, line string, wantMS int) {
			checkSlept(t, line, wantMS)
			wantFields(t, line, map[string]string{"deadline_ok": "1"})
		},
	},
	{
		name: "pause", result: "PAUSE",
		wake: func(t testing.TB, pid int, _ *testutil.Target) { kill(t, pid, unix.SIGUSR1) },
		check: func(t testing.TB, line string, _ int) {
			if line != "PAUSE returned errno=EINTR handler=1" {
				t.Errorf("pause: got %q, want the SIGUSR1 handler to run and pause to fail with EINTR", line)
			}
		},
	},
	{
		name: "sigtimedwait", result: "GOT",
		wake: func(t testing.TB, pid int, _ *testutil.Target) { kill(t, pid, unix.SIGUSR1) },
		check: func(t testing.TB, line string, _ int) {
			// code 0 is SI_USER: sent with kill().
			if line != "GOT sig=10 code=0 errno=0" {
				t.Errorf("sigtimedwait: got %q, want \"GOT sig=10 code=0 errno=0\"", line)
			}
		},
	},
	{
		name: "readstdin", result: "READ",
		wake: func(t testing.TB, _ int, stdin *testutil.Target) { stdin.WriteStdin(t, stdinLine+"\n") },
		check: func(t testing.TB, line string, _ int) {
			if line != "READ "+stdinLine {
				t.Errorf("readstdin: got %q, want %q", line, "READ "+stdinLine)
			}
		},
	},
}

// checkSlept checks a WOKE line: the sleep returned 0 and was not cut short.
func checkSlept(t testing.TB, line string, wantMS int) {
	t.Helper()
	wantFields(t, line, map[string]string{"rc": "0", "errno": "0", "want_ms": strconv.Itoa(wantMS)})
	if slept := intField(t, line, "slept_ms"); slept < int64(wantMS) {
		t.Errorf("slept %d ms, less than the %d ms asked for: %q", slept, wantMS, line)
	}
}

func kill(t testing.TB, pid int, sig unix.Signal) {
	t.Helper()
	if err := unix.Kill(pid, sig); err != nil {
		t.Fatalf("kill(%d, %v): %v", pid, sig, err)
	}
}

// TestBlockingSyscalls checkpoints blocking.c while it is blocked in each
// kind of system call, restarts it in the foreground and checks that the
// call goes on as if nothing happened: sleeps are not cut short, a pause
// or sigtimedwait is woken by a signal to the restored process, a read gets
// a line written to crbpf's stdin.
func TestBlockingSyscalls(t *testing.T) {
	testutil.RequireRoot(t)
	bin := target(t, "blocking")
	const sleepMS = 3000
	for _, m := range blockingModes {
		t.Run(m.name, func(t *testing.T) {
			argv := []string{bin, m.name}
			if m.sleeps {
				argv = append(argv, strconv.Itoa(sleepMS))
			}
			orig := testutil.StartTarget(t, argv...)
			orig.WaitLine(t, "BLOCKING "+m.name, timeout)
			nr := testutil.WaitBlocked(t, orig.PID, -1, timeout)
			time.Sleep(200 * time.Millisecond)
			origComm := comm(t, orig.PID)

			img := imgDir(t, "img")
			cp := checkpoint(t, orig.PID, img, "--kill")
			if cp.PID != orig.PID {
				t.Errorf("checkpoint --json pid %d, want %d", cp.PID, orig.PID)
			}
			if rest := orig.ReadToEOF(t, timeout); len(rest) > 0 {
				t.Fatalf("the original printed %q before it was killed: it woke before the checkpoint", rest)
			}
			if code := orig.Wait(t, timeout); code != 128+int(unix.SIGKILL) {
				t.Errorf("original exit %d, want death by SIGKILL (137)", code)
			}

			r := testutil.StartCrbpf(t, "restart", img)
			pid := restoredPID(t, r, origComm)
			if pid != orig.PID {
				t.Errorf("restored as pid %d, want the original pid %d (it was free)", pid, orig.PID)
			}
			if m.wake != nil {
				// Back in the same call, then woken.
				waitBlocked(t, pid, nr, r)
				m.wake(t, pid, r)
			}
			line := r.WaitLine(t, m.result, timeout)
			m.check(t, line, sleepMS)
			if code := r.Wait(t, timeout); code != 0 {
				t.Errorf("crbpf restart exited %d, want the target's exit status 0\n%s", code, r.Log())
			}
			if t.Failed() {
				t.Log(r.Log())
			}
		})
	}
}

// TestBlockingSyscallsLive checkpoints blocking.c in each blocking call
// without --kill: the original must go on as if nothing happened (crbpf
// resumes it with its system call intact), and so must a copy restored
// next to it.
func TestBlockingSyscallsLive(t *testing.T) {
	testutil.RequireRoot(t)
	bin := target(t, "blocking")
	const sleepMS = 3000
	for _, m := range blockingModes {
		t.Run(m.name, func(t *testing.T) {
			argv := []string{bin, m.name}
			if m.sleeps {
				argv = append(argv, strconv.Itoa(sleepMS))
			}
			orig := testutil.StartTarget(t, argv...)
			orig.WaitLine(t, "BLOCKING "+m.name, timeout)
			nr := testutil.WaitBlocked(t, orig.PID, -1, timeout)
			time.Sleep(200 * time.Millisecond)
			origComm := comm(t, orig.PID)
			img := imgDir(t, "img")
			checkpoint(t, orig.PID, img)

			r := testutil.StartCrbpf(t, "restart", img)

			// The original first: the checkpoint must not have disturbed it.
			if m.wake != nil {
				waitBlocked(t, orig.PID, nr, orig)
				m.wake(t, orig.PID, orig)
			}
			m.check(t, orig.WaitLine(t, m.result, timeout), sleepMS)
			if code := orig.Wait(t, timeout); code != 0 {
				t.Errorf("original exited %d\n%s", code, orig.Log())
			}

			if m.wake != nil {
				// (It may have the original's PID: that is free by now.)
				pid := restoredPID(t, r, origComm)
				waitBlocked(t, pid, nr, r)
				m.wake(t, pid, r)
			}
			m.check(t, r.WaitLine(t, m.result, timeout), sleepMS)
			if code := r.Wait(t, timeout); code != 0 {
				t.Errorf("crbpf restart exited %d\n%s", code, r.Log())
			}
		})
	}
}

// waitBlocked waits for pid to be blocked in system call nr again; out is
// the Target whose log explains a failure.
func waitBlocked(t *testing.T, pid, nr int, out *testutil.Target) {
	t.Helper()
	if _, err := testutil.BlockedIn(pid, nr, timeout); err != nil {
		t.Fatalf("%v\n%s", err, out.Log())
	}
}

// runBlockingMode runs one mode without crbpf (used by TestTargetsSelfCheck).
func runBlockingMode(t *testing.T, bin string, m blockingMode) {
	const sleepMS = 300
	argv := []string{bin, m.name}
	if m.sleeps {
		argv = append(argv, strconv.Itoa(sleepMS))
	}
	tg := testutil.StartTarget(t, argv...)
	tg.WaitLine(t, "BLOCKING "+m.name, timeout)
	if m.wake != nil {
		testutil.WaitBlocked(t, tg.PID, -1, timeout)
		m.wake(t, tg.PID, tg)
	}
	line := tg.WaitLine(t, m.result, timeout)
	m.check(t, line, sleepMS)
	if code := tg.Wait(t, timeout); code != 0 {
		t.Errorf("exit %d\n%s", code, tg.Log())
	}
}
