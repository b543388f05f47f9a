package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"golang.org/x/sys/unix"
)

const (
	prSetMM                 = 35
	prSetMMMap              = 14
	prSetName               = 15
	prTimerCreateRestoreIDs = 77
	ssOnstack               = 1
	ssDisable               = 2
	sigevThreadID           = 4
	prctlMMMapSize          = 104
)

var le = binary.LittleEndian

// restoreMM sets the mm fields, auxv and exe link with PR_SET_MM_MAP. It
// runs after every mapping is in place (the kernel checks the addresses
// against them) and after the stub's exe mapping is gone (else EBUSY).
func (r *restorer) restoreMM() error {
	mm := r.img.MM
	auxv := u64bytes(mm.Auxv)
	if len(auxv) > 2048 {
		return fmt.Errorf("auxv of %d bytes is too large", len(auxv))
	}
	exeFD, err := r.openInChild(mm.ExePath, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("executable: %w", err)
	}
	auxvAddr, err := r.put(2048, auxv)
	if err != nil {
		return errors.Join(err, r.closeInChild(exeFD))
	}
	m := []uint64{mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk,
		mm.StartStack, mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd, auxvAddr,
		uint64(len(auxv)) | exeFD<<32}
	addr, err := r.put(0, u64bytes(m))
	if err != nil {
		return errors.Join(err, r.closeInChild(exeFD))
	}
	_, err = r.call("prctl(PR_SET_MM_MAP)", unix.SYS_PRCTL, prSetMM, prSetMMMap, addr, prctlMMMapSize, 0)
	return errors.Join(err, r.closeInChild(exeFD))
}

// restoreTaskState restores the per-task kernel state.
func (r *restorer) restoreTaskState() error {
	t := r.img.Task
	if _, err := r.call("personality", unix.SYS_PERSONALITY, uint64(t.Personality)); err != nil {
		return err
	}
	addr, err := r.putString(0, t.Comm)
	if err != nil {
		return err
	}
	if _, err := r.call("prctl(PR_SET_NAME)", unix.SYS_PRCTL, prSetName, addr); err != nil {
		return err
	}
	if addr, err = r.putString(0, t.Cwd); err != nil {
		return err
	}
	if _, err := r.call("chdir "+t.Cwd, unix.SYS_CHDIR, addr); err != nil {
		return err
	}
	if _, err := r.call("umask", unix.SYS_UMASK, uint64(t.Umask)); err != nil {
		return err
	}
	if _, err := r.call("prctl(PR_SET_PDEATHSIG, 0)", unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, 0); err != nil {
		return err
	}
	if err := r.resetIgnored(); err != nil {
		return err
	}
	for _, sa := range t.SigActions {
		addr, err := r.put(0, u64bytes([]uint64{sa.Handler, sa.Flags, sa.Restorer, sa.Mask}))
		if err != nil {
			return err
		}
		if _, err := r.call(fmt.Sprintf("rt_sigaction(%d)", sa.Signo), unix.SYS_RT_SIGACTION, uint64(sa.Signo), addr, 0, 8); err != nil {
			return err
		}
	}
	if _, err := r.call("set_tid_address", unix.SYS_SET_TID_ADDRESS, t.ClearTID); err != nil {
		return err
	}
	if t.RobustList.Head != 0 {
		if _, err := r.call("set_robust_list", unix.SYS_SET_ROBUST_LIST, t.RobustList.Head, t.RobustList.Len); err != nil {
			return err
		}
	}
	if ss := t.SigAltStack; ss.Flags&ssDisable == 0 && ss.SP != 0 {
		addr, err := r.put(0, u64bytes([]uint64{ss.SP, uint64(uint32(ss.Flags &^ ssOnstack)), ss.Size}))
		if err != nil {
			return err
		}
		if _, err := r.call("sigaltstack", unix.SYS_SIGALTSTACK, addr, 0); err != nil {
			return err
		}
	}
	if rs := t.Rseq; rs != nil {
		if _, err := r.call("rseq", unix.SYS_RSEQ, rs.Addr, uint64(rs.Len), 0, uint64(rs.Sig)); err != nil {
			return err
		}
	}
	if err := r.restoreScheduling(); err != nil {
		return err
	}
	if err := r.restoreRlimits(); err != nil {
		return err
	}
	if err := r.restoreTimers(); err != nil {
		return err
	}
	return r.restorePending()
}

