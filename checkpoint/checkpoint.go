package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/writer"
	"golang.org/x/sys/unix"
)

// Options says what to checkpoint and where.
type Options struct {
	PID int
	// Dir is the final image directory, which must not exist; empty means
	// ./crbpf-<crid>.
	Dir string
	// NewCRID issues the checkpoint's crid. It is called once the target
	// passed inspection, so refused targets use up no crid.
	NewCRID func() (uint64, error)
	Kill    bool   // end the target once the image is complete
	Version string // crbpf version recorded in the header
	Log     *slog.Logger
}

// Result describes a completed checkpoint.
type Result struct {
	CRID   uint64
	Image  string
	PID    int
	Freeze time.Duration // target stopped (the downtime)
	Total  time.Duration
	Pages  uint64
	Bytes  uint64
	Killed bool
	// Warnings are things that were saved with reduced fidelity.
	Warnings []string
}

// Run takes a full-freeze checkpoint. See the package doc for the safety
// rules it follows.
func Run(ctx context.Context, tr *ptrace.Tracer, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	tgt, err := inspect(o.PID)
	if err != nil {
		return nil, err
	}
	// A first look at mappings and files refuses unsupported targets before
	// they are stopped; the authoritative read happens while frozen.
	if err := precheck(o.PID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, err := o.NewCRID()
	if err != nil {
		return nil, fmt.Errorf("issue crid: %w", err)
	}
	if o.Dir == "" {
		o.Dir = fmt.Sprintf("crbpf-%d", id)
	}
	w, err := writer.Create(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("create image %s: %w", o.Dir, err)
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()

	// Allocate the image's space while the target still runs: on tmpfs and
	// on VMs, allocating pages costs more than copying them.
	if err := w.Reserve(tgt.status.RssAnon + tgt.status.RssShmem); err != nil {
		return nil, err
	}
	c := &ckpt{opts: o, crid: id, tgt: tgt, w: w, log: o.Log, bufs: dumpBuffers()}
	if err := tr.Do(func() error { return c.frozen(ctx) }); err != nil {
		return nil, err
	}
	// The target is either running again (detached) or, with Kill, still
	// stopped and seized until the image is safely on disk.
	c.img.Stats.TotalNanos = int64(time.Since(start))
	c.img.Stats.PagesWritten, c.img.Stats.BytesWritten = w.Pages(), w.Bytes()
	if !o.Kill {
		c.img.Stats.FreezeNanos = int64(c.freeze)
	}
	commitErr := w.Commit(&c.img)
	if commitErr == nil {
		committed = true
	}
	res := &Result{CRID: id, Image: o.Dir, PID: o.PID, Pages: w.Pages(), Bytes: w.Bytes(), Warnings: c.warnings}
	if o.Kill {
		kerr := tr.Do(func() error {
			if commitErr != nil {
				return c.resume()
			}
			return c.kill()
		})
		if commitErr != nil {
			return nil, errors.Join(fmt.Errorf("write image: %w", commitErr), kerr)
		}
		if kerr != nil {
			return nil, fmt.Errorf("image %s is complete, but ending the target failed: %w", o.Dir, kerr)
		}
		res.Killed = true
	} else if commitErr != nil {
		return nil, fmt.Errorf("write image: %w", commitErr)
	}
	res.Freeze = c.freeze
	res.Total = time.Since(start)
	return res, nil
}

// precheck classifies mappings and fds without stopping the target.
func precheck(pid int) error {
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return gone(pid, err)
	}
	vmas, err := classifyVMAs(pid, maps, 0, 0)
	if err != nil {
		return err
	}
	if err := checkSharedAnon(pid, vmas); err != nil {
		return err
	}
	_, err = collectFiles(pid)
	return err
}

func gone(pid int, err error) error {
	if errors.Is(err, procfs.ErrNoProcess) || errors.Is(err, ptrace.ErrTaskGone) {
		return fmt.Errorf("pid %d exited during the checkpoint: %w", pid, errors.Join(ErrTargetGone, err))
	}
	return err
}

// ckpt carries one checkpoint's state across tracer-thread steps.
type ckpt struct {
	opts     Options
	crid     uint64
	bufs     [2][]byte // copy buffers, prepared before the freeze
	tgt      *target
	w        *writer.Writer
	log      *slog.Logger
	img      image.Image
	warnings []string

	task      *ptrace.Task
	regs      unix.PtraceRegs // as stopped, before any injection
	mask      uint64
	regsSaved bool
	maskSaved bool
	in        *ptrace.Injector
	stoppedAt time.Time
	freeze    time.Duration
}

// frozen seizes and stops the target, collects everything and, unless the
// target is to be killed, resumes it. Precondition: called on the tracer thread.
func (c *ckpt) frozen(ctx context.Context) (err error) {
	pid := c.opts.PID
	task, err := ptrace.Seize(pid, unix.PTRACE_O_TRACESYSGOOD)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("ptrace pid %d: %w (is it traced already, or protected by yama ptrace_scope / a security module?)", pid, ErrPermission)
		}
		return gone(pid, err)
	}
	c.task = task
	if err := c.stop(); err != nil {
		return errors.Join(gone(pid, err), c.detachOnly())
	}
	c.stoppedAt = time.Now()
	c.log.Debug("target stopped", "pid", pid)

	defer func() {
		if err != nil {
			err = errors.Join(gone(pid, err), c.resume())
		}
	}()
	if c.regs, err = task.Regs(); err != nil {
		return err
	}
	c.regsSaved = true
	if c.mask, err = task.SigMask(); err != nil {
		return err
	}
	c.maskSaved = true
	if err := c.rewindEINTR(); err != nil {
		return err
	}
	if err := task.SetSigMask(^uint64(0)); err != nil {
		return err
	}
	if err := c.collect(ctx); err != nil {
		return err
	}
	if !c.opts.Kill {
		if err := c.resume(); err != nil {
			return err
		}
	}
	return nil
}

