package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Injector runs system calls inside a stopped tracee.
//
// Each injected call points rip at a `syscall` instruction already present in
// the tracee (SyscallIP), sets orig_rax to -1 so that the kernel applies no
// restart logic, runs the task to the syscall-entry stop and then to the
// syscall-exit stop, and reads rax. The task is left at that syscall-exit
// stop, where its registers can be replaced before it runs another user
// instruction: the caller ends with SetRegs/Detach, or with another Syscall.
//
// Before the first call all blockable signals are blocked, so that no
// handler runs between injected calls; the caller puts the mask back before
// the registers. Signals that cannot be blocked and stop the task (SIGSTOP
// and friends) are suppressed and recorded in Suppressed for the caller to
// send again.
type Injector struct {
	Task      *Task
	SyscallIP uint64
	// Base are the registers the injected calls start from (segment
	// registers, flags and fs_base must be sane).
	Base unix.PtraceRegs
	// SP, if not zero, is the stack pointer of every injected call: with
	// SyscallIP at a Lifeline's `syscall; ret`, the address of its Frame.
	SP uint64

	Suppressed []unix.Signal
	blocked    bool
	prepared   uint64 // the call Prepare pointed the task at, for Run
}

// Syscall injects one system call and returns its raw return value
// (negative errno on failure).
//
// Precondition: called on the tracer thread, with the task stopped.
func (in *Injector) Syscall(nr uint64, args ...uint64) (int64, error) {
	if err := in.Prepare(nr, args...); err != nil {
		return 0, err
	}
	return in.Run()
}

// Prepare points the stopped task at the system call nr(args) without
// making it: Syscall's first half. With a Lifeline, a task whose tracer
// dies from here on makes that call itself and then returns through the
// Lifeline; Run makes it under the tracer. A call that must follow
// another whatever happens (closing what the first one opened) is
// prepared as soon as the first returns, before anything else.
//
// Precondition: called on the tracer thread, with the task stopped.
func (in *Injector) Prepare(nr uint64, args ...uint64) error {
	if len(args) > 6 {
		return fmt.Errorf("inject syscall %d: %d arguments", nr, len(args))
	}
	var a [6]uint64
	copy(a[:], args)
	r := in.Base
	r.Rip = in.SyscallIP
	if in.SP != 0 {
		r.Rsp = in.SP
	}
	r.Rax = nr
	r.Orig_rax = ^uint64(0)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := in.Task.SetRegs(r); err != nil {
		return err
	}
	in.prepared = nr
	if !in.blocked {
		// Only now, with the registers pointing at the call: a task
		// whose tracer dies from here on returns through its Lifeline,
		// which restores the mask too.
		if err := in.Task.SetSigMask(^uint64(0)); err != nil {
			return err
		}
		in.blocked = true
	}
	return nil
}

// Run makes the call Prepare pointed the task at and returns its raw
// return value: Syscall's second half.
//
// Precondition: called on the tracer thread, with the task stopped at the
// prepared call.
func (in *Injector) Run() (int64, error) {
	nr := in.prepared
	for phase := 0; phase < 2; {
		if err := in.Task.Syscall(0); err != nil {
			return 0, err
		}
		st, err := in.Task.Wait()
		if err != nil {
			return 0, err
		}
		switch {
		case st.Exited():
			return 0, fmt.Errorf("inject syscall %d into tid %d: task %v: %w", nr, in.Task.TID, st, ErrTaskGone)
		case st.IsSyscallStop():
			phase++
		case st.Event() != 0:
			// An event stop (e.g. a group stop or a late PTRACE_INTERRUPT):
			// resume towards the syscall.
		case st.Status.Stopped():
			in.Suppressed = append(in.Suppressed, st.Sig())
		}
	}
	out, err := in.Task.Regs()
	if err != nil {
		return 0, err
	}
	if out.Rip != in.SyscallIP+2 {
		return 0, fmt.Errorf("inject syscall %d into tid %d: stopped at rip %#x, expected %#x", nr, in.Task.TID, out.Rip, in.SyscallIP+2)
	}
	return int64(out.Rax), nil
}

// Call is Syscall with a negative return turned into an error naming the call.
//
// Precondition: called on the tracer thread, with the task stopped.
func (in *Injector) Call(name string, nr uint64, args ...uint64) (uint64, error) {
	ret, err := in.Syscall(nr, args...)
	return in.result(name, ret, err)
}

// RunCall is Run with Call's errors.
//
// Precondition: called on the tracer thread, with the task stopped at the
// prepared call.
func (in *Injector) RunCall(name string) (uint64, error) {
	ret, err := in.Run()
	return in.result(name, ret, err)
}

func (in *Injector) result(name string, ret int64, err error) (uint64, error) {
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if ret < 0 && ret > -4096 {
		return 0, fmt.Errorf("%s in tid %d: %w", name, in.Task.TID, unix.Errno(-ret))
	}
	return uint64(ret), nil
}

// MarkRestart makes a task stopped in a syscall look as if the call asked
// to be restarted (-ERESTARTNOHAND), so that FixRestart issues it again.
func MarkRestart(r *unix.PtraceRegs) {
	r.Rax = ^uint64(restartnohand - 1)
}

// FixRestart applies to r what the kernel does for an interrupted syscall
// that must be restarted when the task next returns to user space, and
// clears orig_rax so that the kernel does not do it again.
//
// sameTask selects the -ERESTART_RESTARTBLOCK rule: within the same task the
// kernel's restart block survives and restart_syscall continues the call
// (keeping, e.g., the remaining time of a sleep); in a new process it does
// not, so the original call is issued again with its original arguments.
func FixRestart(r *unix.PtraceRegs, sameTask bool) {
	if int64(r.Orig_rax) >= 0 {
		switch -int64(r.Rax) {
		case restartsys, restartnointr, restartnohand:
			r.Rax = r.Orig_rax
			r.Rip -= 2
		case restartRestartblock:
			if sameTask {
				r.Rax = sysRestartSyscall
			} else {
				r.Rax = r.Orig_rax
			}
			r.Rip -= 2
		}
	}
	r.Orig_rax = ^uint64(0)
}
