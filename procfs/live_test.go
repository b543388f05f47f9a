package procfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMain fails the run if the tests leak file descriptors.
func TestMain(m *testing.M) {
	// Let the runtime create its poller fds before counting.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before := countFDs()
	code := m.Run()
	if after := countFDs(); code == 0 && after > before {
		os.Stderr.WriteString("procfs tests leaked " + strconv.Itoa(after-before) + " file descriptors\n")
		code = 1
	}
	os.Exit(code)
}

func countFDs() int {
	names, _ := readDirNames("/proc/self/fd")
	return len(names)
}

func TestLiveMaps(t *testing.T) {
	ms, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var stack, vdso bool
	for i, m := range ms {
		stack = stack || m.Name == "[stack]"
		vdso = vdso || m.Name == "[vdso]"
		if i > 0 && m.Start < ms[i-1].End {
			t.Errorf("mapping %d [%#x, %#x) overlaps the previous one", i, m.Start, m.End)
		}
		if m.Start%pageSize != 0 || m.End%pageSize != 0 || m.End <= m.Start {
			t.Errorf("mapping %d [%#x, %#x) is not page aligned and non-empty", i, m.Start, m.End)
		}
	}
	if !stack || !vdso {
		t.Errorf("maps has [stack]: %v, [vdso]: %v; want both", stack, vdso)
	}

	// The page holding a heap object is a writable, readable mapping.
	x := new([4096]byte)
	addr := uint64(uintptr(unsafe.Pointer(x)))
	i := slices.IndexFunc(ms, func(m Mapping) bool { return m.Start <= addr && addr < m.End })
	if i < 0 {
		t.Fatalf("no mapping holds %#x", addr)
	}
	if m := ms[i]; m.Prot() != unix.PROT_READ|unix.PROT_WRITE || m.Shared {
		t.Errorf("heap object at %#x in %+v, want a private rw- mapping", addr, m)
	}
	runtime.KeepAlive(x)
}

