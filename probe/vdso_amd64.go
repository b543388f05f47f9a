//go:build linux && amd64

package probe

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// archMapVDSO64 is ARCH_MAP_VDSO_64 (asm/prctl.h), an arch_prctl code that
// exists when the kernel is built with CONFIG_CHECKPOINT_RESTORE.
const archMapVDSO64 = 0x2003

// probeArchMapVDSO calls arch_prctl(ARCH_MAP_VDSO_64, start of our [vdso])
// on the calling process. The kernel (map_vdso_once in
// arch/x86/entry/vdso/vma.c) first looks for any vDSO or vvar mapping in
// the caller and fails with EEXIST if there is one, before it maps
// anything; without CONFIG_CHECKPOINT_RESTORE the code is unknown (EINVAL).
// So the call is made only after /proc/self/maps showed a [vdso]: then it
// cannot map or move anything. Measured on Linux 6.18 x86-64: EEXIST.
func probeArchMapVDSO(context.Context) (Status, string) {
	start, ok, err := selfVDSOStart()
	if err != nil {
		return Unknown, "not probed: " + err.Error()
	}
	if !ok {
		// With no vDSO the call would map one into crbpf: don't.
		return Unknown, joinDetail("not probed: crbpf has no [vdso] mapping (kernel booted with vdso=0?), and the call would map one", configNote("CONFIG_CHECKPOINT_RESTORE"))
	}
	r1, _, e := unix.Syscall(unix.SYS_ARCH_PRCTL, archMapVDSO64, uintptr(start), 0)
	call := fmt.Sprintf("arch_prctl(ARCH_MAP_VDSO_64, %#x) returned", start)
	switch e {
	case 0:
		return Unknown, fmt.Sprintf("%s %d although a vDSO is mapped: unexpected, crbpf may now have a second vDSO", call, r1)
	case unix.EEXIST:
		return OK, fmt.Sprintf("%s %s: supported, refused only because a vDSO is already mapped", call, errnoString(e))
	case unix.EINVAL:
		return Missing, fmt.Sprintf("%s %s: kernel built without CONFIG_CHECKPOINT_RESTORE", call, errnoString(e))
	case unix.EPERM:
		return Missing, joinDetail(fmt.Sprintf("%s %s", call, errnoString(e)), seccompNote())
	}
	return Unknown, fmt.Sprintf("%s %s: unexpected answer", call, errnoString(e))
}
