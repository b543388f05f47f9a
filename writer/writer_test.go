package writer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crbpf/crbpf/image"
)

const ps = image.PageSize

// pattern returns n pages of non-zero data derived from seed.
func pattern(n int, seed uint64) []byte {
	b := make([]byte, n*ps)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], seed*0x9e3779b97f4a7c15^uint64(i)|1)
	}
	return b
}

// testImage returns a valid image whose VMAs hold runs.
func testImage(vmas ...image.VMA) *image.Image {
	return &image.Image{
		Header: image.Header{CRID: 1, Arch: "amd64", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Task:   image.Task{Regs: make([]byte, image.AMD64RegsSize)},
		VMAs:   vmas,
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt-1")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()

	heap := image.VMA{Start: 0x10000000, End: 0x10000000 + 600*ps, Prot: 3, Flags: 2, Kind: image.KindAnon, Name: "[heap]"}
	stack := image.VMA{Start: 0x7ff000000000, End: 0x7ff000000000 + 8*ps, Prot: 3, Flags: 0x102, Kind: image.KindAnon, Name: "[stack]"}
	// 600 pages: more than one writeBlock, so runs cross block boundaries.
	heapData := pattern(600, 1)
	stackData := pattern(8, 2)
	wr, err2 := w.WritePages(heap.Start, heapData, 0)
	if err2 != nil {
		t.Fatal(err2)
	}
	heap.Pages = wr.Runs
	if len(heap.Pages) != 1 || heap.Pages[0].NPages != 600 || heap.Pages[0].DataOff != 0 {
		t.Fatalf("heap runs %+v, want one run of 600 pages at 0", heap.Pages)
	}
	if wr, err2 = w.WritePages(stack.Start, stackData, SkipZero); err2 != nil {
		t.Fatal(err2)
	}
	stack.Pages = wr.Runs
	if w.Pages() != 608 || w.Bytes() != 608*ps {
		t.Errorf("Pages, Bytes = %d, %d; want 608, %d", w.Pages(), w.Bytes(), 608*ps)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final dir exists before Commit: %v", err)
	}
	img := testImage(heap, stack)
	if err := w.Commit(img); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, parent); !reflect.DeepEqual(names, []string{"ckpt-1"}) {
		t.Errorf("parent holds %q, want only the image", names)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("image dir: %v, mode %v; want 0700", err, fi.Mode())
	}
	got, err := image.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.VMAs, img.VMAs) {
		t.Errorf("loaded VMAs differ:\n got %+v\nwant %+v", got.VMAs, img.VMAs)
	}
	if err := image.Verify(dir, got); err != nil {
		t.Fatal(err)
	}
	pages, err := os.ReadFile(filepath.Join(dir, image.PagesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pages, append(heapData, stackData...)) {
		t.Error("pages file does not hold the data in order")
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Abort after Commit removed the image: %v", err)
	}
	if _, err := w.WritePages(0, pattern(1, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("WritePages after Commit: %v, want ErrClosed", err)
	}
	if err := w.Commit(img); !errors.Is(err, ErrClosed) {
		t.Errorf("second Commit: %v, want ErrClosed", err)
	}
}

func TestSkipZero(t *testing.T) {
	// Layout of 10 pages, z = zero: D z z D D z D D D z
	zero := map[int]bool{1: true, 2: true, 5: true, 9: true}
	data := pattern(10, 3)
	for i := range 10 {
		if zero[i] {
			clear(data[i*ps : (i+1)*ps])
		}
	}
	data[7*ps+ps-1] = 0 // a page that is zero but for its last byte is stored
	data[7*ps+ps-2] = 0
	data[7*ps] = 0

	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// Something before, so data offsets do not start at 0.
	if _, err := w.WritePages(0x1000, pattern(2, 9), 0); err != nil {
		t.Fatal(err)
	}
	const base = 0x400000
	wr, err := w.WritePages(base, data, SkipZero)
	if err != nil {
		t.Fatal(err)
	}
	runs := wr.Runs
	wantZero := []image.Span{{Addr: base + ps, NPages: 2}, {Addr: base + 5*ps, NPages: 1}, {Addr: base + 9*ps, NPages: 1}}
	if !reflect.DeepEqual(wr.Zero, wantZero) {
		t.Errorf("zero spans %+v, want %+v", wr.Zero, wantZero)
	}
	want := []struct{ addr, n, off uint64 }{{base, 1, 2 * ps}, {base + 3*ps, 2, 3 * ps}, {base + 6*ps, 3, 5 * ps}}
	if len(runs) != len(want) {
		t.Fatalf("runs %+v, want %d runs", runs, len(want))
	}
	for i, r := range runs {
		if r.Addr != want[i].addr || r.NPages != want[i].n || r.DataOff != want[i].off || uint64(len(r.CRC)) != r.NPages {
			t.Errorf("run %d = {%#x %d %#x %d crcs}, want {%#x %d %#x}", i, r.Addr, r.NPages, r.DataOff, len(r.CRC), want[i].addr, want[i].n, want[i].off)
		}
		for p := range r.NPages {
			pg := data[r.Addr-base+p*ps:][:ps]
			if r.CRC[p] != image.PageCRC(pg) {
				t.Errorf("run %d page %d: crc %#x, want %#x", i, p, r.CRC[p], image.PageCRC(pg))
			}
		}
	}
	if w.Pages() != 8 {
		t.Errorf("Pages = %d, want 8 (2 + 6 non-zero)", w.Pages())
	}
	allZero, err := w.WritePages(0x800000, make([]byte, 4*ps), SkipZero)
	if err != nil || len(allZero.Runs) != 0 || !reflect.DeepEqual(allZero.Zero, []image.Span{{Addr: 0x800000, NPages: 4}}) {
		t.Errorf("all-zero data: runs %+v, err %v; want none", allZero, err)
	}
	if wr, err := w.WritePages(0x900000, nil, SkipZero); err != nil || wr.Runs != nil || wr.Zero != nil {
		t.Errorf("empty data: %+v, %v", runs, err)
	}
	if w.Pages() != 8 {
		t.Errorf("Pages = %d after zero-only writes, want 8", w.Pages())
	}
}

func TestWritePagesArguments(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, tt := range []struct {
		addr uint64
		n    int
		msg  string
	}{
		{0x1001, ps, "not page aligned"},
		{0x1000, ps + 1, "not a multiple of the page size"},
		{^uint64(0) - ps + 1, 2 * ps, "overflow the address space"},
	} {
		if _, err := w.WritePages(tt.addr, make([]byte, tt.n), 0); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("WritePages(%#x, %d bytes): %v, want %q", tt.addr, tt.n, err, tt.msg)
		}
	}
	// Argument errors do not break the Writer.
	if _, err := w.WritePages(0x1000, pattern(1, 1), 0); err != nil {
		t.Fatal(err)
	}
}

func TestCreateExisting(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create(existing): %v, want ErrExist", err)
	}
	if _, err := Create(filepath.Join(dir, "no", "parent")); err == nil {
		t.Fatal("Create without a parent succeeded")
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("failed Create left %q", names)
	}
}

