package image

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PageCRC returns the CRC-32C (Castagnoli) of p, the checksum PageRun.CRC
// holds for each page. hash/crc32 uses the CPU's CRC32 instruction where
// there is one.
func PageCRC(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// Load reads and validates the image in directory dir: it decodes
// dir/meta.crbpf (see Decode) and checks that dir/pages.crbpf holds every
// run (ErrTruncated otherwise). It does not read the page data: Verify does.
// Errors start with dir.
func Load(dir string) (*Image, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &kindError{msg: fmt.Sprintf("%s is not a crbpf image (no such directory)", dir), kind: ErrNotImage, cause: err}
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, &kindError{msg: fmt.Sprintf("%s is not a crbpf image (not a directory)", dir), kind: ErrNotImage}
	}
	b, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	img, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	pagesPath := filepath.Join(dir, PagesFile)
	pi, err := os.Stat(pagesPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &kindError{msg: fmt.Sprintf("%s: %s is missing", dir, PagesFile), kind: ErrTruncated, cause: err}
	case err != nil:
		return nil, err
	case !pi.Mode().IsRegular():
		return nil, &kindError{msg: fmt.Sprintf("%s: %s is not a regular file", dir, PagesFile), kind: ErrCorrupt}
	}
	if need := img.DataEnd(); uint64(pi.Size()) < need {
		return nil, &TruncatedError{File: pagesPath, Want: int64(need), Got: pi.Size()}
	}
	return img, nil
}

// readMeta returns the content of dir/meta.crbpf, refusing files larger
// than MaxMetaSize before reading them.
func readMeta(dir string) ([]byte, error) {
	path := filepath.Join(dir, MetaFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &kindError{msg: fmt.Sprintf("%s is not a crbpf image (no %s)", dir, MetaFile), kind: ErrNotImage, cause: err}
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, &kindError{msg: fmt.Sprintf("%s is not a crbpf image (%s is not a regular file)", dir, MetaFile), kind: ErrNotImage}
	case fi.Size() > MaxMetaSize:
		return nil, &kindError{msg: fmt.Sprintf("%s: %d bytes, limit %d", path, fi.Size(), MaxMetaSize), kind: ErrCorrupt}
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// Verify reads every run of img from dir/pages.crbpf and checks the
// CRC-32C of each page. The first mismatch is returned as a *PageCRCError
// naming the VMA and page (errors.Is(err, ErrCorrupt)); a short file gives
// a *TruncatedError. img should come from Load(dir); it is validated again
// (cheap next to reading the data) so a hand-built image cannot make Verify
// misbehave.
//
// The file is read in address order of the data, in reads of up to
// verifyBufSize that cover neighbouring runs together.
func Verify(dir string, img *Image) error {
	if err := img.Validate(); err != nil {
		return err
	}
	return verify(dir, img, -1)
}

// VerifySource is Verify for the runs of a resolved chain (package chain)
// whose data is in dir: those with PageRun.Src == src. img is not
// validated (its runs' data offsets refer to several files).
func VerifySource(dir string, img *Image, src int) error {
	return verify(dir, img, src)
}

// verify checks the runs with Src == src (all with src < 0).
func verify(dir string, img *Image, src int) error {
	path := filepath.Join(dir, PagesFile)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var spans []dataSpan
	var need uint64
	for i := range img.VMAs {
		for j, r := range img.VMAs[i].Pages {
			if src >= 0 && r.Src != src {
				continue
			}
			spans = append(spans, dataSpan{off: r.DataOff, end: r.DataEnd(), vma: i, run: j})
			need = max(need, r.DataEnd())
		}
	}
	if uint64(fi.Size()) < need {
		return &TruncatedError{File: path, Want: int64(need), Got: fi.Size()}
	}
	if len(spans) == 0 {
		return nil
	}
	cmpOff := func(a, b dataSpan) int { return cmp.Compare(a.off, b.off) }
	if !slices.IsSortedFunc(spans, cmpOff) {
		slices.SortFunc(spans, cmpOff)
	}
	// clusterEnd[k]: end of the data of span k and the spans after it that
	// follow with gaps of at most verifyMaxGap; one read may cover them.
	clusterEnd := make([]uint64, len(spans))
	for k := len(spans) - 1; k >= 0; k-- {
		clusterEnd[k] = spans[k].end
		if k+1 < len(spans) && spans[k+1].off >= spans[k].end && spans[k+1].off-spans[k].end <= verifyMaxGap {
			clusterEnd[k] = clusterEnd[k+1]
		}
	}

	buf := make([]byte, min(verifyBufSize, need))
	var winOff, winEnd uint64 // buf[:winEnd-winOff] holds the file range [winOff, winEnd)
	for k, s := range spans {
		v := &img.VMAs[s.vma]
		r := &v.Pages[s.run]
		for p := range r.NPages {
			off := r.DataOff + p*PageSize
			if off < winOff || off+PageSize > winEnd {
				n := min(uint64(len(buf)), clusterEnd[k]-off)
				if _, err := f.ReadAt(buf[:n], int64(off)); err != nil {
					return fmt.Errorf("read %s at %#x: %w", path, off, err)
				}
				winOff, winEnd = off, off+n
			}
			page := buf[off-winOff : off-winOff+PageSize]
			if got := PageCRC(page); got != r.CRC[p] {
				return &PageCRCError{VMA: s.vma, Start: v.Start, End: v.End, Addr: r.Addr + p*PageSize, Want: r.CRC[p], Got: got}
			}
		}
	}
	return nil
}

const (
	verifyBufSize = 8 << 20 // bytes per read
	verifyMaxGap  = 64 << 10
)
