package chain_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/writer"
)

const ps = image.PageSize

// The address space of every test image: an anonymous mapping of anonPages
// pages and a private file mapping of filePages pages, of which only the
// first fileWritten are ever written (the rest is the file's own content).
const (
	anonStart   = 0x10000000
	anonPages   = 16
	fileStart   = 0x20000000
	filePages   = 4
	fileWritten = 3
)

// pageData returns one page of non-zero bytes unique to (gen, idx).
func pageData(gen, idx int) []byte {
	b := make([]byte, ps)
	for i := 0; i < ps; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(gen)<<48^uint64(idx)<<32^uint64(i)|1<<63)
	}
	return b
}

// memState is the memory of the process at one checkpoint; a nil page is
// all zero.
type memState struct {
	anon [anonPages][]byte
	file [fileWritten][]byte
}

// generations returns the memory at the three checkpoints (crid 1, 2, 3).
func generations() [3]memState {
	var g [3]memState
	for i := range anonPages {
		g[0].anon[i] = pageData(1, i)
	}
	for i := range fileWritten {
		g[0].file[i] = pageData(1, 100+i)
	}
	g[1] = g[0]
	g[1].anon[2] = pageData(2, 2)
	g[1].anon[3] = pageData(2, 3)
	g[1].anon[7] = pageData(2, 7)
	g[1].anon[10] = nil // became zero
	g[1].file[1] = nil  // became zero: must be listed in VMA.Zero
	g[2] = g[1]
	g[2].anon[3] = pageData(3, 3)
	g[2].anon[5] = nil              // became zero
	g[2].anon[7] = pageData(1, 7)   // back to the root's content: stored again
	g[2].anon[10] = pageData(3, 10) // non-zero again
	g[2].anon[12] = pageData(3, 12)
	g[2].file[0] = pageData(3, 100)
	return g
}

// lastStored returns, for each page of the anon and file mappings, the
// index (0-based) of the generation whose image stores the data the tip
// (generation last) uses, or -1 when the page has no data.
func lastStored(g [3]memState, last int) (anon [anonPages]int, file [fileWritten]int) {
	pick := func(get func(gen int) []byte) int {
		src := -1
		for gen := 0; gen <= last; gen++ {
			cur := get(gen)
			switch {
			case cur == nil:
				src = -1
			case gen == 0 || !bytes.Equal(cur, get(gen-1)):
				src = gen
			}
		}
		return src
	}
	for i := range anonPages {
		anon[i] = pick(func(gen int) []byte { return g[gen].anon[i] })
	}
	for i := range fileWritten {
		file[i] = pick(func(gen int) []byte { return g[gen].file[i] })
	}
	return anon, file
}

// newImage returns a valid image with the given VMAs.
// Its ID is derived from the crid, as its parent's.
func newImage(crid, parent uint64, hint string, vmas ...image.VMA) *image.Image {
	h := image.Header{CRID: crid, ID: fmt.Sprintf("%032x", crid), ParentCRID: parent, Parent: hint, Arch: "amd64", Time: time.Now()}
	if parent != 0 {
		h.ParentID = fmt.Sprintf("%032x", parent)
	}
	return &image.Image{
		Header: h,
		Task:   image.Task{Regs: make([]byte, image.AMD64RegsSize)},
		VMAs:   vmas,
	}
}

func anonVMA() image.VMA {
	return image.VMA{Start: anonStart, End: anonStart + anonPages*ps, Prot: 3, Flags: 2, Kind: image.KindAnon, Name: "[heap]"}
}

func fileVMA() image.VMA {
	return image.VMA{Start: fileStart, End: fileStart + filePages*ps, Prot: 3, Flags: 2, Kind: image.KindFile,
		Name: "/bin/true", Path: "/bin/true", Offset: 0x2000}
}

func concat(pages [][]byte) []byte {
	var b []byte
	for _, p := range pages {
		if p == nil {
			p = make([]byte, ps)
		}
		b = append(b, p...)
	}
	return b
}

// writeState writes m as the image crid at dir, deduplicating against
// parent (nil for a root) with SkipZero|Dedup. It returns the committed
// image and the number of pages stored.
func writeState(t *testing.T, dir string, crid, parentCRID uint64, hint string, m *memState, parent writer.Parent) (*image.Image, uint64) {
	t.Helper()
	w, err := writer.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if parent != nil {
		w.SetParent(parent)
	}
	anon, file := anonVMA(), fileVMA()
	wr, err := w.WritePages(anon.Start, concat(m.anon[:]), writer.SkipZero|writer.Dedup)
	if err != nil {
		t.Fatal(err)
	}
	anon.Pages, anon.Inherit = wr.Runs, wr.Same
	if wr, err = w.WritePages(file.Start, concat(m.file[:]), writer.SkipZero|writer.Dedup); err != nil {
		t.Fatal(err)
	}
	file.Pages, file.Zero, file.Inherit = wr.Runs, wr.Zero, wr.Same
	img := newImage(crid, parentCRID, hint, anon, file)
	if err := w.Commit(img); err != nil {
		t.Fatal(err)
	}
	return img, w.Pages()
}

