//go:build linux

package probe

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl request encoding of include/uapi/asm-generic/ioctl.h (x86, arm64,
// riscv; not powerpc, mips or sparc).
const (
	iocWrite     = 1
	iocRead      = 2
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
)

// iowr is _IOWR(typ, nr, size).
func iowr(typ, nr, size uintptr) uintptr {
	return (iocRead|iocWrite)<<iocDirShift | size<<iocSizeShift | typ<<iocTypeShift | nr
}

// ioctlPtr issues ioctl(fd, req, arg) and returns its result. Going through
// the assembly Syscall keeps arg alive and in place for the call.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (int, unix.Errno) {
	r1, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	return int(r1), e
}
