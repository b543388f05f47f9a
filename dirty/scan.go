//go:build linux

package dirty

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Range is a page-aligned address range [Start, End) of the target.
type Range struct{ Start, End uint64 }

// vecLen is the number of page_region entries one PAGEMAP_SCAN call may fill
// (24 bytes each). Written memory is reported as maximal runs, so one call
// covers up to vecLen separate runs; more just take another call.
const vecLen = 2048

// Scanner wraps /proc/PID/pagemap for PAGEMAP_SCAN. The file, and so every
// scan, is bound to the address space the process had when OpenScanner ran.
// A Scanner is safe for concurrent use (scans are serialised).
type Scanner struct {
	pid int

	mu   sync.Mutex
	f    *os.File // nil once closed
	vec  []pageRegion
	used int // vec[:used] may hold stale entries; vec[used:] is all zero
}

// OpenScanner opens /proc/PID/pagemap (it needs PTRACE_MODE_READ access to
// the target). Close releases it.
func OpenScanner(pid int) (*Scanner, error) {
	name := "/proc/" + strconv.Itoa(pid) + "/pagemap"
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open pagemap of pid %d: %w", pid, err)
	}
	return &Scanner{pid: pid, f: f, vec: make([]pageRegion, vecLen)}, nil
}

// Close closes the pagemap file. Closing twice is a no-op.
func (s *Scanner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close pagemap of pid %d: %w", s.pid, err)
	}
	return nil
}

// ScanWritten returns the pages of [start, end) written since they were last
// protected and write-protects them again, atomically page by page: a write
// that lands after a page was reported faults and is reported by the next
// scan. It issues PAGEMAP_SCAN with PM_SCAN_WP_MATCHING|PM_SCAN_CHECK_WPASYNC
// and category and return masks PAGE_IS_WRITTEN, as many times as needed to
// walk the whole range. The result is appended to buf[:0]: sorted, merged,
// page-aligned ranges.
//
// Holes in the range (no mapping) are skipped. A mapping in the range that is
// not registered for async write-protect stops the scan with a
// *NotRegisteredError (wrapped); the kernel answers EPERM there instead of
// silently skipping it. Whatever the error, the ranges returned with it are
// valid and must be treated as dirty: the kernel already re-protected them.
// To go on after a *NotRegisteredError, register and protect its range, copy
// that range whole, and scan again from its End.
func (s *Scanner) ScanWritten(start, end uint64, buf []Range) ([]Range, error) {
	return s.written(start, end, buf, true)
}

// PeekWritten is ScanWritten without the protecting: the pages it reports
// stay writable, and a later scan reports them again. It is for the last
// scan of a tracking that ends: protecting them again would rewrite their
// page table entries only for the release to undo it, with the target
// stopped.
func (s *Scanner) PeekWritten(start, end uint64, buf []Range) ([]Range, error) {
	return s.written(start, end, buf, false)
}