func TestCommitRaceKeepsExisting(t *testing.T) {
	// Another writer (or anyone) creates the final path between Create and
	// Commit: Commit must fail and not replace it, even an empty directory.
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(testImage()); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Commit over an existing directory: %v, want ErrExist", err)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("existing directory changed: %q", names)
	}
	if err := w.Commit(testImage()); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("Commit after a failed Commit: %v", err)
	}
}

func TestCommitRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		img  func(runs []image.PageRun) *image.Image
		msg  string
	}{
		{"invalid image", func(runs []image.PageRun) *image.Image {
			img := testImage()
			img.Header.CRID = 0
			return img
		}, "checkpoint id is 0"},
		{"data not written", func(runs []image.PageRun) *image.Image {
			runs[0].DataOff += ps
			return testImage(image.VMA{Start: 0x1000, End: 0x3000, Kind: image.KindAnon, Pages: runs})
		}, "page runs reference pages.crbpf up to 0x2000, only 0x1000 written"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "img")
			w, err := Create(dir)
			if err != nil {
				t.Fatal(err)
			}
			wr, err := w.WritePages(0x1000, pattern(1, 1), 0)
			if err != nil {
				t.Fatal(err)
			}
			runs := wr.Runs
			if err := w.Commit(tt.img(runs)); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Commit: %v, want %q", err, tt.msg)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("failed Commit left the final dir: %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if names := listDir(t, parent); len(names) != 0 {
				t.Errorf("Abort left %q", names)
			}
		})
	}
}

