package chain

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/writer"
)

// ErrFoldWaste is returned by Fold when the folded image would carry more
// dead data than live: squash instead.
var ErrFoldWaste = errors.New("too much dead data to fold: squash instead")

// Fold writes the two-image chain c (a tip whose parent is
// self-contained) as one self-contained image at dir, cheaply: dir's
// pages file is the parent's, hard-linked, with the tip's pages file
// appended, so only the tip's data is copied. The parent stays a valid
// image (its pages file only grows), but must not be folded onto again.
// Dead data (slots no run refers to) is carried over; when it would exceed
// the live data, Fold returns ErrFoldWaste and writes nothing. dir must be
// on the parent's file system; it is written by writer.Extend, with the
// writer's crash-safety protocol.
func Fold(c *Chain, dir string) (*image.Image, error) {
	if len(c.Links) != 2 {
		return nil, fmt.Errorf("fold: a chain of %d images, want a tip and a self-contained parent", len(c.Links))
	}
	res, err := c.Resolve()
	if err != nil {
		return nil, err
	}
	tip, parent := c.Links[0], c.Links[1]
	ph, err := image.ReadHashes(parent.Dir, parent.Image)
	if err != nil {
		return nil, err
	}
	th, err := image.ReadHashes(tip.Dir, tip.Image)
	if err != nil {
		return nil, err
	}
	base := uint64(len(ph)) * image.PageSize
	var live uint64
	for i := range res.VMAs {
		for j := range res.VMAs[i].Pages {
			r := &res.VMAs[i].Pages[j]
			if r.Src == 0 {
				r.DataOff += base
			}
			r.Src = 0
			live += r.NPages
		}
	}
	if total := uint64(len(ph) + len(th)); total > 2*live {
		return nil, ErrFoldWaste
	}
	w, err := writer.Extend(dir, parent.Dir, ph)
	if err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	defer w.Abort()
	if off, err := w.AppendFile(filepath.Join(tip.Dir, image.PagesFile), th); err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	} else if off != base {
		return nil, fmt.Errorf("fold: the tip's pages start at %#x, want %#x", off, base)
	}
	if err := w.Commit(res); err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	return res, nil
}
