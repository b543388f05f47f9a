package checkpoint

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"golang.org/x/sys/unix"
)

// stopped is one stop of the target: seized, interrupted, registers and
// signal mask saved, all signals blocked, ready for injected calls. Every
// path ends with resume (or kill), which puts back what it changed.
// Its methods run on the tracer thread.
type stopped struct {
	pid  int
	task *ptrace.Task
	regs unix.PtraceRegs // as stopped, after the EINTR rewind and rseq abort
	mask uint64
	rseq ptrace.RseqConfig // the task's rseq registration
	kit  *kit
	in   *ptrace.Injector
	at   time.Time // when the stop began

	regsSaved bool

	// While injecting the task may hold injected registers and a blocked
	// mask. Injected calls write their results at scratchAt (0: none);
	// under are the stack bytes the scratch area and the lifeline frame
	// cover, at underAt. suppressed are signals earlier injections held
	// back.
	injecting  bool
	scratchAt  uint64
	under      []byte
	underAt    uint64
	suppressed []unix.Signal
}

// kit is what stops need that can be prepared while the target runs.
type kit struct {
	// buf is scratch memory, touched: an XSAVE area and a chunk of the
	// code findLifeline reads (faulting it in inside a stop cost 17 µs a
	// page here).
	buf []byte
	// Where to inject from: the [vdso]'s `syscall` (or why there is none)
	// and the task's lifeline, if it has one.
	vdsoIP  uint64
	vdsoErr error
	life    ptrace.Lifeline
}

// prepare reads the target's maps and code to find where calls can be
// injected from (0.3-1 ms here), before the stops that may inject.
func prepare(pid int) (*kit, error) {
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return nil, err
	}
	k := &kit{buf: touched(ptrace.MaxRegsetSize + lifelineChunk)}
	k.vdsoIP, k.vdsoErr = findSyscallInsn(pid, maps)
	k.life = findLifeline(pid, maps, k.buf[ptrace.MaxRegsetSize:])
	return k, nil
}

// xsaveBuf is where a stop reads the XSAVE area into.
func (k *kit) xsaveBuf() []byte { return k.buf[:ptrace.MaxRegsetSize] }

// stop seizes and stops pid. k is what prepare found, before the stop.
// On error nothing is left changed. Precondition: called on the tracer
// thread.
func stop(pid int, k *kit) (s *stopped, err error) {
	task, err := ptrace.Seize(pid, unix.PTRACE_O_TRACESYSGOOD)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("ptrace pid %d: %w (is it traced already, or protected by yama ptrace_scope / a security module?)", pid, ErrPermission)
		}
		return nil, gone(pid, err)
	}
	s = &stopped{pid: pid, task: task, kit: k}
	if err := s.interrupt(); err != nil {
		return nil, errors.Join(gone(pid, err), s.detach())
	}
	s.at = time.Now()
	defer func() {
		if err != nil {
			err = errors.Join(gone(pid, err), s.resume())
			s = nil
		}
	}()
	if s.regs, err = task.Regs(); err != nil {
		return s, err
	}
	s.regsSaved = true
	if s.mask, err = task.SigMask(); err != nil {
		return s, err
	}
	if err := s.rewindEINTR(); err != nil {
		return s, err
	}
	// Now, before an injected call's return has the kernel clear the
	// section's pointer.
	if s.rseq, err = task.Rseq(); err != nil {
		return s, err
	}
	if err := rseqAbort(pid, s.rseq.Addr, &s.regs); err != nil {
		return s, err
	}
	return s, nil
}

