package chain

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/crbpf/crbpf/image"
	"golang.org/x/sys/unix"
)

// ErrFoldWaste is returned by Fold when the folded image would carry more
// dead data than live: squash instead.
var ErrFoldWaste = errors.New("too much dead data to fold: squash instead")

// Fold writes the two-image chain c (a tip whose parent is
// self-contained) as one self-contained image at dir, cheaply: dir's
// pages file is the parent's, hard-linked, with the tip's pages file
// appended, so only the tip's data is copied. The parent must not be used
// as an image once the result is in use (its pages file is shared and
// grown). Dead data (slots no run refers to) is carried over; when it
// would exceed the live data, Fold returns ErrFoldWaste and writes
// nothing. dir must be on the parent's file system.
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
	res.Hashes = nil

	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("fold into %s: %w", dir, os.ErrExist)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	pages := filepath.Join(tmp, image.PagesFile)
	if err := os.Link(filepath.Join(parent.Dir, image.PagesFile), pages); err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	if err := appendFile(pages, filepath.Join(tip.Dir, image.PagesFile), int64(base), int64(len(th))*image.PageSize); err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	hb, index := image.EncodeHashes(append(ph[:len(ph):len(ph)], th...))
	res.Hashes = index
	if err := writeSync(filepath.Join(tmp, image.HashesFile), hb); err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	meta, err := os.OpenFile(filepath.Join(tmp, image.MetaFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	err = image.Encode(meta, res)
	if err == nil {
		err = meta.Sync()
	}
	if cerr := meta.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		return nil, fmt.Errorf("fold: %w", os.NewSyscallError("renameat2", err))
	}
	ok = true
	return res, nil
}

// appendFile writes n bytes of src at offset off of dst (which must be
// exactly off bytes long) and fsyncs dst.
func appendFile(dst, src string, off, n int64) error {
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	fi, err := out.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != off {
		return fmt.Errorf("%s is %d bytes, its hashes say %d", dst, fi.Size(), off)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := out.Seek(off, io.SeekStart); err != nil {
		return err
	}
	if got, err := io.CopyN(out, in, n); err != nil {
		return fmt.Errorf("append %s: %d of %d bytes: %w", src, got, n, err)
	}
	return out.Sync()
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
