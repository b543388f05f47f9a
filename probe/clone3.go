//go:build linux

package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cloneArgs is struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1,
// 80 bytes, Linux 5.5+), the first version that has set_tid.
type cloneArgs struct {
	flags      uint64
	pidfd      uint64
	childTID   uint64
	parentTID  uint64
	exitSignal uint64
	stack      uint64
	stackSize  uint64
	tls        uint64
	setTID     uint64 // address of an array of pid_t, innermost namespace first
	setTIDSize uint64
}

// clone3Req keeps the arguments and the set_tid array together, so one
// object holds everything the kernel reads.
type clone3Req struct {
	args cloneArgs
	tid  [1]int32
}

// childExitCode is the status of a child that should never exist; it makes
// one recognisable in a wait status or a test failure.
const childExitCode = 121

// rawClone3 issues clone3 with req and returns the raw result. If the kernel
// unexpectedly creates a child, the child leaves at once with exit_group
// without returning: it is a copy of a multi-threaded Go process reduced to
// one thread, where no Go code may run.
//
// It is nosplit so that nothing between the system call and exit_group can
// grow the stack (which would call into the runtime), and so that the
// address of req.tid, taken here, stays valid until the kernel reads it.
// The caller must have blocked all signals on this thread: the child
// inherits the mask, so no Go signal handler can run in it either.
//
//go:nosplit
//go:norace
func rawClone3(req *clone3Req) (pid uintptr, errno unix.Errno) {
	if req.args.setTIDSize > 0 {
		req.args.setTID = uint64(uintptr(unsafe.Pointer(&req.tid[0])))
	}
	r1, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&req.args)), unsafe.Sizeof(req.args), 0)
	if e == 0 && r1 == 0 {
		for {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, childExitCode, 0, 0)
		}
	}
	return r1, e
}

// clone3Outcome is what the probe saw, for probeClone3SetTID to interpret.
type clone3Outcome struct {
	errno unix.Errno
	child int    // pid of a child that was (unexpectedly) created, else 0
	reap  string // how reaping that child went
	err   error  // the probe could not run
}

// tryClone3 calls clone3(set_tid=[own pid], set_tid_size=1, flags 0,
// exit_signal SIGCHLD). The pid is in use (by this very process), so a kernel
// that supports set_tid and grants it answers EEXIST without creating a
// child. With withSetTID false (tests only) it passes no set_tid and so
// really forks, to exercise the path of an unexpected child.
//
// It runs on a goroutine of its own that locks its OS thread and never
// unlocks it: the thread blocks all signals for the call, and the runtime
// discards it when the goroutine ends, so the changed mask cannot leak to
// other goroutines even if restoring it failed.
func tryClone3(withSetTID bool) clone3Outcome {
	done := make(chan clone3Outcome, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see above.
		done <- clone3OnLockedThread(withSetTID)
	}()
	return <-done
}

func clone3OnLockedThread(withSetTID bool) clone3Outcome {
	// set_tid names PIDs in the namespace the child would be born in. If
	// it is not ours (after unshare or setns of a PID namespace), our pid
	// may be free there and the call would really create a child: refuse.
	own, err1 := os.Readlink("/proc/thread-self/ns/pid")
	children, err2 := os.Readlink("/proc/thread-self/ns/pid_for_children")
	switch {
	case err1 != nil:
		return clone3Outcome{err: fmt.Errorf("read own PID namespace: %w", err1)}
	case err2 != nil:
		return clone3Outcome{err: fmt.Errorf("read PID namespace for children: %w", err2)}
	case own != children:
		return clone3Outcome{err: fmt.Errorf("children would be born in %s, not in crbpf's %s: probing set_tid there could create a process", children, own)}
	}

	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		return clone3Outcome{err: fmt.Errorf("block signals: %w", err)}
	}
	req := &clone3Req{args: cloneArgs{exitSignal: uint64(unix.SIGCHLD)}}
	if withSetTID {
		req.args.setTIDSize = 1
		req.tid[0] = int32(unix.Getpid())
	}
	pid, errno := rawClone3(req)
	runtime.KeepAlive(req)
	out := clone3Outcome{errno: errno}
	if errno == 0 {
		out.child = int(pid)
		out.reap = reapChild(out.child)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil); err != nil && out.err == nil {
		out.err = fmt.Errorf("restore signal mask: %w", err)
	}
	return out
}

// reapChild waits for a child that exits by itself and describes the result.
func reapChild(pid int) string {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Sprintf("wait4: %v", err)
		}
		if ws.Exited() {
			return fmt.Sprintf("reaped, exit status %d", ws.ExitStatus())
		}
		if ws.Signaled() {
			return fmt.Sprintf("reaped, killed by %v", ws.Signal())
		}
		// Stopped or continued (it cannot be traced by anyone but
		// root, and a stop needs a signal it has blocked): wait on.
	}
}

func probeClone3SetTID(context.Context) (Status, string) {
	o := tryClone3(true)
	if o.child != 0 {
		return Unknown, fmt.Sprintf("clone3 with set_tid=[own pid %d] unexpectedly created child %d (%s): cannot tell support", unix.Getpid(), o.child, o.reap)
	}
	if o.err != nil {
		return Unknown, "not probed: " + o.err.Error()
	}
	call := fmt.Sprintf("clone3(set_tid=[own pid]) returned %s", errnoString(o.errno))
	switch o.errno {
	case unix.EEXIST:
		return OK, call + ": set_tid supported and permitted, no child created"
	case unix.EPERM:
		return Missing, joinDetail(call+": CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the PID namespace is needed; restart gives the process a new PID", seccompNote())
	case unix.EINVAL:
		return Missing, call + ": set_tid not supported (Linux 5.5+); restart gives the process a new PID"
	case unix.ENOSYS:
		return Missing, joinDetail(call+": clone3 not available (Linux 5.3+); restart gives the process a new PID", seccompNote())
	}
	return Unknown, call + ": unexpected answer"
}
