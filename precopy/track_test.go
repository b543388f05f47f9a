package precopy

import (
	"context"
	"errors"
	"hash/crc32"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
)

// chunkTracker records the ranges it is asked to track and, as a target
// racing the protection would, writes mark(i) into every page of the i-th
// one just before protecting it. It fails the call numbered failAt (from
// 1; 0 never) without writing. It reports nothing written.
type chunkTracker struct {
	m       []byte
	addr    uint64
	tracked []Range
	failAt  int
}

func mark(i int) byte { return byte(0xc0 + i) }

func (c *chunkTracker) Track(start, end uint64) error {
	c.tracked = append(c.tracked, Range{start, end})
	if len(c.tracked) == c.failAt {
		return errors.New("mapping changed")
	}
	for a := start; a < end; a++ {
		c.m[a-c.addr] = mark(len(c.tracked))
	}
	return nil
}

func (c *chunkTracker) Written(start, end uint64, buf []Range) ([]Range, error) { return buf[:0], nil }
func (c *chunkTracker) Peek(start, end uint64, buf []Range) ([]Range, error)    { return buf[:0], nil }

// TestTrackInChunks: round 0 tracks a new mapping larger than the track
// step one step at a time, each chunk before it is copied (a
// write just before a chunk's protection is in the image); a chunk that
// cannot be tracked leaves it and the rest of the mapping untracked,
// copied whole, and copied whole again by the next Sync.
func TestTrackInChunks(t *testing.T) {
	const n = 3*hugePage/ps + 5 // three full chunks and a short one
	for _, tc := range []struct {
		name   string
		failAt int
	}{{"all tracked", 0}, {"second chunk fails", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			m, addr := mapPattern(t, n)
			all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
			tr := &chunkTracker{m: m, addr: addr, failAt: tc.failAt}
			c := newSelfCopierBuffers(t, tr, hugePage)
			if c.trackStep != ChunkSize {
				t.Fatalf("track step %d with %d-byte buffers, want ChunkSize (%d)", c.trackStep, hugePage, ChunkSize)
			}
			c.trackStep = hugePage // chunks of a mapping this test can afford
			st, err := c.Sync(context.Background(), []image.VMA{all})
			if err != nil || st.Pages != n {
				t.Fatalf("round 0: %d pages copied, %v; want %d", st.Pages, err, n)
			}
			var want []Range
			for a := all.Start; a < all.End; a += hugePage {
				want = append(want, Range{a, min(a+hugePage, all.End)})
				if len(want) == tc.failAt {
					break
				}
			}
			if len(tr.tracked) != len(want) {
				t.Fatalf("tracked %x, want %x", tr.tracked, want)
			}
			for i := range want {
				if tr.tracked[i] != want[i] {
					t.Fatalf("tracked %x, want %x", tr.tracked, want)
				}
			}
			// Each page as it was after its chunk's Track call.
			expect := func(p uint64) byte {
				i := int(p*ps/hugePage) + 1
				if tc.failAt != 0 && i >= tc.failAt {
					return byte(p + 1) // untracked: the pattern
				}
				return mark(i)
			}
			table := crc32.MakeTable(crc32.Castagnoli)
			page := make([]byte, ps)
			got := 0
			for _, r := range runsOf(c, all) {
				for k := range r.NPages {
					p := (r.Addr-addr)/ps + k
					for j := range page {
						page[j] = expect(p)
					}
					if w := crc32.Checksum(page, table); r.CRC[k] != w {
						t.Fatalf("page %d: CRC %#x, want %#x (byte %#x)", p, r.CRC[k], w, expect(p))
					}
					got++
				}
			}
			stored := 0 // zero pages are not stored
			for p := range uint64(n) {
				if expect(p) != 0 {
					stored++
				}
			}
			if got != stored {
				t.Errorf("%d pages in the image, want %d", got, stored)
			}
			// Round 1: nothing reported written; the untracked rest is
			// copied whole again.
			st, err = c.Sync(context.Background(), []image.VMA{all})
			if err != nil {
				t.Fatal(err)
			}
			var again uint64
			if tc.failAt != 0 {
				again = n - uint64(tc.failAt-1)*hugePage/ps
			}
			if st.Pages != again {
				t.Errorf("round 1: %d pages copied, want %d", st.Pages, again)
			}
		})
	}
}

// cancelTracker cancels a context when asked to track its second range.
type cancelTracker struct {
	chunkTracker
	cancel context.CancelFunc
}

func (c *cancelTracker) Track(start, end uint64) error {
	err := c.chunkTracker.Track(start, end)
	if len(c.tracked) == 2 {
		c.cancel()
	}
	return err
}

// TestSyncCancelled: a Sync whose context is cancelled stops before the
// next chunk it would copy and says why, so an interrupted round 0 of a
// large target does not run to its end.
func TestSyncCancelled(t *testing.T) {
	const n = 3 * hugePage / ps
	m, addr := mapPattern(t, n)
	all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &cancelTracker{chunkTracker: chunkTracker{m: m, addr: addr}, cancel: cancel}
	c := newSelfCopierBuffers(t, tr, hugePage)
	c.trackStep = hugePage
	st, err := c.Sync(ctx, []image.VMA{all})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync returned %v, want context.Canceled", err)
	}
	if st.Pages != hugePage/ps {
		t.Errorf("%d pages copied, want the first chunk's %d", st.Pages, hugePage/ps)
	}
	if len(tr.tracked) != 2 {
		t.Errorf("%d ranges tracked, want 2", len(tr.tracked))
	}
}
