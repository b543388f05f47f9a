package sched

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/procfs"
)

func cpus(ids ...int) unix.CPUSet {
	var s unix.CPUSet
	for _, id := range ids {
		s.Set(id)
	}
	return s
}

func TestAvoidMask(t *testing.T) {
	for _, tc := range []struct {
		name                string
		allowed, busy, want unix.CPUSet
		others              int
	}{
		{"one of two busy", cpus(0, 1), cpus(0), cpus(1), 0},
		{"every CPU busy", cpus(0, 1), cpus(0, 1), cpus(0, 1), 0},
		{"none busy", cpus(0, 1, 2, 3), cpus(), cpus(0, 1, 2, 3), 0},
		{"the only CPU busy", cpus(1), cpus(1), cpus(1), 0},
		{"busy outside the allowed", cpus(0, 1), cpus(2, 3), cpus(0, 1), 0},
		{"two of four busy", cpus(0, 1, 2, 3), cpus(1, 3), cpus(0, 2), 0},
		{"others fill the CPU left", cpus(0, 1), cpus(0), cpus(0, 1), 1},
		{"others fill the CPUs left", cpus(0, 1, 2, 3), cpus(1, 3), cpus(0, 1, 2, 3), 3},
		{"others leave a CPU", cpus(0, 1, 2, 3), cpus(1), cpus(0, 2, 3), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := avoidMask(tc.allowed, tc.busy, tc.others); got != tc.want {
				t.Errorf("avoidMask = %v, want %v", got, tc.want)
			}
		})
	}
}

// affinities returns each thread's CPU mask.
func affinities() map[int]unix.CPUSet {
	out := map[int]unix.CPUSet{}
	eachThread(func(tid int) {
		var s unix.CPUSet
		if unix.SchedGetaffinity(tid, &s) == nil {
			out[tid] = s
		}
	})
	return out
}

// firstCPU returns the lowest CPU in set, which must not be empty.
func firstCPU(set unix.CPUSet) int {
	for i := 0; ; i++ {
		if set.IsSet(i) {
			return i
		}
	}
}

// start runs a shell command as a child that is killed and reaped at the
// end of the test.
func start(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (this is a wait, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// busyTarget starts a busy target held on this process's first CPU, seen
// running there, and has Avoid count no other process's threads (until
// the test ends). It returns the target's pid, the CPUs this process may
// use and those Avoid should leave it. It needs 2 CPUs: it fails in CI
// without them, and skips elsewhere.
func busyTarget(t *testing.T) (pid int, allowed, rest unix.CPUSet) {
	t.Helper()
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	if allowed.Count() < 2 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs 2 CPUs, the test process may use %d", allowed.Count())
		}
		t.Skipf("needs 2 CPUs, the test process may use %d", allowed.Count())
	}
	first := firstCPU(allowed)
	rest = allowed
	rest.Clear(first)

	busy := start(t, "while :; do :; done")
	pid = busy.Process.Pid
	only := cpus(first)
	if err := unix.SchedSetaffinity(pid, &only); err != nil {
		t.Fatal(err)
	}
	// What other processes run is not this test's to decide (go test
	// runs packages side by side): none, as far as Avoid knows.
	lookAt = func(pid int) (unix.CPUSet, int, bool, error) {
		busy, _, stopped, err := look(pid)
		return busy, 0, stopped, err
	}
	t.Cleanup(func() { lookAt = look })
	waitFor(t, "the busy target to be seen running on its CPU", func() bool {
		held, _, _, err := threads(pid)
		return err == nil && held == only
	})
	return pid, allowed, rest
}

// avoidBusy starts a busy target (busyTarget) and Avoid on it (stopped
// when the test ends, or by the stop returned), and waits until every
// thread of this process has left the target's CPU.
func avoidBusy(t *testing.T) (allowed, rest unix.CPUSet, stop func()) {
	t.Helper()
	pid, allowed, rest := busyTarget(t)
	stop = Avoid(pid)
	t.Cleanup(stop)
	waitFor(t, "every thread to leave the busy target's CPU", func() bool {
		for _, s := range affinities() {
			if s != rest {
				return false
			}
		}
		return true
	})
	return allowed, rest, stop
}

func TestAvoid(t *testing.T) {
	allowed, _, stop := avoidBusy(t)
	stop()
	// The watcher's own thread ends with it, maybe a moment after stop.
	waitFor(t, "every thread to get its CPUs back", func() bool {
		for _, s := range affinities() {
			if s != allowed {
				return false
			}
		}
		return true
	})

	// A sleeping target holds no CPU.
	idle := start(t, "exec sleep 1000")
	pid := idle.Process.Pid
	waitFor(t, "the sleeping child to sleep", func() bool {
		st, err := procfs.ReadTaskStat(pid, pid)
		return err == nil && st.State == 'S' && st.Comm == "sleep"
	})
	if b, n, tr, err := threads(pid); err != nil || b.Count() != 0 || n != 0 || tr {
		t.Errorf("threads of a sleeping process: %d CPUs held, %d ready (%v), want none", b.Count(), n, err)
	}
	// And one that is gone is an error, which leaves the mask as it is.
	if _, _, _, err := look(1 << 22); err == nil {
		t.Error("look at a process that does not exist: no error")
	}
}

