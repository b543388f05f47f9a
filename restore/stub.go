package restore

import (
	"encoding/binary"
)

// stubCodeOff is where the stub's code starts in its one-page ELF file.
const stubCodeOff = 64 + 56

// stubELF builds a minimal static x86-64 executable loaded at base whose
// only code is `syscall; int3`. The restorer execs it under ptrace and
// reshapes the process with injected calls through that syscall
// instruction; the int3 traps any accidental run past it.
func stubELF(base uint64) []byte {
	code := []byte{0x0f, 0x05, 0xcc}
	b := make([]byte, stubCodeOff+len(code))
	le := binary.LittleEndian
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */})
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+stubCodeOff) // e_entry
	le.PutUint64(b[32:], 64)               // e_phoff
	le.PutUint16(b[52:], 64)               // e_ehsize
	le.PutUint16(b[54:], 56)               // e_phentsize
	le.PutUint16(b[56:], 1)                // e_phnum
	ph := b[64:]
	le.PutUint32(ph[0:], 1)               // PT_LOAD
	le.PutUint32(ph[4:], 5)               // PF_R|PF_X
	le.PutUint64(ph[8:], 0)               // p_offset
	le.PutUint64(ph[16:], base)           // p_vaddr
	le.PutUint64(ph[24:], base)           // p_paddr
	le.PutUint64(ph[32:], uint64(len(b))) // p_filesz
	le.PutUint64(ph[40:], uint64(len(b))) // p_memsz
	le.PutUint64(ph[48:], 4096)           // p_align
	copy(b[stubCodeOff:], code)
	return b
}
