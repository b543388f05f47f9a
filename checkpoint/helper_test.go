package checkpoint

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/internal/sched"
)

// TestScanHelper: the helper's thread runs what it is woken with, off
// the CPU it was told to leave, in the tracer's priority class, and
// Close ends it.
func TestScanHelper(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu := sched.CPU()
	h := startScanHelper(cpu)
	if allowed.Count() < 2 {
		if h != nil {
			t.Fatal("a helper started with a single CPU")
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs 2 CPUs, the test process may use %d", allowed.Count())
		}
		t.Skipf("needs 2 CPUs, the test process may use %d", allowed.Count())
	}
	if h == nil {
		t.Fatalf("no helper with %d CPUs", allowed.Count())
	}
	type seen struct {
		tid  int
		cpus unix.CPUSet
	}
	for range 3 { // it sleeps again after each
		got := make(chan seen)
		h.Wake(func() {
			var s seen
			s.tid = unix.Gettid()
			unix.SchedGetaffinity(0, &s.cpus)
			got <- s
		})
		s := <-got
		if s.tid == unix.Gettid() || s.cpus.IsSet(cpu) || s.cpus.Count() != allowed.Count()-1 {
			t.Errorf("helper thread %d (caller %d) may use %d CPUs, CPU %d among them: %v; want the %d others", s.tid, unix.Gettid(), s.cpus.Count(), cpu, s.cpus.IsSet(cpu), allowed.Count()-1)
		}
	}
	h.Close()
	select {
	case <-h.done:
	default:
		t.Error("Close returned before the helper ended")
	}
}
