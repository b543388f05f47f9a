package writer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/crbpf/crbpf/image"
)

// ErrClosed is returned by WritePages and Commit after Commit or Abort.
var ErrClosed = errors.New("image writer already committed or aborted")

// writeBlock is the number of bytes WritePages scans and checksums before
// writing them: small enough to still be in the CPU cache when the kernel
// copies them, large enough that syscalls cost nothing.
const writeBlock = 1 << 20

// iovMax is the kernel's limit on iovecs per pwritev (UIO_MAXIOV).
const iovMax = 1024

type state int

const (
	stateOpen      state = iota
	stateBroken          // a write or Commit failed: only Abort is useful
	stateCommitted       // the image is at its final path
	stateAborted         // the temporary directory is gone
)

// Writer writes one image directory. See the package documentation.
type Writer struct {
	dir   string   // final path
	tmp   string   // temporary directory next to dir
	pages *os.File // tmp/pages.crbpf, owned until Commit or Abort
	size  uint64   // bytes written to pages (always page aligned)
	// reserved is the end of the space allocated ahead with Reserve
	// (beyond size, the file's length is unchanged).
	reserved   uint64
	zeroFilled bool // the reservation was written by Prefault (the file is longer than size)
	state      state
	err        error // why the Writer is broken

	iovs [][]byte // scratch for WritePages

	// hashes holds image.PageHash of every page slot written, in file
	// order: the content of image.HashesFile.
	hashes []uint64
	parent Parent
}

// Parent tells which pages an incremental image can take from its parent
// instead of storing them. Implementations must be safe for concurrent
// reads.
type Parent interface {
	// Same reports whether the page at addr has, in the parent (resolved
	// through its own parents), data with this CRC-32C and hash.
	Same(addr uint64, crc uint32, hash uint64) bool
}

// SetParent makes later WritePages calls leave out pages equal to the
// parent's at the same address (reported in Written.Same).
func (w *Writer) SetParent(p Parent) { w.parent = p }

// Flags select what WritePages leaves out.
type Flags uint8

const (
	// SkipZero leaves out all-zero pages (listed in Written.Zero).
	SkipZero Flags = 1 << iota
	// Dedup leaves out pages equal to the parent's (listed in
	// Written.Same); without SetParent it does nothing.
	Dedup
)

// Written describes the pages of one WritePages call.
type Written struct {
	Runs []image.PageRun // stored, sorted by address
	Zero []image.Span    // all zero, not stored (with SkipZero)
	Same []image.Span    // equal to the parent's (with Dedup), not stored
}

// Create starts writing the image directory dir. dir must not exist; its
// parent must. The data goes to a temporary directory next to dir until
// Commit.
func Create(dir string) (*Writer, error) {
	if dir == "" {
		return nil, errors.New("create image: empty path")
	}
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("create image %s: %w", dir, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create image: %w", err)
	}
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("create image %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(tmp, image.PagesFile), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create image %s: %w", dir, err), os.RemoveAll(tmp))
	}
	return &Writer{dir: dir, tmp: tmp, pages: f}, nil
}

// Extend starts writing the image directory dir on top of the pages file
// of the image in base (whose page hashes are baseHashes, one per slot of
// that file): the new pages file is base's, hard-linked (dir must be on
// base's file system), and the writes go after its end, so base's data is
// not copied. base's image stays valid (its pages file only grows); no
// other image may be extended from base afterwards.
func Extend(dir, base string, baseHashes []uint64) (*Writer, error) {
	w, err := Create(dir)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Writer, error) { return nil, errors.Join(err, w.Abort()) }
	pages := filepath.Join(w.tmp, image.PagesFile)
	w.pages.Close()
	if err := os.Remove(pages); err != nil {
		return fail(fmt.Errorf("extend image %s: %w", base, err))
	}
	if err := os.Link(filepath.Join(base, image.PagesFile), pages); err != nil {
		return fail(fmt.Errorf("extend image %s: %w", base, err))
	}
	if w.pages, err = os.OpenFile(pages, os.O_RDWR, 0); err != nil {
		return fail(fmt.Errorf("extend image %s: %w", base, err))
	}
	fi, err := w.pages.Stat()
	if err != nil {
		return fail(err)
	}
	if want := int64(len(baseHashes)) * image.PageSize; fi.Size() != want {
		return fail(fmt.Errorf("extend image %s: %s is %d bytes, its hashes cover %d", base, image.PagesFile, fi.Size(), want))
	}
	w.size, w.hashes = uint64(fi.Size()), slices.Clone(baseHashes)
	return w, nil
}

