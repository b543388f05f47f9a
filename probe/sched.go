//go:build linux

package probe

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// probeRealtimeFreeze asks for what the freeze after pre-copy asks for
// (internal/sched.Boost): SCHED_FIFO priority 1 for the calling thread,
// then puts the thread's policy back.
func probeRealtimeFreeze(context.Context) (Status, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return Unknown, "sched_getattr: " + err.Error()
	}
	fifo := *a
	fifo.Policy, fifo.Nice, fifo.Priority = unix.SCHED_FIFO, 0, 1
	if err := unix.SchedSetAttr(0, &fifo, 0); err != nil {
		return Missing, fmt.Sprintf("sched_setattr(SCHED_FIFO, 1) refused (%v: no CAP_SYS_NICE, or no real-time budget for this cgroup): the freeze runs at normal priority, longer when the machine is busy", err)
	}
	if err := unix.SchedSetAttr(0, a, 0); err != nil {
		// The thread must not stay real-time: locked once more, it
		// ends with this goroutine instead of running others.
		runtime.LockOSThread()
		return Unknown, "granted, but putting the thread's policy back failed: " + err.Error()
	}
	return OK, "SCHED_FIFO priority 1 granted: the freeze after pre-copy runs at real-time priority"
}