// injector returns the Injector of the stopped task, setting it up on first
// use; endInjection ends its use.
//
// Where the task's code has a ptrace.Lifeline and its stack room for the
// frame, the calls run through it: if crbpf dies before endInjection
// (SIGKILL), the task returns to where it was stopped by itself. Otherwise
// they run from the [vdso]'s `syscall`, and a task whose tracer dies
// mid-injection is lost. The calls write their results under the frame
// (scratchAt) where the stack has room (useStack).
func (s *stopped) injector() (*ptrace.Injector, error) {
	if s.injecting {
		return s.in, nil
	}
	in := &ptrace.Injector{Task: s.task, Base: s.regs}
	// Without room on the stack, injectState maps a scratch page and
	// the calls go without a lifeline.
	sp, _ := s.useStack()
	switch {
	case sp != 0:
		in.SyscallIP, in.SP = s.kit.life.SyscallRet, sp
	case s.kit.vdsoErr != nil:
		return nil, errors.Join(s.kit.vdsoErr, s.putStack())
	default:
		in.SyscallIP = s.kit.vdsoIP
	}
	s.in, s.injecting = in, true
	return in, nil
}

// findLifeline reads the task's code in chunks of lifelineChunk bytes, at
// most lifelineScan bytes in all.
const (
	lifelineChunk = 64 << 10
	lifelineScan  = 64 << 20
)

// findLifeline looks for a ptrace.Lifeline in the task's code: its
// read-only executable mappings, smallest first (the dynamic loader,
// ~150 KiB, has both sequences). buf receives the code.
func findLifeline(pid int, maps []procfs.Mapping, buf []byte) ptrace.Lifeline {
	var code []procfs.Mapping
	for _, m := range maps {
		if m.Read && m.Exec && !m.Write && m.Name != "[vsyscall]" {
			code = append(code, m)
		}
	}
	slices.SortStableFunc(code, func(a, b procfs.Mapping) int { return cmp.Compare(a.Len(), b.Len()) })
	var l ptrace.Lifeline
	budget := uint64(lifelineScan)
	for _, m := range code {
		for at := m.Start; at < m.End; {
			n := min(uint64(len(buf)), m.End-at)
			if n > budget {
				return l
			}
			budget -= n
			got, err := ptrace.ReadMem(pid, at, buf[:n])
			if err != nil {
				break
			}
			if l.Find(buf[:got], at) {
				return l
			}
			if uint64(got) < n || at+n == m.End {
				break
			}
			at += n - 8 // a sequence across the chunks is found in the next
		}
	}
	return l
}

// scratchSize is the room under the red zone (and the frame) where
// injected calls write their results.
const scratchSize = 256

// useStack takes room below the task's red zone for the injection: the
// lifeline's frame, if the task has a lifeline, and a scratch area under
// it, keeping the bytes they cover for endInjection. It returns the frame's
// address, 0 without a lifeline. A signal delivered at this point would
// take as much room. On error nothing is written and neither is used.
func (s *stopped) useStack() (sp uint64, err error) {
	top := s.regs.Rsp - ptrace.RedZone
	sp, frame := s.lifelineFrame()
	low := top - scratchSize
	if frame != nil {
		low = sp - scratchSize
	}
	if low > top { // wrapped around
		return 0, fmt.Errorf("stack pointer %#x too low for injection", s.regs.Rsp)
	}
	under := make([]byte, top-low)
	if n, err := ptrace.ReadMem(s.pid, low, under); err != nil || n != len(under) {
		return 0, fmt.Errorf("read the stack under the red zone (%d of %d bytes): %v", n, len(under), err)
	}
	if frame != nil {
		if err := ptrace.WriteMem(s.pid, sp, frame); err != nil {
			return 0, errors.Join(err, ptrace.WriteMem(s.pid, low, under))
		}
	}
	s.under, s.underAt, s.scratchAt = under, low, low
	return sp, nil
}

// lifelineFrame returns the task's lifeline frame and where it goes, or
// nothing if the task has no lifeline.
func (s *stopped) lifelineFrame() (uint64, []byte) {
	life := &s.kit.life
	if !life.Complete() || life.Check(s.pid) != nil {
		return 0, nil
	}
	xs, err := s.task.Regset(unix.NT_X86_XSTATE, s.kit.xsaveBuf())
	if err != nil {
		return 0, nil
	}
	sp, frame, err := life.Frame(s.resumeRegs(), s.mask, xs)
	if err != nil {
		return 0, nil
	}
	return sp, frame
}