// eintrOnInterrupt are syscalls that a ptrace interrupt ends with -EINTR
// instead of a restart code: the kernel wakes them for the stop and they
// do not ask to be restarted.
var eintrOnInterrupt = map[uint64]bool{unix.SYS_RT_SIGTIMEDWAIT: true}

// rewindEINTR makes such a call restart, as if crbpf had never stopped the
// task, unless a signal the task does not block is pending: then the
// -EINTR may be that signal's, and is left alone.
func (c *ckpt) rewindEINTR() error {
	r := &c.regs
	if int64(r.Orig_rax) < 0 || !eintrOnInterrupt[r.Orig_rax] || int64(r.Rax) != -int64(unix.EINTR) {
		return nil
	}
	st, err := procfs.ReadStatus(c.opts.PID)
	if err != nil {
		return err
	}
	if (st.SigPnd|st.ShdPnd)&^c.mask != 0 {
		return nil
	}
	ptrace.MarkRestart(r)
	return nil
}

// stop interrupts the seized task and waits for the interrupt stop,
// delivering any signal that arrives first. Precondition: tracer thread.
func (c *ckpt) stop() error {
	if err := c.task.Interrupt(); err != nil {
		return err
	}
	for {
		st, err := c.task.Wait()
		if err != nil {
			return err
		}
		switch {
		case st.Exited():
			return fmt.Errorf("target %v: %w", st, ptrace.ErrTaskGone)
		case st.IsEventStop():
			return nil
		case st.Status.Stopped():
			// A signal-delivery stop: let the signal go, the interrupt is
			// still pending.
			if err := c.task.Cont(st.Sig()); err != nil {
				return err
			}
		}
	}
}

func (c *ckpt) collect(ctx context.Context) error {
	pid := c.opts.PID
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return err
	}
	ip, err := findSyscallInsn(pid, maps)
	if err != nil {
		return err
	}
	c.in = &ptrace.Injector{Task: c.task, SyscallIP: ip, Base: c.regs}

	status, err := procfs.ReadStatus(pid)
	if err != nil {
		return err
	}
	if status.Threads != 1 {
		return &UnsupportedError{PID: pid, What: fmt.Sprintf("%d threads", status.Threads), Why: "multi-threaded processes are not supported yet"}
	}
	img := &c.img
	addr, err := c.in.Call("mmap scratch page", unix.SYS_MMAP, 0, image.PageSize,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return err
	}
	injErr := collectInjected(c.in, scratch{pid: pid, addr: addr}, status, &img.Task, &img.MM)
	if _, err := c.in.Call("munmap scratch page", unix.SYS_MUNMAP, addr, image.PageSize); err != nil {
		return errors.Join(injErr, err)
	}
	if injErr != nil {
		return injErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := collectPtrace(c.task, &img.Task); err != nil {
		return err
	}
	if err := c.collectProc(status); err != nil {
		return err
	}
	if maps, err = procfs.ReadMaps(pid); err != nil {
		return err
	}
	if img.VMAs, err = classifyVMAs(pid, maps, 0, 0); err != nil {
		return err
	}
	if img.Files, err = collectFiles(pid); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d, err := newMemDumper(pid, c.w, c.bufs)
	if err != nil {
		return err
	}
	t0 := time.Now()
	err = d.dump(img.VMAs)
	d.Close()
	if err != nil {
		return err
	}
	c.log.Debug("memory dumped", "pages", c.w.Pages(), "bytes", c.w.Bytes(), "duration", time.Since(t0),
		"since_stop", time.Since(c.stoppedAt))
	saved := c.regs
	if err := fixRseq(pid, img.Task.Rseq, &saved); err != nil {
		return err
	}
	ptrace.FixRestart(&saved, false)
	img.Task.Regs = regsBytes(saved)
	return ctx.Err()
}

