//go:build linux

package dirty

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/internal/testutil"
)

// newUffd creates a userfaultfd in the test process, with the flags the
// injected call uses in a target.
func newUffd(tb testing.TB) int {
	tb.Helper()
	testutil.RequireRoot(tb)
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, UserfaultfdFlags, 0, 0)
	if errno == unix.ENOSYS {
		testutil.SkipOrFail(tb, "kernel without userfaultfd (CONFIG_USERFAULTFD)")
	}
	if errno != 0 {
		tb.Fatalf("userfaultfd: %v", errno)
	}
	return int(fd)
}

// newWP returns a WP on a fresh userfaultfd of the test process, closed at
// the end of the test.
func newWP(tb testing.TB) *WP {
	tb.Helper()
	w, err := NewWP(newUffd(tb))
	if errors.Is(err, ErrNotSupported) {
		testutil.SkipOrFail(tb, err.Error())
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := w.Close(); err != nil {
			tb.Error(err)
		}
	})
	return w
}

// newScanner opens the test process's own pagemap.
func newScanner(tb testing.TB) *Scanner {
	tb.Helper()
	s, err := OpenScanner(os.Getpid())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// mmapAnon maps size bytes of private anonymous memory, unmapped at the end
// of the test.
func mmapAnon(tb testing.TB, size int) []byte {
	tb.Helper()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatalf("mmap %d bytes: %v", size, err)
	}
	tb.Cleanup(func() {
		if err := unix.Munmap(b); err != nil {
			tb.Errorf("munmap %d bytes at %p: %v", len(b), &b[0], err)
		}
	})
	return b
}

// mmapAligned maps size bytes aligned to align (a power of two) by mapping
// more and trimming; the trimmed parts are unmapped right away.
func mmapAligned(tb testing.TB, size, align int) []byte {
	tb.Helper()
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size+align), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatalf("mmap %d bytes: %v", size+align, err)
	}
	// Offsets from p, kept as unsafe.Pointer arithmetic for go vet.
	head := int((uintptr(align) - uintptr(p)%uintptr(align)) % uintptr(align))
	if head > 0 {
		if err := unix.MunmapPtr(p, uintptr(head)); err != nil {
			tb.Fatal(err)
		}
	}
	if tail := align - head; tail > 0 {
		if err := unix.MunmapPtr(unsafe.Add(p, head+size), uintptr(tail)); err != nil {
			tb.Fatal(err)
		}
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, head)), size)
	tb.Cleanup(func() {
		if err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b))); err != nil {
			tb.Errorf("munmap %d bytes at %p: %v", len(b), &b[0], err)
		}
	})
	return b
}

func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// span returns the address range of b.
func span(b []byte) (uint64, uint64) {
	a := addrOf(b)
	return a, a + uint64(len(b))
}

// touch writes one byte to every page of b.
func touch(b []byte) {
	ps := int(pageSize)
	for i := 0; i < len(b); i += ps {
		b[i]++
	}
}

// arm registers and protects all of b.
func arm(tb testing.TB, w *WP, b []byte) {
	tb.Helper()
	start, end := span(b)
	if err := w.Register(start, end); err != nil {
		tb.Fatal(err)
	}
	if err := w.Protect(start, end); err != nil {
		tb.Fatal(err)
	}
}

// pagesToRanges turns sorted page indexes of b into merged ranges.
func pagesToRanges(b []byte, pages []int) []Range {
	base := addrOf(b)
	var out []Range
	for _, p := range pages {
		s := base + uint64(p)*pageSize
		if k := len(out) - 1; k >= 0 && out[k].End == s {
			out[k].End += pageSize
			continue
		}
		out = append(out, Range{s, s + pageSize})
	}
	return out
}

// rawScan runs one PAGEMAP_SCAN with arbitrary arguments (size, vec and
// vec_len are filled in) and returns the regions.
func rawScan(tb testing.TB, s *Scanner, arg pmScanArg) ([]pageRegion, unix.Errno) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	n, errno := s.scan(&arg)
	return append([]pageRegion(nil), s.vec[:n]...), errno
}
