//go:build linux

package dirty

import "unsafe"

// Kernel ABI mirrored by hand: golang.org/x/sys/unix has none of it yet.
// Every value below was checked against the kernel headers (linux-libc-dev
// 6.12) by compiling testdata/abi.c with gcc; TestABIMatchesHeaders repeats
// that check wherever gcc and headers that define the names are installed.

// ioctl request encoding of include/uapi/asm-generic/ioctl.h, used by x86,
// arm64, riscv and most other architectures (powerpc, mips and sparc encode
// the direction differently and are not supported by this file).
const (
	iocWrite     = 1 // _IOC_WRITE
	iocRead      = 2 // _IOC_READ
	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
)

// include/uapi/linux/fs.h: the PAGEMAP_SCAN ioctl on /proc/PID/pagemap
// (Linux 6.7+), documented in Documentation/admin-guide/mm/pagemap.rst.

// pmScanArg is struct pm_scan_arg.
type pmScanArg struct {
	size              uint64 // sizeof(struct pm_scan_arg)
	flags             uint64 // PM_SCAN_*
	start             uint64 // first address, page aligned
	end               uint64 // end address (exclusive)
	walkEnd           uint64 // written by the kernel: where the walk stopped
	vec               uint64 // address of a []pageRegion
	vecLen            uint64 // its length in entries
	maxPages          uint64 // 0: no limit
	categoryInverted  uint64 // PAGE_IS_* bits that match when 0
	categoryMask      uint64 // a page must have all these
	categoryAnyofMask uint64 // a page must have one of these (if not 0)
	returnMask        uint64 // PAGE_IS_* bits reported in pageRegion.categories
}

// pageRegion is struct page_region.
type pageRegion struct {
	start      uint64
	end        uint64 // exclusive
	categories uint64
}

// PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg) = 0xc0606610 (the 6.12
// header spells 'f' as PROCFS_IOCTL_MAGIC).
const pagemapScan = (iocRead|iocWrite)<<iocDirShift |
	uint64(unsafe.Sizeof(pmScanArg{}))<<iocSizeShift |
	'f'<<iocTypeShift | 16<<iocNRShift

// Flags of struct pm_scan_arg.
const (
	pmScanWPMatching   = 1 << 0 // PM_SCAN_WP_MATCHING: write-protect the pages matched
	pmScanCheckWPAsync = 1 << 1 // PM_SCAN_CHECK_WPASYNC: fail with EPERM on a VMA without async WP
)

// PAGE_IS_* categories, include/uapi/linux/fs.h.
const (
	pageIsWPAllowed = 1 << 0 // PAGE_IS_WPALLOWED: the VMA is registered for async write-protect
	pageIsWritten   = 1 << 1 // PAGE_IS_WRITTEN: written since it was last write-protected
	pageIsFile      = 1 << 2 // PAGE_IS_FILE
	pageIsPresent   = 1 << 3 // PAGE_IS_PRESENT
	pageIsSwapped   = 1 << 4 // PAGE_IS_SWAPPED (also: a PTE marker, e.g. uffd-wp on a none PTE)
	pageIsPFNZero   = 1 << 5 // PAGE_IS_PFNZERO
	pageIsHuge      = 1 << 6 // PAGE_IS_HUGE
	pageIsSoftDirty = 1 << 7 // PAGE_IS_SOFT_DIRTY
	pageIsGuard     = 1 << 8 // PAGE_IS_GUARD (Linux 6.14+; not in the 6.12 header)
)

// include/uapi/linux/userfaultfd.h (admin guide: userfaultfd.rst).

// uffdAPI is UFFD_API, the only API version.
const uffdAPI = 0xaa

// UFFD_USER_MODE_ONLY, a flag of the userfaultfd(2) system call itself: the
// uffd handles only faults from user mode. Async write-protect resolves
// kernel-mode faults as well (they never reach a handler).
const UFFDUserModeOnly = 1

