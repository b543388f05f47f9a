package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
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
	regs unix.PtraceRegs // as stopped, after the EINTR rewind
	mask uint64
	in   *ptrace.Injector
	at   time.Time // when the stop began

	regsSaved, maskSaved bool
}

// stop seizes and stops pid. On error nothing is left changed.
// Precondition: called on the tracer thread.
func stop(pid int) (s *stopped, err error) {
	task, err := ptrace.Seize(pid, unix.PTRACE_O_TRACESYSGOOD)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("ptrace pid %d: %w (is it traced already, or protected by yama ptrace_scope / a security module?)", pid, ErrPermission)
		}
		return nil, gone(pid, err)
	}
	s = &stopped{pid: pid, task: task}
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
	s.maskSaved = true
	if err := s.rewindEINTR(); err != nil {
		return s, err
	}
	if err := task.SetSigMask(^uint64(0)); err != nil {
		return s, err
	}
	return s, nil
}

// injector returns the Injector of the stopped task, setting it up on first
// use: a freeze that injects nothing does not pay for finding a syscall
// instruction (a /proc/PID/maps read and a [vdso] read, ~0.5 ms here).
func (s *stopped) injector() (*ptrace.Injector, error) {
	if s.in != nil {
		return s.in, nil
	}
	maps, err := procfs.ReadMaps(s.pid)
	if err != nil {
		return nil, err
	}
	ip, err := findSyscallInsn(s.pid, maps)
	if err != nil {
		return nil, err
	}
	s.in = &ptrace.Injector{Task: s.task, SyscallIP: ip, Base: s.regs}
	return s.in, nil
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

// resume puts the registers and signal mask back and detaches; the target
// runs on as if never stopped. Safe to call twice.
func (s *stopped) resume() error {
	if s == nil || s.task == nil {
		return nil
	}
	var errs []error
	if s.regsSaved {
		r := s.regs
		ptrace.FixRestart(&r, true)
		errs = append(errs, s.task.SetRegs(r))
	}
	if s.maskSaved {
		errs = append(errs, s.task.SetSigMask(s.mask))
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
	if s.in != nil {
		for _, sig := range s.in.Suppressed {
			if e := unix.Tgkill(s.pid, s.pid, sig); e != nil && !errors.Is(e, unix.ESRCH) {
				err = errors.Join(err, fmt.Errorf("send %v again to %d: %w", sig, s.pid, e))
			}
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
