package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"golang.org/x/sys/unix"
)

const (
	prGetTIDAddress = 40
	numSignals      = 64
	sigKill         = 9
	sigStop         = 19
)

var le = binary.LittleEndian

// scratch is where injected calls write what they return (sigaction,
// stack_t, itimerval...): room on the target's stack under its red zone,
// put back before the target runs again, or else a page mapped into it for
// the occasion.
type scratch struct {
	pid  int
	addr uint64
}

func (s scratch) read(n int) ([]byte, error) {
	buf := make([]byte, n)
	got, err := ptrace.ReadMem(s.pid, s.addr, buf)
	if err != nil {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("read scratch: short read %d of %d", got, n)
	}
	return buf, nil
}

// injected is the task state only the task itself can report.
type injected struct {
	task image.Task // SigActions, SigAltStack, ClearTID, ITimers, PosixTimers
	brk  uint64
}

// apply copies the injected state into the image's task and mm.
func (in *injected) apply(t *image.Task, mm *image.MM) {
	t.SigActions, t.SigAltStack, t.ClearTID = in.task.SigActions, in.task.SigAltStack, in.task.ClearTID
	t.ITimers, t.PosixTimers = in.task.ITimers, in.task.PosixTimers
	mm.Brk = in.brk
}

// injectState reads it through calls injected into the stopped target.
// Precondition: tracer thread, s stopped.
func injectState(s *stopped, status *procfs.Status) (res *injected, err error) {
	inj, err := s.injector()
	if err != nil {
		return nil, err
	}
	addr := s.scratchAt
	if addr == 0 {
		if addr, err = inj.Call("mmap scratch page", unix.SYS_MMAP, 0, image.PageSize,
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0); err != nil {
			return nil, err
		}
		defer func() {
			if _, uerr := inj.Call("munmap scratch page", unix.SYS_MUNMAP, addr, image.PageSize); uerr != nil {
				res, err = nil, errors.Join(err, uerr)
			}
		}()
	}
	var in injected
	var mm image.MM
	if err = collectInjected(inj, scratch{pid: s.pid, addr: addr}, status, &in.task, &mm); err != nil {
		return nil, err
	}
	in.brk = mm.Brk
	return &in, nil
}

// snapshotState reads the injected state at the arming stop and the
// state-change count, after crbpf's own injected calls (which the count
// includes) and before the target runs again.
func (c *ckpt) snapshotState(s *stopped) error {
	status, err := c.proc.Status()
	if err != nil {
		return err
	}
	if c.snapshot, err = injectState(s, status); err != nil {
		return err
	}
	c.snapshotAt, err = c.telemetry.StateChanges(s.pid)
	return err
}

// snapshotValid returns the snapshot when the freeze may use it: eBPF saw
// no call that changes it since, and no timer is armed (a running timer's
// remaining time must be read at the freeze).
func (c *ckpt) snapshotValid() (*injected, bool, error) {
	if c.snapshot == nil || c.telemetry == nil {
		return nil, false, nil
	}
	if len(c.snapshot.task.ITimers) > 0 || len(c.snapshot.task.PosixTimers) > 0 {
		return nil, false, nil
	}
	n, err := c.telemetry.StateChanges(c.opts.PID)
	if err != nil {
		return nil, false, err
	}
	return c.snapshot, n == c.snapshotAt, nil
}

// collectInjected gathers the task state that only the task itself can
// report, through calls injected into it. Precondition: called on the tracer
// thread with the task stopped and all signals blocked.
func collectInjected(in *ptrace.Injector, sc scratch, status *procfs.Status, t *image.Task, mm *image.MM) error {
	pid := sc.pid
	brk, err := in.Call("brk(0)", unix.SYS_BRK, 0)
	if err != nil {
		return err
	}
	mm.Brk = brk

	handled := status.SigCgt | status.SigIgn
	for sig := 1; sig <= numSignals; sig++ {
		if sig == sigKill || sig == sigStop || handled&(1<<(sig-1)) == 0 {
			continue
		}
		if _, err := in.Call(fmt.Sprintf("rt_sigaction(%d)", sig), unix.SYS_RT_SIGACTION, uint64(sig), 0, sc.addr, 8); err != nil {
			return err
		}
		b, err := sc.read(32)
		if err != nil {
			return err
		}
		t.SigActions = append(t.SigActions, image.SigAction{Signo: sig, Handler: le.Uint64(b[0:]),
			Flags: le.Uint64(b[8:]), Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:])})
	}

	if _, err := in.Call("sigaltstack", unix.SYS_SIGALTSTACK, 0, sc.addr); err != nil {
		return err
	}
	b, err := sc.read(24)
	if err != nil {
		return err
	}
	t.SigAltStack = image.SigAltStack{SP: le.Uint64(b[0:]), Flags: int32(le.Uint32(b[8:])), Size: le.Uint64(b[16:])}

	if _, err := in.Call("prctl(PR_GET_TID_ADDRESS)", unix.SYS_PRCTL, prGetTIDAddress, sc.addr); err != nil {
		return err
	}
	if b, err = sc.read(8); err != nil {
		return err
	}
	t.ClearTID = le.Uint64(b)

	for which := 0; which < 3; which++ {
		if _, err := in.Call(fmt.Sprintf("getitimer(%d)", which), unix.SYS_GETITIMER, uint64(which), sc.addr); err != nil {
			return err
		}
		if b, err = sc.read(32); err != nil {
			return err
		}
		tv := func(o int) int64 { return int64(le.Uint64(b[o:]))*1e9 + int64(le.Uint64(b[o+8:]))*1e3 }
		it := image.ITimer{Which: which, Interval: tv(0), Value: tv(16)}
		if it.Value != 0 {
			t.ITimers = append(t.ITimers, it)
		}
	}

	timers, err := procfs.ReadTimers(pid)
	if err != nil {
		return fmt.Errorf("read posix timers: %w", err)
	}
	for _, tm := range timers {
		if _, err := in.Call(fmt.Sprintf("timer_gettime(%d)", tm.ID), unix.SYS_TIMER_GETTIME, uint64(tm.ID), sc.addr); err != nil {
			return err
		}
		if b, err = sc.read(32); err != nil {
			return err
		}
		ts := func(o int) int64 { return int64(le.Uint64(b[o:]))*1e9 + int64(le.Uint64(b[o+8:])) }
		over, err := in.Call(fmt.Sprintf("timer_getoverrun(%d)", tm.ID), unix.SYS_TIMER_GETOVERRUN, uint64(tm.ID))
		if err != nil {
			return err
		}
		t.PosixTimers = append(t.PosixTimers, image.PosixTimer{ID: tm.ID, ClockID: tm.ClockID,
			Notify: tm.SigevNotify(), Signo: tm.Signal, Value: tm.SigevValue, NotifyTID: int32(tm.NotifyTID),
			Interval: ts(0), Remain: ts(16), Overrun: int32(over)})
	}
	return nil
}

