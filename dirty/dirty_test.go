//go:build linux

package dirty

import (
	"github.com/crbpf/crbpf/internal/testutil"

	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The tests arm memory of the test process itself: the ioctls act on the mm
// that created the userfaultfd and on the mm the pagemap file was opened for,
// both our own here. childProcess (child_test.go) covers the real layout,
// where the fd comes from another process through pidfd_getfd.

func ps() int { return int(pageSize) }

// randomPages returns n distinct sorted page indexes in [0, npages).
func randomPages(rng *rand.Rand, npages, n int) []int {
	set := map[int]bool{}
	for len(set) < n {
		set[rng.IntN(npages)] = true
	}
	out := make([]int, 0, n)
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// writePages stores one random non-zero byte at a random offset of each page.
func writePages(rng *rand.Rand, b []byte, pages []int) {
	for _, p := range pages {
		b[p*ps()+rng.IntN(ps())] = byte(rng.IntN(255) + 1)
	}
}

func sameRanges(tb testing.TB, what string, got, want []Range) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Fatalf("%s: got %d ranges, want %d\ngot  %s\nwant %s", what, len(got), len(want), fmtRanges(got, 8), fmtRanges(want, 8))
	}
}

func fmtRanges(rs []Range, max int) string {
	var sb strings.Builder
	for i, r := range rs {
		if i == max {
			fmt.Fprintf(&sb, "… (%d more)", len(rs)-max)
			break
		}
		fmt.Fprintf(&sb, "%#x-%#x ", r.Start, r.End)
	}
	return sb.String()
}

// scanOK scans all of b and fails the test on error.
func scanOK(tb testing.TB, s *Scanner, b []byte) []Range {
	tb.Helper()
	start, end := span(b)
	got, err := s.ScanWritten(start, end, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func TestScanWrittenExact(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vecLen int // entries per PAGEMAP_SCAN call; small values force many calls
		size   int
	}{
		{"default buffer", vecLen, 64 << 20},
		{"3-entry buffer", 3, 16 << 20},
		{"1-entry buffer", 1, 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWP(t)
			s := newScanner(t)
			s.vec = make([]pageRegion, tc.vecLen)
			size := tc.size
			npages := size / ps()
			b := mmapAnon(t, size)
			touch(b)
			arm(t, w, b)
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))

			// Round 1: scattered pages, a run of 300 pages, and the
			// first and last page of the range.
			pages := randomPages(rng, npages, npages/16)
			for p := 1000; p < 1300; p++ {
				pages = append(pages, p)
			}
			pages = append(pages, 0, npages-1)
			slices.Sort(pages)
			pages = slices.Compact(pages)
			for round, set := range [][]int{pages, randomPages(rng, npages, npages/8), {npages / 2}} {
				writePages(rng, b, set)
				sameRanges(t, fmt.Sprintf("round %d", round), scanOK(t, s, b), pagesToRanges(b, set))
				// The scan re-protected what it reported.
				sameRanges(t, fmt.Sprintf("round %d, second scan", round), scanOK(t, s, b), nil)
			}
		})
	}
}

