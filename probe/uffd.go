//go:build linux

package probe

import (
	"context"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// include/uapi/linux/userfaultfd.h. The Debian headers on the build
// machines predate WP_ASYNC; the values are those of Linux 6.7+.
const (
	uffdUserModeOnly = 1    // UFFD_USER_MODE_ONLY, a flag of userfaultfd(2), Linux 5.11+
	uffdAPI          = 0xaa // UFFD_API, also the ioctl type of UFFDIO_*

	uffdFeatureWPUnpopulated = 1 << 13 // UFFD_FEATURE_WP_UNPOPULATED, Linux 6.4+
	uffdFeatureWPAsync       = 1 << 15 // UFFD_FEATURE_WP_ASYNC, Linux 6.7+

	uffdioRegisterNR   = 0x00 // _UFFDIO_REGISTER
	uffdioUnregisterNR = 0x01 // _UFFDIO_UNREGISTER
	uffdioAPINR        = 0x3f // _UFFDIO_API
)

// uffdioAPIArg is struct uffdio_api.
type uffdioAPIArg struct {
	api      uint64
	features uint64 // in: requested; out: everything the kernel offers
	ioctls   uint64 // out: 1<<_UFFDIO_* available on the fd
}

// uffdioAPI is UFFDIO_API = _IOWR(UFFDIO, _UFFDIO_API, struct uffdio_api),
// 0xc018aa3f.
var uffdioAPI = iowr(uffdAPI, uffdioAPINR, unsafe.Sizeof(uffdioAPIArg{}))

// uffdFlags are the userfaultfd(2) flags crbpf injects into a target.
const uffdFlags = unix.O_CLOEXEC | unix.O_NONBLOCK | uffdUserModeOnly

// probeUffdWPAsync creates a userfaultfd in the calling process, enables
// WP_ASYNC|WP_UNPOPULATED on it with UFFDIO_API, and closes it. Nothing is
// registered, so no memory is ever protected.
func probeUffdWPAsync(context.Context) (Status, string) {
	const want = uffdFeatureWPAsync | uffdFeatureWPUnpopulated
	fd, e := newUffd()
	if e != 0 {
		call := "userfaultfd(O_CLOEXEC|O_NONBLOCK|UFFD_USER_MODE_ONLY) returned " + errnoString(e)
		switch e {
		case unix.ENOSYS:
			return Missing, joinDetail(call+": kernel built without CONFIG_USERFAULTFD", seccompNote())
		case unix.EINVAL:
			return Missing, call + ": UFFD_USER_MODE_ONLY unknown (Linux 5.11+)"
		case unix.EPERM:
			return Missing, joinDetail(call+": refused (vm.unprivileged_userfaultfd, an LSM or seccomp)", seccompNote())
		}
		return Unknown, call
	}
	api := uffdioAPIArg{api: uffdAPI, features: want}
	_, e = ioctlPtr(fd, uffdioAPI, unsafe.Pointer(&api))
	unix.Close(fd)
	if e == 0 {
		const needIoctls = 1<<uffdioRegisterNR | 1<<uffdioUnregisterNR
		if api.features&want != want || api.ioctls&needIoctls != needIoctls {
			return Missing, fmt.Sprintf("UFFDIO_API accepted WP_ASYNC|WP_UNPOPULATED but answered features %#x, ioctls %#x", api.features, api.ioctls)
		}
		return OK, fmt.Sprintf("UFFDIO_API with WP_ASYNC|WP_UNPOPULATED returned 0; kernel offers features %#x", api.features)
	}
	call := "UFFDIO_API with WP_ASYNC|WP_UNPOPULATED returned " + errnoString(e)
	if e != unix.EINVAL {
		return Unknown, call
	}
	// EINVAL: a requested feature is unknown. Ask a fresh fd what the
	// kernel does offer (UFFDIO_API works once per fd).
	offered, ok := uffdOfferedFeatures()
	if !ok {
		return Missing, call + ": kernel lacks async write-protect (Linux 6.7+ with CONFIG_PTE_MARKER_UFFD_WP)"
	}
	return Missing, fmt.Sprintf("%s: kernel offers features %#x, lacks %#x (async write-protect needs Linux 6.7+ with CONFIG_PTE_MARKER_UFFD_WP)",
		call, offered, want&^offered)
}

// newUffd creates a userfaultfd with uffdFlags.
func newUffd() (int, unix.Errno) {
	r1, _, e := unix.Syscall(unix.SYS_USERFAULTFD, uffdFlags, 0, 0)
	return int(r1), e
}

// uffdOfferedFeatures returns every UFFD_FEATURE_* the kernel offers.
func uffdOfferedFeatures() (uint64, bool) {
	fd, e := newUffd()
	if e != 0 {
		return 0, false
	}
	defer unix.Close(fd)
	api := uffdioAPIArg{api: uffdAPI}
	if _, e := ioctlPtr(fd, uffdioAPI, unsafe.Pointer(&api)); e != 0 {
		return 0, false
	}
	return api.features, true
}