// resetIgnored sets to SIG_DFL the signals that the stub inherited as
// ignored from crbpf (ignored dispositions survive exec) and that the image
// does not set itself.
func (r *restorer) resetIgnored() error {
	st, err := procfs.ReadStatus(r.pid)
	if err != nil {
		return err
	}
	saved := map[int]bool{}
	for _, sa := range r.img.Task.SigActions {
		saved[sa.Signo] = true
	}
	dfl, err := r.put(0, make([]byte, 32))
	if err != nil {
		return err
	}
	for sig := 1; sig <= 64; sig++ {
		if st.SigIgn&(1<<(sig-1)) == 0 || saved[sig] {
			continue
		}
		if _, err := r.call(fmt.Sprintf("rt_sigaction(%d, SIG_DFL)", sig), unix.SYS_RT_SIGACTION, uint64(sig), dfl, 0, 8); err != nil {
			return err
		}
	}
	return nil
}

// restoreScheduling sets the CPU affinity and nice value. A mask naming
// only CPUs this host lacks, or a lower nice without CAP_SYS_NICE, is
// reported, not fatal.
func (r *restorer) restoreScheduling() error {
	t := r.img.Task
	if len(t.Affinity) > 0 {
		var set unix.CPUSet
		for cpu := 0; cpu < len(t.Affinity)*64; cpu++ {
			if t.Affinity[cpu/64]&(1<<(cpu%64)) != 0 {
				set.Set(cpu)
			}
		}
		if err := unix.SchedSetaffinity(r.pid, &set); err != nil {
			if !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("sched_setaffinity: %w", err)
			}
			r.warnings = append(r.warnings, "CPU affinity not restored: none of its CPUs exists here")
		}
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, r.pid, t.Nice); err != nil {
		if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setpriority: %w", err)
		}
		r.warnings = append(r.warnings, fmt.Sprintf("nice %d not restored: %v", t.Nice, err))
	}
	return nil
}

// restoreRlimits sets limits that differ from the inherited ones. Raising a
// hard limit needs CAP_SYS_RESOURCE: that is reported, not fatal.
func (r *restorer) restoreRlimits() error {
	for _, l := range r.img.Task.Rlimits {
		var cur unix.Rlimit
		if err := unix.Prlimit(r.pid, l.Resource, nil, &cur); err != nil {
			return fmt.Errorf("prlimit %d: %w", l.Resource, err)
		}
		if cur.Cur == l.Cur && cur.Max == l.Max {
			continue
		}
		want := unix.Rlimit{Cur: l.Cur, Max: l.Max}
		if err := unix.Prlimit(r.pid, l.Resource, &want, nil); err != nil {
			if errors.Is(err, unix.EPERM) {
				r.warnings = append(r.warnings, fmt.Sprintf("rlimit %d not restored to %d/%d (needs CAP_SYS_RESOURCE); it is %d/%d",
					l.Resource, l.Cur, l.Max, cur.Cur, cur.Max))
				continue
			}
			return fmt.Errorf("prlimit %d: %w", l.Resource, err)
		}
	}
	return nil
}

func timeval(ns int64) (uint64, uint64)  { return uint64(ns / 1e9), uint64(ns % 1e9 / 1e3) }
func timespec(ns int64) (uint64, uint64) { return uint64(ns / 1e9), uint64(ns % 1e9) }

// restoreTimers re-arms interval timers and POSIX timers with the time they
// had left. POSIX timers keep their ids (PR_TIMER_CREATE_RESTORE_IDS).
func (r *restorer) restoreTimers() error {
	t := r.img.Task
	for _, it := range t.ITimers {
		is, iu := timeval(it.Interval)
		vs, vu := timeval(it.Value)
		addr, err := r.put(0, u64bytes([]uint64{is, iu, vs, vu}))
		if err != nil {
			return err
		}
		if _, err := r.call(fmt.Sprintf("setitimer(%d)", it.Which), unix.SYS_SETITIMER, uint64(it.Which), addr, 0); err != nil {
			return err
		}
	}
	if len(t.PosixTimers) == 0 {
		return nil
	}
	if _, err := r.call("prctl(PR_TIMER_CREATE_RESTORE_IDS, on)", unix.SYS_PRCTL, prTimerCreateRestoreIDs, 1, 0, 0, 0); err != nil {
		return err
	}
	for _, pt := range t.PosixTimers {
		// struct sigevent: value, signo, notify, then the _tid union member.
		ev := make([]byte, 64)
		le.PutUint64(ev[0:], pt.Value)
		le.PutUint32(ev[8:], uint32(pt.Signo))
		le.PutUint32(ev[12:], uint32(pt.Notify))
		if pt.Notify&sigevThreadID != 0 {
			le.PutUint32(ev[16:], uint32(r.pid))
		}
		evAddr, err := r.put(0, ev)
		if err != nil {
			return err
		}
		idAddr, err := r.put(128, []byte{byte(pt.ID), byte(pt.ID >> 8), byte(pt.ID >> 16), byte(pt.ID >> 24)})
		if err != nil {
			return err
		}
		if _, err := r.call(fmt.Sprintf("timer_create(id %d)", pt.ID), unix.SYS_TIMER_CREATE, uint64(pt.ClockID), evAddr, idAddr); err != nil {
			return err
		}
		if pt.Remain == 0 {
			continue
		}
		is, in := timespec(pt.Interval)
		vs, vn := timespec(pt.Remain)
		spec, err := r.put(256, u64bytes([]uint64{is, in, vs, vn}))
		if err != nil {
			return err
		}
		if _, err := r.call(fmt.Sprintf("timer_settime(%d)", pt.ID), unix.SYS_TIMER_SETTIME, uint64(pt.ID), 0, spec, 0); err != nil {
			return err
		}
	}
	_, err := r.call("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", unix.SYS_PRCTL, prTimerCreateRestoreIDs, 0, 0, 0, 0)
	return err
}

