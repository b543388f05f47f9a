package chain

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/crbpf/crbpf/image"
)

// MaxDepth bounds the links of a chain (ancestors are loaded one by one;
// a crafted hint cycle cannot loop, since crids strictly decrease).
const MaxDepth = 4096

// ErrBroken matches every error about an ancestor that is missing, is not
// the image its child names, or is damaged.
var ErrBroken = errors.New("broken image chain")

// Link is one image of a chain.
type Link struct {
	Dir   string
	Image *image.Image
}

// Chain is an image and its ancestors: Links[0] is the image asked for,
// each next link the parent of the one before, the last has no parent.
type Chain struct {
	Links []Link
}

// Tip returns the image the chain was loaded for.
func (c *Chain) Tip() Link { return c.Links[0] }

// CRIDs returns the crids of the links, tip first.
func (c *Chain) CRIDs() []uint64 {
	out := make([]uint64, len(c.Links))
	for i, l := range c.Links {
		out[i] = l.Image.Header.CRID
	}
	return out
}

// Dirs returns the directories of the links, tip first: the sources that
// PageRun.Src indexes in a resolved image.
func (c *Chain) Dirs() []string {
	out := make([]string, len(c.Links))
	for i, l := range c.Links {
		out[i] = l.Dir
	}
	return out
}

// A Locator returns the directory of the image with the given crid, the
// parent of child.
type Locator func(crid uint64, child Link) (string, error)

// OnDisk finds a parent where the child's Header.Parent says it was,
// relative to the child's directory.
func OnDisk(crid uint64, child Link) (string, error) {
	hint := child.Image.Header.Parent
	if hint == "" {
		return "", fmt.Errorf("image crid %d does not say where its parent is", child.Image.Header.CRID)
	}
	if filepath.IsAbs(hint) {
		return hint, nil
	}
	return filepath.Join(child.Dir, hint), nil
}

// BrokenError is a missing, wrong or damaged ancestor.
type BrokenError struct {
	CRID  uint64 // the ancestor's crid (as its child names it)
	Child uint64 // crid of the image that names it
	Dir   string // where it was looked for, if known
	Err   error
}

func (e *BrokenError) Error() string {
	where := ""
	if e.Dir != "" {
		where = " at " + e.Dir
	}
	return fmt.Sprintf("parent image crid %d of crid %d%s: %v", e.CRID, e.Child, where, e.Err)
}

func (e *BrokenError) Unwrap() []error { return []error{ErrBroken, e.Err} }

// Load loads the image in dir and its ancestors, found with locate, and
// checks each ancestor's crid. It reads metadata only (image.Load checks
// each pages file's size); Verify checks the data.
func Load(dir string, locate Locator) (*Chain, error) {
	img, err := image.Load(dir)
	if err != nil {
		return nil, err
	}
	c := &Chain{Links: []Link{{Dir: dir, Image: img}}}
	for {
		child := c.Links[len(c.Links)-1]
		pc := child.Image.Header.ParentCRID
		if pc == 0 || !inherits(child.Image) {
			// Self-contained: a full image, or an incremental one that
			// takes nothing from its parent (version 1 images may name
			// a parent they never needed).
			return c, nil
		}
		if len(c.Links) >= MaxDepth {
			return nil, fmt.Errorf("image %s: chain deeper than %d images: %w", dir, MaxDepth, ErrBroken)
		}
		broken := &BrokenError{CRID: pc, Child: child.Image.Header.CRID}
		pdir, err := locate(pc, child)
		if err != nil {
			broken.Err = err
			return nil, broken
		}
		broken.Dir = pdir
		pimg, err := image.Load(pdir)
		if err != nil {
			if _, serr := os.Stat(pdir); errors.Is(serr, fs.ErrNotExist) {
				err = &wrapped{msg: "missing (no such directory)", err: err}
			}
			broken.Err = trimDir(err, pdir)
			return nil, broken
		}
		if got := pimg.Header.CRID; got != pc {
			broken.Err = fmt.Errorf("the image there is crid %d", got)
			return nil, broken
		}
		if want := child.Image.Header.ParentID; want != "" && pimg.Header.ID != want {
			broken.Err = fmt.Errorf("the image there is another checkpoint with that crid (id %s, want %s)", pimg.Header.ID, want)
			return nil, broken
		}
		c.Links = append(c.Links, Link{Dir: pdir, Image: pimg})
	}
}

