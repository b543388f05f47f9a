package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// zpPages is the number of pages of each of zeropages.c's two mappings.
const zpPages = 16

// zpBytes returns what page page of zeropages.c's file mapping (isFile)
// or anonymous mapping holds at step: a mirror of page_gen, want_byte,
// file_byte and pattern_byte in testdata/zeropages.c.
func zpBytes(isFile bool, step, page int) []byte {
	gen := 0 // base content
	switch {
	case step >= 3 && (page == 0 || page == 2 || page == 5):
		gen = step
	case page > 3 || step < 1:
	case step >= 2 && page == 0:
		gen = -1 // zero
	case step >= 2 && page == 2:
		gen = 2
	default:
		gen = 1
	}
	b := make([]byte, image.PageSize)
	for off := range b {
		switch {
		case gen > 0:
			b[off] = byte((gen*101+page*13+off*7)%241 + 3)
		case gen == 0 && isFile:
			b[off] = byte((page*31+off)%251 + 1)
		}
	}
	return b
}

// zeroCheckpointResult is checkpoint --json with the fields of
// incremental checkpoints.
type zeroCheckpointResult struct {
	checkpointResult
	ParentCRID     uint64 `json:"parent_crid"`
	InheritedPages uint64 `json:"inherited_pages"`
	ZeroPages      uint64 `json:"zero_pages"`
}