// restorePending queues the signals that were pending at checkpoint; they
// stay blocked until the final signal mask is set.
func (r *restorer) restorePending() error {
	t := r.img.Task
	queue := func(si image.Siginfo, shared bool) error {
		if len(si.Raw) != 128 {
			return fmt.Errorf("pending signal: siginfo of %d bytes", len(si.Raw))
		}
		signo := uint64(le.Uint32(si.Raw[0:]))
		addr, err := r.put(0, si.Raw)
		if err != nil {
			return err
		}
		if shared {
			_, err = r.call(fmt.Sprintf("rt_sigqueueinfo(%d)", signo), unix.SYS_RT_SIGQUEUEINFO, uint64(r.pid), signo, addr)
		} else {
			_, err = r.call(fmt.Sprintf("rt_tgsigqueueinfo(%d)", signo), unix.SYS_RT_TGSIGQUEUEINFO, uint64(r.pid), uint64(r.pid), signo, addr)
		}
		return err
	}
	for _, si := range t.SharedPend {
		if err := queue(si, true); err != nil {
			return err
		}
	}
	for _, si := range t.Pending {
		if err := queue(si, false); err != nil {
			return err
		}
	}
	return nil
}

// restoreFiles rebuilds the fd table: the page file is closed, stdio fds
// stay the restarter's, fds named in Options.Inherit become the given files,
// every other fd is reopened by path with its flags and offset, and nothing
// else is left open.
func (r *restorer) restoreFiles() error {
	// Fds the restarter itself inherited without close-on-exec (a shell's,
	// a harness's pipe) went through exec into the stub: the restored
	// process must not hold them, nor keep a pipe's other end from seeing
	// EOF.
	first := uint64(pagesFD + r.npages + len(r.inherited))
	if _, err := r.call("close_range", unix.SYS_CLOSE_RANGE, first, math.MaxUint32, 0); err != nil {
		return err
	}
	for k := range r.npages {
		if err := r.closeInChild(uint64(pagesFD + k)); err != nil {
			return err
		}
	}
	saved := map[int]image.File{}
	top := pagesFD + r.npages - 1 + len(r.inherited)
	for _, f := range r.img.Files {
		saved[f.FD] = f
		top = max(top, f.FD)
	}
	// Move the inherited replacement files above every fd to be placed, so
	// that placing one cannot close another.
	moved := map[int]uint64{}
	for i, fd := range r.inherited {
		from := uint64(pagesFD + r.npages + i)
		to, err := r.call("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, from, unix.F_DUPFD_CLOEXEC, uint64(top+1))
		if err != nil {
			return err
		}
		if err := r.closeInChild(from); err != nil {
			return err
		}
		moved[fd] = to
	}
	for fd := 0; fd <= 2; fd++ {
		if _, ok := saved[fd]; !ok {
			if err := r.closeInChild(uint64(fd)); err != nil {
				return err
			}
		}
	}
	for _, f := range r.img.Files {
		if src, ok := moved[f.FD]; ok {
			if err := r.placeFD(src, f); err != nil {
				return err
			}
			continue
		}
		if f.Kind == image.FileStdio {
			if f.Cloexec {
				if _, err := r.call("fcntl(F_SETFD)", unix.SYS_FCNTL, uint64(f.FD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
					return err
				}
			}
			continue
		}
		flags := f.Flags &^ (unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_NOCTTY)
		tmp, err := r.openInChild(f.Path, flags|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("fd %d: %w", f.FD, err)
		}
		if err := r.placeFD(tmp, f); err != nil {
			return err
		}
		if f.Kind == image.FileRegular && f.Pos != 0 {
			if _, err := r.call(fmt.Sprintf("lseek(%d)", f.FD), unix.SYS_LSEEK, uint64(f.FD), uint64(f.Pos), unix.SEEK_SET); err != nil {
				return err
			}
		}
	}
	for fd, src := range moved {
		if _, ok := saved[fd]; !ok {
			// A replacement for an fd the image does not have: place it too.
			if err := r.placeFD(src, image.File{FD: fd}); err != nil {
				return err
			}
		}
	}
	return nil
}

// placeFD moves the child's fd src (opened close-on-exec) to f.FD with the
// saved close-on-exec flag.
func (r *restorer) placeFD(src uint64, f image.File) error {
	dst := uint64(f.FD)
	if src == dst {
		if f.Cloexec {
			return nil
		}
		_, err := r.call("fcntl(F_SETFD)", unix.SYS_FCNTL, dst, unix.F_SETFD, 0)
		return err
	}
	dflags := uint64(0)
	if f.Cloexec {
		dflags = unix.O_CLOEXEC
	}
	if _, err := r.call(fmt.Sprintf("dup3(%d, %d)", src, dst), unix.SYS_DUP3, src, dst, dflags); err != nil {
		return err
	}
	return r.closeInChild(src)
}

// finish unmaps the scratch pages with the last injected call and, at its
// syscall-exit stop, installs the saved registers, extended state and
// signal mask, then lets the process go.
func (r *restorer) finish() error {
	t := r.img.Task
	var regs unix.PtraceRegs
	if len(t.Regs) != int(unsafe.Sizeof(regs)) {
		return fmt.Errorf("image registers: %d bytes, want %d", len(t.Regs), unsafe.Sizeof(regs))
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&regs)), unsafe.Sizeof(regs)), t.Regs)
	regs.Orig_rax = ^uint64(0)
	if r.verified != nil {
		if err := <-r.verified; err != nil {
			return err
		}
	}
	if _, err := r.call("munmap scratch", unix.SYS_MUNMAP, r.scratch, 2*image.PageSize); err != nil {
		return err
	}
	if err := r.task.SetRegs(regs); err != nil {
		return err
	}
	if err := r.task.SetRegset(unix.NT_X86_XSTATE, t.XState); err != nil {
		return err
	}
	if err := r.task.SetSigMask(t.SigMask); err != nil {
		return err
	}
	return r.task.Detach()
}

