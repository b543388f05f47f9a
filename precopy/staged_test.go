package precopy

import (
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/writer"
)

// listTracker tracks everything and reports as written the ranges it is
// given, once each.
type listTracker struct{ written []Range }

func (l *listTracker) Track(start, end uint64) error { return nil }

func (l *listTracker) Written(start, end uint64, buf []Range) ([]Range, error) {
	buf = buf[:0]
	for _, r := range l.written {
		if r.Start >= start && r.End <= end {
			buf = append(buf, r)
		}
	}
	l.written = nil
	return buf, nil
}

// TestFrozenSyncStages: after pre-copy the frozen Sync only reads; the
// pages reach the image with WriteStaged, as they were when read (the
// target may change them once it runs again), and Fill before WriteStaged
// is refused.
func TestFrozenSyncStages(t *testing.T) {
	const n = 8
	m, addr := mapPattern(t, n)
	all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
	w, err := writer.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Abort() })
	tr := &listTracker{}
	c, err := NewCopier(os.Getpid(), w, Buffers(), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Sync([]image.VMA{all}); err != nil { // round 0
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
	st, err := c.SyncFrozen([]image.VMA{all})
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
	seen := 0
	for _, r := range runsOf(c, all) {
		for k := range r.NPages {
			p := int((r.Addr-addr)/ps) + int(k)
			page := make([]byte, ps)
			for j := range page {
				page[j] = want[p]
			}
			if got, exp := r.CRC[k], crc32.Checksum(page, crc32.MakeTable(crc32.Castagnoli)); got != exp {
				t.Errorf("page %d: CRC %#x, want %#x (byte %#x)", p, got, exp, want[p])
			}
			seen++
		}
	}
	if seen != n {
		t.Errorf("%d pages in the image, want %d", seen, n)
	}
}
