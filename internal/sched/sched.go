// Package sched lowers crbpf's own CPU priority while its target runs and
// competes with it for the CPUs. It holds no state beyond what its
// functions return.
package sched

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
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
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return func() {}
	}
	prev := map[int]*unix.SchedAttr{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue
		}
		idle := *a
		idle.Policy = unix.SCHED_IDLE
		idle.Nice = 19
		if unix.SchedSetAttr(tid, &idle, 0) == nil {
			prev[tid] = a
		}
	}
	var base *unix.SchedAttr // for threads started since: what they had before
	for _, a := range prev {
		base = a
		break
	}
	return func() {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			a, ok := prev[tid]
			if !ok {
				a = base
			}
			if a != nil {
				unix.SchedSetAttr(tid, a, 0)
			}
		}
	}
}
