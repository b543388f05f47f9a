// Package sched lowers crbpf's own CPU priority while its target runs and
// competes with it for the CPUs. It holds no state beyond what its
// functions return.
package sched

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Yield sets every thread of this process to nice 19 (threads created
// later inherit it from their creator) and returns a function that puts
// back each thread's previous nice value, for those threads still alive.
// Errors are ignored: a priority is a preference.
func Yield() (restore func()) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return func() {}
	}
	prev := map[int]int{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// getpriority(2) returns 20 - nice.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			continue
		}
		if unix.Setpriority(unix.PRIO_PROCESS, tid, 19) == nil {
			prev[tid] = 20 - p
		}
	}
	base := 0 // for threads started since: the nice they had before
	for _, n := range prev {
		base = n
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
			n, ok := prev[tid]
			if !ok {
				n = base
			}
			unix.Setpriority(unix.PRIO_PROCESS, tid, n)
		}
	}
}
