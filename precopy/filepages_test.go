package precopy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
)

// TestFixFilePagesAdjacent: a private file mapping split in two mappings
// end to end (one pagemap read covers both): pages given back to the file
// by MADV_DONTNEED after they were copied, in either mapping and across
// the boundary, come from the file again; the others keep their copies.
func TestFixFilePagesAdjacent(t *testing.T) {
	const n = 8
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, n*ps), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, n*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	addr := uint64(uintptr(unsafe.Pointer(&m[0])))
	for i := range n {
		m[i*ps] = byte(i + 1) // a private copy of every page
	}
	// Two mappings: [0, 4) read-write, [4, 8) read-only.
	if err := unix.Mprotect(m[4*ps:], unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	head := image.VMA{Start: addr, End: addr + 4*ps, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: image.KindFile, Name: path}
	tail := image.VMA{Start: addr + 4*ps, End: addr + n*ps, Prot: unix.PROT_READ, Kind: image.KindFile, Name: path, Offset: 4 * ps}
	vmas := []image.VMA{head, tail}

	c := newSelfCopier(t, nil)
	if _, err := c.Sync(context.Background(), vmas); err != nil {
		t.Fatal(err)
	}
	// Pages 3 and 4 (the two sides of the boundary) and 6 given back.
	if err := unix.Madvise(m[3*ps:5*ps], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if err := unix.Madvise(m[6*ps:7*ps], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if err := c.FixFilePages(vmas); err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	for _, v := range vmas {
		for _, r := range runsOf(c, v) {
			if r.Addr < v.Start || r.End() > v.End {
				t.Errorf("run %#x-%#x outside its mapping %#x-%#x", r.Addr, r.End(), v.Start, v.End)
			}
			for k := range r.NPages {
				got[int((r.Addr-addr)/ps)+int(k)] = true
			}
		}
	}
	for p := range n {
		want := p != 3 && p != 4 && p != 6
		if got[p] != want {
			t.Errorf("page %d stored: %v, want %v", p, got[p], want)
		}
	}
}
