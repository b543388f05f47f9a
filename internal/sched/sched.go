// Package sched lowers crbpf's own CPU priority, and keeps it off its
// target's CPUs where it can, while the target runs and competes with it
// for the CPUs. It holds no state beyond what its functions return (and
// Avoid's watching goroutine, which its stop function ends).
package sched

import (
	"os"
	"runtime/debug"
	"sync"

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

// PauseGC keeps Go's garbage collector from running until the returned
// resume is called, first waiting for a cycle in progress to end: for the
// stops of a pre-copy checkpoint, which no collector work should share
// the tracer's CPU with. There is a worse reason too. While another
// thread holds a goroutine's scan bit (the collector scanning its stack,
// or, since Go 1.26, sysmon or a thread leaving a system call looking at
// the goroutine's P), the goroutine's return from a system call spins
// (casgstatus, with sched_yield) until the bit is dropped. A tracer that
// runs in a higher class than the idle-class holder, on the CPU Avoid
// confines that holder to, preempts it on waking and then spins on its
// behalf: at SCHED_FIFO (the stops used it until the twelfth session)
// that lasted until the kernel's fair server gave the holder its 50 ms
// of the second, and a stop held its target for 1.0 s (docs/
// benchmarks.md, "Real-time stops and the Go runtime"). In the normal
// class the wait ends when the holder's turn comes; pausing the
// collector removes its share of those waits.
func PauseGC() (resume func()) {
	prev := debug.SetGCPercent(-1) // returns once no cycle is running
	return sync.OnceFunc(func() { debug.SetGCPercent(prev) })
}

// Unyield puts the calling OS thread (lock it to its goroutine first), if
// it is in the SCHED_IDLE class, back in the normal class at nice 0, and
// returns a function that puts it back. For a stop inside a yielding
// checkpoint: the wait for the target to stop, the work while it is
// stopped and the wake-up after it must not queue behind every other
// thread on the machine. An idle-class thread never preempts a normal one
// on waking, so crbpf's other threads leave such a thread its CPU.
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
