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

func copyOf(r image.PageRun) logEntry   { return logEntry{start: r.Addr, end: r.End(), run: r} }
func noData(start, end uint64) logEntry { return logEntry{start: start, end: end} }

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
	got := c.Runs(v)
	want := []image.PageRun{
		{Addr: v.Start, NPages: 2, DataOff: 0, CRC: []uint32{0, 1}},
		{Addr: v.Start + 2*ps, NPages: 1, DataOff: 8 * ps, CRC: []uint32{8}},
		{Addr: v.Start + 4*ps, NPages: 2, DataOff: 4 * ps, CRC: []uint32{4, 5}},
		{Addr: v.Start + 7*ps, NPages: 1, DataOff: 7 * ps, CRC: []uint32{7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Runs:\n got %+v\nwant %+v", got, want)
	}
	if runs := c.Runs(image.VMA{Start: 0x10000, End: 0x20000, Kind: image.KindFileShared}); runs != nil {
		t.Errorf("shared file mapping has runs %+v, want none (re-mapped from its file)", runs)
	}
}