// TestPeekWritten: PeekWritten reports what ScanWritten would, leaves it
// writable (reported again, by either), and finds nothing else.
func TestPeekWritten(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	s.vec = make([]pageRegion, 2) // several calls per scan
	b := mmapAnon(t, 4<<20)
	touch(b)
	arm(t, w, b)
	start, end := span(b)
	rng := rand.New(rand.NewPCG(1, 2))
	set := randomPages(rng, len(b)/ps(), 40)
	writePages(rng, b, set)
	want := pagesToRanges(b, set)
	for i := range 2 {
		got, err := s.PeekWritten(start, end, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameRanges(t, fmt.Sprintf("peek %d", i), got, want)
	}
	sameRanges(t, "scan after peeks", scanOK(t, s, b), want)
	got, err := s.PeekWritten(start, end, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRanges(t, "peek after scan", got, nil)
}

// TestScanWrittenReusesBuf checks that the result is appended to buf[:0].
func TestScanWrittenReusesBuf(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	b := mmapAnon(t, 16*ps())
	touch(b)
	arm(t, w, b)
	b[3*ps()] = 1
	start, end := span(b)
	buf := make([]Range, 5, 16)
	got, err := s.ScanWritten(start, end, buf)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[0] {
		t.Error("result does not reuse buf")
	}
	sameRanges(t, "scan", got, pagesToRanges(b, []int{3}))
}

// TestKernelWrites: writes that never fault in user mode are reported too.
func TestKernelWrites(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	b := mmapAnon(t, 64*ps())
	touch(b)
	arm(t, w, b)
	data := bytes.Repeat([]byte("crbpf!"), 3*ps()/6+1)[:3*ps()]

	for _, tc := range []struct {
		name  string
		page  int // first of 3 pages written
		write func(dst []byte) error
	}{
		{"read from a pipe (copy_to_user)", 4, func(dst []byte) error {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				return err
			}
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			if _, err := unix.Write(p[1], data); err != nil {
				return err
			}
			n, err := unix.Read(p[0], dst)
			if err == nil && n != len(dst) {
				err = fmt.Errorf("short read %d", n)
			}
			return err
		}},
		{"process_vm_writev (GUP)", 20, func(dst []byte) error {
			local := []unix.Iovec{{Base: &data[0]}}
			local[0].SetLen(len(dst))
			remote := []unix.RemoteIovec{{Base: uintptr(addrOf(dst)), Len: len(dst)}}
			n, err := unix.ProcessVMWritev(os.Getpid(), local, remote, 0)
			if err == nil && n != len(dst) {
				err = fmt.Errorf("short write %d", n)
			}
			return err
		}},
		{"pwrite to /proc/self/mem (FOLL_FORCE)", 40, func(dst []byte) error {
			f, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(data, int64(addrOf(dst)))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := b[tc.page*ps() : (tc.page+3)*ps()]
			if err := tc.write(dst); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dst, data) {
				t.Fatal("the write did not land")
			}
			sameRanges(t, "scan", scanOK(t, s, b), pagesToRanges(b, []int{tc.page, tc.page + 1, tc.page + 2}))
		})
	}
}