// committed writes an image with one anonymous VMA of n pages and returns
// its directory and the image.
func committed(t *testing.T, n int) (string, *image.Image) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	v := image.VMA{Start: 0x200000, End: 0x200000 + uint64(n)*ps, Prot: 3, Flags: 2, Kind: image.KindAnon}
	wr, err := w.WritePages(v.Start, pattern(n, 5), 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Pages = wr.Runs
	img := testImage(v)
	if err := w.Commit(img); err != nil {
		t.Fatal(err)
	}
	return dir, img
}

func TestVerifyFindsFlippedByte(t *testing.T) {
	dir, _ := committed(t, 16)
	f, err := os.OpenFile(filepath.Join(dir, image.PagesFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, 5*ps+77)
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, 5*ps+77); err != nil {
		t.Fatal(err)
	}
	f.Close()
	img, err := image.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = image.Verify(dir, img)
	var pe *image.PageCRCError
	if !errors.As(err, &pe) || pe.Addr != 0x200000+5*ps {
		t.Fatalf("Verify: %v, want a *PageCRCError for page 0x205000", err)
	}
	if !strings.Contains(err.Error(), "vma 0 [0x200000-0x210000]: page 0x205000: crc32c") {
		t.Errorf("error %q does not name the VMA and page", err)
	}
}