// restoreCreds gives the process its saved user and group ids, after every
// step that needs crbpf's privileges and before files are reopened, so that
// those opens are checked against the process's own ids. Images without
// credentials keep the restarter's.
func (r *restorer) restoreCreds() error {
	c := r.img.Task.Creds
	if c == nil {
		return nil
	}
	groups := make([]byte, 4*len(c.Groups))
	for i, g := range c.Groups {
		binary.LittleEndian.PutUint32(groups[4*i:], g)
	}
	addr, err := r.put(0, groups)
	if err != nil {
		return err
	}
	if _, err := r.call("setgroups", unix.SYS_SETGROUPS, uint64(len(c.Groups)), addr); err != nil {
		return err
	}
	if _, err := r.call("setresgid", unix.SYS_SETRESGID, uint64(c.GID[0]), uint64(c.GID[1]), uint64(c.GID[2])); err != nil {
		return err
	}
	// setfsgid and setfsuid return the previous id, never an error.
	if _, err := r.call("setfsgid", unix.SYS_SETFSGID, uint64(c.GID[3])); err != nil {
		return err
	}
	if _, err := r.call("setresuid", unix.SYS_SETRESUID, uint64(c.UID[0]), uint64(c.UID[1]), uint64(c.UID[2])); err != nil {
		return err
	}
	if _, err := r.call("setfsuid", unix.SYS_SETFSUID, uint64(c.UID[3])); err != nil {
		return err
	}
	if c.UID[0] == c.UID[1] && c.UID[1] == c.UID[2] && c.GID[0] == c.GID[1] && c.GID[1] == c.GID[2] {
		// Changing ids made the process non-dumpable; an ordinary
		// process (not set-id) was dumpable.
		if _, err := r.call("prctl(PR_SET_DUMPABLE, 1)", unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 1); err != nil {
			return err
		}
	}
	if c.NoNewPrivs {
		if _, err := r.call("prctl(PR_SET_NO_NEW_PRIVS, 1)", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}
