package precopy

import (
	"context"
	"hash/crc32"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
)

// listTracker tracks everything and reports as written the ranges it is
// given: once each by Written, which protects them again; every time by
// Peek, which leaves them writable. It records the calls it gets.
type listTracker struct {
	written []Range
	tracked []Range
	calls   []string
}

func (l *listTracker) Track(start, end uint64) error {
	l.tracked = append(l.tracked, Range{start, end})
	return nil
}

func (l *listTracker) Written(start, end uint64, buf []Range) ([]Range, error) {
	l.calls = append(l.calls, "Written")
	buf = l.report(start, end, buf)
	l.written = nil
	return buf, nil
}

func (l *listTracker) Peek(start, end uint64, buf []Range) ([]Range, error) {
	l.calls = append(l.calls, "Peek")
	return l.report(start, end, buf), nil
}

func (l *listTracker) report(start, end uint64, buf []Range) []Range {
	buf = buf[:0]
	for _, r := range l.written {
		if r.Start >= start && r.End <= end {
			buf = append(buf, r)
		}
	}
	return buf
}

// TestFrozenSyncThen: the frozen Sync scans with Peek and copies a new
// mapping without tracking it when the tracking ends with it; with Written,
// tracking the new mapping, when a later checkpoint goes on from it.
func TestFrozenSyncThen(t *testing.T) {
	for _, tc := range []struct {
		then        After
		scan        string
		trackedLate bool
	}{{TrackingEnds, "Peek", false}, {TrackingGoesOn, "Written", true}} {
		t.Run(tc.scan, func(t *testing.T) {
			const n = 4
			_, addr := mapPattern(t, n)
			_, addr2 := mapPattern(t, n)
			old := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[old]"}
			fresh := image.VMA{Start: addr2, End: addr2 + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[new]"}
			tr := &listTracker{}
			c := newSelfCopier(t, tr)
			if _, err := c.Sync(context.Background(), []image.VMA{old}); err != nil { // round 0
				t.Fatal(err)
			}
			tr.calls, tr.tracked = nil, nil
			tr.written = []Range{{addr + ps, addr + 2*ps}}
			vmas := []image.VMA{old, fresh}
			if fresh.Start < old.Start {
				vmas = []image.VMA{fresh, old}
			}
			st, err := c.SyncFrozen(vmas, tc.then)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.calls) != 1 || tr.calls[0] != tc.scan {
				t.Errorf("frozen Sync scanned with %v, want [%s]", tr.calls, tc.scan)
			}
			if got := len(tr.tracked) > 0; got != tc.trackedLate {
				t.Errorf("new mapping tracked: %v (%v), want %v", got, tr.tracked, tc.trackedLate)
			}
			if st.DirtyPages != 1 || st.NewPages != n || st.Pages != 1+n {
				t.Errorf("frozen Sync: %d dirty, %d new, %d copied; want 1, %d, %d", st.DirtyPages, st.NewPages, st.Pages, n, 1+n)
			}
			if err := c.WriteStaged(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFrozenSyncStages: after pre-copy the frozen Sync only reads; the
// pages reach the image with WriteStaged, as they were when read (the
// target may change them once it runs again), and Fill before WriteStaged
// is refused.
func TestFrozenSyncStages(t *testing.T) {
	const n = 8
	m, addr := mapPattern(t, n)
	all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
	tr := &listTracker{}
	c := newSelfCopier(t, tr)
	if _, err := c.Sync(context.Background(), []image.VMA{all}); err != nil { // round 0
		t.Fatal(err)
	}

	// Pages 2 and 5 written since round 0: the frozen Sync copies them.
	fill := func(page int, b byte) {
		for j := range ps {
			m[page*ps+j] = b
		}
	}
	fill(2, 0xa2)
	fill(5, 0xa5)
	tr.written = []Range{{addr + 2*ps, addr + 3*ps}, {addr + 5*ps, addr + 6*ps}}
	st, err := c.SyncFrozen([]image.VMA{all}, TrackingGoesOn)
	if err != nil {
		t.Fatal(err)
	}
	if st.DirtyPages != 2 || st.Pages != 2 {
		t.Fatalf("frozen Sync: %d dirty, %d copied; want 2 and 2", st.DirtyPages, st.Pages)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Fill before WriteStaged did not panic")
			}
		}()
		v := all
		c.Fill(&v)
	}()
	// The "target" runs on and changes them again: the image keeps what
	// the frozen Sync read.
	fill(2, 0xb2)
	fill(5, 0xb5)
	if err := c.WriteStaged(); err != nil {
		t.Fatal(err)
	}
	want := map[int]byte{0: 1, 1: 2, 2: 0xa2, 3: 4, 4: 5, 5: 0xa5, 6: 7, 7: 8}
	checkPages(t, c, addr, want, n, all)
}

// checkPages checks that the image holds n pages of the mappings vmas,
// page p (counted from addr) filled with the byte want[p].
func checkPages(t *testing.T, c *Copier, addr uint64, want map[int]byte, n int, vmas ...image.VMA) {
	t.Helper()
	seen := 0
	page := make([]byte, ps)
	for _, v := range vmas {
		for _, r := range runsOf(c, v) {
			for k := range r.NPages {
				p := int((r.Addr-addr)/ps) + int(k)
				for j := range page {
					page[j] = want[p]
				}
				if got, exp := r.CRC[k], crc32.Checksum(page, crc32.MakeTable(crc32.Castagnoli)); got != exp {
					t.Errorf("page %d: CRC %#x, want %#x (byte %#x)", p, got, exp, want[p])
				}
				seen++
			}
		}
	}
	if seen != n {
		t.Errorf("%d pages in the image, want %d", seen, n)
	}
}

// TestSmallBuffers copies through 2 MiB buffers a mapping three times
// their size: round 0 in chunks, then, with all of it written since, a
// frozen Sync whose staging (both buffers) fills up and is written out
// before it goes on. Every page reaches the image as last written.
func TestSmallBuffers(t *testing.T) {
	const n = 3 * hugePage / ps
	m, addr := mapPattern(t, n)
	all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
	tr := &listTracker{}
	c := newSelfCopierBuffers(t, tr, hugePage)
	if st, err := c.Sync(context.Background(), []image.VMA{all}); err != nil || st.Pages != n {
		t.Fatalf("round 0: %d pages copied, %v; want %d", st.Pages, err, n)
	}
	for i := range n {
		for j := range ps {
			m[i*ps+j] = byte(i%251 + 1)
		}
	}
	tr.written = []Range{{addr, addr + n*ps}}
	st, err := c.SyncFrozen([]image.VMA{all}, TrackingEnds)
	if err != nil {
		t.Fatal(err)
	}
	if st.DirtyPages != n {
		t.Errorf("frozen Sync: %d dirty pages, want %d", st.DirtyPages, n)
	}
	if err := c.WriteStaged(); err != nil {
		t.Fatal(err)
	}
	got := 0
	table := crc32.MakeTable(crc32.Castagnoli)
	page := make([]byte, ps)
	for _, r := range runsOf(c, all) {
		for k := range r.NPages {
			p := (r.Addr-addr)/ps + k
			for j := range page {
				page[j] = byte(p%251 + 1)
			}
			if want := crc32.Checksum(page, table); r.CRC[k] != want {
				t.Fatalf("page %d: CRC %#x, want %#x (the page as last written)", p, r.CRC[k], want)
			}
			got++
		}
	}
	if got != n {
		t.Errorf("%d pages in the image, want %d", got, n)
	}
}
