// Package sched lowers crbpf's own CPU priority, and keeps it off its
// target's CPUs where it can, while the target runs and competes with it
// for the CPUs. It holds no state beyond what its functions return (and
// Avoid's watching goroutine, which its stop function ends).
package sched

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/procfs"
)

// Yield puts every thread of this process in the SCHED_IDLE class (threads
// created later inherit it from their creator) and returns a function that
// puts back each thread's previous policy and nice value, for those
// threads still alive. Errors are ignored: a priority is a preference.
//
// SCHED_IDLE rather than nice 19: a waking nice-19 thread may still preempt
// a running normal thread and keep its CPU until the next tick (4 ms at
// HZ=250); an idle-class thread never preempts a normal one and is
// preempted by any normal thread that wakes.
func Yield() (restore func()) {
	return setAll(func(a *unix.SchedAttr) {
		a.Policy = unix.SCHED_IDLE
		a.Nice = 19
		a.Priority = 0
	})
}

// setAll applies set to the scheduling attributes of every thread of this
// process but those in keepClass, and returns a function that puts back
// each thread's previous ones (threads started since get those of an
// existing thread, which is what they inherited).
func setAll(set func(*unix.SchedAttr)) (restore func()) {
	prev := map[int]*unix.SchedAttr{}
	var base *unix.SchedAttr
	eachThread(func(tid int) {
		if _, ok := keepClass.Load(tid); ok {
			return
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			return
		}
		to := *a
		set(&to)
		if unix.SchedSetAttr(tid, &to, 0) == nil {
			prev[tid], base = a, a
		}
	})
	return func() {
		eachThread(func(tid int) {
			if _, ok := keepClass.Load(tid); ok {
				return
			}
			a, ok := prev[tid]
			if !ok {
				a = base
			}
			if a != nil {
				unix.SchedSetAttr(tid, a, 0)
			}
		})
	}
}

// eachThread calls fn with the id of every thread of this process
// (/proc/self/task); none if the list cannot be read.
func eachThread(fn func(tid int)) {
	tids, err := procfs.Tasks(os.Getpid())
	if err != nil {
		return
	}
	for _, tid := range tids {
		fn(tid)
	}
}

// Boost puts the calling OS thread (lock it to its goroutine first) in
// the SCHED_FIFO class at the lowest real-time priority, for a short final
// freeze: the target is stopped and every microsecond of crbpf's is its
// downtime. A FIFO thread takes a CPU from any normal thread at once and
// keeps it until it blocks, so the Go runtime's other threads waking on
// this 2-vCPU guest no longer push the freeze off its CPU for 0.1-0.5 ms
// at a time. Without CAP_SYS_NICE, or where real-time time is not granted
// (a cgroup with no RT budget), nothing changes: a stop inside a yielding
// checkpoint takes the normal class first (Unyield) for that case. Call
// the returned restore before the target runs again.
func Boost() (restore func()) {
	undo, err := TryBoost()
	if err != nil {
		return func() {}
	}
	return func() { undo() }
}

// Unyield puts the calling OS thread (lock it to its goroutine first), if
// it is in the SCHED_IDLE class, back in the normal class at nice 0, and
// returns a function that puts it back. For a stop inside a yielding
// checkpoint: the wait for the target to stop, and the wake-up after it,
// must not queue behind every other thread on the machine.
func Unyield() (restore func()) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil || a.Policy != unix.SCHED_IDLE {
		return func() {}
	}
	to := *a
	to.Policy, to.Nice, to.Priority = unix.SCHED_NORMAL, 0, 0
	if unix.SchedSetAttr(0, &to, 0) != nil {
		return func() {}
	}
	return func() { unix.SchedSetAttr(0, a, 0) }
}

// TryBoost is Boost saying why the priority was refused, and whether
// putting the thread's previous one back failed.
func TryBoost() (restore func() error, err error) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return nil, fmt.Errorf("sched_getattr: %w", err)
	}
	to := *a
	to.Policy, to.Nice, to.Priority = unix.SCHED_FIFO, 0, 1
	if err := unix.SchedSetAttr(0, &to, 0); err != nil {
		return nil, fmt.Errorf("sched_setattr(SCHED_FIFO, 1): %w", err)
	}
	return func() error { return unix.SchedSetAttr(0, a, 0) }, nil
}
