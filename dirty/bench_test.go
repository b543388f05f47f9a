//go:build linux

package dirty

import (
	"github.com/crbpf/crbpf/internal/testutil"

	"testing"

	"golang.org/x/sys/unix"
)

// Benchmarks on 1 GiB of the benchmark process's own memory. Setup that is
// not measured (dirtying every page takes ~0.3 s or more) runs with the timer
// stopped, so use a small count: go test -run XXX -bench . -benchtime 10x.

const benchSize = 1 << 30

func benchPages() int { return benchSize / ps() }

// reportPerPage adds ns/page, for the work of one op over npages pages.
func reportPerPage(b *testing.B, npages int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(npages), "ns/page")
}

func armed1GiB(b *testing.B) (*WP, *Scanner, []byte) {
	w := newWP(b)
	s := newScanner(b)
	m := mmapAnon(b, benchSize)
	touch(m)
	arm(b, w, m)
	return w, s, m
}

func BenchmarkScanWritten(b *testing.B) {
	b.Run("1GiB/all-dirty", func(b *testing.B) {
		_, s, m := armed1GiB(b)
		start, end := span(m)
		var buf []Range
		for b.Loop() {
			b.StopTimer()
			touch(m)
			b.StartTimer()
			var err error
			buf, err = s.ScanWritten(start, end, buf)
			if err != nil {
				b.Fatal(err)
			}
			if len(buf) != 1 || buf[0] != (Range{start, end}) {
				b.Fatalf("got %d ranges", len(buf))
			}
		}
		reportPerPage(b, benchPages())
	})
	b.Run("1GiB/none-dirty", func(b *testing.B) {
		_, s, m := armed1GiB(b)
		start, end := span(m)
		var buf []Range
		for b.Loop() {
			var err error
			buf, err = s.ScanWritten(start, end, buf)
			if err != nil || len(buf) != 0 {
				b.Fatal(len(buf), err)
			}
		}
		reportPerPage(b, benchPages())
	})
	b.Run("1GiB/every-16th-page-dirty", func(b *testing.B) {
		// 16384 separate runs: 8 PAGEMAP_SCAN calls of 2048 regions.
		_, s, m := armed1GiB(b)
		start, end := span(m)
		var buf []Range
		for b.Loop() {
			b.StopTimer()
			for i := 0; i < len(m); i += 16 * ps() {
				m[i]++
			}
			b.StartTimer()
			var err error
			buf, err = s.ScanWritten(start, end, buf)
			if err != nil || len(buf) != benchPages()/16 {
				b.Fatal(len(buf), err)
			}
		}
		reportPerPage(b, benchPages())
	})
}

func BenchmarkProtect(b *testing.B) {
	b.Run("1GiB/populated-all-written", func(b *testing.B) {
		w, _, m := armed1GiB(b)
		start, end := span(m)
		for b.Loop() {
			b.StopTimer()
			touch(m)
			b.StartTimer()
			if err := w.Protect(start, end); err != nil {
				b.Fatal(err)
			}
		}
		reportPerPage(b, benchPages())
	})
	b.Run("1GiB/populated-already-protected", func(b *testing.B) {
		w, _, m := armed1GiB(b)
		start, end := span(m)
		for b.Loop() {
			if err := w.Protect(start, end); err != nil {
				b.Fatal(err)
			}
		}
		reportPerPage(b, benchPages())
	})
	b.Run("1GiB/never-touched", func(b *testing.B) {
		// WP_UNPOPULATED: allocates the page tables and fills them
		// with markers.
		w := newWP(b)
		for b.Loop() {
			b.StopTimer()
			m, err := unix.Mmap(-1, 0, benchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				b.Fatal(err)
			}
			start, end := span(m)
			if err := w.Register(start, end); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := w.Protect(start, end); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := unix.Munmap(m); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		reportPerPage(b, benchPages())
	})
}

// BenchmarkFirstWrite measures one store to each page of 64 MiB: to a page
// write-protected by async uffd-wp (a write fault the kernel resolves by
// itself), to a resident writable page (no fault), and for scale to a
// never-touched page (a fault that allocates and zeroes a page).
func BenchmarkFirstWrite(b *testing.B) {
	const size = 64 << 20
	npages := size / ps()
	b.Run("protected", func(b *testing.B) {
		w := newWP(b)
		m := mmapAnon(b, size)
		touch(m)
		start, end := span(m)
		if err := w.Register(start, end); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			if err := w.Protect(start, end); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			touch(m)
		}
		reportPerPage(b, npages)
	})
	b.Run("writable", func(b *testing.B) {
		testutil.RequireRoot(b) // same conditions as the protected case
		m := mmapAnon(b, size)
		touch(m)
		for b.Loop() {
			touch(m)
		}
		reportPerPage(b, npages)
	})
	b.Run("never-touched", func(b *testing.B) {
		testutil.RequireRoot(b)
		m := mmapAnon(b, size)
		if err := unix.Madvise(m, unix.MADV_NOHUGEPAGE); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			if err := unix.Madvise(m, unix.MADV_DONTNEED); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			touch(m)
		}
		reportPerPage(b, npages)
	})
}
