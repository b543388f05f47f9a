//go:build linux

package dirty

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageSize is the base page size; every address handed to the kernel here is
// a multiple of it.
var pageSize = uint64(unix.Getpagesize())

// maxRetries bounds the retries of an ioctl that failed with EAGAIN or EINTR.
const maxRetries = 100

// WP wraps a userfaultfd set up for asynchronous write-protect. The ioctls act
// on the address space (mm) of the process that created the userfaultfd, not
// on the caller's: for a target process the fd is created inside it by
// syscall injection and pulled out with pidfd_getfd.
//
// A WP owns its fd. Closing it (Close, or the death of the process holding
// it) makes the kernel unregister every range and remove all protection, so
// the target runs on untouched. All methods are safe for concurrent use.
type WP struct {
	mu sync.RWMutex // held for reading by ioctls, for writing by Close
	fd int          // -1 once closed
}

// UserfaultfdFlags are the flags to create the userfaultfd with (the
// userfaultfd(2) argument, for instance in the injected call):
// close-on-exec, non-blocking, user-mode faults only. Async write-protect
// needs no handler, so the fd is never read.
const UserfaultfdFlags = unix.O_CLOEXEC | unix.O_NONBLOCK | UFFDUserModeOnly

// NewWP enables asynchronous write-protect (UFFD_FEATURE_WP_ASYNC, which
// implies UFFD_FEATURE_WP_UNPOPULATED) on uffd with UFFDIO_API, which can be
// done only once per userfaultfd. NewWP takes ownership of uffd: it is closed
// on error and by Close otherwise. A kernel without the feature gives an
// error matching ErrNotSupported.
func NewWP(uffd int) (*WP, error) {
	if uffd < 0 {
		return nil, fmt.Errorf("enable userfaultfd async write-protect: fd %d: %w", uffd, unix.EBADF)
	}
	api := uffdioAPIArg{api: uffdAPI, features: uffdFeatureWPAsync | uffdFeatureWPUnpopulated}
	if err := ioctl(uffd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
		if err == unix.EINVAL {
			// Unknown features and a second UFFDIO_API both give
			// EINVAL. Asking for no feature tells them apart: it
			// succeeds, and lists what the kernel offers, only
			// if the fd was not initialized yet.
			plain := uffdioAPIArg{api: uffdAPI}
			if ioctl(uffd, uffdioAPI, unsafe.Pointer(&plain)) == nil {
				unix.Close(uffd)
				return nil, fmt.Errorf("enable userfaultfd async write-protect: kernel offers features %#x, lacks UFFD_FEATURE_WP_ASYNC (Linux 6.7+): %w",
					plain.features, ErrNotSupported)
			}
			unix.Close(uffd)
			return nil, fmt.Errorf("enable userfaultfd async write-protect: UFFDIO_API was already issued on this fd: %w",
				os.NewSyscallError("ioctl UFFDIO_API", err))
		}
		unix.Close(uffd)
		return nil, fmt.Errorf("enable userfaultfd async write-protect: %w", os.NewSyscallError("ioctl UFFDIO_API", err))
	}
	const need = uffdFeatureWPAsync | uffdFeatureWPUnpopulated
	if api.features&need != need {
		unix.Close(uffd)
		return nil, fmt.Errorf("enable userfaultfd async write-protect: kernel offers features %#x, lacks %#x: %w",
			api.features, need&^api.features, ErrNotSupported)
	}
	const needIoctls = 1<<uffdioRegisterNR | 1<<uffdioUnregisterNR
	if api.ioctls&needIoctls != needIoctls {
		unix.Close(uffd)
		return nil, fmt.Errorf("enable userfaultfd async write-protect: kernel offers ioctls %#x, lacks %#x: %w",
			api.ioctls, needIoctls&^api.ioctls, ErrNotSupported)
	}
	return &WP{fd: uffd}, nil
}

