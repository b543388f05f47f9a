//go:build linux

package dirty

import (
	"errors"
	"fmt"
)

// ErrNotSupported: the kernel cannot track writes this way (no
// UFFD_FEATURE_WP_ASYNC, no PAGEMAP_SCAN, or a mapping that cannot be
// write-protected). Linux 6.7 or later with CONFIG_USERFAULTFD and
// CONFIG_PTE_MARKER_UFFD_WP is needed.
var ErrNotSupported = errors.New("write tracking not supported")

// ErrTargetGone: the address space the userfaultfd or the pagemap file is
// bound to is gone: the process exited, or it called execve (which replaces
// the address space; tracking must be armed again from scratch). The kernel
// answers ESRCH.
var ErrTargetGone = errors.New("tracked address space is gone")

// NotRegisteredError reports that a scan reached memory that is not
// registered for async write-protect with any userfaultfd: a mapping created
// after arming (mmap, a moving mremap, a brk extension that became its own
// VMA) or one that was never registered. Its writes cannot be tracked, so the
// caller registers and protects [Start, End) and copies it whole.
//
// Start and End are the first run of such memory in the scanned range, found
// with a second, read-only scan right after the failure. If the memory could
// not be located again (the mapping changed once more, or it is a VM_PFNMAP
// mapping, which cannot be registered at all), they span the rest of the
// scanned range from where the failed scan started.
type NotRegisteredError struct {
	Start, End uint64
}

func (e *NotRegisteredError) Error() string {
	return fmt.Sprintf("memory %#x-%#x is not registered for async write-protect", e.Start, e.End)
}