// uffdioAPIArg is struct uffdio_api.
type uffdioAPIArg struct {
	api      uint64
	features uint64 // in: requested UFFD_FEATURE_*; out: all the kernel offers
	ioctls   uint64 // out: 1<<_UFFDIO_* the fd supports
}

// uffdioRange is struct uffdio_range.
type uffdioRange struct {
	start uint64
	len   uint64
}

// uffdioRegisterArg is struct uffdio_register.
type uffdioRegisterArg struct {
	rng    uffdioRange
	mode   uint64 // UFFDIO_REGISTER_MODE_*
	ioctls uint64 // out: 1<<_UFFDIO_* available on the range
}

// uffdioWriteprotectArg is struct uffdio_writeprotect.
type uffdioWriteprotectArg struct {
	rng  uffdioRange
	mode uint64 // UFFDIO_WRITEPROTECT_MODE_*
}

// Ioctl command numbers (_UFFDIO_*) and their 'UFFDIO' (0xAA) type.
const (
	uffdioType         = 0xaa
	uffdioRegisterNR   = 0x00 // _UFFDIO_REGISTER
	uffdioUnregisterNR = 0x01 // _UFFDIO_UNREGISTER
	uffdioWriteprotNR  = 0x06 // _UFFDIO_WRITEPROTECT
	uffdioAPINR        = 0x3f // _UFFDIO_API
)

// Ioctl requests.
const (
	// UFFDIO_API = _IOWR(UFFDIO, _UFFDIO_API, struct uffdio_api) = 0xc018aa3f
	uffdioAPI = (iocRead|iocWrite)<<iocDirShift |
		uint64(unsafe.Sizeof(uffdioAPIArg{}))<<iocSizeShift |
		uffdioType<<iocTypeShift | uffdioAPINR<<iocNRShift
	// UFFDIO_REGISTER = _IOWR(UFFDIO, _UFFDIO_REGISTER, struct uffdio_register) = 0xc020aa00
	uffdioRegister = (iocRead|iocWrite)<<iocDirShift |
		uint64(unsafe.Sizeof(uffdioRegisterArg{}))<<iocSizeShift |
		uffdioType<<iocTypeShift | uffdioRegisterNR<<iocNRShift
	// UFFDIO_UNREGISTER = _IOR(UFFDIO, _UFFDIO_UNREGISTER, struct uffdio_range) = 0x8010aa01
	// (_IOR although the kernel reads the argument; see the header's comment).
	uffdioUnregister = iocRead<<iocDirShift |
		uint64(unsafe.Sizeof(uffdioRange{}))<<iocSizeShift |
		uffdioType<<iocTypeShift | uffdioUnregisterNR<<iocNRShift
	// UFFDIO_WRITEPROTECT = _IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, struct uffdio_writeprotect) = 0xc018aa06
	uffdioWriteprotect = (iocRead|iocWrite)<<iocDirShift |
		uint64(unsafe.Sizeof(uffdioWriteprotectArg{}))<<iocSizeShift |
		uffdioType<<iocTypeShift | uffdioWriteprotNR<<iocNRShift
)

// UFFD_FEATURE_* bits of struct uffdio_api.features.
const (
	// UFFD_FEATURE_WP_UNPOPULATED (Linux 6.4+): write-protecting a range
	// also protects its never-populated pages (with PTE markers), so the first
	// write to them is tracked like any other.
	uffdFeatureWPUnpopulated = 1 << 13
	// UFFD_FEATURE_WP_ASYNC (Linux 6.7+): the kernel resolves write-protect
	// faults itself (clears the uffd-wp bit and lets the write proceed); no
	// message is queued and no handler thread is needed. Implies
	// WP_UNPOPULATED.
	uffdFeatureWPAsync = 1 << 15
)

// UFFDIO_REGISTER_MODE_WP, struct uffdio_register.mode.
const uffdioRegisterModeWP = 1 << 1

// UFFDIO_WRITEPROTECT_MODE_WP, struct uffdio_writeprotect.mode; 0 removes
// the protection.
const uffdioWriteprotectModeWP = 1 << 0