// AppendFile appends the first n page slots of the pages file src, whose
// hashes are hashes (one per slot, as image.ReadHashes returns them), and
// returns the offset of the first one in this Writer's pages file. The data
// is copied as it is: its CRCs are in the image src belongs to.
func (w *Writer) AppendFile(src string, hashes []uint64) (uint64, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	off, n := w.size, int64(len(hashes))*image.PageSize
	if got, err := io.Copy(io.NewOffsetWriter(w.pages, int64(off)), io.LimitReader(in, n)); err != nil || got != n {
		if err == nil {
			err = fmt.Errorf("%s holds %d of its %d bytes", src, got, n)
		}
		w.state, w.err = stateBroken, err
		return 0, fmt.Errorf("append %s to %s: %w", src, w.pages.Name(), err)
	}
	w.size += uint64(n)
	w.hashes = append(w.hashes, hashes...)
	return off, nil
}

// Dir returns the final path of the image.
func (w *Writer) Dir() string { return w.dir }

// Reserve allocates n more bytes of the pages file ahead of the writes
// (fallocate, keeping the file's size), so that a file system without room
// says so before the target is disturbed. Commit releases what the data did
// not use. A file system without fallocate is not an error: writes then
// allocate as they go. See Prefault for writes made while the target is
// frozen.
func (w *Writer) Reserve(n uint64) error {
	if err := w.usable(); err != nil {
		return err
	}
	n = (n + image.PageSize - 1) &^ (image.PageSize - 1)
	if n == 0 {
		return nil
	}
	start := max(w.size, w.reserved)
	err := unix.Fallocate(int(w.pages.Fd()), unix.FALLOC_FL_KEEP_SIZE, int64(start), int64(n))
	switch {
	case err == nil:
		w.reserved = start + n
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
	default:
		return fmt.Errorf("reserve space for image %s: %w", w.dir, os.NewSyscallError("fallocate", err))
	}
	return nil
}

// Prefault makes the reserved space beyond the data written so far fast to
// write, for writes made while the target is frozen: on tmpfs it writes
// zeros over it, because there the first write to each page of a file is
// the slow part (on the development VM, 1 GiB: 0.22 s written fresh, 0.14 s
// written again; fallocating it first changes nothing). Elsewhere the
// fallocated space is enough and Prefault does nothing.
func (w *Writer) Prefault() error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.reserved <= w.size {
		return nil
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(w.pages.Fd()), &fs); err != nil {
		return fmt.Errorf("prefault image %s: %w", w.dir, os.NewSyscallError("fstatfs", err))
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return nil
	}
	zero := make([]byte, writeBlock)
	for off := w.size; off < w.reserved; off += writeBlock {
		chunk := zero[:min(writeBlock, w.reserved-off)]
		if _, err := w.pages.WriteAt(chunk, int64(off)); err != nil {
			return fmt.Errorf("prefault image %s: %w", w.dir, err)
		}
	}
	w.zeroFilled = true
	return nil
}

// Pages returns the number of pages stored in the pages file so far.
func (w *Writer) Pages() uint64 { return w.size / image.PageSize }

// Bytes returns the number of bytes stored in the pages file so far.
func (w *Writer) Bytes() uint64 { return w.size }

