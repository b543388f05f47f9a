package e2e

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// interruptCase says when to signal or kill crbpf: after a fixed delay,
// or as soon as until reports a state of crbpf, the target or the image
// directory that it reaches on its way (checked from /proc and the file
// system, not from crbpf's log, whose wording may change).
type interruptCase struct {
	name  string
	delay time.Duration
	until func(e interruptEnv) bool
}

// interruptEnv is what until looks at.
type interruptEnv struct {
	crbpf     *testutil.Target
	target    int    // the process being checkpointed
	imgParent string // the directory that gets the image
}

func delayCases(ms ...int) []interruptCase {
	var out []interruptCase
	for _, d := range ms {
		out = append(out, interruptCase{name: fmt.Sprintf("%dms", d), delay: time.Duration(d) * time.Millisecond})
	}
	return out
}

// wait waits as c says and reports whether the awaited state was seen
// (false if crbpf exited first).
func (c interruptCase) wait(t *testing.T, e interruptEnv) bool {
	t.Helper()
	if c.until == nil {
		time.Sleep(c.delay)
		return true
	}
	deadline := time.Now().Add(timeout)
	for !c.until(e) {
		if e.crbpf.Exited() {
			return false
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v\n%s", c.name, timeout, e.crbpf.Log())
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

// Predicates for interruptCase.until.

// tracedTarget: the target has a tracer (crbpf seized it).
func tracedTarget(e interruptEnv) bool {
	st, err := testutil.Status(e.target)
	return err == nil && st["TracerPid"] != "0"
}

// stoppedTarget: the target is in a ptrace-stop.
func stoppedTarget(e interruptEnv) bool {
	st, err := testutil.ReadStat(e.target)
	return err == nil && st.State == 't'
}

// imageBeingWritten: the image's temporary sibling directory exists.
func imageBeingWritten(e interruptEnv) bool {
	m, _ := filepath.Glob(filepath.Join(e.imgParent, ".*.tmp-*"))
	return len(m) > 0
}

// childStarted: crbpf has a child process (for restart: the stub it
// restores into, from the fork on).
func childStarted(e interruptEnv) bool {
	return len(testutil.Children(e.crbpf.PID)) > 0
}

// fillingMemory: a traced process below crbpf already has 32 MiB resident
// (restart is filling the restored memory).
func fillingMemory(e interruptEnv) bool {
	for _, d := range testutil.Descendants(e.crbpf.PID) {
		st, err := testutil.Status(d.PID)
		if err != nil || st["TracerPid"] == "0" {
			continue
		}
		var kb int
		if _, err := fmt.Sscanf(st["VmRSS"], "%d kB", &kb); err == nil && kb >= 32<<10 {
			return true
		}
	}
	return false
}

// printed: the restored process wrote a line to crbpf's stdout.
func printed(e interruptEnv) bool {
	return len(e.crbpf.Lines()) > 0
}

// signalIfRunning sends sig to crbpf unless it has already exited.
func signalIfRunning(t *testing.T, crbpf *testutil.Target, sig unix.Signal) {
	t.Helper()
	if crbpf.Exited() {
		return
	}
	if err := unix.Kill(crbpf.PID, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		t.Fatalf("kill %s: %v", crbpf, err)
	}
}

// waitReleased waits until no thread of pid is traced or stopped (the
// kernel detaches tracees as their tracer exits) and fails the test if that
// does not happen, or if pid is gone.
func waitReleased(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := testutil.TaskStates(pid)
		if err != nil || len(tasks) == 0 {
			t.Fatalf("pid %d is gone: %v", pid, err)
		}
		held := false
		for _, ts := range tasks {
			if ts.TracerPid != 0 || strings.HasPrefix(ts.State, "t") || strings.HasPrefix(ts.State, "T") {
				held = true
			}
		}
		if !held {
			testutil.RequireUntouched(t, pid)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d is still traced or stopped %v after crbpf exited: %+v\n%s", pid, timeout, tasks, procStatus(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestCheckpointInterrupted sends SIGTERM or SIGINT to `crbpf checkpoint`
// of a 256 MiB memcheck target at various points: crbpf must exit non-zero
// and leave neither the image directory nor a ".img.tmp-*" sibling, or, if
// it had already finished, exit 0 with a complete image that verifies. In
// both cases the target is running, untraced and unstopped, and still
// passes its self-check. One target takes every interruption of a signal in
// turn.
func TestCheckpointInterrupted(t *testing.T) {
	testutil.RequireRoot(t)
	cases := append(delayCases(0, 20, 50, 100, 200),
		interruptCase{name: "target-traced", until: tracedTarget},
		interruptCase{name: "image-dir-created", until: imageBeingWritten},
		interruptCase{name: "target-stopped", until: stoppedTarget})
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			tg, pages := startMemcheck(t)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					parent := t.TempDir()
					img := filepath.Join(parent, "img")
					cp := testutil.StartCrbpf(t, "-v", "checkpoint", "-o", img, strconv.Itoa(tg.PID))
					if !c.wait(t, interruptEnv{crbpf: cp, target: tg.PID, imgParent: parent}) {
						t.Logf("%s: crbpf finished before that was seen", c.name)
					}
					signalIfRunning(t, cp, sig)
					code := cp.Wait(t, timeout)
					t.Logf("crbpf checkpoint exited %d after %v\n%s", code, sig, cp.Log())

					names := dirNames(t, parent)
					if code == exitOK {
						if !slices.Equal(names, []string{"img"}) {
							t.Errorf("checkpoint succeeded; %s holds %q, want just \"img\"", parent, names)
						}
						stdout, stderr, vcode := testutil.RunCrbpf(t, "images", "verify", img)
						if vcode != exitOK {
							t.Errorf("checkpoint exited 0 but `crbpf images verify` exits %d:\n%s%s", vcode, stdout, stderr)
						}
					} else if len(names) != 0 {
						t.Errorf("interrupted checkpoint (exit %d) left %q in %s, want nothing", code, names, parent)
					}

					waitReleased(t, tg.PID)
					expectVerify(t, tg, tg.PID, pages)
					nextTick(t, tg)
				})
			}
		})
	}
}