// TestMadvDontneed: MADV_DONTNEED (and MADV_FREE once reclaimed) turns
// anonymous pages into zero-fill ones without a write; the scan must report
// them all the same.
func TestMadvDontneed(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	const table = 2 << 20 // memory one PTE table maps (x86-64, arm64 4K)
	b := mmapAligned(t, 3*table, table)
	if err := unix.Madvise(b, unix.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xa5
	}
	arm(t, w, b)

	b[5*ps()] = 1 // written, then dropped
	var want []int
	drop := func(pages ...int) {
		for _, p := range pages {
			if err := unix.Madvise(b[p*ps():(p+1)*ps()], unix.MADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
			want = append(want, p)
		}
	}
	drop(5, 9) // 9 is still protected when it is dropped
	// A whole PTE table: with CONFIG_PT_RECLAIM the kernel frees the
	// table itself, and the range becomes a hole in the page tables.
	if err := unix.Madvise(b[table:2*table], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	for p := table / ps(); p < 2*table/ps(); p++ {
		want = append(want, p)
	}
	// MADV_FREE, then reclaim (MADV_PAGEOUT discards clean lazy-free
	// pages): the pages become zero-fill without any write.
	lazy := b[12*ps() : 14*ps()]
	if err := unix.Madvise(lazy, unix.MADV_FREE); err != nil {
		t.Fatal(err)
	}
	if err := unix.Madvise(lazy, unix.MADV_PAGEOUT); err != nil {
		t.Fatal(err)
	}
	if reclaimed := b[12*ps()] == 0; reclaimed {
		want = append(want, 12, 13)
	} else {
		t.Log("MADV_PAGEOUT did not reclaim the MADV_FREE pages")
	}
	slices.Sort(want)

	got := scanOK(t, s, b)
	if !slices.Equal(got, pagesToRanges(b, want)) {
		t.Fatalf("scan after MADV_DONTNEED: got %s want %s\n"+
			"(kernels without the fix that reports page-table holes of uffd-wp VMAs as written,\n"+
			"\"fs/proc/task_mmu: report PMD holes as written\" (stable, 2026), miss the whole-table case)",
			fmtRanges(got, 8), fmtRanges(pagesToRanges(b, want), 8))
	}
	for _, p := range want {
		if pg := b[p*ps() : (p+1)*ps()]; !bytes.Equal(pg, make([]byte, ps())) {
			t.Fatalf("page %d does not read back as zero", p)
		}
	}
	// Reading the zero pages back does not count as a write, and the
	// scan re-armed them (markers in the holes).
	sameRanges(t, "second scan", scanOK(t, s, b), nil)
}

// TestNotRegistered: a mapping created after arming is not tracked; the
// scan fails on it with EPERM (PM_SCAN_CHECK_WPASYNC) instead of silently
// skipping it, after reporting and re-protecting what came before it.
func TestNotRegistered(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	const n = 32
	b := mmapAnon(t, 3*n*ps())
	touch(b)
	arm(t, w, b)
	start, end := span(b)
	// Replace the middle third with a new, unregistered mapping.
	mid := b[n*ps() : 2*n*ps()]
	midStart, midEnd := span(mid)
	if _, err := unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(mid)), uintptr(len(mid)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED); err != nil {
		t.Fatal(err)
	}
	b[3*ps()] = 1        // before the new mapping
	mid[7*ps()] = 1      // in it: cannot be tracked
	b[(2*n+4)*ps()] = 1  // after it
	b[(2*n+10)*ps()] = 1 // after it

	got, err := s.ScanWritten(start, end, nil)
	var nre *NotRegisteredError
	if !errors.As(err, &nre) {
		t.Fatalf("got %v, want a *NotRegisteredError", err)
	}
	t.Logf("error: %v", err)
	if nre.Start != midStart || nre.End != midEnd {
		t.Errorf("NotRegisteredError %#x-%#x, want the new mapping %#x-%#x", nre.Start, nre.End, midStart, midEnd)
	}
	// What the kernel walked before the new mapping is returned (and was
	// re-protected), although the ioctl itself only reported EPERM.
	sameRanges(t, "ranges returned with the error", got, pagesToRanges(b, []int{3}))
	got, err = s.ScanWritten(start, midStart, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRanges(t, "scan of the part before", got, nil)

	// The caller registers, protects and copies the new mapping whole,
	// then goes on from its end.
	if err := w.Register(nre.Start, nre.End); err != nil {
		t.Fatal(err)
	}
	if err := w.Protect(nre.Start, nre.End); err != nil {
		t.Fatal(err)
	}
	got, err = s.ScanWritten(nre.End, end, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRanges(t, "scan after the new mapping", got, pagesToRanges(b, []int{2*n + 4, 2*n + 10}))
	mid[9*ps()] = 1
	sameRanges(t, "full scan", scanOK(t, s, b), pagesToRanges(b, []int{n + 9}))
}

// TestUnregisteredWithoutCheck documents why ScanWritten always sets
// PM_SCAN_CHECK_WPASYNC: without it, a write-protecting scan skips an
// unregistered mapping silently (its writes are lost), and a read-only scan
// reports all of it as written (nothing there carries a uffd-wp bit).
func TestUnregisteredWithoutCheck(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	const n = 16
	b := mmapAnon(t, 2*n*ps())
	touch(b)
	arm(t, w, b[:n*ps()])
	start, end := span(b)
	b[2*ps()] = 1
	b[(n+3)*ps()] = 1 // unregistered

	regions, errno := rawScan(t, s, pmScanArg{start: start, end: end, categoryMask: pageIsWritten, returnMask: pageIsWritten})
	if errno != 0 {
		t.Fatal(errno)
	}
	sameRanges(t, "read-only scan", appendRegions(nil, regions), append(pagesToRanges(b, []int{2}), Range{start + n*pageSize, end}))

	regions, errno = rawScan(t, s, pmScanArg{flags: pmScanWPMatching, start: start, end: end, categoryMask: pageIsWritten, returnMask: pageIsWritten})
	if errno != 0 {
		t.Fatal(errno)
	}
	sameRanges(t, "write-protecting scan", appendRegions(nil, regions), pagesToRanges(b, []int{2}))
}

// TestUnpopulated: pages never touched.
func TestUnpopulated(t *testing.T) {
	const size = 8 << 20
	t.Run("registered and protected", func(t *testing.T) {
		// WP_UNPOPULATED: Protect installs uffd-wp markers in the
		// none PTEs (allocating the page tables), so untouched pages
		// are not reported, reading them maps the zero page still
		// protected, and the first write is tracked.
		w := newWP(t)
		s := newScanner(t)
		b := mmapAnon(t, size)
		arm(t, w, b)
		sameRanges(t, "untouched", scanOK(t, s, b), nil)
		start, end := span(b)
		regions, errno := rawScan(t, s, pmScanArg{start: start, end: end, returnMask: 0x1ff})
		t.Logf("categories of the untouched range: %#x (%v)", regions, errno)
		var sum byte
		for p := 0; p < size/ps(); p += 7 {
			sum += b[p*ps()]
		}
		if sum != 0 {
			t.Fatal("untouched memory is not zero")
		}
		sameRanges(t, "after reads", scanOK(t, s, b), nil)
		b[100*ps()+5] = 1
		b[101*ps()] = 1
		sameRanges(t, "after writes", scanOK(t, s, b), pagesToRanges(b, []int{100, 101}))
	})
	t.Run("registered, never protected", func(t *testing.T) {
		// Registration alone protects nothing: every page counts as
		// written (populated or not) until a scan or Protect arms it.
		w := newWP(t)
		s := newScanner(t)
		b := mmapAnon(t, size)
		start, end := span(b)
		if err := w.Register(start, end); err != nil {
			t.Fatal(err)
		}
		b[3*ps()] = 1
		sameRanges(t, "first scan", scanOK(t, s, b), []Range{{start, end}})
		sameRanges(t, "second scan", scanOK(t, s, b), nil)
	})
}

// anonHugeKB returns the AnonHugePages of the mapping of this process that
// contains addr, from /proc/self/smaps.
func anonHugeKB(tb testing.TB, addr uint64) int {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		tb.Fatal(err)
	}
	in := false
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = a <= addr && addr < b
				continue
			}
		}
		if in && f[0] == "AnonHugePages:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				tb.Fatal(err)
			}
			return kb
		}
	}
	return 0
}