// inherits reports whether img takes any page from its parent.
func inherits(img *image.Image) bool {
	for _, v := range img.VMAs {
		if len(v.Inherit) > 0 {
			return true
		}
	}
	return false
}

// trimDir removes a leading "DIR: " from err's text, which BrokenError
// already says.
func trimDir(err error, dir string) error {
	if msg, ok := strings.CutPrefix(err.Error(), dir+": "); ok {
		return &wrapped{msg: msg, err: err}
	}
	return err
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// Resolve returns the tip's image with every inherited span replaced by the
// runs of the ancestor that holds the data (PageRun.Src is the index of
// that link). The result has no Inherit spans; it is not a valid image to
// encode (its runs point into several pages files): restore it, or Squash
// it. An inherited page that its parent has no data for is an error.
func (c *Chain) Resolve() (*image.Image, error) {
	// Walk from the root: resolved holds the previous link's runs, sorted
	// by address over all its VMAs.
	var resolved []image.PageRun
	var out *image.Image
	for k := len(c.Links) - 1; k >= 0; k-- {
		l := c.Links[k]
		img := *l.Image
		img.VMAs = slices.Clone(img.VMAs)
		var all []image.PageRun
		for i := range img.VMAs {
			v := &img.VMAs[i]
			runs := make([]image.PageRun, 0, len(v.Pages)+len(v.Inherit))
			for _, r := range v.Pages {
				r.Src = k
				runs = append(runs, r)
			}
			for _, s := range v.Inherit {
				got, err := slice(resolved, s.Addr, s.End())
				if err != nil {
					return nil, &BrokenError{CRID: l.Image.Header.ParentCRID, Child: l.Image.Header.CRID,
						Dir: c.Links[k+1].Dir, Err: err}
				}
				runs = append(runs, got...)
			}
			slices.SortFunc(runs, func(a, b image.PageRun) int { return cmp.Compare(a.Addr, b.Addr) })
			v.Pages, v.Inherit = runs, nil
			all = append(all, runs...)
		}
		resolved, out = all, &img
	}
	out.Header.ParentCRID, out.Header.ParentID, out.Header.Parent = 0, "", ""
	return out, nil
}

// runAt finds the run of runs (sorted by address, disjoint) that holds
// addr: its index and true, or the index of the first run after addr and
// false.
func runAt(runs []image.PageRun, addr uint64) (int, bool) {
	return slices.BinarySearchFunc(runs, addr, func(r image.PageRun, a uint64) int {
		switch {
		case r.End() <= a:
			return -1
		case r.Addr > a:
			return 1
		}
		return 0
	})
}

// slice returns the parts of runs (sorted, disjoint) covering [start, end),
// or an error naming the first page none covers.
func slice(runs []image.PageRun, start, end uint64) ([]image.PageRun, error) {
	i, _ := runAt(runs, start)
	var out []image.PageRun
	for addr := start; addr < end; i++ {
		if i >= len(runs) || runs[i].Addr > addr {
			return nil, fmt.Errorf("no data for inherited page %#x", addr)
		}
		r := runs[i]
		a, b := max(r.Addr, addr), min(r.End(), end)
		k, n := (a-r.Addr)/image.PageSize, (b-a)/image.PageSize
		out = append(out, image.PageRun{Addr: a, NPages: n, DataOff: r.DataOff + k*image.PageSize,
			CRC: r.CRC[k : k+n : k+n], Src: r.Src})
		addr = b
	}
	return out, nil
}

// Verify checks the CRC-32C of every page the resolved image res (from
// c.Resolve) reads, link by link; an error names the link's crid.
func (c *Chain) Verify(res *image.Image) error {
	for k, l := range c.Links {
		if err := image.VerifySource(l.Dir, res, k); err != nil {
			if k == 0 {
				return fmt.Errorf("image crid %d (%s): %w", l.Image.Header.CRID, l.Dir, err)
			}
			return &BrokenError{CRID: l.Image.Header.CRID, Child: c.Links[k-1].Image.Header.CRID, Dir: l.Dir, Err: err}
		}
	}
	return nil
}