// zeroCheckpoint runs `crbpf checkpoint --json -o img flags... pid`,
// requires exit 0 and returns its output.
func zeroCheckpoint(t *testing.T, pid int, img string, flags ...string) zeroCheckpointResult {
	t.Helper()
	args := append([]string{"checkpoint", "--json", "-o", img}, flags...)
	args = append(args, strconv.Itoa(pid))
	stdout, stderr, code := testutil.RunCrbpf(t, args...)
	if code != exitOK {
		t.Fatalf("crbpf %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	r := zeroCheckpointResult{checkpointResult: parseCheckpointJSON(t, stdout)}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("checkpoint --json: %v\n%s", err, stdout)
	}
	return r
}

// zpStep sends SIGUSR1 to pid, whose stdout is out, and requires "STEP n".
func zpStep(t *testing.T, out *testutil.Target, pid, n int) {
	t.Helper()
	kill(t, pid, unix.SIGUSR1)
	if l, want := out.WaitLine(t, "STEP", timeout), fmt.Sprintf("STEP %d", n); l != want {
		t.Fatalf("pid %d: %q, want %q\n%s", pid, l, want, out.Log())
	}
}

// zpCheck sends SIGUSR2 to pid, whose stdout is out, and requires
// "CHECK OK step=n": its memory and data file are what step n says.
func zpCheck(t *testing.T, out *testutil.Target, pid, n int) {
	t.Helper()
	kill(t, pid, unix.SIGUSR2)
	if l, want := out.WaitLine(t, "CHECK", timeout), fmt.Sprintf("CHECK OK step=%d", n); l != want {
		t.Fatalf("pid %d: %q, want %q\n%s", pid, l, want, out.Log())
	}
}

// Where a page of an image's VMA comes from.
const (
	srcNone    = "none" // no data: zero (anon) or the file's content (file)
	srcStored  = "stored"
	srcZero    = "zero"
	srcInherit = "inherit"
)

// zpMapping finds the VMA of img that holds the whole zeropages mapping at
// addr and checks its kind.
func zpMapping(t *testing.T, name string, img *image.Image, addr uint64, kind string) *image.VMA {
	t.Helper()
	end := addr + zpPages*image.PageSize
	for i := range img.VMAs {
		v := &img.VMAs[i]
		if !v.Contains(addr) {
			continue
		}
		if end > v.End {
			t.Fatalf("%s: VMA %#x-%#x holds only part of the %s mapping %#x-%#x", name, v.Start, v.End, kind, addr, end)
		}
		if v.Kind != kind {
			t.Fatalf("%s: VMA %#x-%#x (%s) of the %s mapping has kind %q", name, v.Start, v.End, v.Name, kind, v.Kind)
		}
		return v
	}
	t.Fatalf("%s: no VMA holds the %s mapping at %#x", name, kind, addr)
	return nil
}

// pageSources returns where each page of the zpPages pages at addr comes
// from in v; a page listed twice gets both names joined by "+".
func pageSources(v *image.VMA, addr uint64) []string {
	src := make([]string, zpPages)
	mark := func(a, b uint64, what string) {
		for p := max(a, addr); p < min(b, addr+zpPages*image.PageSize); p += image.PageSize {
			i := (p - addr) / image.PageSize
			if src[i] == "" {
				src[i] = what
			} else {
				src[i] += "+" + what
			}
		}
	}
	for _, r := range v.Pages {
		mark(r.Addr, r.End(), srcStored)
	}
	for _, s := range v.Zero {
		mark(s.Addr, s.End(), srcZero)
	}
	for _, s := range v.Inherit {
		mark(s.Addr, s.End(), srcInherit)
	}
	for i := range src {
		if src[i] == "" {
			src[i] = srcNone
		}
	}
	return src
}

// wantSources builds the expected page sources: pages listed in special
// get theirs, all others srcNone.
func wantSources(special map[int]string) []string {
	s := make([]string, zpPages)
	for i := range s {
		s[i] = srcNone
		if w, ok := special[i]; ok {
			s[i] = w
		}
	}
	return s
}

// zpImage is one loaded image of the test.
type zpImage struct {
	name, dir string
	img       *image.Image
	pages     *os.File
}

func loadZPImage(t *testing.T, name, dir string) zpImage {
	t.Helper()
	img, err := image.Load(dir)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := image.Verify(dir, img); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f, err := os.Open(filepath.Join(dir, image.PagesFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return zpImage{name: name, dir: dir, img: img, pages: f}
}

// storedPage returns the stored bytes of the page at addr of v.
func (zi zpImage) storedPage(t *testing.T, v *image.VMA, addr uint64) []byte {
	t.Helper()
	for _, r := range v.Pages {
		if addr >= r.Addr && addr < r.End() {
			b := make([]byte, image.PageSize)
			if _, err := zi.pages.ReadAt(b, int64(r.DataOff+(addr-r.Addr))); err != nil {
				t.Fatalf("%s: read page %#x: %v", zi.name, addr, err)
			}
			return b
		}
	}
	t.Fatalf("%s: page %#x is not stored", zi.name, addr)
	return nil
}

// noZeroStored fails for every stored page of every VMA (but the vDSO,
// which is kept whole) that is all zero.
func (zi zpImage) noZeroStored(t *testing.T) {
	t.Helper()
	zero := make([]byte, image.PageSize)
	b := make([]byte, image.PageSize)
	var stored int
	for _, v := range zi.img.VMAs {
		if v.Kind == image.KindVDSO {
			continue
		}
		for _, r := range v.Pages {
			for k := uint64(0); k < r.NPages; k++ {
				if _, err := zi.pages.ReadAt(b, int64(r.DataOff+k*image.PageSize)); err != nil {
					t.Fatalf("%s: read page %#x: %v", zi.name, r.Addr+k*image.PageSize, err)
				}
				stored++
				if bytes.Equal(b, zero) {
					t.Errorf("%s: page %#x of %s VMA %#x-%#x (%s) is stored, and all zero",
						zi.name, r.Addr+k*image.PageSize, v.Kind, v.Start, v.End, v.Name)
				}
			}
		}
	}
	t.Logf("%s: %d stored pages outside the vDSO, none all zero", zi.name, stored)
}

// checkMapping checks where each page of the zeropages mapping at addr
// comes from in the image, and that the stored ones hold what step says.
func (zi zpImage) checkMapping(t *testing.T, addr uint64, kind string, step int, want []string) {
	t.Helper()
	v := zpMapping(t, zi.name, zi.img, addr, kind)
	got := pageSources(v, addr)
	bad := false
	for i := range want {
		if got[i] != want[i] {
			bad = true
			t.Errorf("%s: %s page %d (%#x): %s, want %s", zi.name, kind, i, addr+uint64(i)*image.PageSize, got[i], want[i])
		}
	}
	for i := range got {
		if got[i] != srcStored {
			continue
		}
		pa := addr + uint64(i)*image.PageSize
		if b, w := zi.storedPage(t, v, pa), zpBytes(kind == image.KindFile, step, i); !bytes.Equal(b, w) {
			bad = true
			t.Errorf("%s: stored data of %s page %d (%#x) is not its content at step %d", zi.name, kind, i, pa, step)
		}
	}
	if bad {
		t.Logf("%s: VMA %#x-%#x %s: pages %+v zero %+v inherit %+v", zi.name, v.Start, v.End, v.Kind, v.Pages, v.Zero, v.Inherit)
	}
}

// spanPages sums the pages of the zero (or inherited) spans of img.
func spanPages(img *image.Image, inherit bool) uint64 {
	var n uint64
	for _, v := range img.VMAs {
		spans := v.Zero
		if inherit {
			spans = v.Inherit
		}
		for _, s := range spans {
			n += s.NPages
		}
	}
	return n
}

// TestZeroPages: all-zero pages are never stored as data, in full or
// incremental images, and a page that became zero since the parent is
// recorded as zero, not taken from the parent. zeropages.c writes a
// pattern into pages 0-3 of a private file mapping and of anonymous
// memory (step 1, full checkpoint c0), then zeroes page 0 and rewrites page
// 2 of both (step 2, incremental checkpoint c1 on c0, and full checkpoint
// f2). In the images, file page 0 is a zero span, anonymous page 0 has no
// data at all, page 2 is stored, pages 1 and 3 are inherited (c1) or
// stored (f2); no stored page anywhere is all zero. Each image restarts to
// a copy whose memory is exactly that of its step, and whose file mapping
// still is private and writable.
func TestZeroPages(t *testing.T) {
	testutil.RequireRoot(t)
	dataDir := t.TempDir()
	orig := testutil.StartTarget(t, target(t, "zeropages"), dataDir)
	ready := orig.WaitLine(t, "READY", timeout)
	f := fields(ready)
	fileAddr, err1 := strconv.ParseUint(f["file"], 0, 64)
	anonAddr, err2 := strconv.ParseUint(f["anon"], 0, 64)
	if err1 != nil || err2 != nil || fileAddr == 0 || anonAddr == 0 {
		t.Fatalf("zeropages: bad READY line %q\n%s", ready, orig.Log())
	}

	imgs := t.TempDir() // c1 finds its parent c0 next to it
	c0Dir, c1Dir, f2Dir := filepath.Join(imgs, "c0"), filepath.Join(imgs, "c1"), filepath.Join(imgs, "f2")

	zpCheck(t, orig, orig.PID, 0)
	zpStep(t, orig, orig.PID, 1)
	zpCheck(t, orig, orig.PID, 1)
	c0 := zeroCheckpoint(t, orig.PID, c0Dir)
	zpStep(t, orig, orig.PID, 2)
	zpCheck(t, orig, orig.PID, 2)
	c1 := zeroCheckpoint(t, orig.PID, c1Dir, "--parent", c0Dir)
	f2 := zeroCheckpoint(t, orig.PID, f2Dir)

	// What checkpoint --json says.
	if c1.ParentCRID != c0.CRID {
		t.Errorf("c1: parent_crid %d, want c0's crid %d", c1.ParentCRID, c0.CRID)
	}
	if c1.InheritedPages == 0 {
		t.Errorf("c1: inherited_pages 0: nothing taken from the parent")
	}
	for _, r := range []struct {
		name string
		cp   zeroCheckpointResult
	}{{"c1", c1}, {"f2", f2}} {
		if r.cp.ZeroPages < 1 {
			t.Errorf("%s: zero_pages %d, want >= 1 (page 0 of the file mapping)", r.name, r.cp.ZeroPages)
		}
	}
	for _, r := range []struct {
		name string
		cp   zeroCheckpointResult
	}{{"c0", c0}, {"f2", f2}} {
		if r.cp.ParentCRID != 0 || r.cp.InheritedPages != 0 {
			t.Errorf("%s (no --parent): parent_crid %d, inherited_pages %d, want 0 and 0", r.name, r.cp.ParentCRID, r.cp.InheritedPages)
		}
	}

	// What the images hold.
	i0, i1, i2 := loadZPImage(t, "c0", c0Dir), loadZPImage(t, "c1", c1Dir), loadZPImage(t, "f2", f2Dir)
	for _, x := range []struct {
		zi     zpImage
		cp     zeroCheckpointResult
		parent uint64
	}{{i0, c0, 0}, {i1, c1, c0.CRID}, {i2, f2, 0}} {
		h := x.zi.img.Header
		if h.CRID != x.cp.CRID || h.ParentCRID != x.parent {
			t.Errorf("%s: header crid %d parent_crid %d, want %d and %d", x.zi.name, h.CRID, h.ParentCRID, x.cp.CRID, x.parent)
		}
		if n := spanPages(x.zi.img, false); n != x.cp.ZeroPages {
			t.Errorf("%s: zero_pages %d in --json, but the image has %d pages in zero spans", x.zi.name, x.cp.ZeroPages, n)
		}
		if n := spanPages(x.zi.img, true); n != x.cp.InheritedPages {
			t.Errorf("%s: inherited_pages %d in --json, but the image has %d pages in inherited spans", x.zi.name, x.cp.InheritedPages, n)
		}
		x.zi.noZeroStored(t)
	}
	// c0, step 1: pages 0-3 differ from the file's content (file) and from
	// zero (anon): stored. Pages 4-15: no data.
	step1 := wantSources(map[int]string{0: srcStored, 1: srcStored, 2: srcStored, 3: srcStored})
	i0.checkMapping(t, fileAddr, image.KindFile, 1, step1)
	i0.checkMapping(t, anonAddr, image.KindAnon, 1, step1)
	// c1, step 2 on c0: page 0 became zero (a zero span in the file
	// mapping, where no data would mean the file's content; nothing in
	// anonymous memory, and not inherited from c0 either), page 2 changed
	// (stored), pages 1 and 3 are c0's.
	i1.checkMapping(t, fileAddr, image.KindFile, 2,
		wantSources(map[int]string{0: srcZero, 1: srcInherit, 2: srcStored, 3: srcInherit}))
	i1.checkMapping(t, anonAddr, image.KindAnon, 2,
		wantSources(map[int]string{1: srcInherit, 2: srcStored, 3: srcInherit}))
	// f2, step 2 without a parent: the same, with pages 1 and 3 stored.
	i2.checkMapping(t, fileAddr, image.KindFile, 2,
		wantSources(map[int]string{0: srcZero, 1: srcStored, 2: srcStored, 3: srcStored}))
	i2.checkMapping(t, anonAddr, image.KindAnon, 2,
		wantSources(map[int]string{1: srcStored, 2: srcStored, 3: srcStored}))

	// Restored copies (new pids: the original runs on) check their memory
	// and DIR/data, then write their mappings again (step 3 rewrites pages
	// 0 and 2 and writes file page 5 for the first time).
	pids := map[int]string{orig.PID: "original"}
	for _, x := range []struct {
		name, dir string
		step      int
	}{{"c1", c1Dir, 2}, {"f2", f2Dir, 2}, {"c0", c0Dir, 1}} {
		out, pid := restartDetached(t, x.dir)
		if other, ok := pids[pid]; ok {
			t.Fatalf("restart %s: restored as pid %d, the pid of the %s, which is alive", x.name, pid, other)
		}
		pids[pid] = "copy restored from " + x.name
		zpCheck(t, out, pid, x.step)
		for s := x.step + 1; s <= 3; s++ {
			zpStep(t, out, pid, s)
			zpCheck(t, out, pid, s)
		}
	}

	// The original was not changed by any of this.
	zpCheck(t, orig, orig.PID, 2)
	zpStep(t, orig, orig.PID, 3)
	zpCheck(t, orig, orig.PID, 3)
	for _, l := range orig.Lines() {
		if strings.Contains(l, "BAD") {
			t.Errorf("original printed %q", l)
		}
	}
}