// TestTHP: protection keeps a huge PMD huge; the first write splits the PMD
// and unprotects one 4 KiB page, so dirty granularity stays 4 KiB.
func TestTHP(t *testing.T) {
	const huge = 2 << 20
	w := newWP(t)
	s := newScanner(t)
	b := mmapAligned(t, 2*huge, huge)
	if err := unix.Madvise(b, unix.MADV_HUGEPAGE); err != nil {
		t.Skipf("MADV_HUGEPAGE: %v", err)
	}
	touch(b)
	start, end := span(b)
	if kb := anonHugeKB(t, start); kb != 2*huge>>10 {
		t.Skipf("got %d KiB of THP, want %d (THP disabled or memory fragmented)", kb, 2*huge>>10)
	}
	arm(t, w, b)
	regions, errno := rawScan(t, s, pmScanArg{start: start, end: end, returnMask: 0x1ff})
	if errno != 0 || len(regions) != 1 || regions[0].categories&pageIsHuge == 0 || regions[0].categories&pageIsWritten != 0 {
		t.Fatalf("after Protect: %#x (%v), want one protected huge region", regions, errno)
	}

	b[3*ps()+123] = 1
	sameRanges(t, "one byte written", scanOK(t, s, b), pagesToRanges(b, []int{3}))
	t.Logf("after the write: AnonHugePages %d KiB (the written THP is no longer PMD-mapped)", anonHugeKB(t, start))

	// A whole PMD dropped leaves a hole in the page tables.
	if err := unix.Madvise(b[huge:], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	sameRanges(t, "second THP dropped", scanOK(t, s, b), []Range{{start + huge, end}})
	sameRanges(t, "rescan", scanOK(t, s, b), nil)
}

// TestClose: closing the userfaultfd removes every registration, uffd-wp bit
// and marker; the memory is then an ordinary mapping again.
func TestClose(t *testing.T) {
	uffd := newUffd(t)
	w, err := NewWP(uffd)
	if err != nil {
		t.Fatal(err)
	}
	s := newScanner(t)
	b := mmapAnon(t, 64*ps())
	touch(b[:32*ps()]) // the rest stays unpopulated: markers after Protect
	arm(t, w, b)
	start, end := span(b)
	link := fmt.Sprintf("/proc/self/fd/%d", uffd)
	if target, err := os.Readlink(link); err != nil || !strings.Contains(target, "userfaultfd") {
		t.Fatalf("fd %d is %q (%v), not a userfaultfd", uffd, target, err)
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if target, err := os.Readlink(link); err == nil && strings.Contains(target, "userfaultfd") {
		t.Fatalf("fd %d is still a userfaultfd", uffd)
	}
	// Nothing is registered any more.
	_, err = s.ScanWritten(start, end, nil)
	var nre *NotRegisteredError
	if !errors.As(err, &nre) || nre.Start != start || nre.End != end {
		t.Fatalf("scan after Close: %v, want NotRegisteredError for %#x-%#x", err, start, end)
	}
	// No page is protected (WRITTEN means: no uffd-wp bit), no marker
	// is left (it would read as SWAPPED), and the VMA is not WPALLOWED.
	regions, errno := rawScan(t, s, pmScanArg{start: start, end: end, returnMask: 0x1ff})
	if errno != 0 {
		t.Fatal(errno)
	}
	for _, r := range regions {
		if r.categories&(pageIsWPAllowed|pageIsSwapped) != 0 || r.categories&pageIsWritten == 0 {
			t.Errorf("after Close %#x-%#x has categories %#x", r.start, r.end, r.categories)
		}
	}
	touch(b)
	for _, f := range []func() error{
		func() error { return w.Register(start, end) },
		func() error { return w.Protect(start, end) },
		func() error { return w.Unregister(start, end) },
	} {
		if err := f(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("after Close: %v, want os.ErrClosed", err)
		}
	}
}

func TestUnregister(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	b := mmapAnon(t, 16*ps())
	touch(b)
	arm(t, w, b)
	start, end := span(b)
	b[ps()] = 1
	if err := w.Unregister(start+8*pageSize, end); err != nil {
		t.Fatal(err)
	}
	b[10*ps()] = 1
	got, err := s.ScanWritten(start, start+8*pageSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRanges(t, "registered half", got, pagesToRanges(b, []int{1}))
	_, err = s.ScanWritten(start, end, nil)
	var nre *NotRegisteredError
	if !errors.As(err, &nre) || nre.Start != start+8*pageSize || nre.End != end {
		t.Fatalf("scan of the unregistered half: %v", err)
	}
}

func TestErrors(t *testing.T) {
	t.Run("NewWP on a pipe", func(t *testing.T) {
		testutil.RequireRoot(t)
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(p[1])
		_, err := NewWP(p[0])
		if err == nil || errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.ENOTTY) {
			t.Fatalf("got %v, want ENOTTY", err)
		}
		if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("NewWP did not close the fd it failed on: %v", err)
		}
	})
	t.Run("UFFDIO_API twice", func(t *testing.T) {
		uffd := newUffd(t)
		api := uffdioAPIArg{api: uffdAPI}
		if err := ioctl(uffd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
			t.Fatal(err)
		}
		_, err := NewWP(uffd)
		t.Log(err)
		if err == nil || errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.EINVAL) {
			t.Fatalf("got %v, want EINVAL and not ErrNotSupported", err)
		}
	})
	t.Run("NewWP(-1)", func(t *testing.T) {
		if _, err := NewWP(-1); err == nil {
			t.Fatal("no error")
		}
	})
	w := newWP(t)
	b := mmapAnon(t, 4*ps())
	start, end := span(b)
	for _, tc := range []struct {
		name       string
		err        error
		start, end uint64
	}{
		{"unaligned", w.Register(start+1, end), start + 1, end},
		{"empty", w.Protect(start, start), start, start},
		{"hole", w.Register(0x1000, 0x2000), 0x1000, 0x2000},
		{"protect unregistered", w.Protect(start, end), start, end},
	} {
		if tc.err == nil {
			t.Errorf("%s %#x-%#x: no error", tc.name, tc.start, tc.end)
			continue
		}
		t.Logf("%s: %v", tc.name, tc.err)
	}
	arm(t, w, b)
	if err := w.Register(start, end); err != nil {
		t.Errorf("registering again: %v", err)
	}
	s := newScanner(t)
	if _, err := s.ScanWritten(start+1, end, nil); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unaligned scan: %v", err)
	}
	if got, err := s.ScanWritten(start, start, nil); err != nil || len(got) != 0 {
		t.Errorf("empty scan: %v %v", got, err)
	}
	if _, err := OpenScanner(-5); err == nil {
		t.Error("OpenScanner(-5): no error")
	}
}