// WritePages appends the pages in data, which start at address addr, to the
// pages file and returns the runs describing them, with a CRC-32C per page,
// sorted by address. addr must be page aligned and len(data) a multiple of
// image.PageSize. With SkipZero, pages that are all zero are not stored but
// listed in Written.Zero; with Dedup and a parent (SetParent), pages equal
// to the parent's are not stored but listed in Written.Same. data is not
// retained.
//
// The returned runs belong to the caller; their CRC slices share one
// allocation. Runs never span calls: to keep one run per contiguous range
// when a mapping is written in chunks, collect them with image.AppendRuns.
// After an error the Writer is broken: Commit fails, Abort cleans up.
func (w *Writer) WritePages(addr uint64, data []byte, flags Flags) (Written, error) {
	var out Written
	if err := w.usable(); err != nil {
		return out, err
	}
	switch {
	case addr%image.PageSize != 0:
		return out, fmt.Errorf("write pages at %#x: address not page aligned", addr)
	case len(data)%image.PageSize != 0:
		return out, fmt.Errorf("write pages at %#x: length %d not a multiple of the page size", addr, len(data))
	case uint64(len(data)) > -addr && addr != 0:
		return out, fmt.Errorf("write pages at %#x: %d bytes overflow the address space", addr, len(data))
	}
	n := len(data) / image.PageSize
	if n == 0 {
		return out, nil
	}

	skipZero := flags&SkipZero != 0
	parent := w.parent
	if flags&Dedup == 0 {
		parent = nil
	}
	crcs := make([]uint32, 0, n) // never grows: run CRC slices may point into it
	runs := &out.Runs
	for b := 0; b < n; b += writeBlock / image.PageSize {
		e := min(b+writeBlock/image.PageSize, n)
		blockOff := w.size
		iovs := w.iovs[:0]
		seg := -1 // first page of the current contiguous segment of data, -1: none
		for i := b; i < e; i++ {
			p := data[i*image.PageSize : (i+1)*image.PageSize]
			pageAddr := addr + uint64(i)*image.PageSize
			var skip *[]image.Span
			var crc uint32
			var hash uint64
			if skipZero && isZero(p) {
				skip = &out.Zero
			} else {
				crc, hash = image.PageCRC(p), image.PageHash(p)
				if parent != nil && parent.Same(pageAddr, crc, hash) {
					skip = &out.Same
				}
			}
			if skip != nil {
				*skip = image.AppendSpan(*skip, pageAddr, pageAddr+image.PageSize)
				if seg >= 0 {
					iovs = append(iovs, data[seg*image.PageSize:i*image.PageSize])
					seg = -1
				}
				continue
			}
			if seg < 0 {
				seg = i
			}
			if k := len(*runs) - 1; k >= 0 && (*runs)[k].End() == pageAddr && (*runs)[k].DataEnd() == w.size {
				(*runs)[k].NPages++
			} else {
				*runs = append(*runs, image.PageRun{Addr: pageAddr, NPages: 1, DataOff: w.size})
			}
			crcs = append(crcs, crc)
			w.hashes = append(w.hashes, hash)
			w.size += image.PageSize
		}
		if seg >= 0 {
			iovs = append(iovs, data[seg*image.PageSize:e*image.PageSize])
		}
		err := pwritev(w.pages, iovs, int64(blockOff))
		clear(iovs) // drop references to data
		w.iovs = iovs[:0]
		if err != nil {
			w.state, w.err = stateBroken, err
			return Written{}, fmt.Errorf("write pages at %#x to %s: %w", addr+uint64(b)*image.PageSize, w.pages.Name(), err)
		}
	}
	k := uint64(0)
	for i := range out.Runs {
		out.Runs[i].CRC = crcs[k : k+out.Runs[i].NPages : k+out.Runs[i].NPages]
		k += out.Runs[i].NPages
	}
	return out, nil
}

// zeroPage is compared against with bytes.Equal, which uses the widest
// vector compares the CPU has and stops at the first difference.
var zeroPage [image.PageSize]byte

func isZero(p []byte) bool { return bytes.Equal(p, zeroPage[:]) }

// pwritev writes iovs to f at off, retrying short writes and EINTR.
func pwritev(f *os.File, iovs [][]byte, off int64) error {
	if len(iovs) == 1 {
		_, err := f.WriteAt(iovs[0], off)
		return err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for len(iovs) > 0 {
		batch := iovs[:min(len(iovs), iovMax)]
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), batch, off)
			return werr != unix.EAGAIN
		}); err != nil {
			return err
		}
		switch {
		case werr == unix.EINTR:
			continue
		case werr != nil:
			return os.NewSyscallError("pwritev", werr)
		case n == 0:
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 {
			if n >= len(iovs[0]) {
				n -= len(iovs[0])
				iovs = iovs[1:]
			} else {
				iovs[0] = iovs[0][n:]
				n = 0
			}
		}
	}
	return nil
}