// collectPtrace gathers what ptrace and plain syscalls report from outside,
// with the rseq registration the stop read (rc). Precondition: called on
// the tracer thread with the task stopped. buf receives the XSAVE area
// (ptrace.MaxRegsetSize bytes).
func collectPtrace(task *ptrace.Task, rc ptrace.RseqConfig, t *image.Task, buf []byte) error {
	xs, err := task.Regset(unix.NT_X86_XSTATE, buf)
	if err != nil {
		return err
	}
	t.XState = append([]byte(nil), xs...)
	if t.Pending, err = pending(task, false); err != nil {
		return err
	}
	if t.SharedPend, err = pending(task, true); err != nil {
		return err
	}
	if rc.Addr != 0 {
		t.Rseq = &image.Rseq{Addr: rc.Addr, Len: rc.Size, Sig: rc.Sig}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(task.TID, &set); err != nil {
		return fmt.Errorf("sched_getaffinity of %d: %w", task.TID, err)
	}
	t.Affinity = make([]uint64, len(set)*int(unsafe.Sizeof(set[0]))/8)
	for cpu := 0; cpu < len(t.Affinity)*64; cpu++ {
		if set.IsSet(cpu) {
			t.Affinity[cpu/64] |= 1 << (cpu % 64)
		}
	}
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, task.TID)
	if err != nil {
		return fmt.Errorf("getpriority of %d: %w", task.TID, err)
	}
	t.Nice = 20 - prio // the raw syscall returns 20 - nice
	var head, size uint64
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(task.TID), uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&size)))
	if e != 0 {
		return fmt.Errorf("get_robust_list of %d: %w", task.TID, e)
	}
	t.RobustList = image.RobustList{Head: head, Len: size}
	return nil
}

func pending(task *ptrace.Task, shared bool) ([]image.Siginfo, error) {
	raw, err := task.PendingSignals(shared)
	if err != nil {
		return nil, err
	}
	var out []image.Siginfo
	for _, r := range raw {
		out = append(out, image.Siginfo{Raw: r})
	}
	return out, nil
}

// rseqAbort moves an instruction pointer that is inside the thread's
// current rseq critical section (its rseq area at area, 0 for none) to the
// section's abort handler, as the kernel does to a preempted task; a task
// resumed mid-section after injected calls (on whose returns the kernel
// found it outside the section and cleared its rseq_cs), or a new process,
// would otherwise run on in it.
func rseqAbort(pid int, area uint64, regs *unix.PtraceRegs) error {
	if area == 0 {
		return nil
	}
	var b [8]byte
	if _, err := ptrace.ReadMem(pid, area+8, b[:]); err != nil {
		return fmt.Errorf("read rseq area: %w", err)
	}
	csPtr := le.Uint64(b[:])
	if csPtr == 0 {
		return nil
	}
	var cs [32]byte
	if _, err := ptrace.ReadMem(pid, csPtr, cs[:]); err != nil {
		return fmt.Errorf("read rseq critical section descriptor: %w", err)
	}
	start, postCommit, abort := le.Uint64(cs[8:]), le.Uint64(cs[16:]), le.Uint64(cs[24:])
	if regs.Rip >= start && regs.Rip < start+postCommit {
		regs.Rip = abort
	}
	return nil
}

// regsBytes serializes user_regs_struct as the NT_PRSTATUS regset does.
func regsBytes(r unix.PtraceRegs) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))...)
}