// TestKernelCategories checks what the running kernel accepts: every known
// PAGE_IS_* bit (0x1ff, PAGE_IS_GUARD included since 6.14) and no other.
func TestKernelCategories(t *testing.T) {
	testutil.RequireRoot(t)
	s := newScanner(t)
	b := mmapAnon(t, 4*ps())
	start, end := span(b)
	if _, errno := rawScan(t, s, pmScanArg{start: start, end: end, returnMask: 0x1ff}); errno != 0 {
		t.Errorf("return_mask 0x1ff: %v", errno)
	}
	if _, errno := rawScan(t, s, pmScanArg{start: start, end: end, returnMask: 0x3ff}); errno != unix.EINVAL {
		t.Errorf("return_mask 0x3ff: %v, want EINVAL", errno)
	}
}

// TestNoLostWrites is the precopy invariant: with a writer running all the
// time, a shadow copy refreshed from every scan's ranges equals the memory
// once the writer stops and a last scan is copied.
func TestNoLostWrites(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	const size = 16 << 20
	b := mmapAnon(t, size)
	touch(b)
	arm(t, w, b)
	shadow := make([]byte, size)
	copy(shadow, b)
	start, end := span(b)

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		rng := rand.New(rand.NewPCG(7, 7))
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			for range 256 {
				b[rng.IntN(size)] = byte(rng.Uint32())
				n++
			}
			if n%(1<<14) == 0 {
				p := rng.IntN(size / ps())
				_ = unix.Madvise(b[p*ps():(p+1)*ps()], unix.MADV_DONTNEED)
			}
		}
	}()
	var buf []Range
	dirty := 0
	copyRanges := func() {
		var err error
		buf, err = s.ScanWritten(start, end, buf)
		if err != nil {
			t.Error(err)
		}
		for _, r := range buf {
			copy(shadow[r.Start-start:r.End-start], b[r.Start-start:r.End-start])
			dirty += int(r.End-r.Start) / ps()
		}
	}
	for range 100 {
		copyRanges()
		time.Sleep(500 * time.Microsecond)
	}
	close(stop)
	writes := <-done
	copyRanges()
	t.Logf("%d writes, %d dirty pages copied over 101 scans", writes, dirty)
	if !bytes.Equal(shadow, b) {
		for p := 0; p < size/ps(); p++ {
			if !bytes.Equal(shadow[p*ps():(p+1)*ps()], b[p*ps():(p+1)*ps()]) {
				t.Fatalf("page %d differs from its copy: a write was lost", p)
			}
		}
	}
}