// endInjection puts back the signal mask, then the registers, then the
// stack bytes under the frame: in this order a tracer that dies at any
// point leaves a task that returns as it was. A no-op when not injecting.
func (s *stopped) endInjection() error {
	if !s.injecting {
		return nil
	}
	s.injecting = false
	s.suppressed = append(s.suppressed, s.in.Suppressed...)
	s.in = nil
	err := errors.Join(s.task.SetSigMask(s.mask), s.task.SetRegs(s.resumeRegs()))
	return errors.Join(err, s.putStack())
}

// putStack puts back the stack bytes useStack covered.
func (s *stopped) putStack() error {
	if s.under == nil {
		return nil
	}
	err := ptrace.WriteMem(s.pid, s.underAt, s.under)
	s.under, s.scratchAt = nil, 0
	return err
}

// interrupt stops the seized task and waits for the interrupt stop,
// delivering any signal that arrives first.
func (s *stopped) interrupt() error {
	if err := s.task.Interrupt(); err != nil {
		return err
	}
	for {
		st, err := s.task.Wait()
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
			if err := s.task.Cont(st.Sig()); err != nil {
				return err
			}
		}
	}
}

// eintrOnInterrupt are syscalls that a ptrace interrupt ends with -EINTR
// instead of a restart code: the kernel wakes them for the stop and they
// do not ask to be restarted.
var eintrOnInterrupt = map[uint64]bool{unix.SYS_RT_SIGTIMEDWAIT: true}

// rewindEINTR makes such a call restart, as if crbpf had never stopped the
// task, unless a signal the task does not block is pending: then the
// -EINTR may be that signal's, and is left alone.
func (s *stopped) rewindEINTR() error {
	r := &s.regs
	if int64(r.Orig_rax) < 0 || !eintrOnInterrupt[r.Orig_rax] || int64(r.Rax) != -int64(unix.EINTR) {
		return nil
	}
	st, err := procfs.ReadStatus(s.pid)
	if err != nil {
		return err
	}
	if (st.SigPnd|st.ShdPnd)&^s.mask != 0 {
		return nil
	}
	ptrace.MarkRestart(r)
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

// held is how long the target has been stopped.
func (s *stopped) held() time.Duration { return time.Since(s.at) }

// resumeRegs are the registers the task runs on with: as stopped, with an
// interrupted call set to restart as the kernel would have.
func (s *stopped) resumeRegs() unix.PtraceRegs {
	r := s.regs
	ptrace.FixRestart(&r, true)
	return r
}

// resume puts the registers and signal mask back and detaches; the target
// runs on as if never stopped. Safe to call twice.
func (s *stopped) resume() error {
	if s == nil || s.task == nil {
		return nil
	}
	var errs []error
	if s.injecting {
		errs = append(errs, s.endInjection())
	} else if s.regsSaved {
		errs = append(errs, s.task.SetRegs(s.resumeRegs()))
	}
	errs = append(errs, s.detach())
	return errors.Join(errs...)
}

// detach detaches and sends again the signals injection had to suppress.
func (s *stopped) detach() error {
	if s.task == nil {
		return nil
	}
	err := s.task.Detach()
	if errors.Is(err, ptrace.ErrTaskGone) {
		err = nil
	}
	s.task = nil
	for _, sig := range s.suppressed {
		if e := unix.Tgkill(s.pid, s.pid, sig); e != nil && !errors.Is(e, unix.ESRCH) {
			err = errors.Join(err, fmt.Errorf("send %v again to %d: %w", sig, s.pid, e))
		}
	}
	return err
}

// kill ends the stopped target (once its image is complete) and collects
// the exit the tracer is told about, so that the parent can reap it.
func (s *stopped) kill() error {
	if err := unix.Kill(s.pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", s.pid, err)
	}
	for {
		st, err := s.task.Wait()
		if err != nil || st.Exited() {
			s.task = nil
			return nil
		}
		if err := s.task.Cont(0); err != nil {
			s.task = nil
			return nil
		}
	}
}
