//go:build linux

package probe

import (
	"context"
	"runtime"

	"github.com/crbpf/crbpf/internal/sched"
)

// probeRealtimeFreeze asks for what the stops of a pre-copy checkpoint ask for
// (sched.Boost), on a locked thread, and puts the thread's policy back.
func probeRealtimeFreeze(context.Context) (Status, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	restore, err := sched.TryBoost()
	if err != nil {
		return Missing, err.Error() + " (no CAP_SYS_NICE, or no real-time budget for this cgroup): the stops run at normal priority, longer when the machine is busy"
	}
	if err := restore(); err != nil {
		// The thread must not stay real-time: locked once more, it
		// ends with this goroutine instead of running others.
		runtime.LockOSThread()
		return Unknown, "granted, but putting the thread's policy back failed: " + err.Error()
	}
	return OK, "SCHED_FIFO priority 1 granted: the stops of a pre-copy checkpoint (arming, final freeze) run at real-time priority"
}
