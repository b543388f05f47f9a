package precopy

import (
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/writer"
)

// mapPattern maps n anonymous pages, each filled with its own byte.
func mapPattern(t *testing.T, n int) ([]byte, uint64) {
	t.Helper()
	m, err := unix.Mmap(-1, 0, n*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	for i := range n {
		for j := range ps {
			m[i*ps+j] = byte(i + 1)
		}
	}
	return m, uint64(uintptr(unsafe.Pointer(&m[0])))
}

// newSelfCopier is a Copier of this process into a temporary image, with
// tracker tr (nil: none); both are closed when the test ends.
func newSelfCopier(t *testing.T, tr Tracker) *Copier {
	t.Helper()
	return newSelfCopierBuffers(t, tr, ChunkSize)
}

// newSelfCopierBuffers is newSelfCopier with copy buffers of size bytes.
func newSelfCopierBuffers(t *testing.T, tr Tracker, size int) *Copier {
	t.Helper()
	w, err := writer.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Abort() })
	bufs, err := NewBuffers(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bufs.Close() }) // runs after c.Close, registered below
	c, err := NewCopier(os.Getpid(), w, bufs.Chunks(), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUnreadableWhileRunning: a part of a mapping that became unreadable
// after the mappings were read (here: mprotect PROT_NONE, as a target may
// do in the middle of a round) does not fail a running round; it is left
// to the next Sync, which copies it whole. A frozen Sync reads it through
// /proc/PID/mem, and a frozen Sync given wrong mappings fails.
func TestUnreadableWhileRunning(t *testing.T) {
	const n = 8
	m, addr := mapPattern(t, n)
	all := image.VMA{Start: addr, End: addr + n*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindAnon, Name: "[test]"}
	if err := unix.Mprotect(m[4*ps:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}

	c := newSelfCopier(t, nil)
	st, err := c.Sync(context.Background(), []image.VMA{all}) // the mappings as they were
	if err != nil {
		t.Fatalf("running Sync failed on a part made unreadable: %v", err)
	}
	if st.Deferred != 4 || st.Pages != 4 {
		t.Fatalf("running Sync: %d pages copied, %d deferred; want 4 and 4", st.Pages, st.Deferred)
	}

	head, tail := all, all
	head.End, tail.Start, tail.Prot = addr+4*ps, addr+4*ps, unix.PROT_NONE
	st, err = c.SyncFrozen([]image.VMA{head, tail}, TrackingEnds)
	if err != nil {
		t.Fatalf("frozen Sync: %v", err)
	}
	if st.Pages != 4 || st.Deferred != 0 {
		t.Errorf("frozen Sync: %d pages copied, %d deferred; want the 4 deferred ones copied", st.Pages, st.Deferred)
	}
	for _, v := range []image.VMA{head, tail} {
		var got uint64
		for _, r := range runsOf(c, v) {
			for k := range r.NPages {
				p := (r.Addr - addr) / ps
				page := make([]byte, ps)
				for j := range page {
					page[j] = byte(p + k + 1)
				}
				if want := crc32.Checksum(page, crc32.MakeTable(crc32.Castagnoli)); r.CRC[k] != want {
					t.Errorf("page %d: CRC %#x, want %#x", p+k, r.CRC[k], want)
				}
				got++
			}
		}
		if got != 4 {
			t.Errorf("mapping %#x-%#x: %d pages in the image, want 4", v.Start, v.End, got)
		}
	}

	// Frozen, the mappings are exact: a read that fails is an error.
	c2 := newSelfCopier(t, nil)
	if _, err := c2.SyncFrozen([]image.VMA{all}, TrackingEnds); err == nil || !strings.Contains(err.Error(), "[test]") {
		t.Errorf("frozen Sync with a stale mapping: err %v, want a read error naming the mapping", err)
	}
}