func TestLoadTruncatedPages(t *testing.T) {
	dir, _ := committed(t, 4)
	if err := os.Truncate(filepath.Join(dir, image.PagesFile), 3*ps+100); err != nil {
		t.Fatal(err)
	}
	_, err := image.Load(dir)
	var te *image.TruncatedError
	if !errors.As(err, &te) || !errors.Is(err, image.ErrTruncated) || te.Want != 4*ps || te.Got != 3*ps+100 {
		t.Fatalf("Load: %v, want *TruncatedError (want %d, got %d)", err, 4*ps, 3*ps+100)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	w, err := Create(filepath.Join(parent, "img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WritePages(0x1000, pattern(3, 1), 0); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, parent); len(names) != 1 || !strings.HasPrefix(names[0], ".img.tmp-") {
		t.Fatalf("while writing, parent holds %q, want one .img.tmp-* directory", names)
	}
	for range 2 {
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if names := listDir(t, parent); len(names) != 0 {
		t.Errorf("Abort left %q", names)
	}
	if _, err := w.WritePages(0x1000, pattern(1, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("WritePages after Abort: %v, want ErrClosed", err)
	}
}

func TestDroppedWriterLeavesNoImage(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "img")
	func() {
		w, err := Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WritePages(0x1000, pattern(3, 1), 0); err != nil {
			t.Fatal(err)
		}
		// Dropped: neither Commit nor Abort, as if the process died.
	}()
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final dir after a dropped Writer: %v", err)
	}
	if _, err := image.Load(dir); !errors.Is(err, image.ErrNotImage) {
		t.Errorf("Load: %v, want ErrNotImage", err)
	}
}

// TestKilledWriterLeavesNoImage kills a process (this test binary, re-run
// as a helper) while it is writing pages, and checks that no directory
// appears at the final path.
func TestKilledWriterLeavesNoImage(t *testing.T) {
	if dir := os.Getenv("CRBPF_WRITER_HELPER_DIR"); dir != "" {
		w, err := Create(dir)
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("writing\n")
		for addr := uint64(0x1000); ; addr += 64 * ps {
			if _, err := w.WritePages(addr, pattern(64, addr), 0); err != nil {
				os.Exit(3)
			}
		}
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "img")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterLeavesNoImage$")
	cmd.Env = append(os.Environ(), "CRBPF_WRITER_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := out.Read(buf); err != nil || string(buf[:7]) != "writing" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not start writing: %q, %v", buf, err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final dir after a killed writer: %v", err)
	}
	names := listDir(t, parent)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".img.tmp-") {
		t.Errorf("parent holds %q, want only the temporary directory", names)
	}
}

// TestReserve prepares more and less space than the data needs, on the
// test's temp dir and on tmpfs, with and without Prefault (which writes
// zeros on tmpfs): the committed pages file holds exactly the data either
// way.
func TestReserve(t *testing.T) {
	parents := map[string]string{"tempdir": t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "crbpf-writer-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		parents["tmpfs"] = shm
	}
	for name, parent := range parents {
		for _, c := range []struct {
			reserve  uint64
			prefault bool
		}{{0, false}, {0, true}, {3 * ps, true}, {40*ps + 5, true}, {400 * ps, false}, {400 * ps, true}} {
			reserve := c.reserve
			t.Run(fmt.Sprintf("%s/%d/prefault=%v", name, reserve, c.prefault), func(t *testing.T) {
				dir := filepath.Join(parent, fmt.Sprintf("img-%d-%v", reserve, c.prefault))
				w, err := Create(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Abort()
				if err := w.Reserve(reserve); err != nil {
					t.Fatal(err)
				}
				if c.prefault {
					if err := w.Prefault(); err != nil {
						t.Fatal(err)
					}
				}
				// Only Prefault on tmpfs writes (zeros) ahead of the data.
				fi, err := os.Stat(filepath.Join(w.tmp, image.PagesFile))
				if err != nil {
					t.Fatal(err)
				}
				want := int64(0)
				if c.prefault && name == "tmpfs" {
					want = int64((reserve + ps - 1) &^ (ps - 1))
				}
				if fi.Size() != want {
					t.Errorf("pages file %d bytes before any write, want %d", fi.Size(), want)
				}
				v := image.VMA{Start: 0x10000000, End: 0x10000000 + 40*ps, Prot: 3, Flags: 2, Kind: image.KindAnon}
				data := pattern(40, 7)
				wr, err := w.WritePages(v.Start, data, 0)
				if err != nil {
					t.Fatal(err)
				}
				v.Pages = wr.Runs
				if err := w.Commit(testImage(v)); err != nil {
					t.Fatal(err)
				}
				pages, err := os.ReadFile(filepath.Join(dir, image.PagesFile))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pages, data) {
					t.Errorf("pages file has %d bytes, want exactly the %d data bytes", len(pages), len(data))
				}
			})
		}
	}
}

// parentPages is a Parent holding the CRC and hash of some pages.
type parentPages map[uint64][2]uint64

func (p parentPages) Same(addr uint64, crc uint32, hash uint64) bool {
	s, ok := p[addr]
	return ok && s[0] == uint64(crc) && s[1] == hash
}

func TestWritePagesDedup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	const base = 0x400000
	data := pattern(6, 11)
	clear(data[4*ps : 5*ps])
	sig := func(i int) [2]uint64 {
		p := data[i*ps : (i+1)*ps]
		return [2]uint64{uint64(image.PageCRC(p)), image.PageHash(p)}
	}
	other := pattern(1, 99)
	w.SetParent(parentPages{
		base:          sig(0),
		base + ps:     sig(1),
		base + 3*ps:   {uint64(image.PageCRC(other)), image.PageHash(other)}, // the parent had other bytes there
		base + 5*ps:   {sig(5)[0], sig(5)[1] ^ 1},                            // same CRC, other hash: not the same page
		base + 100*ps: sig(2),                                                // same bytes at another address
	})
	// Without Dedup the parent is ignored.
	wr, err := w.WritePages(base, data, SkipZero)
	if err != nil {
		t.Fatal(err)
	}
	if len(wr.Same) != 0 || w.Pages() != 5 {
		t.Fatalf("without Dedup: same %+v, %d pages stored; want none the same, 5 stored", wr.Same, w.Pages())
	}
	wr, err = w.WritePages(base, data, SkipZero|Dedup)
	if err != nil {
		t.Fatal(err)
	}
	if want := []image.Span{{Addr: base, NPages: 2}}; !reflect.DeepEqual(wr.Same, want) {
		t.Errorf("same %+v, want %+v", wr.Same, want)
	}
	if want := []image.Span{{Addr: base + 4*ps, NPages: 1}}; !reflect.DeepEqual(wr.Zero, want) {
		t.Errorf("zero %+v, want %+v", wr.Zero, want)
	}
	if len(wr.Runs) != 2 || wr.Runs[0].Addr != base+2*ps || wr.Runs[0].NPages != 2 || wr.Runs[1].Addr != base+5*ps || wr.Runs[1].NPages != 1 {
		t.Errorf("runs %+v, want pages 2-3 and 5", wr.Runs)
	}
	v := image.VMA{Start: base, End: base + 6*ps, Prot: 3, Flags: 2, Kind: image.KindAnon, Pages: wr.Runs}
	img := testImage(v)
	if err := w.Commit(img); err != nil {
		t.Fatal(err)
	}
	// The hash index covers every slot of the pages file, superseded
	// copies included.
	got, err := image.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := image.ReadHashes(dir, got)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := os.ReadFile(filepath.Join(dir, image.PagesFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(hashes) != 8 || len(pages) != 8*ps {
		t.Fatalf("%d hashes, %d bytes of pages; want 8 of each", len(hashes), len(pages)/ps)
	}
	for i, h := range hashes {
		if want := image.PageHash(pages[i*ps : (i+1)*ps]); h != want {
			t.Errorf("hash of slot %d = %#x, want %#x", i, h, want)
		}
	}
}

func TestReadHashesErrors(t *testing.T) {
	mk := func(t *testing.T) (string, *image.Image) {
		dir := filepath.Join(t.TempDir(), "img")
		w, err := Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		wr, err := w.WritePages(0x1000, pattern(3, 1), 0)
		if err != nil {
			t.Fatal(err)
		}
		img := testImage(image.VMA{Start: 0x1000, End: 0x4000, Prot: 3, Flags: 2, Kind: image.KindAnon, Pages: wr.Runs})
		if err := w.Commit(img); err != nil {
			t.Fatal(err)
		}
		got, err := image.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, got
	}
	hp := func(dir string) string { return filepath.Join(dir, image.HashesFile) }
	for _, tt := range []struct {
		name   string
		tamper func(t *testing.T, dir string, img *image.Image)
		want   error
		msg    string
	}{
		{"missing", func(t *testing.T, dir string, _ *image.Image) { os.Remove(hp(dir)) }, image.ErrTruncated, "hashes.crbpf is missing"},
		{"short", func(t *testing.T, dir string, _ *image.Image) { os.Truncate(hp(dir), 16) }, image.ErrTruncated, "truncated"},
		{"long", func(t *testing.T, dir string, _ *image.Image) { os.Truncate(hp(dir), 32) }, image.ErrCorrupt, "32 bytes, want 24"},
		{"altered", func(t *testing.T, dir string, _ *image.Image) {
			b, _ := os.ReadFile(hp(dir))
			b[3] ^= 1
			os.WriteFile(hp(dir), b, 0o600)
		}, image.ErrCorrupt, "checksum mismatch"},
		{"none", func(t *testing.T, _ string, img *image.Image) { img.Hashes = nil }, image.ErrInvalid, "no page hashes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, img := mk(t)
			tt.tamper(t, dir, img)
			_, err := image.ReadHashes(dir, img)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ReadHashes: %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

// TestExtendRefusesMismatchedHashes: Extend needs one hash per slot of the
// base's pages file, and leaves nothing behind when it refuses.
func TestExtendRefusesMismatchedHashes(t *testing.T) {
	parent := t.TempDir()
	base := filepath.Join(parent, "base")
	w, err := Create(base)
	if err != nil {
		t.Fatal(err)
	}
	wr, err := w.WritePages(0x1000, pattern(2, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(testImage(image.VMA{Start: 0x1000, End: 0x3000, Prot: 3, Flags: 2, Kind: image.KindAnon, Pages: wr.Runs})); err != nil {
		t.Fatal(err)
	}
	if _, err := Extend(filepath.Join(parent, "next"), base, make([]uint64, 3)); err == nil || !strings.Contains(err.Error(), "its hashes cover") {
		t.Fatalf("Extend with 3 hashes for 2 slots: %v", err)
	}
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 {
		t.Errorf("Extend left %d entries in %s, want only base", len(ents), parent)
	}
}
