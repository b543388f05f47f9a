package chain_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/image"
)

// pagesOf returns the content of every page with data of a resolved image
// whose runs point into dirs, by address.
func pagesOf(t *testing.T, img *image.Image, dirs []string) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	for _, v := range img.VMAs {
		for _, r := range v.Pages {
			b, err := os.ReadFile(filepath.Join(dirs[r.Src], image.PagesFile))
			if err != nil {
				t.Fatal(err)
			}
			for p := range r.NPages {
				off := r.DataOff + p*image.PageSize
				out[r.Addr+p*image.PageSize] = b[off : off+image.PageSize]
			}
		}
	}
	return out
}

// TestFold: folding a tip onto its self-contained parent gives the same
// memory as squashing, as a valid self-contained image whose pages file is
// the parent's plus the tip's (nothing of the parent's copied); the parent
// image stays readable; a second fold onto the folded image works too.
func TestFold(t *testing.T) {
	f := buildChain(t)
	c, err := chain.Load(f.dirs[1], chain.OnDisk) // crid 2 on the root
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := pagesOf(t, res, c.Dirs())
	folded := filepath.Join(f.base, "folded")
	img, err := chain.Fold(c, folded)
	if err != nil {
		t.Fatal(err)
	}
	got, err := image.Load(folded)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.Verify(folded, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, img) || got.Header.CRID != 2 || got.Header.ID != f.imgs[1].Header.ID || got.Header.ParentCRID != 0 {
		t.Fatalf("folded image header %+v (returned %+v)", got.Header, img.Header)
	}
	for _, v := range got.VMAs {
		if len(v.Inherit) > 0 {
			t.Errorf("folded image inherits in %#x-%#x", v.Start, v.End)
		}
	}
	if !reflect.DeepEqual(got.VMAs[1].Zero, res.VMAs[1].Zero) {
		t.Errorf("zero spans %+v, want %+v", got.VMAs[1].Zero, res.VMAs[1].Zero)
	}
	if gotPages := pagesOf(t, got, []string{folded}); !reflect.DeepEqual(gotPages, want) {
		t.Errorf("folded memory differs from the chain's (%d pages, want %d)", len(gotPages), len(want))
	}
	// The pages file is the parent's (same inode), grown by the tip's.
	var pst, fst, tst os.FileInfo
	for _, x := range []struct {
		fi  *os.FileInfo
		dir string
	}{{&pst, f.dirs[0]}, {&fst, folded}, {&tst, f.dirs[1]}} {
		if *x.fi, err = os.Stat(filepath.Join(x.dir, image.PagesFile)); err != nil {
			t.Fatal(err)
		}
	}
	if !os.SameFile(pst, fst) || fst.Size() != pst.Size() || fst.Size() == 0 {
		t.Errorf("folded pages file: same as the parent's %v, %d bytes (parent's now %d)", os.SameFile(pst, fst), fst.Size(), pst.Size())
	}
	if h, err := image.ReadHashes(folded, got); err != nil || uint64(len(h))*image.PageSize != uint64(fst.Size()) {
		t.Errorf("folded hashes: %d for %d bytes (%v)", len(h), fst.Size(), err)
	}
	// The parent is still a valid image.
	if p, err := image.Load(f.dirs[0]); err != nil || image.Verify(f.dirs[0], p) != nil {
		t.Errorf("the parent after the fold: %v", err)
	}
	// Crid 3 on the folded image (moved where crid 2 was) folds again.
	if err := os.Rename(f.dirs[1], filepath.Join(f.base, "old2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(folded, f.dirs[1]); err != nil {
		t.Fatal(err)
	}
	c3, err := chain.Load(f.dirs[2], chain.OnDisk)
	if err != nil || len(c3.Links) != 2 {
		t.Fatalf("crid 3 on the folded crid 2: %v", err)
	}
	res3, err := c3.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want3 := pagesOf(t, res3, c3.Dirs())
	folded3 := filepath.Join(f.base, "folded3")
	if _, err := chain.Fold(c3, folded3); err != nil {
		t.Fatal(err)
	}
	got3, err := image.Load(folded3)
	if err != nil || image.Verify(folded3, got3) != nil {
		t.Fatalf("second fold: %v", err)
	}
	if g := pagesOf(t, got3, []string{folded3}); !reflect.DeepEqual(g, want3) {
		t.Errorf("second fold: memory differs from the chain's")
	}
	for a, p := range want3 {
		if bytes.Equal(p, make([]byte, image.PageSize)) {
			t.Errorf("page %#x stored as zeros", a)
		}
	}
}

// TestFoldRefuses: a chain of three, or one with more dead data than live,
// is not folded, and nothing is left behind.
func TestFoldRefuses(t *testing.T) {
	f := buildChain(t)
	c, err := chain.Load(f.dirs[2], chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(f.base, "x")
	if _, err := chain.Fold(c, dst); err == nil {
		t.Fatal("fold of a chain of three succeeded")
	}
	// A tip whose pages file is mostly dead data: grow its hashes and
	// pages with slots no run uses.
	c2, err := chain.Load(f.dirs[1], chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	tip := c2.Links[0]
	h, err := image.ReadHashes(tip.Dir, tip.Image)
	if err != nil {
		t.Fatal(err)
	}
	dead := make([]uint64, 200)
	b, index := image.EncodeHashes(append(h, dead...))
	tip.Image.Hashes = index
	if err := os.WriteFile(filepath.Join(tip.Dir, image.HashesFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Fold(c2, dst); !errors.Is(err, chain.ErrFoldWaste) {
		t.Fatalf("fold with mostly dead data: %v, want ErrFoldWaste", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(f.base, ".x*")); len(ents) > 0 || func() bool { _, err := os.Stat(dst); return err == nil }() {
		t.Errorf("fold left %v", ents)
	}
}