// fixture is a chain of three images in base: c1 (crid 1, the root), c2
// (crid 2, parent c1) and c3 (crid 3, parent c2).
type fixture struct {
	base string
	dirs [3]string
	imgs [3]*image.Image
	gens [3]memState
}

func (f *fixture) tip() string { return f.dirs[2] }

// indexOf loads the chain at dir and returns its page index.
func indexOf(t *testing.T, dir string) *chain.Pages {
	t.Helper()
	c, err := chain.Load(dir, chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Pages(res)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// spansOf returns the spans of the pages i of a mapping at start for
// which keep(i) holds.
func spansOf(start uint64, n int, keep func(i int) bool) []image.Span {
	var out []image.Span
	for i := range n {
		if keep(i) {
			a := start + uint64(i)*ps
			out = image.AppendSpan(out, a, a+ps)
		}
	}
	return out
}

func buildChain(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{base: t.TempDir(), gens: generations()}
	for i := range f.dirs {
		f.dirs[i] = filepath.Join(f.base, fmt.Sprintf("c%d", i+1))
	}
	for gen := range 3 {
		m := &f.gens[gen]
		var parent writer.Parent
		var parentCRID uint64
		hint := ""
		if gen > 0 {
			parent = indexOf(t, f.dirs[gen-1])
			parentCRID = uint64(gen)
			hint = fmt.Sprintf("../c%d", gen)
		}
		img, stored := writeState(t, f.dirs[gen], uint64(gen+1), parentCRID, hint, m, parent)
		f.imgs[gen] = img

		// The writer must have left out exactly the unchanged pages: the
		// rest of the tests rely on the chain really being incremental.
		var prev *memState
		if gen > 0 {
			prev = &f.gens[gen-1]
		}
		same := func(cur, old []byte) bool { return prev != nil && cur != nil && bytes.Equal(cur, old) }
		var wantStored uint64
		for i := range anonPages {
			if m.anon[i] != nil && (prev == nil || !same(m.anon[i], prev.anon[i])) {
				wantStored++
			}
		}
		for i := range fileWritten {
			if m.file[i] != nil && (prev == nil || !same(m.file[i], prev.file[i])) {
				wantStored++
			}
		}
		if stored != wantStored {
			t.Fatalf("image crid %d stores %d pages, want %d", gen+1, stored, wantStored)
		}
		wantAnonInherit := spansOf(anonStart, anonPages, func(i int) bool { return prev != nil && same(m.anon[i], prev.anon[i]) })
		wantFileInherit := spansOf(fileStart, fileWritten, func(i int) bool { return prev != nil && same(m.file[i], prev.file[i]) })
		wantFileZero := spansOf(fileStart, fileWritten, func(i int) bool { return m.file[i] == nil })
		if got := img.VMAs[0].Inherit; !reflect.DeepEqual(got, wantAnonInherit) {
			t.Fatalf("image crid %d: anon inherit %+v, want %+v", gen+1, got, wantAnonInherit)
		}
		if got := img.VMAs[1].Inherit; !reflect.DeepEqual(got, wantFileInherit) {
			t.Fatalf("image crid %d: file inherit %+v, want %+v", gen+1, got, wantFileInherit)
		}
		if got := img.VMAs[1].Zero; !reflect.DeepEqual(got, wantFileZero) {
			t.Fatalf("image crid %d: file zero %+v, want %+v", gen+1, got, wantFileZero)
		}
	}
	return f
}

// pagesFiles reads and caches pages.crbpf of image directories.
type pagesFiles map[string][]byte

func (pf pagesFiles) page(t *testing.T, dir string, off uint64) []byte {
	t.Helper()
	b, ok := pf[dir]
	if !ok {
		var err error
		if b, err = os.ReadFile(filepath.Join(dir, image.PagesFile)); err != nil {
			t.Fatal(err)
		}
		pf[dir] = b
	}
	if off%ps != 0 || off+ps > uint64(len(b)) {
		t.Fatalf("%s: page at data offset %#x outside the %d-byte pages file", dir, off, len(b))
	}
	return b[off : off+ps]
}

// findRun returns the run of v covering addr and the page's index in it.
func findRun(v *image.VMA, addr uint64) (*image.PageRun, uint64) {
	for i := range v.Pages {
		r := &v.Pages[i]
		if addr >= r.Addr && addr < r.End() {
			return r, (addr - r.Addr) / ps
		}
	}
	return nil, 0
}

// checkContent checks that img (resolved or self-contained) describes the
// memory m: every page with data holds m's bytes (read through Src from
// dirs), the anon mapping's other pages are zero, the file mapping's
// written zero pages are in Zero and its unwritten page has neither data
// nor a zero span. wantSrc, if not nil, gives the expected Src of each page
// with data (anon pages then file pages).
func checkContent(t *testing.T, img *image.Image, dirs []string, m *memState, wantAnonSrc *[anonPages]int, wantFileSrc *[fileWritten]int) {
	t.Helper()
	if len(img.VMAs) != 2 || img.VMAs[0].Start != anonStart || img.VMAs[1].Start != fileStart {
		t.Fatalf("VMAs %+v, want the anon and the file mapping", img.VMAs)
	}
	pf := pagesFiles{}
	for vi := range img.VMAs {
		v := &img.VMAs[vi]
		if len(v.Inherit) != 0 {
			t.Errorf("vma %d still has inherited spans %+v", vi, v.Inherit)
		}
		if !slices.IsSortedFunc(v.Pages, func(a, b image.PageRun) int { return int(int64(a.Addr/ps) - int64(b.Addr/ps)) }) {
			t.Errorf("vma %d: runs not sorted: %+v", vi, v.Pages)
		}
		for _, r := range v.Pages {
			if r.NPages == 0 || uint64(len(r.CRC)) != r.NPages || r.Addr < v.Start || r.End() > v.End {
				t.Errorf("vma %d: bad run %+v", vi, r)
			}
			if r.Src < 0 || r.Src >= len(dirs) {
				t.Fatalf("vma %d: run at %#x has Src %d, chain has %d links", vi, r.Addr, r.Src, len(dirs))
			}
		}
	}
	var wantZero []image.Span
	for i := range fileWritten {
		addr := fileStart + uint64(i)*ps
		if m.file[i] == nil {
			wantZero = image.AppendSpan(wantZero, addr, addr+ps)
		}
	}
	if got := img.VMAs[1].Zero; !reflect.DeepEqual(got, wantZero) {
		t.Errorf("file mapping zero spans %+v, want %+v", got, wantZero)
	}
	check := func(v *image.VMA, addr uint64, want []byte, wantSrc int, fileContent bool) {
		t.Helper()
		r, k := findRun(v, addr)
		switch {
		case r == nil && want != nil:
			t.Errorf("page %#x: no data, want the bytes written last", addr)
		case r == nil:
			// Zero (anon), in Zero (file, checked above) or the file's content.
			if fileContent && slices.ContainsFunc(v.Zero, func(s image.Span) bool { return addr >= s.Addr && addr < s.End() }) {
				t.Errorf("page %#x: never written, but listed as zero", addr)
			}
		case want == nil:
			t.Errorf("page %#x: zero page has data (run %+v)", addr, *r)
		default:
			if wantSrc >= 0 && r.Src != wantSrc {
				t.Errorf("page %#x: Src %d, want %d", addr, r.Src, wantSrc)
			}
			got := pf.page(t, dirs[r.Src], r.DataOff+k*ps)
			if !bytes.Equal(got, want) {
				t.Errorf("page %#x (Src %d, data offset %#x): bytes differ from the ones written last", addr, r.Src, r.DataOff+k*ps)
			}
			if r.CRC[k] != image.PageCRC(want) {
				t.Errorf("page %#x: crc %#x, want %#x", addr, r.CRC[k], image.PageCRC(want))
			}
		}
	}
	for i := range anonPages {
		src := -1
		if wantAnonSrc != nil {
			src = wantAnonSrc[i]
		}
		check(&img.VMAs[0], anonStart+uint64(i)*ps, m.anon[i], src, false)
	}
	for i := range filePages {
		src := -1
		var want []byte
		if i < fileWritten {
			want = m.file[i]
			if wantFileSrc != nil {
				src = wantFileSrc[i]
			}
		}
		check(&img.VMAs[1], fileStart+uint64(i)*ps, want, src, i >= fileWritten)
	}
}

func TestChainOfThree(t *testing.T) {
	f := buildChain(t)
	c, err := chain.Load(f.tip(), chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.CRIDs(), []uint64{3, 2, 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("CRIDs = %v, want %v", got, want)
	}
	wantDirs := []string{f.dirs[2], f.dirs[1], f.dirs[0]}
	if got := c.Dirs(); !reflect.DeepEqual(got, wantDirs) {
		t.Fatalf("Dirs = %q, want %q", got, wantDirs)
	}
	if tip := c.Tip(); tip.Dir != f.tip() || tip.Image.Header.CRID != 3 {
		t.Errorf("Tip = %s crid %d, want %s crid 3", tip.Dir, tip.Image.Header.CRID, f.tip())
	}

	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if h := res.Header; h.CRID != 3 || h.ParentCRID != 0 || h.Parent != "" {
		t.Errorf("resolved header crid %d parent %d %q, want crid 3 without parent", h.CRID, h.ParentCRID, h.Parent)
	}
	tipSrc := func(g int) int {
		if g < 0 {
			return -1
		}
		return 2 - g // generation g is link 2-g
	}
	anonGen, fileGen := lastStored(f.gens, 2)
	var anonSrc [anonPages]int
	var fileSrc [fileWritten]int
	for i, g := range anonGen {
		anonSrc[i] = tipSrc(g)
	}
	for i, g := range fileGen {
		fileSrc[i] = tipSrc(g)
	}
	// The model must exercise all three links.
	usedSrc := map[int]bool{}
	for _, s := range append(anonSrc[:], fileSrc[:]...) {
		usedSrc[s] = true
	}
	if !usedSrc[0] || !usedSrc[1] || !usedSrc[2] {
		t.Fatalf("test model uses sources %v, want 0, 1 and 2", usedSrc)
	}
	checkContent(t, res, c.Dirs(), &f.gens[2], &anonSrc, &fileSrc)

	// Resolve must not modify the loaded chain.
	for k, l := range c.Links {
		fresh, err := image.Load(l.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(l.Image.VMAs, fresh.VMAs) {
			t.Errorf("link %d (crid %d) modified by Resolve:\n got %+v\nwant %+v", k, l.Image.Header.CRID, l.Image.VMAs, fresh.VMAs)
		}
	}
	if len(c.Links[0].Image.VMAs[0].Inherit) == 0 {
		t.Error("tip lost its inherited spans")
	}

	if err := c.Verify(res); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	idx, err := c.Pages(res)
	if err != nil {
		t.Fatal(err)
	}
	var wantLen uint64
	for _, p := range f.gens[2].anon {
		if p != nil {
			wantLen++
		}
	}
	for _, p := range f.gens[2].file {
		if p != nil {
			wantLen++
		}
	}
	if idx.Len() != wantLen {
		t.Errorf("Pages.Len = %d, want %d", idx.Len(), wantLen)
	}
	zero := make([]byte, ps)
	for _, tt := range []struct {
		name string
		addr uint64
		data []byte
		crc  func(uint32) uint32
		hash func(uint64) uint64
		want bool
	}{
		{name: "root page", addr: anonStart, data: f.gens[2].anon[0], want: true},
		{name: "child page", addr: anonStart + 2*ps, data: f.gens[2].anon[2], want: true},
		{name: "tip page", addr: anonStart + 3*ps, data: f.gens[2].anon[3], want: true},
		{name: "tip page restored to root content", addr: anonStart + 7*ps, data: f.gens[2].anon[7], want: true},
		{name: "last anon page", addr: anonStart + (anonPages-1)*ps, data: f.gens[2].anon[anonPages-1], want: true},
		{name: "file page of tip", addr: fileStart, data: f.gens[2].file[0], want: true},
		{name: "file page of root", addr: fileStart + 2*ps, data: f.gens[2].file[2], want: true},
		{name: "older content of page", addr: anonStart + 3*ps, data: f.gens[1].anon[3]},
		{name: "different hash", addr: anonStart, data: f.gens[2].anon[0], hash: func(h uint64) uint64 { return h ^ 1 }},
		{name: "different crc", addr: anonStart, data: f.gens[2].anon[0], crc: func(c uint32) uint32 { return c ^ 1 }},
		{name: "different address", addr: anonStart + ps, data: f.gens[2].anon[0]},
		{name: "address below the mappings", addr: anonStart - ps, data: f.gens[2].anon[0]},
		{name: "address between the mappings", addr: anonStart + anonPages*ps, data: f.gens[2].anon[anonPages-1]},
		{name: "zero anon page", addr: anonStart + 5*ps, data: zero},
		{name: "zero file page", addr: fileStart + ps, data: zero},
		{name: "unwritten file page", addr: fileStart + 3*ps, data: zero},
	} {
		crc, hash := image.PageCRC(tt.data), image.PageHash(tt.data)
		if tt.crc != nil {
			crc = tt.crc(crc)
		}
		if tt.hash != nil {
			hash = tt.hash(hash)
		}
		if got := idx.Same(tt.addr, crc, hash); got != tt.want {
			t.Errorf("Same(%s: %#x, %#x, %#x) = %v, want %v", tt.name, tt.addr, crc, hash, got, tt.want)
		}
	}

	// Squash.
	dst := filepath.Join(t.TempDir(), "squashed")
	sq, err := chain.Squash(c, dst)
	if err != nil {
		t.Fatalf("Squash: %v", err)
	}
	if h := sq.Header; h.CRID != 3 || h.ParentCRID != 0 || h.Parent != "" {
		t.Errorf("squashed header crid %d parent %d %q, want crid 3 without parent", h.CRID, h.ParentCRID, h.Parent)
	}
	loaded, err := image.Load(dst)
	if err != nil {
		t.Fatalf("load squashed image: %v", err)
	}
	if err := image.Verify(dst, loaded); err != nil {
		t.Fatalf("verify squashed image: %v", err)
	}
	if h := loaded.Header; h.CRID != 3 || h.ParentCRID != 0 || h.Parent != "" {
		t.Errorf("loaded squashed header crid %d parent %d %q, want crid 3 without parent", h.CRID, h.ParentCRID, h.Parent)
	}
	if !reflect.DeepEqual(loaded.VMAs, sq.VMAs) {
		t.Errorf("Squash returned VMAs %+v, the image holds %+v", sq.VMAs, loaded.VMAs)
	}
	for vi, v := range loaded.VMAs {
		if len(v.Inherit) != 0 {
			t.Errorf("squashed vma %d has inherited spans %+v", vi, v.Inherit)
		}
	}
	checkContent(t, loaded, []string{dst}, &f.gens[2], nil, nil)
	if got := loaded.TotalPages(); got != wantLen {
		t.Errorf("squashed image stores %d pages, want %d", got, wantLen)
	}
	pf := pagesFiles{}
	for _, v := range loaded.VMAs {
		for _, r := range v.Pages {
			for k := range r.NPages {
				if bytes.Equal(pf.page(t, dst, r.DataOff+k*ps), zero) {
					t.Errorf("squashed image stores the zero page %#x", r.Addr+k*ps)
				}
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, image.PagesFile)); err != nil || uint64(fi.Size()) != wantLen*ps {
		t.Errorf("squashed pages file: %v, size %v; want %d bytes", err, fi, wantLen*ps)
	}
	// Its hash file is complete: a chain loaded from it indexes every page.
	sc, err := chain.Load(dst, chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.CRIDs(); !reflect.DeepEqual(got, []uint64{3}) {
		t.Errorf("squashed chain CRIDs %v, want [3]", got)
	}
	sres, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	sidx, err := sc.Pages(sres)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range f.gens[2].anon {
		if p != nil && !sidx.Same(anonStart+uint64(i)*ps, image.PageCRC(p), image.PageHash(p)) {
			t.Errorf("squashed image index: anon page %d not found", i)
		}
	}

	// Squash must leave the chain as it was loaded.
	for k, l := range c.Links {
		fresh, err := image.Load(l.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(l.Image.VMAs, fresh.VMAs) {
			t.Errorf("link %d (crid %d) modified by Squash:\n got %+v\nwant %+v", k, l.Image.Header.CRID, l.Image.VMAs, fresh.VMAs)
		}
	}
	// Squashing to an existing path fails without touching it.
	if _, err := chain.Squash(c, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Squash onto an existing image: %v, want fs.ErrExist", err)
	}
}

// TestChainMiddle loads the chain from the middle image: two links, and the
// content of generation 2.
func TestChainMiddle(t *testing.T) {
	f := buildChain(t)
	c, err := chain.Load(f.dirs[1], chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CRIDs(); !reflect.DeepEqual(got, []uint64{2, 1}) {
		t.Fatalf("CRIDs = %v, want [2 1]", got)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	anonGen, fileGen := lastStored(f.gens, 1)
	var anonSrc [anonPages]int
	var fileSrc [fileWritten]int
	for i, g := range anonGen {
		anonSrc[i] = map[int]int{-1: -1, 0: 1, 1: 0}[g]
	}
	for i, g := range fileGen {
		fileSrc[i] = map[int]int{-1: -1, 0: 1, 1: 0}[g]
	}
	checkContent(t, res, c.Dirs(), &f.gens[1], &anonSrc, &fileSrc)
	if err := c.Verify(res); err != nil {
		t.Fatal(err)
	}
}

// checkBroken checks an error about the ancestor crid: it matches ErrBroken
// and wantIs, names the crid and its child, and is one line.
func checkBroken(t *testing.T, what string, err error, crid, child uint64, wantIs error, wantText []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error about crid %d", what, crid)
	}
	msg := err.Error()
	if !errors.Is(err, chain.ErrBroken) {
		t.Errorf("%s: %q does not match ErrBroken", what, msg)
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("%s: %q does not match %v", what, msg, wantIs)
	}
	var be *chain.BrokenError
	if !errors.As(err, &be) {
		t.Errorf("%s: %q is not a *BrokenError", what, msg)
	} else if be.CRID != crid || be.Child != child {
		t.Errorf("%s: BrokenError crid %d child %d, want %d and %d", what, be.CRID, be.Child, crid, child)
	}
	if name := fmt.Sprintf("parent image crid %d of crid %d", crid, child); !strings.Contains(msg, name) {
		t.Errorf("%s: %q does not name %q", what, msg, name)
	}
	for _, s := range wantText {
		if !strings.Contains(msg, s) {
			t.Errorf("%s: %q does not contain %q", what, msg, s)
		}
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("%s: error is not one line: %q", what, msg)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestBrokenChain(t *testing.T) {
	type stage int
	const (
		atLoad stage = iota
		atResolve
		atVerify
		atPages
	)
	for _, tt := range []struct {
		name        string
		tamper      func(t *testing.T, f *fixture)
		at          stage
		crid, child uint64
		is          error
		text        []string
	}{
		{
			name:   "root directory deleted",
			tamper: func(t *testing.T, f *fixture) { os.RemoveAll(f.dirs[0]) },
			at:     atLoad, crid: 1, child: 2, is: image.ErrNotImage,
			text: []string{"no such directory"},
		},
		{
			name:   "middle directory deleted",
			tamper: func(t *testing.T, f *fixture) { os.RemoveAll(f.dirs[1]) },
			at:     atLoad, crid: 2, child: 3, is: image.ErrNotImage,
		},
		{
			name: "root pages file truncated",
			tamper: func(t *testing.T, f *fixture) {
				path := filepath.Join(f.dirs[0], image.PagesFile)
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(path, fi.Size()-ps); err != nil {
					t.Fatal(err)
				}
			},
			at: atLoad, crid: 1, child: 2, is: image.ErrTruncated,
			text: []string{"truncated"},
		},
		{
			name: "root meta altered",
			tamper: func(t *testing.T, f *fixture) {
				flipByte(t, filepath.Join(f.dirs[0], image.MetaFile), image.HeaderSize+20)
			},
			at: atLoad, crid: 1, child: 2, is: image.ErrCorrupt,
			text: []string{"checksum mismatch"},
		},
		{
			name: "root replaced by another image",
			tamper: func(t *testing.T, f *fixture) {
				if err := os.RemoveAll(f.dirs[0]); err != nil {
					t.Fatal(err)
				}
				m := f.gens[0]
				writeState(t, f.dirs[0], 7, 0, "", &m, nil)
			},
			at: atLoad, crid: 1, child: 2,
			text: []string{"the image there is crid 7"},
		},
		{
			// Another crid counter issued the same crid: the id differs.
			name: "root replaced by another checkpoint with its crid",
			tamper: func(t *testing.T, f *fixture) {
				if err := os.RemoveAll(f.dirs[0]); err != nil {
					t.Fatal(err)
				}
				m := f.gens[0]
				img, _ := writeState(t, f.dirs[0], 1, 0, "", &m, nil)
				img.Header.ID = "ffffffffffffffffffffffffffffffff"
				var b bytes.Buffer
				if err := image.Encode(&b, img); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(f.dirs[0], image.MetaFile), b.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			at: atLoad, crid: 1, child: 2,
			text: []string{"another checkpoint with that crid (id ffffffffffffffffffffffffffffffff, want 00000000000000000000000000000001)"},
		},
		{
			name: "hint without a parent there",
			tamper: func(t *testing.T, f *fixture) {
				if err := os.Rename(f.dirs[0], filepath.Join(f.base, "moved")); err != nil {
					t.Fatal(err)
				}
			},
			at: atLoad, crid: 1, child: 2, is: fs.ErrNotExist,
		},
		{
			name: "root page data flipped",
			tamper: func(t *testing.T, f *fixture) {
				r, k := findRun(&f.imgs[0].VMAs[0], anonStart) // anon page 0: the tip uses the root's
				if r == nil {
					t.Fatal("root has no data for anon page 0")
				}
				flipByte(t, filepath.Join(f.dirs[0], image.PagesFile), int64(r.DataOff+k*ps+100))
			},
			at: atVerify, crid: 1, child: 2, is: image.ErrCorrupt,
			text: []string{fmt.Sprintf("page %#x", anonStart)},
		},
		{
			name: "middle page data flipped",
			tamper: func(t *testing.T, f *fixture) {
				r, k := findRun(&f.imgs[1].VMAs[0], anonStart+2*ps) // the tip uses crid 2's page 2
				if r == nil {
					t.Fatal("crid 2 has no data for anon page 2")
				}
				flipByte(t, filepath.Join(f.dirs[1], image.PagesFile), int64(r.DataOff+k*ps))
			},
			at: atVerify, crid: 2, child: 3, is: image.ErrCorrupt,
			text: []string{fmt.Sprintf("page %#x", anonStart+2*ps)},
		},
		{
			name: "root hashes deleted",
			tamper: func(t *testing.T, f *fixture) {
				if err := os.Remove(filepath.Join(f.dirs[0], image.HashesFile)); err != nil {
					t.Fatal(err)
				}
			},
			at: atPages, crid: 1, child: 2, is: image.ErrTruncated,
			text: []string{image.HashesFile},
		},
		{
			name: "inherited page without data in the parent",
			tamper: func(t *testing.T, f *fixture) {
				// Replace crid 2 by an image inheriting everything,
				// including the file page the root never wrote.
				if err := os.RemoveAll(f.dirs[1]); err != nil {
					t.Fatal(err)
				}
				w, err := writer.Create(f.dirs[1])
				if err != nil {
					t.Fatal(err)
				}
				defer w.Abort()
				anon, file := anonVMA(), fileVMA()
				anon.Inherit = []image.Span{{Addr: anonStart, NPages: anonPages}}
				file.Inherit = []image.Span{{Addr: fileStart, NPages: filePages}}
				if err := w.Commit(newImage(2, 1, "../c1", anon, file)); err != nil {
					t.Fatal(err)
				}
			},
			at: atResolve, crid: 1, child: 2,
			text: []string{fmt.Sprintf("no data for inherited page %#x", fileStart+fileWritten*ps)},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := buildChain(t)
			tt.tamper(t, f)
			c, err := chain.Load(f.tip(), chain.OnDisk)
			if tt.at == atLoad {
				checkBroken(t, "Load", err, tt.crid, tt.child, tt.is, tt.text)
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			dst := filepath.Join(f.base, "squashed")
			res, err := c.Resolve()
			if tt.at == atResolve {
				checkBroken(t, "Resolve", err, tt.crid, tt.child, tt.is, tt.text)
				_, err := chain.Squash(c, dst)
				checkBroken(t, "Squash", err, tt.crid, tt.child, tt.is, tt.text)
				checkNoSquash(t, f, dst)
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			err = c.Verify(res)
			if tt.at == atVerify {
				checkBroken(t, "Verify", err, tt.crid, tt.child, tt.is, tt.text)
				_, err := chain.Squash(c, dst)
				checkBroken(t, "Squash", err, tt.crid, tt.child, tt.is, tt.text)
				checkNoSquash(t, f, dst)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			_, err = c.Pages(res)
			checkBroken(t, "Pages", err, tt.crid, tt.child, tt.is, tt.text)
		})
	}
}

// checkNoSquash checks that a failed Squash left nothing in f.base.
func checkNoSquash(t *testing.T, f *fixture, dst string) {
	t.Helper()
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Squash left %s: %v", dst, err)
	}
	ents, err := os.ReadDir(f.base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"c1", "c2", "c3"}; !reflect.DeepEqual(names, want) {
		t.Errorf("after a failed Squash the directory holds %q, want %q", names, want)
	}
}

// TestTipDamage checks that damage to the tip itself is reported without
// ErrBroken (the tip is not an ancestor) but naming its crid.
func TestTipDamage(t *testing.T) {
	f := buildChain(t)
	r, k := findRun(&f.imgs[2].VMAs[0], anonStart+3*ps)
	if r == nil {
		t.Fatal("tip has no data for anon page 3")
	}
	flipByte(t, filepath.Join(f.tip(), image.PagesFile), int64(r.DataOff+k*ps))
	c, err := chain.Load(f.tip(), chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	err = c.Verify(res)
	if err == nil || errors.Is(err, chain.ErrBroken) || !errors.Is(err, image.ErrCorrupt) || !strings.Contains(err.Error(), "image crid 3") {
		t.Errorf("Verify of a damaged tip: %v; want ErrCorrupt naming crid 3, not ErrBroken", err)
	}
	dst := filepath.Join(f.base, "squashed")
	if _, err := chain.Squash(c, dst); err == nil || !errors.Is(err, image.ErrCorrupt) || !strings.Contains(err.Error(), "image crid 3") {
		t.Errorf("Squash of a damaged tip: %v; want ErrCorrupt naming crid 3", err)
	}
	checkNoSquash(t, f, dst)
}

func TestSingleImage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "solo")
	m := generations()[1] // has zero pages in both mappings
	img, _ := writeState(t, dir, 5, 0, "", &m, nil)
	c, err := chain.Load(dir, chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CRIDs(); !reflect.DeepEqual(got, []uint64{5}) {
		t.Fatalf("CRIDs = %v, want [5]", got)
	}
	if got := c.Dirs(); !reflect.DeepEqual(got, []string{dir}) {
		t.Fatalf("Dirs = %q, want [%q]", got, dir)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	var anonSrc [anonPages]int
	var fileSrc [fileWritten]int
	for i, p := range m.anon {
		anonSrc[i] = map[bool]int{true: -1, false: 0}[p == nil]
	}
	for i, p := range m.file {
		fileSrc[i] = map[bool]int{true: -1, false: 0}[p == nil]
	}
	checkContent(t, res, c.Dirs(), &m, &anonSrc, &fileSrc)
	var runs int
	for _, v := range res.VMAs {
		for _, r := range v.Pages {
			runs++
			if r.Src != 0 {
				t.Errorf("run at %#x has Src %d, want 0", r.Addr, r.Src)
			}
		}
	}
	if runs == 0 {
		t.Fatal("resolved image has no runs")
	}
	if !reflect.DeepEqual(res.VMAs, img.VMAs) {
		t.Errorf("resolved VMAs differ from the image's:\n got %+v\nwant %+v", res.VMAs, img.VMAs)
	}
	if err := c.Verify(res); err != nil {
		t.Fatal(err)
	}
	idx, err := c.Pages(res)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.anon[4]; !idx.Same(anonStart+4*ps, image.PageCRC(p), image.PageHash(p)) {
		t.Error("Same is false for a stored page")
	}
}

// zeroDataChain builds a chain of two images in which the root stores
// zero pages as data (as a writer without SkipZero does, e.g. for the
// vDSO or in older images) and the child inherits them:
//
//	anon (4 pages):  root: D Z D D            child: inherits everything
//	file (8 pages):  root: Z D D D D D D D    child: page 0 inherited (zero
//	                 data in the root), pages 2, 4, 6 zero (VMA.Zero), the
//	                 others inherited
//
// It returns the child's directory and the expected content of the tip
// (nil: zero).
func zeroDataChain(t *testing.T) (string, [4][]byte, [8][]byte) {
	t.Helper()
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "c1"), filepath.Join(base, "c2")
	anonVMA := func() image.VMA {
		return image.VMA{Start: anonStart, End: anonStart + 4*ps, Prot: 3, Flags: 2, Kind: image.KindAnon}
	}
	fileVMA := func() image.VMA {
		return image.VMA{Start: fileStart, End: fileStart + 8*ps, Prot: 3, Flags: 2, Kind: image.KindFile, Path: "/bin/true"}
	}
	var anon [4][]byte
	var file [8][]byte
	anon[0], anon[2], anon[3] = pageData(1, 0), pageData(1, 2), pageData(1, 3)
	for i := 1; i < 8; i++ {
		file[i] = pageData(1, 100+i)
	}

	w, err := writer.Create(d1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	a, fv := anonVMA(), fileVMA()
	wr, err := w.WritePages(a.Start, concat(anon[:]), 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Pages = wr.Runs
	if wr, err = w.WritePages(fv.Start, concat(file[:]), 0); err != nil {
		t.Fatal(err)
	}
	fv.Pages = wr.Runs
	if err := w.Commit(newImage(1, 0, "", a, fv)); err != nil {
		t.Fatal(err)
	}
	if w.Pages() != 12 {
		t.Fatalf("root stores %d pages, want 12 (zero pages included)", w.Pages())
	}

	for _, i := range []int{2, 4, 6} {
		file[i] = nil
	}
	w, err = writer.Create(d2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.SetParent(indexOf(t, d1))
	a, fv = anonVMA(), fileVMA()
	if wr, err = w.WritePages(a.Start, concat(anon[:]), writer.Dedup); err != nil {
		t.Fatal(err)
	}
	if len(wr.Runs) != 0 {
		t.Fatalf("child stores anon runs %+v, want all inherited", wr.Runs)
	}
	a.Inherit = wr.Same
	// Page 0 without SkipZero: the root has it (as zero data).
	if wr, err = w.WritePages(fv.Start, make([]byte, ps), writer.Dedup); err != nil {
		t.Fatal(err)
	}
	fv.Inherit = wr.Same
	if wr, err = w.WritePages(fv.Start+ps, concat(file[1:]), writer.SkipZero|writer.Dedup); err != nil {
		t.Fatal(err)
	}
	if len(wr.Runs) != 0 {
		t.Fatalf("child stores file runs %+v, want none", wr.Runs)
	}
	for _, s := range wr.Same {
		fv.Inherit = image.AppendSpan(fv.Inherit, s.Addr, s.End())
	}
	fv.Zero = wr.Zero
	wantInherit := []image.Span{{Addr: fileStart, NPages: 2}, {Addr: fileStart + 3*ps, NPages: 1},
		{Addr: fileStart + 5*ps, NPages: 1}, {Addr: fileStart + 7*ps, NPages: 1}}
	wantZero := []image.Span{{Addr: fileStart + 2*ps, NPages: 1}, {Addr: fileStart + 4*ps, NPages: 1}, {Addr: fileStart + 6*ps, NPages: 1}}
	if !reflect.DeepEqual(fv.Inherit, wantInherit) || !reflect.DeepEqual(fv.Zero, wantZero) {
		t.Fatalf("child file mapping: inherit %+v zero %+v, want %+v and %+v", fv.Inherit, fv.Zero, wantInherit, wantZero)
	}
	if err := w.Commit(newImage(2, 1, "../c1", a, fv)); err != nil {
		t.Fatal(err)
	}
	anon[1], file[0] = nil, nil
	return d2, anon, file
}

// TestSquashStoredZeroPages checks that Squash does not copy zero pages
// that a link stores as data: an anonymous mapping's are left out, a file
// mapping's are listed in Zero.
func TestSquashStoredZeroPages(t *testing.T) {
	tip, anon, file := zeroDataChain(t)
	c, err := chain.Load(tip, chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	// Resolved, the zero pages of the root are data of link 1.
	if r, _ := findRun(&res.VMAs[1], fileStart); r == nil || r.Src != 1 {
		t.Fatalf("resolved file page 0: run %+v, want data from link 1", r)
	}
	if err := c.Verify(res); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "squashed")
	if _, err := chain.Squash(c, dst); err != nil {
		t.Fatal(err)
	}
	img, err := image.Load(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.Verify(dst, img); err != nil {
		t.Fatal(err)
	}
	if got := img.TotalPages(); got != 7 {
		t.Errorf("squashed image stores %d pages, want 7 (no zero page)", got)
	}
	wantZero := []image.Span{{Addr: fileStart, NPages: 1}, {Addr: fileStart + 2*ps, NPages: 1},
		{Addr: fileStart + 4*ps, NPages: 1}, {Addr: fileStart + 6*ps, NPages: 1}}
	if got := img.VMAs[1].Zero; !reflect.DeepEqual(got, wantZero) {
		t.Errorf("squashed file mapping zero spans %+v, want %+v", got, wantZero)
	}
	if z := img.VMAs[0].Zero; len(z) != 0 {
		t.Errorf("squashed anon mapping has zero spans %+v", z)
	}
	pf := pagesFiles{}
	for vi, want := range [][][]byte{anon[:], file[:]} {
		v := &img.VMAs[vi]
		if len(v.Inherit) != 0 {
			t.Errorf("squashed vma %d inherits %+v", vi, v.Inherit)
		}
		for i, p := range want {
			addr := v.Start + uint64(i)*ps
			r, k := findRun(v, addr)
			switch {
			case p == nil && r != nil:
				t.Errorf("squashed page %#x: zero page stored as data", addr)
			case p != nil && r == nil:
				t.Errorf("squashed page %#x: no data", addr)
			case p != nil && !bytes.Equal(pf.page(t, dst, r.DataOff+k*ps), p):
				t.Errorf("squashed page %#x: wrong bytes", addr)
			}
		}
	}
}

// TestSquashLeavesChainUnmodified checks that Squash does not modify the
// chain it is given: squashing it twice gives the same image, and its tip
// still describes what is on disk.
func TestSquashLeavesChainUnmodified(t *testing.T) {
	tip, _, _ := zeroDataChain(t)
	c, err := chain.Load(tip, chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	first, err := chain.Squash(c, filepath.Join(base, "first"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := image.Load(tip)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Links[0].Image.VMAs[1].Zero, fresh.VMAs[1].Zero; !reflect.DeepEqual(got, want) {
		t.Errorf("Squash modified the tip's zero spans: now %+v, on disk %+v", got, want)
	}
	second, err := chain.Squash(c, filepath.Join(base, "second"))
	if err != nil {
		t.Fatalf("second Squash of the same chain: %v", err)
	}
	if !reflect.DeepEqual(first.VMAs, second.VMAs) {
		t.Errorf("second Squash gives VMAs\n%+v\nthe first gave\n%+v", second.VMAs, first.VMAs)
	}
}