// TestPrivateFileDontneed pins a limit of uffd-wp the caller must make up
// for: MADV_DONTNEED on a MAP_PRIVATE file mapping throws away the private
// (copy-on-write) copy of a page, so the page reads the file's content again,
// but for a page still protected the kernel keeps the uffd-wp marker
// (zap_install_uffd_wp_if_needed: only anonymous VMAs drop it), and no scan
// reports the change. (MADV_DONTNEED of a written page, or of an anonymous
// one, is reported; MAP_SHARED memory does not change content on
// MADV_DONTNEED.) If this test starts failing, the kernel closed the gap.
func TestPrivateFileDontneed(t *testing.T) {
	w := newWP(t)
	s := newScanner(t)
	f, err := os.CreateTemp(t.TempDir(), "private")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 16*ps())); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 16*ps(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	touch(m) // every page now a private copy holding 1
	arm(t, w, m)
	m[2*ps()] = 5 // page 2 written, page 3 still protected
	if err := unix.Madvise(m[2*ps():4*ps()], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if m[3*ps()] != 0 {
		t.Fatalf("page 3 reads %d after MADV_DONTNEED, want the file's 0", m[3*ps()])
	}
	sameRanges(t, "scan", scanOK(t, s, m), pagesToRanges(m, []int{2}))
}
