package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"golang.org/x/sys/unix"
)

// Sentinel errors; callers map them to exit codes.
var (
	// ErrIncompatible: the image was taken on a kernel or CPU this host
	// cannot resume it on.
	ErrIncompatible = errors.New("image incompatible with this host")
	// ErrPIDTaken: --pid strict and the original PID is in use.
	ErrPIDTaken = errors.New("original pid is in use")
)

// Options control one restore.
type Options struct {
	Dir   string       // image directory
	Image *image.Image // loaded from Dir by the caller, or resolved from a chain
	// Chain, for an incremental image, is the chain Image was resolved
	// from: the runs' data is in the pages file of link PageRun.Src.
	// Nil: all in Dir.
	Chain *chain.Chain
	// StrictPID refuses to restore under a PID other than the original.
	StrictPID bool
	// Stdio are handed to the restored process for saved fds 0-2 that were
	// a terminal or a pipe.
	Stdio [3]*os.File
	// Verify checks every page's checksum while the process is rebuilt
	// (on another CPU), before it is allowed to run.
	Verify bool
	// Inherit maps saved fds to files of the restarter that take their
	// place, whatever the saved fd was.
	Inherit map[int]*os.File
	Log     *slog.Logger
}

// Result describes a restored process. It runs detached from ptrace and is
// a child of the calling process.
type Result struct {
	PID      int
	SamePID  bool
	Warnings []string
	Duration time.Duration
}