func TestLiveStatAndStatus(t *testing.T) {
	pid := os.Getpid()
	st, err := ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	comm, err := ReadComm(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != pid || ss.Pid != pid || ss.Tgid != pid {
		t.Errorf("stat pid %d, status pid %d tgid %d; want %d", st.Pid, ss.Pid, ss.Tgid, pid)
	}
	if st.PPid != os.Getppid() || ss.PPid != os.Getppid() {
		t.Errorf("stat ppid %d, status ppid %d; want %d", st.PPid, ss.PPid, os.Getppid())
	}
	if st.Comm != comm || ss.Name != comm {
		t.Errorf("stat comm %q, status name %q, comm %q", st.Comm, ss.Name, comm)
	}
	if st.IsKernelThread() {
		t.Error("the test process is a kernel thread")
	}
	if st.NumThreads < 1 || ss.Threads < 1 {
		t.Errorf("stat threads %d, status threads %d", st.NumThreads, ss.Threads)
	}
	if !(st.StartCode < st.EndCode && st.ArgStart < st.ArgEnd && st.EnvStart <= st.EnvEnd && st.StartStack != 0) {
		t.Errorf("implausible mm fields: %+v", st)
	}
	if ss.Uid[0] != os.Getuid() || ss.Uid[1] != os.Geteuid() || ss.Gid[0] != os.Getgid() || ss.Gid[1] != os.Getegid() {
		t.Errorf("status Uid %v Gid %v", ss.Uid, ss.Gid)
	}
	old := unix.Umask(0o27)
	unix.Umask(old)
	if !ss.HasUmask || ss.Umask != uint32(old) {
		t.Errorf("status umask %#o (has %v), want %#o", ss.Umask, ss.HasUmask, old)
	}
	if tp, err := ReadTracerPid(pid); err != nil || tp != ss.TracerPid {
		t.Errorf("ReadTracerPid = %d, %v; want %d", tp, err, ss.TracerPid)
	}
	// The Go runtime catches SIGURG for preemption.
	if ss.SigCgt&(1<<(unix.SIGURG-1)) == 0 {
		t.Errorf("SigCgt %#x lacks SIGURG", ss.SigCgt)
	}
}

func TestLiveProcessInfo(t *testing.T) {
	pid := os.Getpid()
	auxv, err := ReadAuxv(pid)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(auxv); n < 2 || auxv[n-2] != AT_NULL {
		t.Fatalf("auxv %v does not end with AT_NULL", auxv)
	}
	pagesz := uint64(0)
	for i := 0; i < len(auxv); i += 2 {
		if auxv[i] == 6 /* AT_PAGESZ */ {
			pagesz = auxv[i+1]
		}
	}
	if pagesz != pageSize {
		t.Errorf("AT_PAGESZ %d, want %d", pagesz, pageSize)
	}

	args, err := ReadCmdline(pid)
	if err != nil || !slices.Equal(args, os.Args) {
		t.Errorf("ReadCmdline = %q, %v; want %q", args, err, os.Args)
	}

	pers, err := ReadPersonality(pid)
	want, _, _ := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	if err != nil || pers != uint32(want) {
		t.Errorf("ReadPersonality = %#x, %v; want %#x", pers, err, want)
	}

	cwd, err := ReadCwd(pid)
	wd, _ := os.Getwd()
	if err != nil || cwd != wd {
		t.Errorf("ReadCwd = %q, %v; want %q", cwd, err, wd)
	}
	exe, err := ReadExe(pid)
	fi1, err1 := os.Stat(exe)
	fi2, err2 := os.Stat(os.Args[0])
	if err != nil || err1 != nil || err2 != nil || !os.SameFile(fi1, fi2) {
		t.Errorf("ReadExe = %q, %v; not the test binary %q (%v, %v)", exe, err, os.Args[0], err1, err2)
	}
}

func TestLiveTasksAndChildren(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid := os.Getpid()
	tids, err := Tasks(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(tids) || !slices.Contains(tids, pid) || !slices.Contains(tids, unix.Gettid()) {
		t.Errorf("Tasks = %v; want sorted with %d and %d", tids, pid, unix.Gettid())
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child: %v", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	kids, err := Children(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(kids) || !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("Children = %v; want sorted with %d", kids, cmd.Process.Pid)
	}
	st, err := ReadStat(cmd.Process.Pid)
	if err != nil || st.PPid != pid {
		t.Errorf("child stat %+v, %v; want ppid %d", st, err, pid)
	}
}

func TestLiveFDs(t *testing.T) {
	pid := os.Getpid()
	name := filepath.Join(t.TempDir(), "file with spaces")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("hello, world"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(5, 0); err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(7, 0) // no EFD_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)

	fds, err := ReadFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(fds, func(a, b FD) int { return a.Num - b.Num }) {
		t.Error("fds not sorted")
	}
	byNum := func(n int) *FD {
		for i := range fds {
			if fds[i].Num == n {
				return &fds[i]
			}
		}
		t.Fatalf("fd %d not listed", n)
		return nil
	}
	ff := byNum(int(f.Fd()))
	if ff.Target != name || ff.Pos != 5 || !ff.Cloexec || ff.Flags&unix.O_ACCMODE != unix.O_RDWR || ff.Ino == 0 {
		t.Errorf("file fd %+v; want %q at 5, O_RDWR|O_CLOEXEC, an inode", ff, name)
	}
	ef := byNum(efd)
	if ef.Target != "anon_inode:[eventfd]" || ef.Cloexec || ef.Extra["eventfd-count"] != "7" {
		t.Errorf("eventfd %+v; want count 7 without cloexec", ef)
	}

	// A closed fd is reported as not existing, not as a missing process.
	n := int(f.Fd())
	f.Close()
	if _, err := ReadFD(pid, n); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadFD of a closed fd: %v; want fs.ErrNotExist", err)
	}
}

// sigevent is struct sigevent of the x86-64/arm64 ABI.
type sigevent struct {
	value  uint64
	signo  int32
	notify int32
	tid    int32
	_      [44]byte
}

func timerCreate(t *testing.T, clock int32, ev *sigevent) int32 {
	t.Helper()
	var id int32
	_, _, errno := unix.Syscall(unix.SYS_TIMER_CREATE, uintptr(clock), uintptr(unsafe.Pointer(ev)), uintptr(unsafe.Pointer(&id)))
	if errno != 0 {
		t.Fatalf("timer_create: %v", errno)
	}
	t.Cleanup(func() { unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(id), 0, 0) })
	return id
}

func TestLiveTimers(t *testing.T) {
	if _, err := os.Stat("/proc/self/timers"); err != nil {
		t.Skipf("no /proc/PID/timers (CONFIG_CHECKPOINT_RESTORE): %v", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), unix.Gettid()
	want := map[int32]Timer{}
	add := func(clock int32, ev sigevent, w Timer) {
		if got := w.SigevNotify(); got != ev.notify {
			t.Fatalf("%+v: SigevNotify() = %d, want %d", w, got, ev.notify)
		}
		w.ID = timerCreate(t, clock, &ev)
		if w.ClockID == 0 {
			w.ClockID = clock
		}
		want[w.ID] = w
	}
	add(unix.CLOCK_MONOTONIC, sigevent{value: 0x7fffdeadbeef, signo: int32(unix.SIGUSR1), notify: 0},
		Timer{Signal: int32(unix.SIGUSR1), SigevValue: 0x7fffdeadbeef, Notify: "signal", NotifyTID: pid})
	add(unix.CLOCK_BOOTTIME, sigevent{value: 42, signo: int32(unix.SIGUSR2), notify: 4, tid: int32(tid)},
		Timer{Signal: int32(unix.SIGUSR2), SigevValue: 42, Notify: "signal", SigevThreadID: true, NotifyTID: tid})
	add(unix.CLOCK_REALTIME, sigevent{notify: 1},
		Timer{Notify: "none", NotifyTID: pid})
	add(unix.CLOCK_PROCESS_CPUTIME_ID, sigevent{signo: int32(unix.SIGALRM), notify: 2},
		// The kernel shows CPU clocks in their internal encoding:
		// CLOCK_PROCESS_CPUTIME_ID becomes the scheduler clock of
		// "this process", ^0<<3|2 = -6.
		Timer{Signal: int32(unix.SIGALRM), Notify: "thread", NotifyTID: pid, ClockID: -6})
	add(unix.CLOCK_THREAD_CPUTIME_ID, sigevent{notify: 1},
		Timer{Notify: "none", NotifyTID: pid, ClockID: -2}) // ^0<<3|4|2

	ts, err := ReadTimers(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range ts {
		w, ok := want[got.ID]
		if !ok {
			continue // e.g. a profiling timer of the runtime
		}
		delete(want, got.ID)
		if got != w {
			t.Errorf("timer %d:\n got %+v\nwant %+v", got.ID, got, w)
		}
	}
	for id := range want {
		t.Errorf("timer %d not in /proc/self/timers", id)
	}
}

func TestLivePagemap(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 3*int(pageSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	mem[0] = 1          // page 0: written
	mem[2*pageSize] = 1 // page 2: written; page 1 never touched
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	end := start + 3*pageSize

	es, err := ReadPagemap(os.Getpid(), start, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	if !es[0].Present() || es[0].FileOrSharedAnon() || es[0].Swapped() || !es[0].Exclusive() {
		t.Errorf("written anon page: %#x; want present, exclusive, private anon", uint64(es[0]))
	}
	if es[1].Present() || es[1].Swapped() {
		t.Errorf("untouched page: %#x; want neither present nor swapped", uint64(es[1]))
	}
	if !es[2].Present() {
		t.Errorf("written page 2: %#x; want present", uint64(es[2]))
	}

	f, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]PagemapEntry, 0, 8)
	got, err := ReadPagemapFile(f, start+pageSize, end, buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || &got[0] != &buf[:1][0] || got[0].Present() || !got[1].Present() {
		t.Errorf("ReadPagemapFile into a reused buffer = %v", got)
	}
	if got, err := ReadPagemapFile(f, start, start, nil); err != nil || len(got) != 0 {
		t.Errorf("empty range: %v, %v", got, err)
	}
	for _, r := range [][2]uint64{{start + 1, end}, {end, start}} {
		if _, err := ReadPagemapFile(f, r[0], r[1], nil); err == nil {
			t.Errorf("range [%#x, %#x): no error", r[0], r[1])
		}
	}
	// [vsyscall] is in maps but above the user address space.
	if _, err := ReadPagemapFile(f, 0xffffffffff600000, 0xffffffffff601000, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("pagemap of [vsyscall]: %v; want io.ErrUnexpectedEOF", err)
	}
	runtime.KeepAlive(mem)
}

// TestLiveNoProcess checks that every reader maps a missing process to
// ErrNoProcess, for a pid that never existed and for one that exited.
func TestLiveNoProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a child: %v", err)
	}
	for _, pid := range []int{1<<31 - 1, cmd.Process.Pid} {
		readers := map[string]func() error{
			"maps":        func() error { _, err := ReadMaps(pid); return err },
			"stat":        func() error { _, err := ReadStat(pid); return err },
			"status":      func() error { _, err := ReadStatus(pid); return err },
			"auxv":        func() error { _, err := ReadAuxv(pid); return err },
			"cmdline":     func() error { _, err := ReadCmdline(pid); return err },
			"comm":        func() error { _, err := ReadComm(pid); return err },
			"personality": func() error { _, err := ReadPersonality(pid); return err },
			"cwd":         func() error { _, err := ReadCwd(pid); return err },
			"exe":         func() error { _, err := ReadExe(pid); return err },
			"tasks":       func() error { _, err := Tasks(pid); return err },
			"children":    func() error { _, err := Children(pid); return err },
			"fds":         func() error { _, err := ReadFDs(pid); return err },
			"fd":          func() error { _, err := ReadFD(pid, 0); return err },
			"timers":      func() error { _, err := ReadTimers(pid); return err },
			"pagemap":     func() error { _, err := ReadPagemap(pid, 0, pageSize); return err },
		}
		for name, read := range readers {
			t.Run(name+"/"+strconv.Itoa(pid), func(t *testing.T) {
				err := read()
				if !errors.Is(err, ErrNoProcess) {
					t.Fatalf("got %v, want ErrNoProcess", err)
				}
				if !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) {
					t.Errorf("error %q does not name the pid", err)
				}
			})
		}
	}
}

// TestLiveKernelThread checks that a process without an address space is
// not mistaken for a missing one.
func TestLiveKernelThread(t *testing.T) {
	const kthreadd = 2
	if comm, err := ReadComm(kthreadd); err != nil || comm != "kthreadd" {
		t.Skip("kthreadd is not visible in this pid namespace")
	}
	st, err := ReadStat(kthreadd)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsKernelThread() {
		t.Errorf("kthreadd flags %#x lack PF_KTHREAD", st.Flags)
	}
	if _, err := ReadAuxv(kthreadd); err == nil || errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadAuxv(kthreadd) = %v; want an error other than ErrNoProcess", err)
	}
	if _, err := ReadExe(kthreadd); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadExe(kthreadd) = %v; want fs.ErrNotExist", err)
	}
	if args, err := ReadCmdline(kthreadd); err != nil || len(args) != 0 {
		t.Errorf("ReadCmdline(kthreadd) = %q, %v; want empty", args, err)
	}
}

func TestLiveTaskStat(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), unix.Gettid()
	st, err := ReadTaskStat(pid, tid)
	if err != nil {
		t.Fatal(err)
	}
	// This thread is reading its own stat: running, on a CPU it may use.
	if st.Pid != tid || st.State != 'R' {
		t.Errorf("task stat of the calling thread: pid %d state %c, want %d R", st.Pid, st.State, tid)
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	if st.Processor < 0 || !allowed.IsSet(st.Processor) {
		t.Errorf("processor %d, not one of the thread's CPUs (%d of them)", st.Processor, allowed.Count())
	}
	if _, err := ReadTaskStat(pid, 1<<22+1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a thread that does not exist: %v, want ErrNotExist", err)
	}
}
