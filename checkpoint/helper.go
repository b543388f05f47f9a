package checkpoint

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/internal/sched"
)

// scanHelper is a thread that waits off the tracer thread's CPU, pinned
// and in the tracer's (normal) class, to scan beside it in the final freeze
// (precopy.Helper). It sleeps in a futex rather than on a channel: waking
// a goroutine locked to its thread goes through the Go scheduler, whose
// spare threads (idle-class) may only run on the tracer's CPU, which the
// tracer (normal class) does not leave during the freeze; the futex wakes
// the helper's thread directly on the CPU the stopped target left idle
// (50-150 µs on this VM).
type scanHelper struct {
	state atomic.Uint32 // helperIdle, helperWork or helperExit
	fn    atomic.Pointer[func()]
	done  chan struct{}
}

const (
	helperIdle = iota
	helperWork
	helperExit
)

// startScanHelper starts a scanHelper kept off cpu (the tracer thread's), or
// returns nil where no other CPU is left to it.
func startScanHelper(cpu int) *scanHelper {
	h := &scanHelper{done: make(chan struct{})}
	ready := make(chan bool)
	go func() {
		defer close(h.done)
		// Never unlocked: the thread ends with the goroutine, and its
		// pinning and priority with it.
		runtime.LockOSThread()
		sched.Unyield()
		unpin, ok := sched.Elsewhere(cpu)
		defer unpin()
		ready <- ok
		if !ok {
			return
		}
		for {
			switch h.state.Load() {
			case helperIdle:
				futex(&h.state, futexWaitPrivate, helperIdle)
			case helperWork:
				// Idle again before the call, so that a Wake during
				// it is not lost.
				h.state.CompareAndSwap(helperWork, helperIdle)
				if fn := h.fn.Swap(nil); fn != nil {
					(*fn)()
				}
			default:
				return
			}
		}
	}()
	if !<-ready {
		<-h.done
		return nil
	}
	return h
}

// Wake implements precopy.Helper.
func (h *scanHelper) Wake(fn func()) {
	h.fn.Store(&fn)
	h.state.Store(helperWork)
	futex(&h.state, futexWakePrivate, 1)
}

// Close ends the helper's thread, once a call in progress returns.
func (h *scanHelper) Close() {
	if h == nil {
		return
	}
	h.state.Store(helperExit)
	futex(&h.state, futexWakePrivate, 1)
	<-h.done
}

const (
	futexWaitPrivate = 128 // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
	futexWakePrivate = 129 // FUTEX_WAKE | FUTEX_PRIVATE_FLAG
)

// futex is futex(2) on a word of this process; its errors (EAGAIN: the
// word changed; EINTR) only make the callers look at the word again.
func futex(addr *atomic.Uint32, op, val uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), uintptr(op), uintptr(val), 0, 0, 0)
}
