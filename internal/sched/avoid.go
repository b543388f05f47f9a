package sched

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/procfs"
)

// AvoidEvery is how often Avoid looks again at where its target's threads
// run: a target moved onto crbpf's CPUs shares them with an idle-class
// thread for at most about this long.
const AvoidEvery = 10 * time.Millisecond

// Avoid keeps every thread of this process off the CPUs on which process
// pid's threads are running, as long as that leaves this process a CPU,
// until the returned stop is called; stop waits for the watching goroutine
// and puts back the affinity this process had. Errors are ignored, as in
// Yield: where the target runs is a preference, not a requirement.
//
// SCHED_IDLE (Yield) alone does not keep crbpf out of its target's way on
// a small machine. The scheduler gives an idle-class thread a slice of a
// busy CPU now and then, and with the kernel's default PREEMPT_NONE a
// slice spent in a long system call (a copy, an fallocate) runs on until
// the call reaches a preemption point: on the 2-vCPU development VM a
// busy 1 GiB target lost 4-17 ms at a time to crbpf's threads on its CPU
// during pre-copy, and 1.2-3 ms (its own stops) with crbpf kept on the
// other CPU.
//
// A target thread counts as holding the CPU it last ran on while it is
// running or runnable, in an uninterruptible wait, or stopped (crbpf's own
// stops among them: the mask does not change while the target is frozen);
// a sleeping thread holds none, so a target that mostly sleeps leaves
// crbpf every CPU. The set is read again every AvoidEvery: a waking target
// may be placed on crbpf's CPU (the scheduler counts a CPU running only
// idle-class threads as idle), and crbpf then moves.
func Avoid(pid int) (stop func()) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return func() {}
	}
	avoiding.Store(&allowed)
	// apply looks where the target's threads are and sets the mask if it
	// should change, or, with again, sets a narrowed one once more.
	cur := allowed
	apply := func(again bool) {
		if busy, others, stopped, err := lookAt(pid); err == nil && !stopped {
			if want := avoidMask(allowed, busy, others); want != cur || (again && want != allowed) {
				setAffinity(&want)
				cur = want
			}
		}
	}
	// The first look is the caller's, before it goes on: until the mask
	// is set, any of crbpf's threads may be woken on the target's CPU.
	apply(false)
	done, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The watcher has an OS thread of its own in the normal class
		// (it ends with the goroutine), which Yield leaves alone whether
		// it comes before Avoid or after: were it idle-class like the
		// rest, a target that moved onto crbpf's CPU would leave it only
		// the slices it means to avoid, and it would see the move late.
		// It wakes for about 30 µs every AvoidEvery.
		runtime.LockOSThread()
		tid := unix.Gettid()
		keepClass.Store(tid, struct{}{})
		defer keepClass.Delete(tid)
		Unyield()
		close(started)
		tick := time.NewTicker(AvoidEvery)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if busy, others, stopped, err := lookAt(pid); err == nil && !stopped {
				// Again every tenth look for threads started while
				// the mask was being set, which kept their old one.
				if want := avoidMask(allowed, busy, others); want != cur || (n%10 == 0 && want != allowed) {
					setAffinity(&want)
					cur = want
				}
			}
		}
	}()
	<-started
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
		setAffinity(&allowed)
		avoiding.Store(nil)
	})
}

// avoidMask is allowed without the CPUs in busy, or allowed whole if that
// would leave none, or if the threads of other processes that are
// ready to run would fill the CPUs left: an idle-class crbpf kept to CPUs
// that other work holds would only get slices of them, where without the
// mask it takes whatever CPU time any CPU leaves.
func avoidMask(allowed, busy unix.CPUSet, others int) unix.CPUSet {
	want := allowed
	for i := range want {
		want[i] &^= busy[i]
	}
	if n := want.Count(); n == 0 || others >= n {
		return allowed
	}
	return want
}

// lookAt is look, replaced by tests.
var lookAt = look

