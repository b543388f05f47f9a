//go:build linux

package loader

import "golang.org/x/sys/unix"

// syscallClasses is the syscall_classes table of bpf/track.c for x86-64:
// what sys_enter and sys_exit do for each syscall number.
func syscallClasses() (*[syscallTable]trackSyscallClass, error) {
	var t [syscallTable]trackSyscallClass
	as := func(nr uintptr, enter Kind, nargs uint8, exit Kind) {
		t[nr].Enter, t[nr].Nargs, t[nr].Exit = uint8(enter), nargs, uint8(exit)
	}
	// Address-space changes, with the arguments track.h lists for each.
	as(unix.SYS_MMAP, KindMmap, 5, KindMmapRet)
	as(unix.SYS_MUNMAP, KindMunmap, 2, 0)
	as(unix.SYS_MREMAP, KindMremap, 5, KindMremapRet)
	as(unix.SYS_BRK, KindBrk, 1, KindBrkRet)
	as(unix.SYS_MPROTECT, KindMprotect, 3, 0)
	as(unix.SYS_MADVISE, KindMadvise, 3, 0)
	// State crbpf reads by injection (see checkpoint's snapshot): signal
	// handlers, the alternate stack, timers, clear_child_tid, the break,
	// and a new program.
	for _, nr := range []uintptr{
		unix.SYS_RT_SIGACTION, unix.SYS_SIGALTSTACK,
		unix.SYS_SETITIMER, unix.SYS_ALARM,
		unix.SYS_TIMER_CREATE, unix.SYS_TIMER_SETTIME, unix.SYS_TIMER_DELETE,
		unix.SYS_SET_TID_ADDRESS, unix.SYS_BRK,
		unix.SYS_EXECVE, unix.SYS_EXECVEAT,
	} {
		t[nr].State = 1
	}
	return &t, nil
}
