package precopy

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/crbpf/crbpf/image"
)

// SideTracker is a Tracker that can also scan from a second thread.
type SideTracker interface {
	Tracker
	// Side returns a Scanner of the same tracking through a handle of its
	// own, whose calls may run while the Tracker's run on another thread.
	Side() Scanner
}

// Helper runs work on a thread other than the caller's.
type Helper interface {
	// Wake has the helper's thread call fn once, soon, and returns at
	// once. fn may run late, or, if the helper is gone, never.
	Wake(fn func())
}

// Splitting the last scan: with the target stopped, the scan of what was
// written walks every page table entry of the tracked memory (1.0-1.7 ms
// per GiB on this VM, the largest part of the freeze after pre-copy). With
// a Helper and a SideTracker, the frozen Sync cuts the tracked ranges into
// pieces that the two threads take in turn; the ranges found written are
// then copied as before, in address order. The helper's thread is woken
// as soon as the target is stopped (BeginFrozen); if it does not get to
// run, the caller takes every piece itself, so a late helper costs only
// the wake-up.
const (
	// splitMin is the least tracked memory worth splitting: below it the
	// helper's wake-up (about 50-150 µs here) costs more than half the
	// scan saves.
	splitMin = 128 << 20
	// splitPieces is about how many pieces the memory is cut into: a
	// piece the helper has not finished when the caller runs out of
	// pieces, the caller scans again, so smaller pieces waste less.
	splitPieces = 16
	// pieceMin bounds the pieces below: each is a system call.
	pieceMin = 16 << 20
)

// piece is one part of the tracked memory the frozen Sync scans, and
// what the scan found.
type piece struct {
	span  Range
	state atomic.Int32 // pieceFree, then pieceHelper and pieceHelped, or pieceOwn
	own   scanned      // the caller's scan, once state is pieceOwn
	side  scanned      // the helper's scan, once state is pieceHelped
}

type scanned struct {
	got []Range
	err error
}

const (
	pieceFree   = iota // no one scans it yet
	pieceHelper        // the helper scans it
	pieceHelped        // the helper scanned it
	pieceOwn           // the caller scans it, or did
)

// result is what the scan of p found.
func (p *piece) result() scanned {
	if p.state.Load() == pieceHelped {
		return p.side
	}
	return p.own
}

// split is a last scan cut into pieces (see BeginFrozen).
type split struct {
	pieces []*piece // in address order
	next   atomic.Int64
	t0     time.Time
}

// BeginFrozen starts the frozen Sync's scan on the helper's thread, if
// there is a helper and a SideTracker, the tracking ends after the Sync
// and at least splitMin bytes are tracked: call it as soon as the target
// is stopped, and the helper scans while the caller reads what else the
// freeze needs (registers, /proc/PID/maps), and wakes up meanwhile.
// SyncFrozen takes its part of the scan and uses what the helper found.
// The pieces are the tracked ranges as of the last Sync; where the
// frozen Sync's mappings do not match them, it scans again itself.
func (c *Copier) BeginFrozen(then After) {
	if c.split != nil || then != TrackingEnds || c.helper == nil {
		return
	}
	st, ok := c.tracker.(SideTracker)
	if !ok {
		return
	}
	var total uint64
	for _, r := range c.known.r {
		total += r.End - r.Start
	}
	if total < c.splitMin {
		return
	}
	size := max(total/splitPieces, c.pieceMin) &^ (image.PageSize - 1)
	sp := &split{t0: time.Now()}
	for _, r := range c.known.r {
		for a := r.Start; a < r.End; a += size {
			sp.pieces = append(sp.pieces, &piece{span: Range{a, min(a+size, r.End)}})
		}
	}
	c.split = sp
	side := st.Side()
	c.helper.Wake(func() {
		for {
			i := int(sp.next.Add(1) - 1)
			if i >= len(sp.pieces) {
				return
			}
			p := sp.pieces[i]
			if !p.state.CompareAndSwap(pieceFree, pieceHelper) {
				continue
			}
			p.side.got, p.side.err = side.Peek(p.span.Start, p.span.End, nil)
			p.state.CompareAndSwap(pieceHelper, pieceHelped)
		}
	})
}

// finishSplit scans the pieces of the split that the helper did not take,
// and those it took and has not finished.
//
// The caller never waits for the helper: a piece the helper took and has
// not finished when the caller runs out of pieces, the caller scans
// again itself. That is safe only because the scan does not protect
// pages again (Peek), so two scans of a piece report the same pages; the
// helper's late result is dropped. A helper that is late or does not run
// at all (its thread may wait for the Go scheduler, which may need the
// caller's CPU) leaves the caller scanning everything, as without it.
func (c *Copier) finishSplit() {
	sp := c.split
	own := func(p *piece) {
		p.own.got, p.own.err = c.tracker.Peek(p.span.Start, p.span.End, nil)
	}
	for {
		i := int(sp.next.Add(1) - 1)
		if i >= len(sp.pieces) {
			break
		}
		if p := sp.pieces[i]; p.state.CompareAndSwap(pieceFree, pieceOwn) {
			own(p)
		}
	}
	for _, p := range sp.pieces {
		if p.state.CompareAndSwap(pieceFree, pieceOwn) || p.state.CompareAndSwap(pieceHelper, pieceOwn) {
			own(p)
		} else if p.state.Load() == pieceHelped {
			c.stats.Helped++
		}
	}
	c.stats.Scan += time.Since(sp.t0)
	c.stats.Pieces = len(sp.pieces)
}

// scanSplit copies what the split scan found written in r (a tracked part
// of v), scanning again itself the parts of r that no piece covers and
// the parts whose piece's scan stopped at an error.
func (c *Copier) scanSplit(v *image.VMA, r Range) error {
	pieces := c.split.pieces
	i := sort.Search(len(pieces), func(i int) bool { return pieces[i].span.End > r.Start })
	for cur := r.Start; cur < r.End; {
		if i >= len(pieces) || pieces[i].span.Start >= r.End {
			return c.scanCopyFrom(v, Range{cur, r.End})
		}
		p := pieces[i]
		if p.span.Start > cur {
			if err := c.scanCopyFrom(v, Range{cur, p.span.Start}); err != nil {
				return err
			}
			cur = p.span.Start
		}
		sub := Range{cur, min(p.span.End, r.End)}
		var err error
		if res := p.result(); res.err != nil {
			err = c.scanCopyFrom(v, sub)
		} else {
			err = c.copyReported(v, res.got, sub)
		}
		if err != nil {
			return err
		}
		cur = sub.End
		i++
	}
	return nil
}
