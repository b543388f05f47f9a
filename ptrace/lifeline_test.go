package ptrace

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLifelineFind(t *testing.T) {
	code := make([]byte, 100)
	copy(code[10:], []byte{0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05}) // mov $15, %eax; syscall
	var l Lifeline
	if l.Find(code, 0x1000) || l.Sigreturn != 0x100a || l.SyscallRet != 0 {
		t.Fatalf("after the first chunk: %+v", l)
	}
	copy(code[50:], []byte{0x0f, 0x05, 0xc3})
	copy(code[10:], make([]byte, 7))
	if !l.Find(code, 0x2000) || l.SyscallRet != 0x2032 || l.Sigreturn != 0x100a {
		t.Fatalf("after the second chunk: %+v, want syscall;ret at 0x2032 and the first sigreturn kept", l)
	}
}

func TestLifelineFrame(t *testing.T) {
	le := binary.LittleEndian
	l := Lifeline{SyscallRet: 0x5000, Sigreturn: 0x6000}
	regs := unix.PtraceRegs{Rsp: 0x7ffff000_1238, Rip: 0x401000, Rax: 7, R15: 15, Eflags: 0x246, Cs: 0x33, Ss: 0x2b}
	xstate := make([]byte, 2432)
	le.PutUint64(xstate[464:], 0xe7) // XCR0, as ptrace leaves it
	xstate[24] = 0x80                // something of MXCSR
	addr, frame, err := l.Frame(regs, 1<<9, xstate)
	if err != nil {
		t.Fatal(err)
	}
	if addr+uint64(len(frame)) != regs.Rsp-128 || addr%16 != 0 {
		t.Fatalf("frame [%#x, +%d) does not end at the red zone %#x, or is misaligned", addr, len(frame), regs.Rsp-128)
	}
	u64 := func(off int) uint64 { return le.Uint64(frame[off:]) }
	sc := 8 + 40
	if u64(0) != l.Sigreturn || u64(8) != 7 || u64(8+296) != 1<<9 {
		t.Errorf("pretcode %#x uc_flags %#x mask %#x", u64(0), u64(8), u64(8+296))
	}
	if le.Uint32(frame[8+16+8:]) != 3 {
		t.Errorf("uc_stack.ss_flags %d, want the invalid mode 3 (leaves the alternate stack alone)", le.Uint32(frame[8+16+8:]))
	}
	if u64(sc+56) != 15 || u64(sc+104) != 7 || u64(sc+120) != regs.Rsp || u64(sc+128) != regs.Rip || u64(sc+136) != 0x246 ||
		le.Uint16(frame[sc+144:]) != 0x33 || le.Uint16(frame[sc+150:]) != 0x2b {
		t.Errorf("sigcontext does not hold the registers: % x", frame[sc:sc+152])
	}
	fp := u64(sc + 184)
	if fp%64 != 0 || fp < addr+uint64(8+304+128) || fp+uint64(len(xstate))+4 > regs.Rsp-128 {
		t.Fatalf("fpstate at %#x: misaligned or outside the frame [%#x, %#x)", fp, addr, regs.Rsp-128)
	}
	xs := frame[fp-addr:]
	if xs[24] != 0x80 || le.Uint32(xs[464:]) != 0x46505853 || le.Uint32(xs[468:]) != 2436 ||
		le.Uint64(xs[472:]) != 0xe7 || le.Uint32(xs[480:]) != 2432 || le.Uint32(xs[2432:]) != 0x46505845 {
		t.Errorf("XSAVE area not in signal-frame form: sw bytes % x, end magic %#x", xs[464:488], le.Uint32(xs[2432:]))
	}

	if _, _, err := l.Frame(regs, 0, xstate[:512]); err == nil {
		t.Errorf("a 512-byte XSAVE area was taken")
	}
	if _, _, err := l.Frame(unix.PtraceRegs{Rsp: 256}, 0, xstate); err == nil {
		t.Errorf("a frame under address 256 was built")
	}
}
