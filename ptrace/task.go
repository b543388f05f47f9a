package ptrace

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrTaskGone means the task exited or was killed while crbpf worked on it.
var ErrTaskGone = errors.New("task is gone")

// Requests and constants that golang.org/x/sys/unix does not name.
const (
	reqGetRegset        = 0x4204 // PTRACE_GETREGSET
	reqSetRegset        = 0x4205 // PTRACE_SETREGSET
	reqPeekSiginfo      = 0x4209 // PTRACE_PEEKSIGINFO
	reqGetSigmask       = 0x420a
	reqSetSigmask       = 0x420b
	reqGetRseqConfig    = 0x420f // PTRACE_GET_RSEQ_CONFIGURATION
	peekSiginfoShared   = 1      // PTRACE_PEEKSIGINFO_SHARED
	ntPrstatus          = 1      // NT_PRSTATUS
	siginfoSize         = 128
	restartsys          = 512 // ERESTARTSYS
	restartnointr       = 513 // ERESTARTNOINTR
	restartnohand       = 514 // ERESTARTNOHAND
	restartRestartblock = 516 // ERESTART_RESTARTBLOCK
	sysRestartSyscall   = 219 // __NR_restart_syscall on x86_64
)

// MaxRegsetSize is the largest register set Regset reads: the x86 XSAVE
// area is 2.7 KiB here, 11 KiB with AMX.
const MaxRegsetSize = 64 << 10

// Task is one thread under ptrace.
type Task struct {
	TID int
}

func ptraceErr(op string, tid int, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%s tid %d: %w", op, tid, ErrTaskGone)
	}
	return fmt.Errorf("%s tid %d: %w", op, tid, os.NewSyscallError("ptrace", err))
}

func rawPtrace(req int, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Seize attaches to tid with PTRACE_SEIZE without stopping it.
//
// Precondition: called on the tracer thread.
func Seize(tid int, options int) (*Task, error) {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, uintptr(options), 0, 0)
	if e != 0 {
		return nil, ptraceErr("seize", tid, e)
	}
	return &Task{TID: tid}, nil
}

// Attached returns a Task for a tracee attached by other means (a traced
// exec, or an auto-attached child).
func Attached(tid int) *Task { return &Task{TID: tid} }

// Stop is the result of waiting for a tracee.
type Stop struct {
	Status unix.WaitStatus
}

// Exited reports whether the task ended (exit or fatal signal).
func (s Stop) Exited() bool { return s.Status.Exited() || s.Status.Signaled() }

// Sig is the stop signal of a stopped task.
func (s Stop) Sig() unix.Signal { return s.Status.StopSignal() }

// Event is the PTRACE_EVENT_* of an event stop, 0 otherwise.
func (s Stop) Event() int { return int(uint32(s.Status)>>16) & 0xff }

// IsSyscallStop reports a syscall-enter or -exit stop (PTRACE_O_TRACESYSGOOD).
func (s Stop) IsSyscallStop() bool {
	return s.Status.Stopped() && s.Status.StopSignal() == unix.SIGTRAP|0x80
}

// IsGroupOrEventStop reports PTRACE_EVENT_STOP (interrupt or group stop).
func (s Stop) IsEventStop() bool { return s.Status.Stopped() && s.Event() == unix.PTRACE_EVENT_STOP }

func (s Stop) String() string {
	switch {
	case s.Status.Exited():
		return fmt.Sprintf("exited with status %d", s.Status.ExitStatus())
	case s.Status.Signaled():
		return fmt.Sprintf("killed by %v", s.Status.Signal())
	case s.IsSyscallStop():
		return "syscall stop"
	case s.Event() != 0:
		return fmt.Sprintf("event stop %d (%v)", s.Event(), s.Sig())
	case s.Status.Stopped():
		return fmt.Sprintf("signal stop %v", s.Sig())
	}
	return fmt.Sprintf("wait status %#x", uint32(s.Status))
}

// Wait waits for the next state change of the task (wait4 with __WALL),
// retrying on EINTR.
//
// Precondition: called on the tracer thread.
func (t *Task) Wait() (Stop, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(t.TID, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err == unix.ECHILD {
				return Stop{}, fmt.Errorf("wait tid %d: %w", t.TID, ErrTaskGone)
			}
			return Stop{}, fmt.Errorf("wait tid %d: %w", t.TID, os.NewSyscallError("wait4", err))
		}
		return Stop{Status: ws}, nil
	}
}

// Interrupt sends PTRACE_INTERRUPT.
//
// Precondition: called on the tracer thread.
func (t *Task) Interrupt() error {
	return ptraceErr("interrupt", t.TID, unix.PtraceInterrupt(t.TID))
}

// SetOptions sets PTRACE_O_* options.
//
// Precondition: called on the tracer thread.
func (t *Task) SetOptions(opts int) error {
	return ptraceErr("set options", t.TID, unix.PtraceSetOptions(t.TID, opts))
}

// Cont resumes the task, delivering sig (0 for none).
//
// Precondition: called on the tracer thread.
func (t *Task) Cont(sig unix.Signal) error {
	return ptraceErr("cont", t.TID, unix.PtraceCont(t.TID, int(sig)))
}

// Syscall resumes the task until the next syscall entry or exit.
//
// Precondition: called on the tracer thread.
func (t *Task) Syscall(sig unix.Signal) error {
	return ptraceErr("syscall", t.TID, unix.PtraceSyscall(t.TID, int(sig)))
}

// Detach detaches from the task, which then runs freely.
//
// Precondition: called on the tracer thread.
func (t *Task) Detach() error {
	return ptraceErr("detach", t.TID, unix.PtraceDetach(t.TID))
}