func TestLook(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	first := firstCPU(allowed)
	busy := start(t, "while :; do :; done")
	only := cpus(first)
	if err := unix.SchedSetaffinity(busy.Process.Pid, &only); err != nil {
		t.Fatal(err)
	}
	var held unix.CPUSet
	var ready int
	waitFor(t, "the busy child to be seen running on its CPU", func() bool {
		var err error
		held, ready, _, err = threads(busy.Process.Pid)
		return err == nil && held == only && ready == 1
	})
	// The machine's count includes this thread, reading it.
	if n, err := readyThreads(); err != nil || n < 1 {
		t.Errorf("readyThreads = %d, %v; want at least this thread", n, err)
	}
	if b, others, stopped, err := look(busy.Process.Pid); err != nil || others < 0 || b.Count() == 0 || stopped {
		t.Errorf("look = %d CPUs held, %d others, stopped %v, %v", b.Count(), others, stopped, err)
	}
}

// TestElsewhere: a thread pinned by Elsewhere, while Avoid keeps the
// others off a busy target's CPU, may use that CPU and every other but
// the one named, and Avoid leaves it so through its looks; Elsewhere
// refuses when no CPU would be left.
func TestElsewhere(t *testing.T) {
	allowed, rest, stop := avoidBusy(t)
	tracer := firstCPU(rest) // a CPU Avoid leaves this process

	want := allowed
	want.Clear(tracer)
	type result struct {
		before, after unix.CPUSet
		ok            bool
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var r result
		var unpin func()
		unpin, r.ok = Elsewhere(tracer)
		defer unpin()
		unix.SchedGetaffinity(0, &r.before)
		time.Sleep(15 * AvoidEvery) // Avoid sets every thread's mask again every tenth look
		unix.SchedGetaffinity(0, &r.after)
		done <- r
	}()
	r := <-done
	if !r.ok || r.before != want || r.after != want {
		t.Errorf("pinned elsewhere than CPU %d: ok %v, CPUs %d then %d, want %d", tracer, r.ok, r.before.Count(), r.after.Count(), want.Count())
	}

	// With a single CPU allowed, there is no elsewhere.
	go func() {
		runtime.LockOSThread()
		stop() // Avoid's mask no longer counts (and it sets every thread's)
		one := cpus(tracer)
		unix.SchedSetaffinity(0, &one)
		_, ok := Elsewhere(tracer)
		done <- result{ok: ok}
	}()
	if r := <-done; r.ok {
		t.Error("Elsewhere succeeded on a thread with no other CPU")
	}
}

// TestAvoidFirstLook: the mask is set before Avoid returns, so that work
// done right after it never runs on the target's CPU.
func TestAvoidFirstLook(t *testing.T) {
	pid, allowed, rest := busyTarget(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, got unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}
	stop := Avoid(pid)
	defer stop()
	if err := unix.SchedGetaffinity(0, &got); err != nil {
		t.Fatal(err)
	}
	if before != allowed || got != rest {
		t.Errorf("this thread's CPUs: %d before Avoid, %d when it returned; want %d then %d", before.Count(), got.Count(), allowed.Count(), rest.Count())
	}
}

// TestYieldSparesWatcher: Avoid's watcher stays in the normal class when
// Yield comes after Avoid, and the other threads do not.
func TestYieldSparesWatcher(t *testing.T) {
	_, _, stop := avoidBusy(t)
	defer stop()
	restore := Yield()
	defer restore()
	var watchers []int
	keepClass.Range(func(k, _ any) bool {
		watchers = append(watchers, k.(int))
		return true
	})
	if len(watchers) != 1 {
		t.Fatalf("%d threads kept in their class, want Avoid's watcher alone", len(watchers))
	}
	idle := 0
	eachThread(func(tid int) {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			return // exited since the list was read
		}
		switch {
		case tid == watchers[0] && a.Policy != unix.SCHED_NORMAL:
			t.Errorf("watcher thread %d: policy %d after Yield, want SCHED_NORMAL", tid, a.Policy)
		case tid != watchers[0] && a.Policy == unix.SCHED_IDLE:
			idle++
		}
	})
	if idle == 0 {
		t.Error("Yield left no thread idle-class")
	}
}
