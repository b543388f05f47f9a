package dirty

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRelease: Release removes every protection chunk by chunk, also from
// ranges whose mappings were unmapped or replaced by one that cannot be
// registered, and closes the userfaultfd.
func TestRelease(t *testing.T) {
	uffd := newUffd(t)
	w, err := NewWP(uffd)
	if err != nil {
		t.Fatal(err)
	}
	s := newScanner(t)
	size := 3*ReleaseChunk + 5*ps() // not a multiple of the chunk
	b := mmapAnon(t, size)
	touch(b[:size/2]) // the rest: markers after Protect
	arm(t, w, b)
	start, end := span(b)
	gone, err := unix.Mmap(-1, 0, 8*ps(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	arm(t, w, gone)
	gs, ge := span(gone)
	if err := unix.Munmap(gone); err != nil {
		t.Fatal(err)
	}
	// A shared mapping (not registrable for write-protect here) in
	// place of a registered range: its chunk gives EINVAL.
	repl := mmapAnon(t, 4*ps())
	arm(t, w, repl)
	rs, re := span(repl)
	if _, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&repl[0]), uintptr(re-rs), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_FIXED); err != nil {
		t.Fatal(err)
	}

	if err := w.Release([]Range{{gs, ge}, {rs, re}, {start, end}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Protect(start, end); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("after Release: Protect gives %v, want os.ErrClosed", err)
	}
	regions, errno := rawScan(t, s, pmScanArg{start: start, end: end, returnMask: 0x1ff})
	if errno != 0 {
		t.Fatal(errno)
	}
	for _, r := range regions {
		if r.categories&(pageIsWPAllowed|pageIsSwapped) != 0 || r.categories&pageIsWritten == 0 {
			t.Errorf("after Release %#x-%#x has categories %#x", r.start, r.end, r.categories)
		}
	}
	touch(b)
	if err := w.Release([]Range{{start, end}}); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

// TestReleaseRangeUnregisters: the chunked step itself unregisters (the
// close that ends Release would hide it) and leaves the rest armed.
func TestReleaseRangeUnregisters(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	b := mmapAnon(t, 2*ReleaseChunk+4*ps())
	touch(b)
	arm(t, w, b)
	start, end := span(b)
	mid := start + ReleaseChunk + 2*uint64(ps())
	if !w.releaseRange(Range{start, mid}) {
		t.Fatal("releaseRange reported the target gone")
	}
	_, err := s.ScanWritten(start, mid, nil)
	var nre *NotRegisteredError
	if !errors.As(err, &nre) || nre.Start != start {
		t.Fatalf("scan of the released part: %v, want NotRegisteredError at %#x", err, start)
	}
	b[mid-start] = 1 // a write in the part still armed is reported
	got, err := s.ScanWritten(mid, end, nil)
	if err != nil || len(got) != 1 || got[0] != (Range{mid, mid + uint64(ps())}) {
		t.Fatalf("scan of the armed part: %v, %v; want the one page written at %#x", got, err, mid)
	}
}