// pidSet indexes procs by PID.
func pidSet(procs []testutil.ProcStat) map[int]testutil.ProcStat {
	m := make(map[int]testutil.ProcStat)
	for _, p := range procs {
		m[p.PID] = p
	}
	return m
}

// sigkillPending says whether SIGKILL is pending in a /proc/PID/status.
func sigkillPending(st map[string]string) bool {
	for _, k := range []string{"SigPnd", "ShdPnd"} {
		if v, err := strconv.ParseUint(st[k], 16, 64); err == nil && v&(1<<(unix.SIGKILL-1)) != 0 {
			return true
		}
	}
	return false
}

// pfExiting is PF_EXITING of include/linux/sched.h: do_exit has begun.
const pfExiting = 0x4

// exiting says whether pid has begun to exit (the flags field of
// /proc/PID/stat has PF_EXITING).
func exiting(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(rest) < 7 {
		return true
	}
	flags, err := strconv.ParseUint(rest[6], 10, 64)
	return err != nil || flags&pfExiting != 0
}

// reaped reaps pid if it has ended (it must be a child of the test binary
// by now: its parent crbpf is dead and the test binary is a subreaper).
// It returns the wait status, or ok false while pid lives.
func reaped(pid int) (ws unix.WaitStatus, ok bool, gone bool) {
	wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
	if wpid == pid {
		return ws, true, true
	}
	return ws, false, errors.Is(err, unix.ECHILD) && !testutil.Exists(pid)
}