// EventMsg returns PTRACE_GETEVENTMSG (e.g. the new child's pid after a fork event).
//
// Precondition: called on the tracer thread.
func (t *Task) EventMsg() (uint, error) {
	m, err := unix.PtraceGetEventMsg(t.TID)
	return m, ptraceErr("get event msg", t.TID, err)
}

// Regs reads the general-purpose registers (incl. fs_base and gs_base).
//
// Precondition: called on the tracer thread.
func (t *Task) Regs() (unix.PtraceRegs, error) {
	var r unix.PtraceRegs
	err := unix.PtraceGetRegs(t.TID, &r)
	return r, ptraceErr("get regs", t.TID, err)
}

// SetRegs writes the general-purpose registers.
//
// Precondition: called on the tracer thread.
func (t *Task) SetRegs(r unix.PtraceRegs) error {
	return ptraceErr("set regs", t.TID, unix.PtraceSetRegs(t.TID, &r))
}

// Regset reads a register set (PTRACE_GETREGSET), e.g. unix.NT_X86_XSTATE,
// into buf and returns the part of buf the kernel filled. With a nil buf it
// reads into a new buffer of MaxRegsetSize bytes; a caller that reads while
// the task must not wait passes one it allocated (and touched) before.
//
// Precondition: called on the tracer thread.
func (t *Task) Regset(nt int, buf []byte) ([]byte, error) {
	if buf == nil {
		buf = make([]byte, MaxRegsetSize)
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if err := rawPtrace(reqGetRegset, t.TID, uintptr(nt), uintptr(unsafe.Pointer(&iov))); err != nil {
		return nil, ptraceErr(fmt.Sprintf("get regset %#x", nt), t.TID, err)
	}
	return buf[:iov.Len:iov.Len], nil
}

// SetRegset writes a register set (PTRACE_SETREGSET).
//
// Precondition: called on the tracer thread.
func (t *Task) SetRegset(nt int, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("set regset %#x tid %d: empty", nt, t.TID)
	}
	iov := unix.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	return ptraceErr(fmt.Sprintf("set regset %#x", nt), t.TID,
		rawPtrace(reqSetRegset, t.TID, uintptr(nt), uintptr(unsafe.Pointer(&iov))))
}

// SigMask returns the blocked-signal mask.
//
// Precondition: called on the tracer thread.
func (t *Task) SigMask() (uint64, error) {
	var m uint64
	err := rawPtrace(reqGetSigmask, t.TID, 8, uintptr(unsafe.Pointer(&m)))
	return m, ptraceErr("get sigmask", t.TID, err)
}

// SetSigMask sets the blocked-signal mask.
//
// Precondition: called on the tracer thread.
func (t *Task) SetSigMask(m uint64) error {
	return ptraceErr("set sigmask", t.TID, rawPtrace(reqSetSigmask, t.TID, 8, uintptr(unsafe.Pointer(&m))))
}

// PendingSignals returns the raw siginfo of queued signals, thread-private
// or (shared=true) process-wide, without dequeuing them.
//
// Precondition: called on the tracer thread.
func (t *Task) PendingSignals(shared bool) ([][]byte, error) {
	type peekArgs struct {
		Off   uint64
		Flags uint32
		Nr    int32
	}
	var out [][]byte
	const batch = 32
	buf := make([]byte, batch*siginfoSize)
	for off := uint64(0); ; {
		a := peekArgs{Off: off, Nr: batch}
		if shared {
			a.Flags = peekSiginfoShared
		}
		n, _, e := unix.Syscall6(unix.SYS_PTRACE, reqPeekSiginfo, uintptr(t.TID),
			uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
		if e != 0 {
			return nil, ptraceErr("peek siginfo", t.TID, e)
		}
		for i := 0; i < int(n); i++ {
			out = append(out, append([]byte(nil), buf[i*siginfoSize:(i+1)*siginfoSize]...))
		}
		if n < batch {
			return out, nil
		}
		off += uint64(n)
	}
}

// RseqConfig is the result of PTRACE_GET_RSEQ_CONFIGURATION.
type RseqConfig struct {
	Addr  uint64
	Size  uint32
	Sig   uint32
	Flags uint32
	_     uint32
}

// Rseq returns the task's rseq registration; Addr is 0 when none.
//
// Precondition: called on the tracer thread.
func (t *Task) Rseq() (RseqConfig, error) {
	var c RseqConfig
	err := rawPtrace(reqGetRseqConfig, t.TID, unsafe.Sizeof(c), uintptr(unsafe.Pointer(&c)))
	return c, ptraceErr("get rseq configuration", t.TID, err)
}

// ReadMem reads len(buf) bytes at addr from the task's memory
// (process_vm_readv); it returns the number of bytes read.
func ReadMem(pid int, addr uint64, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return 0, fmt.Errorf("read memory of %d at %#x: %w", pid, addr, ErrTaskGone)
		}
		return n, fmt.Errorf("read memory of %d at %#x: %w", pid, addr, os.NewSyscallError("process_vm_readv", err))
	}
	return n, nil
}

// WriteMem writes buf at addr in the task's memory (process_vm_writev).
func WriteMem(pid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("write memory of %d at %#x: %w", pid, addr, ErrTaskGone)
		}
		return fmt.Errorf("write memory of %d at %#x: %w", pid, addr, os.NewSyscallError("process_vm_writev", err))
	}
	if n != len(buf) {
		return fmt.Errorf("write memory of %d at %#x: short write %d of %d", pid, addr, n, len(buf))
	}
	return nil
}