// Run restores the image into a new process.
func Run(ctx context.Context, tr *ptrace.Tracer, o Options) (*Result, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	img := o.Image
	if err := checkHost(img); err != nil {
		return nil, err
	}
	sources := []string{o.Dir}
	if o.Chain != nil {
		sources = o.Chain.Dirs()
	}
	var pages []*os.File
	defer func() {
		for _, f := range pages {
			f.Close()
		}
	}()
	for _, dir := range sources {
		f, err := os.Open(filepath.Join(dir, image.PagesFile))
		if err != nil {
			return nil, fmt.Errorf("open image pages: %w", err)
		}
		pages = append(pages, f)
	}
	if err := checkVDSO(img, pages); err != nil {
		return nil, err
	}
	stubBase, scratch, err := pickHoles(img.VMAs)
	if err != nil {
		return nil, err
	}
	stub, err := unix.MemfdCreate("crbpf-restore", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create stub memfd: %w", os.NewSyscallError("memfd_create", err))
	}
	defer unix.Close(stub)
	if _, err := unix.Write(stub, stubELF(stubBase)); err != nil {
		return nil, fmt.Errorf("write stub: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become child subreaper: %w", os.NewSyscallError("prctl", err))
	}
	conns, err := selfConns(img, o.Inherit)
	if err != nil {
		return nil, err
	}
	if len(conns) > 0 {
		inherit := maps.Clone(o.Inherit)
		if inherit == nil {
			inherit = map[int]*os.File{}
		}
		for fd, f := range conns {
			defer f.Close()
			inherit[fd] = f
		}
		o.Inherit = inherit
	}
	r := &restorer{img: img, opts: o, stubBase: stubBase, scratch: scratch, log: o.Log}
	if o.Verify {
		r.verified = make(chan error, 1)
		go func() {
			if o.Chain != nil {
				r.verified <- o.Chain.Verify(img)
			} else {
				r.verified <- image.Verify(o.Dir, img)
			}
		}()
	}
	err = tr.Do(func() error {
		err := r.run(ctx, stub, pages)
		if err != nil {
			err = errors.Join(err, r.killAll())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Result{PID: r.pid, SamePID: r.pid == img.Header.PID, Warnings: r.warnings, Duration: time.Since(start)}, nil
}

// selfConns makes, for each self-connection in the image that the caller
// does not replace, a socket that holds the reply of a restored copy
// (crid 0, restored from the image's crid) followed by end of file: the
// process's pending read of the daemon's answer returns it.
func selfConns(img *image.Image, inherit map[int]*os.File) (map[int]*os.File, error) {
	out := map[int]*os.File{}
	for _, f := range img.Files {
		if f.Kind != image.FileSelfConn || inherit[f.FD] != nil {
			continue
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socket for self-connection fd %d: %w", f.FD, os.NewSyscallError("socketpair", err))
		}
		_, werr := unix.Write(fds[0], api.RestoredReply(img.Header.CRID))
		unix.Close(fds[0])
		if werr != nil {
			unix.Close(fds[1])
			return nil, fmt.Errorf("write the restored reply: %w", werr)
		}
		out[f.FD] = os.NewFile(uintptr(fds[1]), "self-connection")
	}
	return out, nil
}

// checkHost refuses images from another kernel or architecture.
func checkHost(img *image.Image) error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	if rel := unix.ByteSliceToString(uts.Release[:]); rel != img.Header.KernelRelease {
		return fmt.Errorf("image was taken on kernel %s, this is %s: %w", img.Header.KernelRelease, rel, ErrIncompatible)
	}
	if img.Header.Arch != "amd64" {
		return fmt.Errorf("image architecture %s, this is amd64: %w", img.Header.Arch, ErrIncompatible)
	}
	return nil
}

// checkVDSO compares the saved [vdso] with this kernel's: glibc caches
// pointers into it, so only an identical vDSO can be mapped back.
func checkVDSO(img *image.Image, pages []*os.File) error {
	var saved []byte
	for _, v := range img.VMAs {
		if v.Kind != image.KindVDSO {
			continue
		}
		saved = make([]byte, v.End-v.Start)
		for _, run := range v.Pages {
			off := run.Addr - v.Start
			if _, err := pages[run.Src].ReadAt(saved[off:off+run.NPages*image.PageSize], int64(run.DataOff)); err != nil {
				return fmt.Errorf("read saved vdso: %w", err)
			}
		}
	}
	if saved == nil {
		return nil
	}
	maps, err := procfs.ReadMaps(os.Getpid())
	if err != nil {
		return err
	}
	for _, m := range maps {
		if m.Name != "[vdso]" {
			continue
		}
		own := make([]byte, m.Len())
		if _, err := ptrace.ReadMem(os.Getpid(), m.Start, own); err != nil {
			return fmt.Errorf("read own vdso: %w", err)
		}
		if !bytes.Equal(own, saved) {
			return fmt.Errorf("the image's vDSO differs from this kernel's: %w", ErrIncompatible)
		}
		return nil
	}
	return fmt.Errorf("crbpf itself has no [vdso]: %w", ErrIncompatible)
}

// pickHoles finds, below the image's first mapping or between mappings,
// room for the stub page and a two-page scratch area (code, data) that no
// image mapping needs.
func pickHoles(vmas []image.VMA) (stub, scratch uint64, err error) {
	const need = 4 * image.PageSize
	lo := uint64(1 << 20) // well above vm.mmap_min_addr
	for _, v := range vmas {
		if v.Kind == image.KindVsyscall {
			continue
		}
		if v.Start >= lo+need {
			return lo, lo + 2*image.PageSize, nil
		}
		lo = max(lo, v.End)
	}
	if lo+need < 1<<46 {
		return lo, lo + 2*image.PageSize, nil
	}
	return 0, 0, fmt.Errorf("no free address range for the restorer in the image's address space")
}

// restorer carries one restore across its steps on the tracer thread.
type restorer struct {
	img      *image.Image
	opts     Options
	log      *slog.Logger
	stubBase uint64
	scratch  uint64 // code page; data page follows
	warnings []string

	npages     int        // page files, stub fds pagesFD..pagesFD+npages-1 (by PageRun.Src)
	inherited  []int      // saved fds replaced by Options.Inherit, in stub fd order after the page files
	noPopulate bool       // MADV_POPULATE_WRITE is not available
	verified   chan error // result of the concurrent image.Verify, if asked

	stubPID int // the exec'd stub, while alive
	pid     int // the process being restored
	task    *ptrace.Task
	in      *ptrace.Injector
}

func (r *restorer) data() uint64 { return r.scratch + image.PageSize }

// put writes b at offset off of the scratch data page and returns its address.
func (r *restorer) put(off uint64, b []byte) (uint64, error) {
	if off+uint64(len(b)) > image.PageSize {
		return 0, fmt.Errorf("restore: %d bytes do not fit the scratch page", len(b))
	}
	return r.data() + off, ptrace.WriteMem(r.pid, r.data()+off, b)
}

func (r *restorer) putString(off uint64, s string) (uint64, error) {
	return r.put(off, append([]byte(s), 0))
}

func (r *restorer) call(name string, nr uint64, args ...uint64) (uint64, error) {
	t0 := time.Now()
	defer func() {
		if d := time.Since(t0); d > 5*time.Millisecond {
			r.log.Debug("slow injected call", "call", name, "duration", d)
		}
	}()
	return r.in.Call(name, nr, args...)
}

// run does the restore. Precondition: called on the tracer thread.
func (r *restorer) run(ctx context.Context, stubFD int, pages []*os.File) error {
	stdio := r.opts.Stdio
	files := []uintptr{0, 1, 2}
	for _, f := range pages {
		files = append(files, f.Fd())
	}
	r.npages = len(pages)
	for i, f := range stdio {
		if f != nil {
			files[i] = f.Fd()
		}
	}
	// Files that replace saved fds (--map-fd) follow the page files, in
	// ascending order of the saved fd they replace.
	r.inherited = r.inherited[:0]
	for _, fd := range sortedKeys(r.opts.Inherit) {
		r.inherited = append(r.inherited, fd)
		files = append(files, r.opts.Inherit[fd].Fd())
	}
	// The child execs the stub by its /proc/self/fd path after its fds
	// were rearranged to `files`: the stub's fd number must lie above them.
	execFD, err := unix.FcntlInt(uintptr(stubFD), unix.F_DUPFD_CLOEXEC, len(files))
	if err != nil {
		return fmt.Errorf("dup stub fd: %w", os.NewSyscallError("fcntl", err))
	}
	defer unix.Close(execFD)
	pid, err := syscall.ForkExec(fmt.Sprintf("/proc/self/fd/%d", execFD), []string{r.img.Task.Comm},
		&syscall.ProcAttr{Files: files, Env: []string{}, Sys: &syscall.SysProcAttr{Ptrace: true,
			// Until PTRACE_O_EXITKILL is set below, only this kills the stub
			// if crbpf dies (the tracer thread is locked and lives as long as
			// crbpf). restoreTaskState clears it again.
			Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		return fmt.Errorf("start restore stub: %w", err)
	}
	r.stubPID, r.pid = pid, pid
	r.task = ptrace.Attached(pid)
	st, err := r.task.Wait()
	if err != nil {
		return err
	}
	if !st.Status.Stopped() || st.Sig() != unix.SIGTRAP {
		return fmt.Errorf("restore stub: expected the exec trap, got %v", st)
	}
	if err := r.task.SetOptions(unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL); err != nil {
		return err
	}
	if err := r.task.SetSigMask(^uint64(0)); err != nil {
		return err
	}
	base, err := r.task.Regs()
	if err != nil {
		return err
	}
	base.Rsp = r.scratch + 2*image.PageSize - 256
	r.in = &ptrace.Injector{Task: r.task, SyscallIP: r.stubBase + stubCodeOff, Base: base}

	steps := []struct {
		name string
		fn   func() error
	}{
		{"map scratch page", r.mapScratch},
		{"restore pid", r.restorePID},
		{"clear stub mappings", r.clearStub},
		{"map vdso", r.mapVDSO},
		{"restore memory", func() error { return r.restoreMemory() }},
		{"restore mm", r.restoreMM},
		{"restore task state", r.restoreTaskState},
		{"restore credentials", r.restoreCreds},
		{"restore files", r.restoreFiles},
		{"resume", r.finish},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		if err := s.fn(); err != nil {
			return fmt.Errorf("restore: %s: %w", s.name, err)
		}
		r.log.Debug("restore step", "step", s.name, "duration", time.Since(t0))
	}
	return nil
}

// mapScratch maps the code page (holding `syscall`) and the data page used
// to pass arguments, and switches injection to it.
func (r *restorer) mapScratch() error {
	got, err := r.call("mmap scratch", unix.SYS_MMAP, r.scratch, 2*image.PageSize,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return err
	}
	if got != r.scratch {
		return fmt.Errorf("scratch mapped at %#x, wanted %#x", got, r.scratch)
	}
	if err := ptrace.WriteMem(r.pid, r.scratch, []byte{0x0f, 0x05, 0xcc}); err != nil {
		return err
	}
	if _, err := r.call("mprotect scratch", unix.SYS_MPROTECT, r.scratch, image.PageSize, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	r.in.SyscallIP = r.scratch
	return nil
}

// restorePID forks the stub into a child with the original PID (clone3
// set_tid) and continues with that child.
func (r *restorer) restorePID() error {
	want := r.img.Header.PID
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", want)); err == nil {
		return r.pidTaken(want, "it is in use")
	}
	var args [11]uint64
	args[4] = uint64(unix.SIGCHLD) // exit_signal
	tidAddr := r.data() + 512
	args[8] = tidAddr // set_tid
	args[9] = 1       // set_tid_size
	if _, err := r.put(0, u64bytes(args[:])); err != nil {
		return err
	}
	if _, err := r.put(512, u64bytes([]uint64{uint64(want)})); err != nil {
		return err
	}
	ret, err := r.in.Syscall(unix.SYS_CLONE3, r.data(), uint64(len(args)*8))
	if err != nil {
		return fmt.Errorf("clone3: %w", err)
	}
	if ret < 0 {
		return r.pidTaken(want, unix.Errno(-ret).Error())
	}
	child := ptrace.Attached(int(ret))
	for {
		st, err := child.Wait()
		if err != nil {
			return err
		}
		if st.Exited() {
			return fmt.Errorf("clone3 child %d: %v", ret, st)
		}
		if st.Status.Stopped() {
			break
		}
	}
	// The stub has done its job: kill and reap it; the child is reparented
	// to us (we are a child subreaper).
	stub := r.stubPID
	r.pid, r.task = int(ret), child
	if err := unix.Kill(stub, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill stub: %w", err)
	}
	reap(stub)
	r.stubPID = 0
	base := r.in.Base
	r.in = &ptrace.Injector{Task: child, SyscallIP: r.scratch, Base: base}
	return nil
}

func (r *restorer) pidTaken(want int, why string) error {
	if r.opts.StrictPID {
		return fmt.Errorf("pid %d: %s: %w", want, why, ErrPIDTaken)
	}
	r.warnings = append(r.warnings, fmt.Sprintf("original pid %d not available (%s); restored as pid %d", want, why, r.pid))
	return nil
}

// clearStub unmaps everything the stub's exec created (code, stack, vDSO)
// except the scratch pages.
func (r *restorer) clearStub() error {
	maps, err := procfs.ReadMaps(r.pid)
	if err != nil {
		return err
	}
	for _, m := range maps {
		if m.Start >= r.scratch && m.End <= r.scratch+2*image.PageSize || m.Name == "[vsyscall]" {
			continue
		}
		if _, err := r.call("munmap "+m.Name, unix.SYS_MUNMAP, m.Start, m.Len()); err != nil {
			return err
		}
	}
	return nil
}

const archMapVDSO64 = 0x2003

// mapVDSO maps this kernel's vDSO (already checked equal to the saved one)
// at the saved address.
func (r *restorer) mapVDSO() error {
	var lo uint64
	var vdso uint64
	for _, v := range r.img.VMAs {
		switch v.Kind {
		case image.KindVVAR, image.KindVVARVclock, image.KindVDSO:
			if lo == 0 || v.Start < lo {
				lo = v.Start
			}
			if v.Kind == image.KindVDSO {
				vdso = v.Start
			}
		}
	}
	if lo == 0 {
		return nil
	}
	if _, err := r.call("arch_prctl(ARCH_MAP_VDSO_64)", unix.SYS_ARCH_PRCTL, archMapVDSO64, lo); err != nil {
		return err
	}
	maps, err := procfs.ReadMaps(r.pid)
	if err != nil {
		return err
	}
	for _, m := range maps {
		if m.Name == "[vdso]" {
			if m.Start != vdso {
				return fmt.Errorf("vdso mapped at %#x, image has it at %#x: %w", m.Start, vdso, ErrIncompatible)
			}
			return nil
		}
	}
	return fmt.Errorf("no [vdso] after ARCH_MAP_VDSO_64")
}

// openInChild opens path inside the restored process and returns the fd.
func (r *restorer) openInChild(path string, flags int) (uint64, error) {
	addr, err := r.putString(1024, path)
	if err != nil {
		return 0, err
	}
	fd, err := r.in.Syscall(unix.SYS_OPENAT, atFDCWD, addr, uint64(flags), 0)
	if err != nil {
		return 0, err
	}
	if fd < 0 {
		return 0, fmt.Errorf("open %s: %w", path, unix.Errno(-fd))
	}
	return uint64(fd), nil
}

func (r *restorer) closeInChild(fd uint64) error {
	_, err := r.call(fmt.Sprintf("close(%d)", fd), unix.SYS_CLOSE, fd)
	return err
}

const pagesFD = 3 // the image's page file, inherited by the stub

// populateMin is the run length from which pages are prefaulted before
// they are filled.
const populateMin = 16

// atFDCWD is AT_FDCWD (-100) as a syscall argument.
const atFDCWD = ^uint64(99)

// restoreMemory maps every saved VMA and fills it from the page file.
func (r *restorer) restoreMemory() error {
	open := map[string]uint64{}
	defer func() {
		for _, fd := range open {
			r.closeInChild(fd)
		}
	}()
	for _, v := range r.img.VMAs {
		switch v.Kind {
		case image.KindVDSO, image.KindVVAR, image.KindVVARVclock, image.KindVsyscall:
			continue
		}
		prot := uint64(v.Prot)
		mapProt := prot
		if len(v.Pages) > 0 || len(v.Zero) > 0 {
			mapProt |= unix.PROT_READ | unix.PROT_WRITE
		}
		flags := uint64(unix.MAP_FIXED_NOREPLACE)
		fd, off := ^uint64(0), uint64(0)
		switch v.Kind {
		case image.KindAnon:
			flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | uint64(v.Flags&unix.MAP_GROWSDOWN)
		case image.KindShmemAnon:
			flags |= unix.MAP_SHARED | unix.MAP_ANONYMOUS
		case image.KindFile, image.KindFileShared:
			oflags := unix.O_RDONLY
			if v.Kind == image.KindFileShared {
				flags |= unix.MAP_SHARED
				if v.Prot&unix.PROT_WRITE != 0 {
					oflags = unix.O_RDWR
				}
			} else {
				flags |= unix.MAP_PRIVATE
			}
			key := fmt.Sprintf("%d:%s", oflags, v.Path)
			f, ok := open[key]
			if !ok {
				var err error
				if f, err = r.openInChild(v.Path, oflags|unix.O_CLOEXEC); err != nil {
					return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
				}
				open[key] = f
			}
			fd, off = f, v.Offset
		default:
			return fmt.Errorf("mapping %#x-%#x: unknown kind %q", v.Start, v.End, v.Kind)
		}
		got, err := r.call(fmt.Sprintf("mmap %#x-%#x %s", v.Start, v.End, v.Name), unix.SYS_MMAP, v.Start, v.End-v.Start, mapProt, flags, fd, off)
		if err != nil {
			return err
		}
		if got != v.Start {
			return fmt.Errorf("mapping %#x-%#x landed at %#x", v.Start, v.End, got)
		}
		for _, run := range v.Pages {
			if err := r.fill(run); err != nil {
				return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
			}
		}
		for _, z := range v.Zero {
			if err := r.zero(z); err != nil {
				return fmt.Errorf("mapping %#x-%#x: %w", v.Start, v.End, err)
			}
		}
		if mapProt != prot {
			if _, err := r.call("mprotect", unix.SYS_MPROTECT, v.Start, v.End-v.Start, prot); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill reads one page run from the image straight into the process.
func (r *restorer) fill(run image.PageRun) error {
	addr, n, off := run.Addr, run.NPages*image.PageSize, run.DataOff
	if run.NPages >= populateMin && !r.noPopulate {
		// Allocating fresh pages dominates a large restore; faulting them
		// in one madvise is about twice as fast as letting pread fault
		// each page from copy_to_user (measured on this project's VMs).
		ret, err := r.in.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_POPULATE_WRITE)
		if err != nil {
			return err
		}
		if ret == -int64(unix.EINVAL) {
			r.noPopulate = true // kernel older than 5.14: fall back to faulting in pread
		}
	}
	for n > 0 {
		got, err := r.call(fmt.Sprintf("pread64 %#x", addr), unix.SYS_PREAD64, uint64(pagesFD+run.Src), addr, n, off)
		if err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("image page file ends at offset %d: truncated", off)
		}
		addr, n, off = addr+got, n-got, off+got
	}
	return nil
}

// zero makes the pages of a private file mapping in s zero (private
// copies, as they were at checkpoint) by writing zeros into them.
func (r *restorer) zero(s image.Span) error {
	zeros := make([]byte, min(s.NPages*image.PageSize, 1<<20))
	for addr := s.Addr; addr < s.End(); {
		n := min(s.End()-addr, uint64(len(zeros)))
		if err := ptrace.WriteMem(r.pid, addr, zeros[:n]); err != nil {
			return fmt.Errorf("zero pages at %#x: %w", addr, err)
		}
		addr += n
	}
	return nil
}

func sortedKeys(m map[int]*os.File) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func u64bytes(v []uint64) []byte {
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*8)...)
}

// reap waits for a process that was killed. Precondition: tracer thread
// when the process is a tracee.
func reap(pid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// killAll kills and reaps the half-restored process and the stub.
// Precondition: called on the tracer thread.
func (r *restorer) killAll() error {
	var errs []error
	for _, pid := range []int{r.pid, r.stubPID} {
		if pid == 0 {
			continue
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill half-restored pid %d: %w", pid, err))
			continue
		}
		reap(pid)
	}
	r.pid, r.stubPID = 0, 0
	return errors.Join(errs...)
}
