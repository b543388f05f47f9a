package precopy

import (
	"reflect"
	"testing"

	"github.com/crbpf/crbpf/image"
)

const ps = image.PageSize

func run(addr, n, off uint64) image.PageRun {
	r := image.PageRun{Addr: addr, NPages: n, DataOff: off}
	for i := uint64(0); i < n; i++ {
		r.CRC = append(r.CRC, uint32(off/ps+i))
	}
	return r
}

func copyOf(r image.PageRun) logEntry {
	return logEntry{start: r.Addr, end: r.End(), kind: entryStored, run: r}
}
func noData(start, end uint64) logEntry { return logEntry{start: start, end: end} }
func zeroed(start, end uint64) logEntry { return logEntry{start: start, end: end, kind: entryZero} }
func same(start, end uint64) logEntry   { return logEntry{start: start, end: end, kind: entrySame} }

func runsOf(c *Copier, v image.VMA) []image.PageRun {
	c.Fill(&v)
	return v.Pages
}

// TestRunsSupersede: later copies of a page win, "no data" records erase
// earlier copies, and runs are merged only where both the addresses and
// the page-file offsets are contiguous.
func TestRunsSupersede(t *testing.T) {
	v := image.VMA{Start: 0x10000, End: 0x10000 + 8*ps, Kind: image.KindAnon}
	c := &Copier{log: []logEntry{
		noData(v.Start, v.End),
		copyOf(run(v.Start, 8, 0)),         // round 0: pages 0-7 at offsets 0-7
		noData(v.Start+2*ps, v.Start+4*ps), // round 1: pages 2-3 written...
		copyOf(run(v.Start+2*ps, 1, 8*ps)), // ...page 2 copied again, page 3 now zero
		noData(v.Start+6*ps, v.Start+7*ps), // final: page 6 given back (zero)
		copyOf(run(0x90000, 4, 100*ps)),    // another mapping: ignored
		noData(v.End, v.End+ps),            // next to it: ignored
	}}
	got := runsOf(c, v)
	want := []image.PageRun{
		{Addr: v.Start, NPages: 2, DataOff: 0, CRC: []uint32{0, 1}},
		{Addr: v.Start + 2*ps, NPages: 1, DataOff: 8 * ps, CRC: []uint32{8}},
		{Addr: v.Start + 4*ps, NPages: 2, DataOff: 4 * ps, CRC: []uint32{4, 5}},
		{Addr: v.Start + 7*ps, NPages: 1, DataOff: 7 * ps, CRC: []uint32{7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Runs:\n got %+v\nwant %+v", got, want)
	}
	if runs := runsOf(c, image.VMA{Start: 0x10000, End: 0x20000, Kind: image.KindFileShared}); runs != nil {
		t.Errorf("shared file mapping has runs %+v, want none (re-mapped from its file)", runs)
	}
}

// TestFillZeroAndSame: pages found zero become zero spans in private file
// mappings (elsewhere they need nothing), pages equal to the parent's
// become inherited spans, and later records supersede both.
func TestFillZeroAndSame(t *testing.T) {
	for _, kind := range []string{image.KindFile, image.KindAnon} {
		t.Run(kind, func(t *testing.T) {
			v := image.VMA{Start: 0x10000, End: 0x10000 + 8*ps, Kind: kind}
			c := &Copier{log: []logEntry{
				noData(v.Start, v.End),
				same(v.Start, v.Start+4*ps),        // round 0: pages 0-3 as in the parent
				copyOf(run(v.Start+4*ps, 2, 0)),    // pages 4-5 stored
				zeroed(v.Start+6*ps, v.Start+8*ps), // pages 6-7 zero
				noData(v.Start+ps, v.Start+2*ps),   // round 1: page 1 written...
				zeroed(v.Start+ps, v.Start+2*ps),   // ...now zero
				noData(v.Start+2*ps, v.Start+3*ps), // page 2 written...
				copyOf(run(v.Start+2*ps, 1, 2*ps)), // ...stored
				noData(v.Start+6*ps, v.Start+7*ps), // page 6 written...
				same(v.Start+6*ps, v.Start+7*ps),   // ...back to the parent's content
			}}
			c.Fill(&v)
			wantRuns := []image.PageRun{
				{Addr: v.Start + 2*ps, NPages: 1, DataOff: 2 * ps, CRC: []uint32{2}},
				{Addr: v.Start + 4*ps, NPages: 2, DataOff: 0, CRC: []uint32{0, 1}},
			}
			wantInherit := []image.Span{{Addr: v.Start, NPages: 1}, {Addr: v.Start + 3*ps, NPages: 1}, {Addr: v.Start + 6*ps, NPages: 1}}
			var wantZero []image.Span
			if kind == image.KindFile {
				wantZero = []image.Span{{Addr: v.Start + ps, NPages: 1}, {Addr: v.Start + 7*ps, NPages: 1}}
			}
			if !reflect.DeepEqual(v.Pages, wantRuns) {
				t.Errorf("runs:\n got %+v\nwant %+v", v.Pages, wantRuns)
			}
			if !reflect.DeepEqual(v.Inherit, wantInherit) {
				t.Errorf("inherited:\n got %+v\nwant %+v", v.Inherit, wantInherit)
			}
			if !reflect.DeepEqual(v.Zero, wantZero) {
				t.Errorf("zero:\n got %+v\nwant %+v", v.Zero, wantZero)
			}
		})
	}
}

// TestContinue: a Copier continuing from a parent's armed tracking starts
// with the tracked ranges known and the parent's pages inside them equal
// to the parent's; pages the parent has outside them (not tracked since)
// are not assumed, and later records supersede the assumption.
func TestContinue(t *testing.T) {
	v := image.VMA{Start: 0x10000, End: 0x10000 + 8*ps, Kind: image.KindAnon}
	c := &Copier{}
	c.Continue(
		[]Range{{v.Start, v.Start + 6*ps}},                                    // tracked since the parent
		[]Range{{v.Start + ps, v.Start + 4*ps}, {v.Start + 5*ps, v.End + ps}}, // where the parent has data
	)
	if got := c.Known(); !reflect.DeepEqual(got, []Range{{v.Start, v.Start + 6*ps}}) {
		t.Errorf("Known() = %v", got)
	}
	c.log = append(c.log, noData(v.Start+2*ps, v.Start+3*ps), copyOf(run(v.Start+2*ps, 1, 0))) // page 2 written since
	c.Fill(&v)
	wantInherit := []image.Span{{Addr: v.Start + ps, NPages: 1}, {Addr: v.Start + 3*ps, NPages: 1}, {Addr: v.Start + 5*ps, NPages: 1}}
	if !reflect.DeepEqual(v.Inherit, wantInherit) {
		t.Errorf("inherited %+v, want %+v", v.Inherit, wantInherit)
	}
	if len(v.Pages) != 1 || v.Pages[0].Addr != v.Start+2*ps {
		t.Errorf("runs %+v, want page 2 stored", v.Pages)
	}
}
