package sched

import (
	"runtime"
	"runtime/debug"
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

// TestPauseGC: no collection completes while the collector is paused,
// however much is allocated, and the previous setting is back after.
func TestPauseGC(t *testing.T) {
	cycles := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return uint64(m.NumGC)
	}
	prev := debug.SetGCPercent(50)
	defer debug.SetGCPercent(prev)
	resume := PauseGC()
	before := cycles()
	var sink [][]byte
	for i := 0; i < 256; i++ { // 256 MiB, many times the heap goal at 50%
		sink = append(sink, make([]byte, 1<<20))
		if len(sink) == 8 {
			sink = sink[:0]
		}
	}
	if n := cycles() - before; n != 0 {
		t.Errorf("%d collections while paused", n)
	}
	resume()
	resume() // a second call changes nothing
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC %d after resume, want 50 back", got)
	}
	for i := 0; i < 256 && cycles() == before; i++ {
		sink = append(sink, make([]byte, 1<<20))
		if len(sink) == 8 {
			sink = sink[:0]
		}
	}
	if cycles() == before {
		t.Error("no collection after resume, with 256 MiB more allocated")
	}
}

// TestUnyield: a yielding thread gets the normal class for a stop, and
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
