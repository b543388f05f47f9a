//go:build linux

package probe

import (
	"context"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prctlMMMapSize is sizeof(struct prctl_mm_map) on 64-bit Linux: 13 u64
// address fields, the auxv pointer and size (u64 + u32) and exe_fd (u32).
// crbpf's restore passes a struct of this size; a kernel that expects
// another size refuses it with EINVAL.
const prctlMMMapSize = 104

// probePRSetMMMap asks the kernel for the size of struct prctl_mm_map with
// PR_SET_MM_MAP_SIZE, which only writes that size to our buffer. The option
// exists when the kernel is built with CONFIG_CHECKPOINT_RESTORE, as
// PR_SET_MM_MAP itself does; it needs no privilege and changes nothing.
func probePRSetMMMap(context.Context) (Status, string) {
	var size uint32
	_, _, e := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP_SIZE,
		uintptr(unsafe.Pointer(&size)), 0, 0, 0)
	switch {
	case e == 0 && size == prctlMMMapSize:
		return OK, fmt.Sprintf("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE) returned 0, struct prctl_mm_map is %d bytes", size)
	case e == 0:
		return Missing, fmt.Sprintf("kernel's struct prctl_mm_map is %d bytes, crbpf passes %d: PR_SET_MM_MAP would be refused", size, prctlMMMapSize)
	case e == unix.EINVAL:
		return Missing, fmt.Sprintf("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE) returned %s: kernel built without CONFIG_CHECKPOINT_RESTORE", errnoString(e))
	case e == unix.EPERM:
		return Missing, joinDetail(fmt.Sprintf("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE) returned %s", errnoString(e)), seccompNote())
	}
	return Unknown, fmt.Sprintf("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE) returned %s", errnoString(e))
}
