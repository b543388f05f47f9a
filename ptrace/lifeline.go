package ptrace

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// A Lifeline lets a task whose tracer dies between injected calls go back
// to where it was stopped.
//
// Between injected calls a task waits with the injected registers and all
// signals blocked. If the tracer dies then (SIGKILL, OOM), the kernel
// detaches the task and it runs on from its `syscall` instruction with
// those registers, and crashes. With a Lifeline every injected call runs
// from a `syscall; ret` sequence found in the task's own code, with the
// stack pointer at an rt_sigreturn frame written below the task's red zone
// (Frame): a task left alone returns from the call into a sigreturn
// trampoline (`mov $15, %rax; syscall`, which runtimes carry for their
// signal handlers: glibc's loader and libc, and Go binaries, have both
// sequences), and rt_sigreturn restores its
// registers, signal mask and XSAVE state from the frame, as after a signal
// handler. The frame takes the room a signal delivered at the same point
// would take; its caller saves the bytes it covers and puts them back.
type Lifeline struct {
	SyscallRet uint64 // address of `syscall; ret`
	Sigreturn  uint64 // address of `mov $15, %rax; syscall` (or %eax)
}

var (
	syscallRet = []byte{0x0f, 0x05, 0xc3}
	sigreturns = [][]byte{
		{0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05}, // mov $15, %rax; syscall
		{0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05},             // mov $15, %eax; syscall
	}
)

// Find looks for the two sequences in code, which is mapped at addr; it
// fills in what l lacks and reports whether l is complete.
func (l *Lifeline) Find(code []byte, addr uint64) bool {
	if l.SyscallRet == 0 {
		if i := bytes.Index(code, syscallRet); i >= 0 {
			l.SyscallRet = addr + uint64(i)
		}
	}
	if l.Sigreturn == 0 {
		for _, p := range sigreturns {
			if i := bytes.Index(code, p); i >= 0 {
				l.Sigreturn = addr + uint64(i)
				break
			}
		}
	}
	return l.Complete()
}

// Complete reports whether both sequences were found.
func (l *Lifeline) Complete() bool { return l.SyscallRet != 0 && l.Sigreturn != 0 }

// Check reads both sequences back from the task's memory: the code they
// were found in may have been unmapped since.
func (l *Lifeline) Check(pid int) error {
	var buf [9]byte
	check := func(addr uint64, want []byte) error {
		b := buf[:len(want)]
		if n, err := ReadMem(pid, addr, b); err != nil || n != len(b) || !bytes.Equal(b, want) {
			return fmt.Errorf("lifeline code at %#x is gone (read %d bytes: %v)", addr, n, err)
		}
		return nil
	}
	if err := check(l.SyscallRet, syscallRet); err != nil {
		return err
	}
	for _, p := range sigreturns {
		if check(l.Sigreturn, p) == nil {
			return nil
		}
	}
	return fmt.Errorf("lifeline code at %#x is gone", l.Sigreturn)
}

// RedZone is the x86-64 ABI's 128 bytes under the stack pointer that a
// function may use without moving it: nothing crbpf writes goes there.
const RedZone = 128

// Layout of the x86-64 rt_sigframe (arch/x86/include/asm/sigframe.h and
// uapi/asm/sigcontext.h, ucontext.h).
const (
	frameUC       = 8                // after pretcode
	ucStack       = frameUC + 16     // after uc_flags, uc_link
	ucMcontext    = ucStack + 24     // stack_t
	ucSigmask     = ucMcontext + 256 // struct sigcontext
	frameSize     = ucSigmask + 8 + 128
	fxSwReserved  = 464 // software bytes in the legacy FXSAVE area
	xstateMin     = 512 + 64
	fpXstateMagic = 0x46505853 // FP_XSTATE_MAGIC1
	fpXstateEnd   = 0x46505845 // FP_XSTATE_MAGIC2
	ucFPXstate    = 0x1
	ucSigcontext  = 0x2 // UC_SIGCONTEXT_SS
	ucStrictSS    = 0x4 // UC_STRICT_RESTORE_SS
	// An ss_flags mode sigaltstack refuses with EINVAL, an error
	// rt_sigreturn ignores: the alternate signal stack stays as it is (the
	// frame is written before crbpf could ask the task what it is).
	ssKeep = 3
)

// Frame returns an rt_sigframe through which rt_sigreturn restores regs,
// the blocked-signal mask and the XSAVE state xstate (as Regset reads
// NT_X86_XSTATE), to be written at addr, below the red zone under
// regs.Rsp; an injected call that runs with its stack pointer at addr
// returns through l.Sigreturn. [addr, regs.Rsp-128) is what the frame
// covers.
func (l *Lifeline) Frame(regs unix.PtraceRegs, mask uint64, xstate []byte) (addr uint64, frame []byte, err error) {
	if len(xstate) < xstateMin {
		return 0, nil, fmt.Errorf("XSAVE area of %d bytes", len(xstate))
	}
	top := regs.Rsp - RedZone
	fp := (top - uint64(len(xstate)) - 4) &^ 63 // XRSTOR wants 64-byte alignment
	addr = (fp - frameSize) &^ 15
	if addr > top { // wrapped around
		return 0, nil, fmt.Errorf("stack pointer %#x too low for a frame", regs.Rsp)
	}
	frame = make([]byte, top-addr)
	le := binary.LittleEndian
	le.PutUint64(frame[0:], l.Sigreturn) // pretcode, popped by the `ret`
	le.PutUint64(frame[frameUC:], ucFPXstate|ucSigcontext|ucStrictSS)
	le.PutUint32(frame[ucStack+8:], ssKeep)
	sc := frame[ucMcontext:]
	for i, v := range []uint64{regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15,
		regs.Rdi, regs.Rsi, regs.Rbp, regs.Rbx, regs.Rdx, regs.Rax, regs.Rcx, regs.Rsp, regs.Rip, regs.Eflags} {
		le.PutUint64(sc[8*i:], v)
	}
	le.PutUint16(sc[144:], uint16(regs.Cs))
	le.PutUint16(sc[150:], uint16(regs.Ss))
	le.PutUint64(sc[184:], fp)
	le.PutUint64(frame[ucSigmask:], mask)

	// The signal-frame form of the XSAVE area: ptrace leaves the task's
	// XCR0 at the start of the software bytes; a frame holds magic, sizes
	// and features there, and a second magic after the area.
	xs := frame[fp-addr:]
	copy(xs, xstate)
	xcr0 := le.Uint64(xstate[fxSwReserved:])
	sw := xs[fxSwReserved : fxSwReserved+48]
	clear(sw)
	le.PutUint32(sw[0:], fpXstateMagic)
	le.PutUint32(sw[4:], uint32(len(xstate))+4) // extended_size
	le.PutUint64(sw[8:], xcr0)                  // xfeatures
	le.PutUint32(sw[16:], uint32(len(xstate)))  // xstate_size
	le.PutUint32(xs[len(xstate):], fpXstateEnd)
	return addr, frame, nil
}
