package procfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// PagemapEntry is one 64-bit entry of /proc/PID/pagemap, describing one
// virtual page (Documentation/admin-guide/mm/pagemap.rst). The PFN and swap
// bits are not decoded: the kernel zeroes the PFN for readers without
// CAP_SYS_ADMIN anyway.
type PagemapEntry uint64

// Present reports bit 63: the page is in RAM.
func (e PagemapEntry) Present() bool { return e&(1<<63) != 0 }

// Swapped reports bit 62: the page is in swap.
func (e PagemapEntry) Swapped() bool { return e&(1<<62) != 0 }

// swpPTEMarker is the swap type of a PTE marker (SWP_PTE_MARKER: the
// highest of the 5-bit swap types on x86_64; real swap devices use the
// lowest, migration and device entries those just below it).
const swpPTEMarker = 31

// PTEMarker reports a non-present entry that is a PTE marker, not a page:
// userfaultfd write-protection of a page never populated or given back
// (MADV_DONTNEED), or a poisoned or guard entry. pagemap shows it as
// swapped (bit 62) with swap type 31 in bits 0-4. It holds no data.
func (e PagemapEntry) PTEMarker() bool { return e.Swapped() && e&0x1f == swpPTEMarker }

// FileOrSharedAnon reports bit 61: a page-cache page or shared anonymous
// (shmem) page, as opposed to a private anonymous one (including COWed
// copies of file pages).
func (e PagemapEntry) FileOrSharedAnon() bool { return e&(1<<61) != 0 }

// Guard reports bit 58: the page is a guard region (MADV_GUARD_INSTALL,
// Linux 6.15+).
func (e PagemapEntry) Guard() bool { return e&(1<<58) != 0 }

// UffdWP reports bit 57: the PTE is userfaultfd write-protected (5.13+).
func (e PagemapEntry) UffdWP() bool { return e&(1<<57) != 0 }

// Exclusive reports bit 56: the page is mapped only here (4.2+).
func (e PagemapEntry) Exclusive() bool { return e&(1<<56) != 0 }

// SoftDirty reports bit 55: the PTE is soft-dirty.
func (e PagemapEntry) SoftDirty() bool { return e&(1<<55) != 0 }

const pagemapEntrySize = int(unsafe.Sizeof(PagemapEntry(0)))

// pagemapChunk bounds one pread of pagemap (in entries): 4 MiB of entries,
// 2 GiB of address space with 4 KiB pages.
const pagemapChunk = 512 << 10

var pageSize = uint64(os.Getpagesize())

// OpenPagemap opens /proc/PID/pagemap for ReadPagemapFile. The caller owns
// and closes the file. Opening needs the right to ptrace the target.
func OpenPagemap(pid int) (*os.File, error) {
	f, err := os.Open(procPath(pid, "pagemap"))
	if err != nil {
		return nil, wrapErr(pid, "open pagemap", err)
	}
	return f, nil
}

// ReadPagemap returns the entries of the pages in [start, end), which must be
// page aligned.
func ReadPagemap(pid int, start, end uint64) ([]PagemapEntry, error) {
	f, err := OpenPagemap(pid)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := ReadPagemapFile(f, start, end, nil)
	if err != nil {
		return nil, wrapErr(pid, "read pagemap", err)
	}
	return es, nil
}

// ReadPagemapFile reads the entries of the pages in [start, end) from an
// open pagemap file, with as few large preads as it can. start and end must
// be page aligned. The entries are stored in buf if it has the capacity (so
// a caller can reuse one buffer) and the result is buf[:pages]; otherwise a
// buffer of at most maxPagemapAlloc entries is allocated. Pages above the
// user address space (such as [vsyscall], which maps lists) have no entries:
// asking for them fails with an error wrapping io.ErrUnexpectedEOF.
// ReadPagemapFile does not move f's offset and may be called concurrently
// on the same f.
func ReadPagemapFile(f *os.File, start, end uint64, buf []PagemapEntry) ([]PagemapEntry, error) {
	if start%pageSize != 0 || end%pageSize != 0 {
		return nil, fmt.Errorf("pagemap range [%#x, %#x): not page aligned", start, end)
	}
	if end < start {
		return nil, fmt.Errorf("pagemap range [%#x, %#x): end before start", start, end)
	}
	n := (end - start) / pageSize
	if uint64(cap(buf)) < n {
		if n > maxPagemapAlloc {
			return nil, fmt.Errorf("pagemap range [%#x, %#x): %d pages is more than the %d this function allocates; read it in pieces", start, end, n, maxPagemapAlloc)
		}
		buf = make([]PagemapEntry, n)
	}
	buf = buf[:n]
	// Entries are native-endian uint64s: read them straight into buf.
	off := int64(start / pageSize * uint64(pagemapEntrySize))
	for done := 0; done < len(buf); {
		chunk := buf[done:min(len(buf), done+pagemapChunk)]
		b := unsafe.Slice((*byte)(unsafe.Pointer(&chunk[0])), len(chunk)*pagemapEntrySize)
		k, err := f.ReadAt(b, off)
		if k != len(b) {
			addr := start + uint64(done+k/pagemapEntrySize)*pageSize
			if err == nil || errors.Is(err, io.EOF) {
				// The kernel has no entries past the end of the
				// user address space (e.g. for [vsyscall]).
				return nil, fmt.Errorf("pagemap has no entry for %#x, past the user address space: %w", addr, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("pagemap entry for %#x: %w", addr, err)
		}
		done += len(chunk)
		off += int64(len(b))
	}
	return buf, nil
}

// maxPagemapAlloc bounds the buffer ReadPagemapFile allocates: 2 GiB of
// entries for 1 TiB of address space. Sparse reservations can be far larger
// than that; callers read them in pieces or pass their own buffer.
const maxPagemapAlloc = 1 << 28