func (w *Writer) usable() error {
	switch w.state {
	case stateBroken:
		return fmt.Errorf("image %s: writer unusable after an earlier error: %w", w.dir, w.err)
	case stateCommitted, stateAborted:
		return fmt.Errorf("image %s: %w", w.dir, ErrClosed)
	}
	return nil
}

// Commit completes the image: it writes img as meta.crbpf (image.Encode
// validates it first), fsyncs both files and the temporary directory,
// renames the directory to the final path without replacing anything there,
// and fsyncs the parent directory. img must only reference data written by
// this Writer. Commit sets img.Hashes to the page hash index it writes
// (image.HashesFile); nothing else of img is modified.
//
// If Commit fails before the rename, nothing is at the final path and the
// Writer is broken: call Abort. If only the final fsync of the parent
// fails, the image is in place but may not survive a power loss; Commit
// reports that and Abort will not remove it.
func (w *Writer) Commit(img *image.Image) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.commit(img); err != nil {
		if w.state == stateOpen {
			w.state, w.err = stateBroken, err
		}
		return err
	}
	return nil
}

func (w *Writer) commit(img *image.Image) error {
	if end := img.DataEnd(); end > w.size {
		return fmt.Errorf("commit image %s: page runs reference %s up to %#x, only %#x written", w.dir, image.PagesFile, end, w.size)
	}
	hb, index := image.EncodeHashes(w.hashes)
	if err := writeFileSync(filepath.Join(w.tmp, image.HashesFile), hb); err != nil {
		return fmt.Errorf("commit image %s: %w", w.dir, err)
	}
	img.Hashes = index
	meta, err := os.OpenFile(filepath.Join(w.tmp, image.MetaFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("commit image %s: %w", w.dir, err)
	}
	err = image.Encode(meta, img)
	if err == nil {
		err = meta.Sync()
	}
	if cerr := meta.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("commit image %s: %w", w.dir, err)
	}
	if w.reserved > w.size {
		// Give back what Reserve prepared beyond the data.
		var err error
		if w.zeroFilled {
			err = w.pages.Truncate(int64(w.size))
		} else {
			err = unix.Fallocate(int(w.pages.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE,
				int64(w.size), int64(w.reserved-w.size))
		}
		if err != nil {
			return fmt.Errorf("commit image %s: release reserved space: %w", w.dir, err)
		}
	}
	err = w.pages.Sync()
	if cerr := w.pages.Close(); err == nil {
		err = cerr
	}
	w.pages = nil
	if err != nil {
		return fmt.Errorf("commit image %s: %w", w.dir, err)
	}
	if err := syncDir(w.tmp); err != nil {
		return fmt.Errorf("commit image %s: %w", w.dir, err)
	}
	if err := renameNoReplace(w.tmp, w.dir); err != nil {
		return fmt.Errorf("commit image %s: %w", w.dir, err)
	}
	w.state = stateCommitted
	if err := syncDir(filepath.Dir(w.dir)); err != nil {
		return fmt.Errorf("image %s is in place but may not survive a crash: %w", w.dir, err)
	}
	return nil
}

// writeFileSync creates path (mode 0600) with content b and fsyncs it.
func writeFileSync(path string, b []byte) error {
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

// Abort removes the temporary directory and everything in it. It is
// idempotent and does nothing after a successful Commit.
func (w *Writer) Abort() error {
	switch w.state {
	case stateCommitted, stateAborted:
		return nil
	}
	if w.pages != nil {
		w.pages.Close() // the data is being thrown away: a close error changes nothing
		w.pages = nil
	}
	w.state = stateAborted
	if err := os.RemoveAll(w.tmp); err != nil {
		return fmt.Errorf("abort image %s: %w", w.dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// renameNoReplace renames the directory oldpath to newpath, failing with
// EEXIST if newpath exists (a plain rename would replace an empty directory).
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// File system without RENAME_NOREPLACE: check, then rename. The
		// window between the two only matters if two writers race for
		// one path; rename still refuses a non-empty directory.
		if _, serr := os.Lstat(newpath); serr == nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
		}
		return os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