// look returns the CPUs that process pid's threads hold (see Avoid), how
// many threads of other processes than pid and this one are ready to run
// (running or waiting for a CPU) now, and whether a thread of pid is in a
// tracing stop: crbpf's stops, during which the mask is left as it is
// (moving the thread that holds the target stopped would only lengthen
// the stop).
func look(pid int) (busy unix.CPUSet, others int, stopped bool, err error) {
	busy, ready, stopped, err := threads(pid)
	if err != nil {
		return busy, 0, false, err
	}
	_, own, _, err := threads(os.Getpid())
	if err != nil {
		return busy, 0, false, err
	}
	all, err := readyThreads()
	if err != nil {
		return busy, 0, false, err
	}
	return busy, max(0, all-ready-own), stopped, nil
}

// threads returns the CPUs that process pid's threads hold (see Avoid),
// how many of them are ready to run (state R) and whether one is in a
// tracing stop.
func threads(pid int) (held unix.CPUSet, ready int, traced bool, err error) {
	tids, err := procfs.Tasks(pid)
	if err != nil {
		return held, 0, false, err
	}
	for _, tid := range tids {
		st, err := procfs.ReadTaskStat(pid, tid)
		if err != nil {
			continue // exited since the list was read
		}
		switch st.State {
		case 'R':
			ready++
			held.Set(st.Processor)
		case 't':
			traced = true
			held.Set(st.Processor)
		case 'D', 'T':
			held.Set(st.Processor)
		}
	}
	return held, ready, traced, nil
}

// readyThreads returns the number of threads on the machine ready to run
// now: the first number of the fourth field of /proc/loadavg (the sum of
// the run queues' lengths).
func readyThreads() (int, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, fmt.Errorf("/proc/loadavg: %q: want at least 4 fields", b)
	}
	n, _, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, fmt.Errorf("/proc/loadavg: %q: no running/total field", b)
	}
	return strconv.Atoi(n)
}

// setAffinity applies set to every thread of this process but the pinned
// ones (threads started later inherit their creator's).
func setAffinity(set *unix.CPUSet) {
	eachThread(func(tid int) {
		if _, ok := pinned.Load(tid); !ok {
			unix.SchedSetaffinity(tid, set)
		}
	})
}

var (
	// avoiding is the affinity the process had before Avoid narrowed
	// it, while Avoid runs.
	avoiding atomic.Pointer[unix.CPUSet]
	// pinned holds the threads (by id) that Elsewhere pinned: Avoid
	// leaves their affinity alone.
	pinned sync.Map
	// keepClass holds the threads (by id) whose scheduling class Yield
	// leaves alone: Avoid's watcher.
	keepClass sync.Map
)

// Elsewhere pins the calling OS thread (lock it to its goroutine first)
// to the CPUs this process may use other than cpu, counting those Avoid
// keeps it off, and keeps Avoid from moving it, until the returned unpin
// is called. ok is false, and nothing changes, when no such CPU is left.
//
// It is for a helper of the thread running on cpu during the final
// freeze: the target is stopped, so the CPU Avoid kept crbpf off is the
// idle one, and a thread woken there runs at once instead of queueing
// behind the thread on cpu.
func Elsewhere(cpu int) (unpin func(), ok bool) {
	var set unix.CPUSet
	if cpu < 0 {
		return func() {}, false
	} else if a := avoiding.Load(); a != nil {
		set = *a
	} else if unix.SchedGetaffinity(0, &set) != nil {
		return func() {}, false
	}
	set.Clear(cpu)
	return pin(set)
}

// pin keeps the calling OS thread (lock it to its goroutine first) on the
// CPUs in set, and Avoid from moving it, until the returned unpin puts
// back the CPUs it had. ok is false, and nothing changes, when set is
// empty or cannot be applied.
func pin(set unix.CPUSet) (unpin func(), ok bool) {
	var prev unix.CPUSet
	if set.Count() == 0 || unix.SchedGetaffinity(0, &prev) != nil {
		return func() {}, false
	}
	tid := unix.Gettid()
	pinned.Store(tid, struct{}{})
	if unix.SchedSetaffinity(0, &set) != nil {
		pinned.Delete(tid)
		return func() {}, false
	}
	return func() {
		// Avoid may have moved the other threads since: its tenth look
		// moves this one too.
		unix.SchedSetaffinity(0, &prev)
		pinned.Delete(tid)
	}, true
}

// CPU is the CPU the calling thread runs on (it may move at any time).
func CPU() int {
	var cpu uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); e != 0 {
		return -1
	}
	return int(cpu)
}
