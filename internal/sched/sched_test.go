package sched

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// policies returns each thread's scheduling policy and nice value.
func policies(t *testing.T) map[int]unix.SchedAttr {
	t.Helper()
	out := map[int]unix.SchedAttr{}
	eachThread(func(tid int) {
		if a, err := unix.SchedGetAttr(tid, 0); err == nil {
			out[tid] = *a
		}
	})
	if len(out) == 0 {
		t.Fatal("no thread of this process found")
	}
	return out
}

func TestYield(t *testing.T) {
	before := policies(t)
	for tid, a := range before {
		if a.Policy == unix.SCHED_IDLE {
			t.Fatalf("thread %d is SCHED_IDLE before Yield", tid)
		}
	}
	restore := Yield()
	for tid, a := range policies(t) {
		if a.Policy != unix.SCHED_IDLE {
			t.Errorf("thread %d has policy %d after Yield, want SCHED_IDLE (%d)", tid, a.Policy, unix.SCHED_IDLE)
		}
	}
	restore()
	after := policies(t)
	for tid, a := range before {
		if b, ok := after[tid]; ok && (b.Policy != a.Policy || b.Nice != a.Nice) {
			t.Errorf("thread %d: policy %d nice %d after restore, was %d %d", tid, b.Policy, b.Nice, a.Policy, a.Nice)
		}
	}
}

func TestBoost(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := unix.Gettid()
	before := policies(t)
	restore := Boost()
	for tid, a := range policies(t) {
		boosted := a.Policy == unix.SCHED_FIFO && a.Priority == 1
		if tid == self && !boosted {
			t.Errorf("calling thread: policy %d priority %d after Boost, want SCHED_FIFO (%d) 1", a.Policy, a.Priority, unix.SCHED_FIFO)
		}
		if tid != self && boosted {
			t.Errorf("thread %d boosted too: Boost is for the calling thread", tid)
		}
	}
	restore()
	for tid, b := range policies(t) {
		if a, ok := before[tid]; ok && (b.Policy != a.Policy || b.Nice != a.Nice || b.Priority != a.Priority) {
			t.Errorf("thread %d: policy %d nice %d after restore, was %d %d", tid, b.Policy, b.Nice, a.Policy, a.Nice)
		}
	}
}

// TestUnyield: a yielding thread gets the normal class for a stop (which
// then runs at normal priority where real-time priority is refused), and
// its idle class back after it; a normal thread is left as it is.
func TestUnyield(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	undoYield := Yield()
	defer undoYield()
	restore := Unyield()
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Policy != unix.SCHED_NORMAL || a.Nice != 0 {
		t.Errorf("policy %d nice %d during the stop, want SCHED_NORMAL (%d) nice 0", a.Policy, a.Nice, unix.SCHED_NORMAL)
	}
	restore()
	if a, err = unix.SchedGetAttr(0, 0); err != nil || a.Policy != unix.SCHED_IDLE {
		t.Errorf("policy %d (%v) after the stop, want SCHED_IDLE (%d) again", a.Policy, err, unix.SCHED_IDLE)
	}
	// Not yielding: nothing to do.
	undoYield()
	restore = Unyield()
	if a, err = unix.SchedGetAttr(0, 0); err != nil || a.Policy != unix.SCHED_NORMAL {
		t.Errorf("policy %d (%v) of a normal thread, want SCHED_NORMAL", a.Policy, err)
	}
	restore()
}
