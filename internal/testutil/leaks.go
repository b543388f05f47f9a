package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The registry holds the PIDs of the test binary's children that a test
// owns (started with StartCmd or adopted). Any other live child of the test
// binary is a stray: something a command left behind. Starting and
// registering happen under the same lock as the stray check, so a child
// that is being started is never mistaken for a stray.
var registry struct {
	sync.Mutex
	pids map[int]string
}

var cloexecOnce sync.Once

// closeInheritedOnExec marks every fd >= 3 of the test binary close-on-exec.
// Go opens its own files that way, but fds the test binary inherited (from
// go test, a CI runner or a shell) are not, and os/exec would pass them on
// to every target: a target must start with exactly fds 0-2.
func closeInheritedOnExec() {
	fds, err := Fds(os.Getpid())
	if err != nil {
		return
	}
	for fd := range fds {
		if fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

func startRegistered(cmd *exec.Cmd, name string) error {
	cloexecOnce.Do(closeInheritedOnExec)
	registry.Lock()
	defer registry.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	registerLocked(cmd.Process.Pid, name)
	return nil
}

func register(pid int, name string) {
	registry.Lock()
	defer registry.Unlock()
	registerLocked(pid, name)
}

func registerLocked(pid int, name string) {
	if registry.pids == nil {
		registry.pids = make(map[int]string)
	}
	registry.pids[pid] = name
}

func unregister(pid int) {
	registry.Lock()
	defer registry.Unlock()
	delete(registry.pids, pid)
}

// describePID returns "pid N (comm, state S): cmdline" for messages.
func describePID(pid int) string {
	st, _ := ReadStat(pid)
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.TrimRight(strings.ReplaceAll(string(cmdline), "\x00", " "), " ")
	return fmt.Sprintf("pid %d (%s, state %c): %s", pid, st.Comm, st.State, args)
}

// strays returns the live children of the test binary that no test owns.
func strays() []int {
	registry.Lock()
	defer registry.Unlock()
	var out []int
	for _, c := range Children(os.Getpid()) {
		if c.State == 'Z' || c.State == 'X' {
			continue
		}
		if _, ok := registry.pids[c.PID]; !ok {
			out = append(out, c.PID)
		}
	}
	return out
}

// killStrays SIGKILLs and reaps every stray child (and zombie orphans) and
// describes each one that was alive.
func killStrays() []string {
	var msgs []string
	for _, pid := range strays() {
		msgs = append(msgs, "left behind: "+describePID(pid))
		unix.Kill(pid, unix.SIGKILL)
		if err := reap(pid, DefaultTimeout); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	reapOrphanZombies()
	return msgs
}

// reapOrphanZombies reaps zombie children of the test binary that no test
// owns (orphans that were re-parented to it and died).
func reapOrphanZombies() {
	registry.Lock()
	defer registry.Unlock()
	for _, c := range Children(os.Getpid()) {
		if _, ok := registry.pids[c.PID]; ok || c.State != 'Z' {
			continue
		}
		var ws unix.WaitStatus
		unix.Wait4(c.PID, &ws, unix.WNOHANG|unix.WALL, nil)
	}
}

// BecomeSubreaper makes the test binary a child subreaper: processes
// orphaned below it (a restored process whose crbpf exited or was killed)
// are re-parented to it instead of init, so the tests can find, reap and
// count them. Call it first thing in TestMain.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// Baseline is what the test binary held before the tests ran.
type Baseline struct {
	fds map[int]string
}

// TakeBaseline records the test binary's open files; call it in TestMain
// before m.Run and Check after.
func TakeBaseline() *Baseline {
	fds, _ := Fds(os.Getpid())
	return &Baseline{fds: fds}
}

// Check fails (and kills what it finds) if any child process of the test
// binary is still alive, if any process below it is in ptrace-stop, or if
// the test binary holds a pipe or pidfd that it did not hold at the
// baseline.
func (b *Baseline) Check() error {
	var errs []error
	reapOrphanZombies()
	self := os.Getpid()
	for _, d := range Descendants(self) {
		if d.State == 't' {
			errs = append(errs, fmt.Errorf("process in ptrace-stop after the tests: %s", describePID(d.PID)))
		}
	}
	for _, c := range Children(self) {
		if c.State == 'Z' {
			continue
		}
		errs = append(errs, fmt.Errorf("child process still alive after the tests: %s", describePID(c.PID)))
	}
	for _, d := range Descendants(self) {
		unix.Kill(d.PID, unix.SIGKILL)
	}
	for _, c := range Children(self) {
		reap(c.PID, DefaultTimeout)
	}
	if fds, err := Fds(self); err == nil {
		var leaked []string
		for fd, link := range fds {
			if b.fds[fd] == link {
				continue
			}
			if strings.HasPrefix(link, "pipe:") || link == "anon_inode:[pidfd]" {
				leaked = append(leaked, fmt.Sprintf("fd %d -> %s", fd, link))
			}
		}
		sort.Strings(leaked)
		if len(leaked) > 0 {
			errs = append(errs, fmt.Errorf("file descriptors left open after the tests: %s", strings.Join(leaked, ", ")))
		}
	}
	return errors.Join(errs...)
}
