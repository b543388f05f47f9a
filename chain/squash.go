package chain

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/writer"
)

// squashChunk bounds one read of page data while squashing.
const squashChunk = 16 << 20

// Squash writes the chain as one self-contained image at dir (which must
// not exist): the tip's metadata, no parent, every page's data copied from
// the link that holds it. It verifies each page's CRC as it copies, so a
// damaged link never yields an image. The result keeps the tip's crid: it
// is the same checkpoint.
func Squash(c *Chain, dir string) (*image.Image, error) {
	res, err := c.Resolve()
	if err != nil {
		return nil, err
	}
	files := make([]*os.File, len(c.Links))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for k, l := range c.Links {
		if files[k], err = os.Open(filepath.Join(l.Dir, image.PagesFile)); err != nil {
			return nil, err
		}
	}
	w, err := writer.Create(dir)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	buf := make([]byte, squashChunk)
	for i := range res.VMAs {
		v := &res.VMAs[i]
		flags := writer.SkipZero
		if v.Kind == image.KindVDSO {
			flags = 0
		}
		var runs []image.PageRun
		zero := slices.Clone(v.Zero) // v.Zero is the tip image's: never append to it
		for _, r := range v.Pages {
			for done := uint64(0); done < r.NPages; {
				n := min(r.NPages-done, squashChunk/image.PageSize)
				b := buf[:n*image.PageSize]
				off := r.DataOff + done*image.PageSize
				if _, err := files[r.Src].ReadAt(b, int64(off)); err != nil {
					return nil, fmt.Errorf("read image crid %d: %w", c.Links[r.Src].Image.Header.CRID, err)
				}
				for p := range n {
					if got := image.PageCRC(b[p*image.PageSize : (p+1)*image.PageSize]); got != r.CRC[done+p] {
						l := c.Links[r.Src]
						err := &image.PageCRCError{VMA: i, Start: v.Start, End: v.End, Addr: r.Addr + (done+p)*image.PageSize, Want: r.CRC[done+p], Got: got}
						if r.Src == 0 {
							return nil, fmt.Errorf("image crid %d (%s): %w", l.Image.Header.CRID, l.Dir, err)
						}
						return nil, &BrokenError{CRID: l.Image.Header.CRID, Child: c.Links[r.Src-1].Image.Header.CRID, Dir: l.Dir, Err: err}
					}
				}
				wr, err := w.WritePages(r.Addr+done*image.PageSize, b, flags)
				if err != nil {
					return nil, err
				}
				runs = image.AppendRuns(runs, wr.Runs...)
				if v.Kind == image.KindFile {
					zero = append(zero, wr.Zero...)
				}
				done += n
			}
		}
		slices.SortFunc(zero, func(a, b image.Span) int { return cmp.Compare(a.Addr, b.Addr) })
		var merged []image.Span
		for _, z := range zero {
			merged = image.AppendSpan(merged, z.Addr, z.End())
		}
		v.Pages, v.Zero = runs, merged
	}
	res.Hashes = nil
	if err := w.Commit(res); err != nil {
		return nil, errors.Join(err, w.Abort())
	}
	return res, nil
}