// settle finds out what became of pid, a process that a `crbpf restart`
// killed by SIGKILL had below it: "killed" if it died of SIGKILL
// (PTRACE_O_EXITKILL: crbpf was still restoring it), "restored" if it runs
// on untraced and memcheck's self-check passes on out (crbpf had finished
// and detached; it is then killed here), "gone" if it vanished before it
// could be looked at. Anything else fails the test.
func settle(t *testing.T, out *testutil.Target, pid int, pages string) (fate, comm string) {
	t.Helper()
	// ended judges the wait status of pid, reaped by the test binary.
	ended := func(ws unix.WaitStatus) string {
		t.Helper()
		switch {
		case ws.Signaled() && ws.Signal() == unix.SIGKILL:
			return "killed"
		case ws.Stopped():
			// Only a tracer is told of a stop without WUNTRACED.
			t.Errorf("pid %d (%s), left by the killed crbpf, is in a ptrace-stop (%v) and the test binary is its tracer: "+
				"it survived crbpf and attached itself to its new parent (the subreaper) with PTRACE_TRACEME; "+
				"want it dead by SIGKILL\n%s", pid, comm, ws.StopSignal(), procStatus(pid))
			unix.Kill(pid, unix.SIGKILL)
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
				t.Errorf("reap pid %d: %v", pid, err)
			}
			return "stopped-traced-by-test"
		case ws.Signaled():
			t.Errorf("pid %d (%s), left by the killed crbpf, died of %v, not of SIGKILL: it survived crbpf's death",
				pid, comm, ws.Signal())
			return "died-of-" + unix.SignalName(ws.Signal())
		default:
			t.Errorf("pid %d (%s), left by the killed crbpf, exited with status %d, want death by SIGKILL",
				pid, comm, ws.ExitStatus())
			return fmt.Sprintf("exited-%d", ws.ExitStatus())
		}
	}
	deadline := time.Now().Add(timeout)
	// Wait until it is dead, or alive, untraced, not stopped and not dying.
	for {
		stat, err1 := testutil.ReadStat(pid)
		if err1 == nil {
			comm = stat.Comm
		}
		ws, done, gone := reaped(pid)
		if done {
			return ended(ws), comm
		}
		if gone {
			return "gone", comm
		}
		st, err2 := testutil.Status(pid)
		if err1 == nil && err2 == nil {
			if !strings.ContainsRune("ZXtT", rune(stat.State)) && st["TracerPid"] == "0" &&
				!sigkillPending(st) && !exiting(pid) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d (%+v), left by the killed crbpf, neither died nor runs free within %v:\n%s",
				pid, stat, timeout, procStatus(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// It runs. Only a completely restored memcheck answers SIGUSR1 with
	// VERIFY OK; one that was dying after all dies of SIGKILL meanwhile.
	testutil.Adopt(t, pid)
	n := len(out.Lines())
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil && !errors.Is(err, unix.ESRCH) {
		t.Fatalf("kill(%d, SIGUSR1): %v", pid, err)
	}
	for {
		if ws, done, _ := reaped(pid); done {
			return ended(ws), comm
		}
		for _, l := range out.Lines()[n:] {
			if strings.HasPrefix(l, "VERIFY") {
				if m := verifyOK.FindStringSubmatch(l); m == nil || m[1] != pages {
					t.Errorf("pid %d (%s) runs on after crbpf was killed and reports %q, want VERIFY OK %s pages",
						pid, comm, l, pages)
				}
				testutil.KillAndReap(t, pid)
				return "restored", comm
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d (%s) runs free after crbpf was killed but does not answer SIGUSR1 with VERIFY (a half-restored process?):\n%s\n%s",
				pid, comm, procStatus(pid), out.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestartKilled SIGKILLs a foreground `crbpf restart` of a 256 MiB
// memcheck image at various points: after fixed delays, as soon as it has
// forked (the stub it execs and restores into), while it fills memory, and
// after the restored process printed. A process it was still restoring
// must die with it, of SIGKILL (PTRACE_O_EXITKILL), never be left
// half-restored, stopped or traced by someone else; one it had fully
// restored runs on, untraced, and verifies OK (the test then kills it).
// Nothing else may be left behind.
func TestRestartKilled(t *testing.T) {
	testutil.RequireRoot(t)
	orig, pages := startMemcheck(t)
	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img, "--kill")
	orig.ReadToEOF(t, timeout)
	orig.Wait(t, timeout)

	cases := delayCases(0, 20, 50, 100, 200, 400)
	// The moment crbpf has forked the process it will restore into is
	// brief and hit only now and then: try it a few times.
	for i := 1; i <= 8; i++ {
		cases = append(cases, interruptCase{name: fmt.Sprintf("child-started-%d", i), until: childStarted})
	}
	cases = append(cases,
		interruptCase{name: "restoring-memory", until: fillingMemory},
		interruptCase{name: "restored", until: printed})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := pidSet(testutil.Descendants(os.Getpid()))
			r := testutil.StartCrbpf(t, "-v", "restart", img)
			if !c.wait(t, interruptEnv{crbpf: r}) {
				t.Fatalf("crbpf restart exited on its own\n%s", r.Log())
			}
			seen := testutil.Descendants(r.PID)
			signalIfRunning(t, r, unix.SIGKILL)
			if code := r.Wait(t, timeout); code != 128+int(unix.SIGKILL) {
				t.Errorf("crbpf restart exited %d, want 137 (killed)\n%s", code, r.Log())
			}

			// What crbpf left: its descendants just before the kill and
			// anything new below the test binary now.
			left := pidSet(seen)
			for pid, p := range pidSet(testutil.Descendants(os.Getpid())) {
				if _, ok := before[pid]; !ok {
					left[pid] = p
				}
			}
			var fates []string
			restored, killed := 0, 0
			for _, pid := range slices.Sorted(maps.Keys(left)) {
				fate, comm := settle(t, r, pid, pages)
				if comm == "" {
					comm = left[pid].Comm
				}
				fates = append(fates, fmt.Sprintf("%d(%s) %s", pid, comm, fate))
				switch fate {
				case "restored":
					restored++
				case "killed":
					killed++
				}
			}
			t.Logf("left by crbpf (pid %d) when killed: %v", r.PID, fates)

			switch c.name {
			case "restoring-memory":
				if killed == 0 || restored != 0 {
					t.Errorf("killed while restoring memory: want the process being restored to die, got %v", fates)
				}
			case "restored":
				if restored != 1 {
					t.Errorf("killed after the restored process ran: want it running on, got %v", fates)
				}
			}
			if restored > 1 {
				t.Errorf("%d processes run free after crbpf was killed: %v", restored, fates)
			}
			for pid, p := range pidSet(testutil.Descendants(os.Getpid())) {
				if _, ok := before[pid]; !ok {
					t.Errorf("still there after the killed restore: pid %d (%s, state %c)", pid, p.Comm, p.State)
				}
			}
			if t.Failed() {
				t.Log(r.Log())
			}
		})
	}
}