func (c *ckpt) collectProc(status *procfs.Status) error {
	pid := c.opts.PID
	img := &c.img
	st := c.tgt.stat
	var err error
	img.MM = image.MM{StartCode: st.StartCode, EndCode: st.EndCode, StartData: st.StartData, EndData: st.EndData,
		StartBrk: st.StartBrk, Brk: img.MM.Brk, StartStack: st.StartStack, ArgStart: st.ArgStart, ArgEnd: st.ArgEnd,
		EnvStart: st.EnvStart, EnvEnd: st.EnvEnd}
	if img.MM.Auxv, err = procfs.ReadAuxv(pid); err != nil {
		return err
	}
	if img.MM.ExePath, err = procfs.ReadExe(pid); err != nil {
		return err
	}
	t := &img.Task
	t.TID = pid
	t.SigMask = c.mask
	if t.Comm, err = procfs.ReadComm(pid); err != nil {
		return err
	}
	if t.Personality, err = procfs.ReadPersonality(pid); err != nil {
		return err
	}
	if t.Cwd, err = procfs.ReadCwd(pid); err != nil {
		return err
	}
	t.Umask = status.Umask
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	cmdline, _ := procfs.ReadCmdline(pid)
	img.Header = image.Header{CRID: c.crid, PID: pid, Time: time.Now().UTC(),
		KernelRelease: unix.ByteSliceToString(uts.Release[:]), Arch: runtime.GOARCH,
		CrbpfVersion: c.opts.Version, Comm: t.Comm, Exe: img.MM.ExePath, Cmdline: cmdline}
	return nil
}

// findSyscallInsn returns the address of a `syscall` instruction (0f 05) in
// the target's [vdso], so that no code is written into the target.
func findSyscallInsn(pid int, maps []procfs.Mapping) (uint64, error) {
	for _, m := range maps {
		if m.Name != "[vdso]" {
			continue
		}
		buf := make([]byte, m.Len())
		n, err := ptrace.ReadMem(pid, m.Start, buf)
		if err != nil {
			return 0, fmt.Errorf("read [vdso]: %w", err)
		}
		if i := bytes.Index(buf[:n], []byte{0x0f, 0x05}); i >= 0 {
			return m.Start + uint64(i), nil
		}
		return 0, fmt.Errorf("no syscall instruction in the target's [vdso]")
	}
	return 0, fmt.Errorf("target has no [vdso] mapping: %w", ErrUnsupportedState)
}

// resume puts the registers and signal mask back and detaches. It is safe to
// call on every path after the stop. Precondition: called on the tracer thread.
func (c *ckpt) resume() error {
	if c.task == nil {
		return nil
	}
	var errs []error
	if c.regsSaved {
		r := c.regs
		ptrace.FixRestart(&r, true)
		errs = append(errs, c.task.SetRegs(r))
	}
	if c.maskSaved {
		errs = append(errs, c.task.SetSigMask(c.mask))
	}
	errs = append(errs, c.detachOnly())
	return errors.Join(errs...)
}

func (c *ckpt) detachOnly() error {
	if c.task == nil {
		return nil
	}
	err := c.task.Detach()
	if c.stoppedAt != (time.Time{}) {
		c.freeze = time.Since(c.stoppedAt)
	}
	if errors.Is(err, ptrace.ErrTaskGone) {
		err = nil
	}
	pid := c.opts.PID
	c.task = nil
	if c.in != nil {
		for _, s := range c.in.Suppressed {
			if e := unix.Tgkill(pid, pid, s); e != nil && !errors.Is(e, unix.ESRCH) {
				err = errors.Join(err, fmt.Errorf("send %v again to %d: %w", s, pid, e))
			}
		}
	}
	return err
}

// kill ends the stopped target after the image is complete.
// Precondition: called on the tracer thread.
func (c *ckpt) kill() error {
	pid := c.opts.PID
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	c.freeze = time.Since(c.stoppedAt)
	// The tracer sees the exit before the parent does; collect it so the
	// parent can reap the process.
	for {
		st, err := c.task.Wait()
		if err != nil || st.Exited() {
			c.task = nil
			return nil
		}
		if err := c.task.Cont(0); err != nil && !errors.Is(err, ptrace.ErrTaskGone) {
			c.task = nil
			return nil
		}
	}
}
