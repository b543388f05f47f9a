//go:build linux

package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// include/uapi/linux/fs.h: PAGEMAP_SCAN (Linux 6.7+), documented in
// Documentation/admin-guide/mm/pagemap.rst.

// pmScanArg is struct pm_scan_arg.
type pmScanArg struct {
	size              uint64
	flags             uint64
	start             uint64
	end               uint64
	walkEnd           uint64
	vec               uint64
	vecLen            uint64
	maxPages          uint64
	categoryInverted  uint64
	categoryMask      uint64
	categoryAnyofMask uint64
	returnMask        uint64
}

// pageRegion is struct page_region.
type pageRegion struct {
	start, end, categories uint64
}

// pagemapScan is PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg),
// 0xc0606610.
var pagemapScan = iowr('f', 16, unsafe.Sizeof(pmScanArg{}))

const pageIsPresent = 1 << 3 // PAGE_IS_PRESENT

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent   = 1 << 63
	pmSoftDirty = 1 << 55
)

// scratch is an anonymous private mapping of the calling process that a
// probe owns and unmaps.
type scratch struct {
	mem []byte
}

func newScratch(pages int) (*scratch, error) {
	mem, err := unix.Mmap(-1, 0, pages*unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d scratch pages: %w", pages, err)
	}
	return &scratch{mem: mem}, nil
}

func (s *scratch) page(i int) uint64 {
	return uint64(uintptr(unsafe.Pointer(&s.mem[0]))) + uint64(i*unix.Getpagesize())
}

func (s *scratch) close() { unix.Munmap(s.mem) }

// probePagemapScan runs PAGEMAP_SCAN on /proc/self/pagemap over three pages
// of a fresh mapping of its own, of which only the middle one was touched,
// asking for PAGE_IS_PRESENT pages. The region vector lives in a fourth page
// of the mapping, outside the scanned range. No flag that write-protects is
// passed, so the scan only reads page tables.
func probePagemapScan(context.Context) (Status, string) {
	s, err := newScratch(4)
	if err != nil {
		return Unknown, "not probed: " + err.Error()
	}
	defer s.close()
	ps := unix.Getpagesize()
	s.mem[2*ps] = 1 // fault in page 2 only

	fd, err := unix.Open("/proc/self/pagemap", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Unknown, "not probed: open /proc/self/pagemap: " + err.Error()
	}
	defer unix.Close(fd)

	const vecLen = 4
	vec := unsafe.Slice((*pageRegion)(unsafe.Pointer(&s.mem[0])), vecLen)
	arg := pmScanArg{
		size:         uint64(unsafe.Sizeof(pmScanArg{})),
		start:        s.page(1),
		end:          s.page(4),
		vec:          s.page(0),
		vecLen:       vecLen,
		categoryMask: pageIsPresent,
		returnMask:   pageIsPresent,
	}
	n, e := ioctlPtr(fd, pagemapScan, unsafe.Pointer(&arg))
	if e != 0 {
		call := "ioctl(PAGEMAP_SCAN) returned " + errnoString(e)
		switch e {
		case unix.ENOTTY, unix.EINVAL:
			return Missing, call + ": not supported (Linux 6.7+)"
		}
		return Unknown, call
	}
	detail := fmt.Sprintf("ioctl(PAGEMAP_SCAN) returned %d", n)
	if n == 1 && vec[0].start == s.page(2) && vec[0].end == s.page(3) && vec[0].categories == pageIsPresent {
		return OK, detail + ": exactly the one touched page, as expected"
	}
	return OK, detail + fmt.Sprintf(" (expected 1 region for the one touched page; first: %#x-%#x categories %#x)",
		vec[0].start, vec[0].end, vec[0].categories)
}

// probeSoftDirty touches a page of a fresh mapping and reads its pagemap
// entry. A new mapping is soft-dirty as a whole (VM_SOFTDIRTY) and a written
// page has a soft-dirty PTE, so bit 55 is set exactly when the kernel tracks
// soft-dirty (CONFIG_MEM_SOFT_DIRTY on an architecture that supports it).
// Writing 4 to /proc/self/clear_refs would also "succeed" without the option
// and would write-protect all of crbpf's memory, so it is not used.
func probeSoftDirty(context.Context) (Status, string) {
	s, err := newScratch(1)
	if err != nil {
		return Unknown, "not probed: " + err.Error()
	}
	defer s.close()
	s.mem[0] = 1

	fd, err := unix.Open("/proc/self/pagemap", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Unknown, "not probed: open /proc/self/pagemap: " + err.Error()
	}
	defer unix.Close(fd)
	var b [8]byte
	off := int64(s.page(0)/uint64(unix.Getpagesize())) * 8
	if n, err := unix.Pread(fd, b[:], off); err != nil || n != len(b) {
		return Unknown, fmt.Sprintf("not probed: read /proc/self/pagemap: %d bytes, %v", n, err)
	}
	entry := binary.NativeEndian.Uint64(b[:])
	cfg := configNote("CONFIG_MEM_SOFT_DIRTY")
	switch {
	case entry&pmPresent == 0:
		return Unknown, joinDetail(fmt.Sprintf("a written page is not present in pagemap (entry %#x)", entry), cfg)
	case entry&pmSoftDirty != 0:
		return OK, joinDetail("a freshly written page has pagemap bit 55 (soft-dirty) set; crbpf does not use it", cfg)
	}
	return Missing, joinDetail("a freshly written page has pagemap bit 55 (soft-dirty) clear: soft-dirty is not tracked; crbpf does not need it", cfg)
}
