package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// stateReport sends SIGUSR1 to pid and returns the STATE line it prints
// on out.
func stateReport(t *testing.T, out *testutil.Target, pid int) string {
	t.Helper()
	kill(t, pid, unix.SIGUSR1)
	return out.WaitLine(t, "STATE ", timeout)
}

// waitTimerTicks asks pid for STATE lines until both of its timers have
// ticked at least twice more than in the report from, and returns the last.
func waitTimerTicks(t *testing.T, out *testutil.Target, pid int, from string) string {
	t.Helper()
	line := from
	deadline := time.Now().Add(timeout)
	for intField(t, line, "itticks") < intField(t, from, "itticks")+2 ||
		intField(t, line, "ptticks") < intField(t, from, "ptticks")+2 {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: its timers do not fire: first report %q, last %q", pid, from, line)
		}
		time.Sleep(100 * time.Millisecond)
		line = stateReport(t, out, pid)
	}
	return line
}

// procTimers returns /proc/PID/timers with the pid in "notify:" lines
// replaced by PID, so that two processes' timers compare equal.
func procTimers(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timers", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), fmt.Sprintf("pid.%d", pid), "pid.PID")
}

// addrNoRandomize is ADDR_NO_RANDOMIZE of sys/personality.h.
const addrNoRandomize = 0x0040000

// TestTaskState checkpoints state.c with --kill and restarts it: cwd,
// umask, rlimits (soft below hard, hard lowered), personality, comm, the
// ITIMER_REAL and POSIX interval timers (same id, interval, signal and
// sigev_value, and they keep firing), a pending queued SIGUSR2 with its
// si_value, and six fds (offsets, F_GETFL flags, FD_CLOEXEC, targets, the
// closed fd between them) must all be as the original had them.
func TestTaskState(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	orig := testutil.StartTarget(t, target(t, "state"), dir)
	orig.WaitLine(t, "READY", timeout)
	before := waitTimerTicks(t, orig, orig.PID, stateReport(t, orig, orig.PID))

	// The target set itself up as documented: otherwise comparing before
	// and after proves nothing.
	want := map[string]string{
		"cwd": filepath.Join(dir, "wd"), "umask": "0027", "nofile": "200/4000", "core": "12288/1048576",
		"comm": "statetgt", "it_int_us": "300000", "it_val_ok": "1", "ptid": "3", "pt_gettime": "1",
		"pt_int_ns": "250000000", "pt_val_ok": "1", "ptbad": "0", "usr2pend": "1", "usr2blocked": "1",
		"fd3.off": "5", "fd3.cx": "0", "fd3.link": filepath.Join(dir, "ro"),
		"fd4.off": "0", "fd4.cx": "0", "fd4.link": filepath.Join(dir, "append"),
		"fd5.off": "100", "fd5.cx": "1", "fd5.link": filepath.Join(dir, "rw"),
		"fd6.off": "0", "fd6.cx": "0", "fd6.link": dir,
		"fd7.cx": "0", "fd7.link": "/dev/zero",
		"fd9.cx": "0", "fd9.link": "/dev/null",
		"fd8": "closed",
	}
	wantFields(t, before, want)
	flags := map[int]int{3: unix.O_RDONLY, 4: unix.O_WRONLY | unix.O_APPEND, 5: unix.O_RDWR,
		6: unix.O_RDONLY | unix.O_DIRECTORY, 7: unix.O_RDONLY, 9: unix.O_RDWR}
	for fd, fl := range flags {
		got, err := strconv.ParseInt(fields(before)[fmt.Sprintf("fd%d.fl", fd)], 0, 64)
		if err != nil || int(got)&(unix.O_ACCMODE|unix.O_APPEND|unix.O_DIRECTORY) != fl {
			t.Errorf("fd %d: F_GETFL %#x (%v), want %#x among its flags", fd, got, err, fl)
		}
	}
	if p, _ := strconv.ParseInt(fields(before)["pers"], 0, 64); p&addrNoRandomize == 0 {
		t.Errorf("personality %s lacks ADDR_NO_RANDOMIZE", fields(before)["pers"])
	}
	if t.Failed() {
		t.Fatalf("state.c did not set itself up as expected:\n%s", orig.Log())
	}
	timersBefore := procTimers(t, orig.PID)

	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img, "--kill")
	orig.ReadToEOF(t, timeout)
	orig.Wait(t, timeout)
	// The log file grows while the process is away: O_APPEND must write
	// after this, wherever the saved offset was.
	appendPath := filepath.Join(dir, "append")
	f, err := os.OpenFile(appendPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("extern\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r := testutil.StartCrbpf(t, "-v", "restart", img)
	pid := restoredPID(t, r, "statetgt")
	if pid != orig.PID {
		t.Errorf("restored as pid %d, want the original pid %d (it was free)", pid, orig.PID)
	}
	first := stateReport(t, r, pid)
	// Everything the process observes about itself is as it was, except
	// the tick counts.
	same := fields(before)
	delete(same, "itticks")
	delete(same, "ptticks")
	wantFields(t, first, same)

	// Both timers keep firing after the restore, with the right siginfo.
	after := waitTimerTicks(t, r, pid, first)
	wantFields(t, after, same)
	t.Logf("before the checkpoint: %s\nafter the restore:    %s", before, after)
	if got := procTimers(t, pid); got != timersBefore {
		t.Errorf("/proc/PID/timers after the restore:\n%s\nbefore the checkpoint:\n%s", got, timersBefore)
	}

	// The reopened fds read and append where they should, and the queued
	// SIGUSR2 is delivered with its value once unblocked.
	kill(t, pid, unix.SIGHUP)
	wantFields(t, r.WaitLine(t, "ACT ", timeout), map[string]string{"read3": "567", "append": "1", "usr2": "1",
		"usr2val": "77", "usr2code": strconv.Itoa(-1) /* SI_QUEUE */, "usr2pid": strconv.Itoa(orig.PID)})
	if b, err := os.ReadFile(appendPath); err != nil || string(b) != "before\nextern\nafter\n" {
		t.Errorf("%s holds %q (%v), want %q", appendPath, b, err, "before\nextern\nafter\n")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "rw")); err != nil || string(b) != strings.Repeat(".", 200) {
		t.Errorf("rw file changed: %q (%v)", b, err)
	}
	if t.Failed() {
		t.Logf("state.c's /proc/PID/status after the restore:\n%s", procStatus(pid))
		t.Log(r.Log())
	}
}

// procStatus returns a process's /proc/PID/status for failure messages.
func procStatus(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	return string(b)
}