// Register registers the page-aligned range [start, end) for write-protect
// (UFFDIO_REGISTER_MODE_WP). The range must be fully covered by mappings
// (EINVAL otherwise; ENOMEM if no mapping overlaps it at all, which is also
// the answer once the address space is gone), none of them registered with
// another userfaultfd (EBUSY). Registering protects nothing yet: see Protect.
// Registering a registered range again is allowed.
func (w *WP) Register(start, end uint64) error {
	if err := checkRange(start, end); err != nil {
		return fmt.Errorf("register %#x-%#x for write-protect: %w", start, end, err)
	}
	arg := uffdioRegisterArg{rng: uffdioRange{start: start, len: end - start}, mode: uffdioRegisterModeWP}
	if err := w.do("UFFDIO_REGISTER", uffdioRegister, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("register %#x-%#x for write-protect: %w", start, end, err)
	}
	if arg.ioctls&(1<<uffdioWriteprotNR) == 0 {
		return fmt.Errorf("register %#x-%#x for write-protect: range offers ioctls %#x, no UFFDIO_WRITEPROTECT: %w",
			start, end, arg.ioctls, ErrNotSupported)
	}
	return nil
}

// Protect write-protects the registered range [start, end)
// (UFFDIO_WRITEPROTECT, mode WP). Pages never populated are protected too
// (WP_UNPOPULATED: the kernel allocates their page tables and installs
// markers), so the first write to any page of the range is tracked. After
// Protect, PAGEMAP_SCAN reports as written exactly the pages written since.
func (w *WP) Protect(start, end uint64) error {
	if err := checkRange(start, end); err != nil {
		return fmt.Errorf("write-protect %#x-%#x: %w", start, end, err)
	}
	arg := uffdioWriteprotectArg{rng: uffdioRange{start: start, len: end - start}, mode: uffdioWriteprotectModeWP}
	if err := w.do("UFFDIO_WRITEPROTECT", uffdioWriteprotect, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("write-protect %#x-%#x: %w", start, end, err)
	}
	return nil
}

// Unregister unregisters [start, end) (UFFDIO_UNREGISTER), which also removes
// its protection. Parts of the range that are not registered are skipped.
func (w *WP) Unregister(start, end uint64) error {
	if err := checkRange(start, end); err != nil {
		return fmt.Errorf("unregister %#x-%#x: %w", start, end, err)
	}
	arg := uffdioRange{start: start, len: end - start}
	if err := w.do("UFFDIO_UNREGISTER", uffdioUnregister, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("unregister %#x-%#x: %w", start, end, err)
	}
	return nil
}

// Close closes the userfaultfd. Unless another process still holds a copy
// of it (the target closes the one injected into it), the kernel then
// unregisters all its ranges and removes their protection before close(2)
// returns. Closing twice is a no-op.
func (w *WP) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return nil
	}
	fd := w.fd
	w.fd = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close userfaultfd: %w", os.NewSyscallError("close", err))
	}
	return nil
}

// do runs one userfaultfd ioctl, retrying EAGAIN (the mm is changing under a
// non-cooperative event) and EINTR.
func (w *WP) do(name string, req uint64, arg unsafe.Pointer) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.fd < 0 {
		return fmt.Errorf("userfaultfd: %w", os.ErrClosed)
	}
	var err error
	for range maxRetries {
		err = ioctl(w.fd, req, arg)
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err == unix.ESRCH {
		return fmt.Errorf("%w: %w", ErrTargetGone, os.NewSyscallError("ioctl "+name, err))
	}
	if err != nil {
		return os.NewSyscallError("ioctl "+name, err)
	}
	return nil
}

// ioctl issues one ioctl whose argument is a pointer; it returns the raw
// errno (nil on success).
func ioctl(fd int, req uint64, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// checkRange validates a page-aligned, non-empty [start, end).
func checkRange(start, end uint64) error {
	if start%pageSize != 0 || end%pageSize != 0 {
		return fmt.Errorf("range not aligned to %d-byte pages: %w", pageSize, unix.EINVAL)
	}
	if end <= start {
		return fmt.Errorf("empty range: %w", unix.EINVAL)
	}
	return nil
}