func (s *Scanner) written(start, end uint64, buf []Range, protect bool) ([]Range, error) {
	out := buf[:0]
	if start == end {
		return out, nil
	}
	if err := checkRange(start, end); err != nil {
		return out, fmt.Errorf("scan written pages of pid %d in %#x-%#x: %w", s.pid, start, end, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return out, fmt.Errorf("scan written pages of pid %d: %w", s.pid, os.ErrClosed)
	}

	pos := start
	retries := 0
	flags := uint64(pmScanCheckWPAsync)
	if protect {
		flags |= pmScanWPMatching
	}
	for pos < end {
		arg := pmScanArg{
			flags:        flags,
			start:        pos,
			end:          end,
			categoryMask: pageIsWritten,
			returnMask:   pageIsWritten,
		}
		before, lastEnd := len(out), uint64(0)
		if before > 0 {
			lastEnd = out[before-1].End
		}
		n, err := s.scan(&arg)
		out = appendRegions(out, s.vec[:n])
		switch {
		case err == 0:
		case (err == unix.EINTR || err == unix.EAGAIN) && retries < maxRetries:
			// What the kernel walked before it stopped is in
			// out. Protected again, walking it again only finds
			// what was written since; left writable, it would be
			// reported twice: drop it and walk again.
			if !protect {
				out = out[:before]
				if before > 0 {
					out[before-1].End = lastEnd
				}
			}
			retries++
			continue
		case err == unix.EPERM:
			nre := s.locateUnregistered(pos, end)
			if nre == nil && retries < maxRetries {
				// The mapping changed again: scan again.
				retries++
				continue
			}
			if nre == nil {
				nre = &NotRegisteredError{Start: pos, End: end}
			}
			return out, fmt.Errorf("scan written pages of pid %d: %w", s.pid, nre)
		case err == unix.ESRCH:
			return out, fmt.Errorf("scan written pages of pid %d: %w: %w",
				s.pid, ErrTargetGone, os.NewSyscallError("ioctl PAGEMAP_SCAN", err))
		default:
			return out, fmt.Errorf("scan written pages of pid %d in %#x-%#x: %w",
				s.pid, pos, end, os.NewSyscallError("ioctl PAGEMAP_SCAN", err))
		}
		if arg.walkEnd >= end {
			break
		}
		if arg.walkEnd <= pos {
			// A walk that makes no progress (e.g. a scan ending
			// inside a HugeTLB page, which cannot be protected in
			// part) would loop forever.
			return out, fmt.Errorf("scan written pages of pid %d: walk stopped at %#x, made no progress from %#x",
				s.pid, arg.walkEnd, pos)
		}
		pos = arg.walkEnd
	}
	return out, nil
}

// locateUnregistered finds the first run of [from, end) that lies in mappings
// without async write-protect, with a read-only scan: no PM_SCAN_* flag, and
// PAGE_IS_WPALLOWED inverted and required, so registered VMAs are skipped
// whole and every page (populated or not) of the others matches. One region
// is asked for: the walk stops at the end of the first run. It returns nil
// if there is none (any more).
func (s *Scanner) locateUnregistered(from, end uint64) *NotRegisteredError {
	arg := pmScanArg{
		start:            from,
		end:              end,
		categoryInverted: pageIsWPAllowed,
		categoryMask:     pageIsWPAllowed,
	}
	n, errno := s.scanInto(&arg, s.vec[:1])
	if errno != 0 || n == 0 {
		return nil
	}
	r := s.vec[0]
	s.vec[0] = pageRegion{}
	return &NotRegisteredError{Start: r.start, End: r.end}
}

// scan runs one PAGEMAP_SCAN into s.vec and returns how many entries it
// filled; on error, the entries the kernel wrote before it failed.
// Precondition: s.mu held, s.f open.
func (s *Scanner) scan(arg *pmScanArg) (int, unix.Errno) {
	return s.scanInto(arg, s.vec)
}

// scanInto runs one PAGEMAP_SCAN into vec, a prefix of s.vec.
//
// The kernel copies out what it found even when the walk then fails (EPERM
// from PM_SCAN_CHECK_WPASYNC, EINTR), but the ioctl then returns only the
// error, although it may already have re-protected the pages it reported,
// and sets walk_end to the end of the range, not to where it stopped. So
// s.vec is kept zeroed beyond what was last used, and after a failure the
// filled entries are counted: a reported region never ends at 0. The entries
// are valid until the next call.
// Precondition: s.mu held, s.f open.
func (s *Scanner) scanInto(arg *pmScanArg, vec []pageRegion) (int, unix.Errno) {
	clear(s.vec[:s.used])
	s.used = 0
	arg.size = uint64(unsafe.Sizeof(*arg))
	arg.vec = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	arg.vecLen = uint64(len(vec))
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, s.f.Fd(), uintptr(pagemapScan), uintptr(unsafe.Pointer(arg)))
	runtime.KeepAlive(vec)
	runtime.KeepAlive(s.f)
	n := int(r)
	if errno != 0 || n < 0 || n > len(vec) {
		n = 0
		for n < len(vec) && vec[n].end != 0 {
			n++
		}
	}
	s.used = n
	return n, errno
}

// appendRegions appends the kernel's regions to out, merging a region that
// starts where the previous one ends (runs split across two calls).
func appendRegions(out []Range, regions []pageRegion) []Range {
	for _, r := range regions {
		if k := len(out) - 1; k >= 0 && out[k].End == r.start {
			out[k].End = r.end
			continue
		}
		out = append(out, Range{Start: r.start, End: r.end})
	}
	return out
}
