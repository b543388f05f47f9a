package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeDir writes img and pages as an image directory and returns its path.
func writeDir(t *testing.T, img *Image, pages []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, PagesFile), pages, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadVerify(t *testing.T) {
	img, pages := fixture()
	dir := writeDir(t, img, pages)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, img) {
		t.Fatal("Load returned a different image")
	}
	if err := Verify(dir, got); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyUnsortedAndSparseData(t *testing.T) {
	// Runs whose data is out of address order, with a gap larger than
	// verifyMaxGap and a run larger than the read buffer.
	img, _ := fixture()
	img.Hashes = nil  // not about hashes
	v := &img.VMAs[4] // heap
	v.End = v.Start + 4096*PageSize
	img.VMAs[5].Start, img.VMAs[5].End = v.End, v.End+PageSize
	img.VMAs[5].Pages = nil
	v.Pages = []PageRun{
		{Addr: v.Start, NPages: 3, DataOff: 20 << 20},
		{Addr: v.Start + 8*PageSize, NPages: 3000, DataOff: 0},
		{Addr: v.Start + 4000*PageSize, NPages: 1, DataOff: 3000 * PageSize},
	}
	var pages []byte
	grow := func(n uint64) {
		if uint64(len(pages)) < n {
			pages = append(pages, make([]byte, n-uint64(len(pages)))...)
		}
	}
	for i := range img.VMAs {
		if i != 4 {
			img.VMAs[i].Pages = nil
		}
	}
	for j := range v.Pages {
		r := &v.Pages[j]
		grow(r.DataEnd())
		r.CRC = nil
		for p := range r.NPages {
			b := fixturePage(r.Addr + p*PageSize)
			copy(pages[r.DataOff+p*PageSize:], b)
			r.CRC = append(r.CRC, PageCRC(b))
		}
	}
	dir := writeDir(t, img, pages)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, got); err != nil {
		t.Fatal(err)
	}
	// Corrupt the last page of the big run.
	pages[3000*PageSize-1] ^= 0x80
	if err := os.WriteFile(filepath.Join(dir, PagesFile), pages, 0o600); err != nil {
		t.Fatal(err)
	}
	err = Verify(dir, got)
	var pe *PageCRCError
	if !errors.As(err, &pe) || pe.Addr != v.Start+3007*PageSize {
		t.Fatalf("Verify: %v, want a *PageCRCError for page %#x", err, v.Start+3007*PageSize)
	}
}

func TestVerifyCorruptPage(t *testing.T) {
	img, pages := fixture()
	dir := writeDir(t, img, pages)
	r := img.VMAs[12].Pages[0] // stack
	off := r.DataOff + PageSize + 100
	pages[off] ^= 1
	if err := os.WriteFile(filepath.Join(dir, PagesFile), pages, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Verify(dir, img)
	var pe *PageCRCError
	if !errors.As(err, &pe) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v, want *PageCRCError matching ErrCorrupt", err)
	}
	want := PageCRCError{VMA: 12, Start: 0x7ffffffde000, End: 0x7ffffffff000, Addr: r.Addr + PageSize, Want: r.CRC[1], Got: PageCRC(pages[r.DataOff+PageSize : r.DataOff+2*PageSize])}
	if *pe != want {
		t.Errorf("got %+v, want %+v", *pe, want)
	}
	if msg := "image pages: vma 12 [0x7ffffffde000-0x7ffffffff000]: page 0x7fffffffd000: crc32c 0x"; !strings.HasPrefix(err.Error(), msg) {
		t.Errorf("error %q does not start with %q", err, msg)
	}
}

func TestLoadErrors(t *testing.T) {
	img, pages := fixture()
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  []error
		msg   string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
			[]error{ErrNotImage, fs.ErrNotExist}, "nope is not a crbpf image (no such directory)"},
		{"regular file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "f")
			os.WriteFile(p, []byte("x"), 0o600)
			return p
		}, []error{ErrNotImage}, "f is not a crbpf image (not a directory)"},
		{"no meta", func(t *testing.T) string { return t.TempDir() }, []error{ErrNotImage, fs.ErrNotExist}, "is not a crbpf image (no meta.crbpf)"},
		{"meta is a directory", func(t *testing.T) string {
			d := t.TempDir()
			os.Mkdir(filepath.Join(d, MetaFile), 0o700)
			return d
		}, []error{ErrNotImage}, "(meta.crbpf is not a regular file)"},
		{"meta too large", func(t *testing.T) string {
			d := writeDir(t, img, pages)
			os.Truncate(filepath.Join(d, MetaFile), MaxMetaSize+1)
			return d
		}, []error{ErrCorrupt}, "meta.crbpf: 67108929 bytes, limit 67108928"},
		{"meta corrupt", func(t *testing.T) string {
			d := writeDir(t, img, pages)
			f, _ := os.OpenFile(filepath.Join(d, MetaFile), os.O_WRONLY, 0)
			f.WriteAt([]byte("X"), HeaderSize+20)
			f.Close()
			return d
		}, []error{ErrCorrupt}, ": image meta: checksum mismatch"},
		{"pages missing", func(t *testing.T) string {
			d := writeDir(t, img, pages)
			os.Remove(filepath.Join(d, PagesFile))
			return d
		}, []error{ErrTruncated, fs.ErrNotExist}, "pages.crbpf is missing"},
		{"pages truncated", func(t *testing.T) string {
			d := writeDir(t, img, pages)
			os.Truncate(filepath.Join(d, PagesFile), int64(len(pages)-1))
			return d
		}, []error{ErrTruncated}, fmt.Sprintf("pages.crbpf is truncated: need at least %d bytes, have %d", len(pages), len(pages)-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			got, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", got)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), dir) {
				t.Errorf("error %q does not start with %q and contain %q", err, dir, tt.msg)
			}
		})
	}
}

func TestVerifyTruncated(t *testing.T) {
	img, pages := fixture()
	dir := writeDir(t, img, pages[:len(pages)-PageSize])
	var te *TruncatedError
	if err := Verify(dir, img); !errors.As(err, &te) || te.Want != int64(len(pages)) || te.Got != int64(len(pages)-PageSize) {
		t.Fatalf("Verify: %v, want *TruncatedError", err)
	}
}

func TestPageCRC(t *testing.T) {
	// CRC-32C check value from RFC 3720 (iSCSI), B.4: 32 bytes of zeros.
	if got := PageCRC(make([]byte, 32)); got != 0x8a9136aa {
		t.Errorf("PageCRC(32 zero bytes) = %#x, want 0x8a9136aa", got)
	}
}
