package precopy

import (
	"context"
	"errors"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
)

// pageTracker tracks everything and reports the ranges in written, cut
// to the range asked about, as the kernel does; its Side scans with
// sidePeek (by default the same way). It counts its own Peek calls.
type pageTracker struct {
	written  []Range
	sidePeek func(start, end uint64, buf []Range) ([]Range, error)
	mu       sync.Mutex
	peeks    int
}

func (p *pageTracker) Track(start, end uint64) error { return nil }

func (p *pageTracker) report(start, end uint64, buf []Range) []Range {
	buf = buf[:0]
	for _, w := range p.written {
		if a, b := max(w.Start, start), min(w.End, end); a < b {
			buf = append(buf, Range{a, b})
		}
	}
	return buf
}

func (p *pageTracker) Written(start, end uint64, buf []Range) ([]Range, error) {
	return p.report(start, end, buf), nil
}

func (p *pageTracker) Peek(start, end uint64, buf []Range) ([]Range, error) {
	p.mu.Lock()
	p.peeks++
	p.mu.Unlock()
	return p.report(start, end, buf), nil
}

func (p *pageTracker) Side() Scanner { return sideScanner{p} }

type sideScanner struct{ p *pageTracker }

func (s sideScanner) Written(start, end uint64, buf []Range) ([]Range, error) {
	panic("the helper scans only with Peek")
}

func (s sideScanner) Peek(start, end uint64, buf []Range) ([]Range, error) {
	if s.p.sidePeek != nil {
		return s.p.sidePeek(start, end, buf)
	}
	return s.p.report(start, end, buf), nil
}

// helperFunc is a Helper.
type helperFunc func(fn func())

func (h helperFunc) Wake(fn func()) { h(fn) }

// TestSplitScan: the frozen Sync's scan, split with a helper, copies
// exactly the pages a scan of its own would, whether the helper scans
// every piece, none, stalls in the middle of one (the caller scans it
// again and the helper's late answer is dropped) or fails; pieces cut
// across written ranges and across the mappings of the frozen Sync,
// which split the range tracked since round 0 in two.
func TestSplitScan(t *testing.T) {
	const n = 64
	dirtyPages := []int{3, 15, 16, 17, 39, 40, 41, 63}
	for _, tc := range []struct {
		name   string
		helper func(tr *pageTracker, t *testing.T) (h Helper, wait func())
		helped func(int) bool // of the 4 pieces
	}{
		{"helper scans all", func(*pageTracker, *testing.T) (Helper, func()) {
			return helperFunc(func(fn func()) { fn() }), func() {}
		}, func(h int) bool { return h == 4 }},
		{"helper never runs", func(*pageTracker, *testing.T) (Helper, func()) {
			return helperFunc(func(func()) {}), func() {}
		}, func(h int) bool { return h == 0 }},
		{"helper stalls", func(tr *pageTracker, t *testing.T) (Helper, func()) {
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			tr.sidePeek = func(start, end uint64, buf []Range) ([]Range, error) {
				once.Do(func() {
					close(entered)
					<-release
				})
				return nil, errors.New("a late answer that must not be used")
			}
			var wg sync.WaitGroup
			h := helperFunc(func(fn func()) {
				wg.Go(fn)
				<-entered // the helper holds a piece before the caller starts
			})
			return h, func() { close(release); wg.Wait() }
		}, func(h int) bool { return h == 0 }},
		{"helper fails", func(tr *pageTracker, t *testing.T) (Helper, func()) {
			tr.sidePeek = func(start, end uint64, buf []Range) ([]Range, error) {
				return buf[:0], &UntrackedError{Start: start, End: end}
			}
			return helperFunc(func(fn func()) { fn() }), func() {}
		}, func(h int) bool { return h == 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, addr := mapPattern(t, n)
			all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
			tr := &pageTracker{}
			c := newSelfCopier(t, tr)
			// Four pieces of 16 pages.
			c.splitMin, c.pieceMin = ps, 16*ps
			if _, err := c.Sync(context.Background(), []image.VMA{all}); err != nil { // round 0
				t.Fatal(err)
			}
			want := map[int]byte{}
			for p := range n {
				want[p] = byte(p + 1)
			}
			for _, p := range dirtyPages {
				for j := range ps {
					m[p*ps+j] = byte(0xa0 + p)
				}
				want[p] = byte(0xa0 + p)
				tr.written = append(tr.written, Range{addr + uint64(p)*ps, addr + uint64(p+1)*ps})
			}
			h, wait := tc.helper(tr, t)
			c.SetHelper(h)
			c.BeginFrozen(TrackingEnds) // as checkpoint does, right after the stop
			lo, hi := all, all
			lo.End, hi.Start = addr+40*ps, addr+40*ps
			st, err := c.SyncFrozen([]image.VMA{lo, hi}, TrackingEnds)
			wait()
			if err != nil {
				t.Fatal(err)
			}
			if st.Pieces != 4 || !tc.helped(st.Helped) {
				t.Errorf("%d pieces, %d scanned by the helper", st.Pieces, st.Helped)
			}
			if st.DirtyPages != uint64(len(dirtyPages)) {
				t.Errorf("%d dirty pages copied, want %d", st.DirtyPages, len(dirtyPages))
			}
			if err := c.WriteStaged(); err != nil {
				t.Fatal(err)
			}
			checkPages(t, c, addr, want, n, lo, hi)
		})
	}
}

// TestSplitOnlyWhenEnding: a frozen Sync after which the tracking goes on
// scans alone: splitting relies on scans that do not protect pages again.
func TestSplitOnlyWhenEnding(t *testing.T) {
	const n = 64
	_, addr := mapPattern(t, n)
	all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
	tr := &pageTracker{}
	c := newSelfCopier(t, tr)
	c.splitMin, c.pieceMin = ps, 16*ps
	if _, err := c.Sync(context.Background(), []image.VMA{all}); err != nil {
		t.Fatal(err)
	}
	woken := false
	c.SetHelper(helperFunc(func(fn func()) { woken = true; fn() }))
	c.BeginFrozen(TrackingGoesOn)
	st, err := c.SyncFrozen([]image.VMA{all}, TrackingGoesOn)
	if err != nil {
		t.Fatal(err)
	}
	if woken || st.Pieces != 0 {
		t.Errorf("helper woken: %v, %d pieces; want no split", woken, st.Pieces)
	}
}
