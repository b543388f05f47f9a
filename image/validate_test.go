package image

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateFixture(t *testing.T) {
	img, _ := fixture()
	if err := img.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateErrors(t *testing.T) {
	// Indexes into the fixture's VMAs.
	const (
		exeRO   = 2  // file, one run
		heap    = 4  // anon, three runs
		shared  = 7  // file-shared
		vvar    = 9  // vvar
		stack   = 12 // anon, growsdown
		vsyscll = 13
	)
	tests := []struct {
		name string
		mod  func(img *Image)
		msg  string
	}{
		// header
		{"crid zero", func(img *Image) { img.Header.CRID, img.Header.ParentCRID = 0, 0 }, "header: checkpoint id is 0"},
		{"parent not older", func(img *Image) { img.Header.ParentCRID = img.Header.CRID }, "header: parent checkpoint id 42 is not below the checkpoint id 42"},
		{"no arch", func(img *Image) { img.Header.Arch = "" }, "header: no architecture"},
		{"time out of range", func(img *Image) { img.Header.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "outside years 0-9999"},
		{"cmdline cap", func(img *Image) { img.Header.Cmdline = make([]string, MaxCmdline+1) }, "command-line arguments, limit"},
		// mm
		{"auxv odd", func(img *Image) { img.MM.Auxv = img.MM.Auxv[:3] }, "mm: auxv has an odd number of words (3)"},
		{"auxv no AT_NULL", func(img *Image) { img.MM.Auxv = img.MM.Auxv[:4] }, "mm: auxv does not end with AT_NULL"},
		{"auxv cap", func(img *Image) { img.MM.Auxv = make([]uint64, MaxAuxv+2) }, "mm: auxv has 1026 words, limit 1024"},
		// vmas
		{"vma cap", func(img *Image) { img.VMAs = make([]VMA, MaxVMAs+1) }, "vmas: 1048577 mappings, limit 1048576"},
		{"vma unaligned", func(img *Image) { img.VMAs[0].End++ }, "vma 0 [0x555555554000-0x555555555001]: not page aligned"},
		{"vma empty", func(img *Image) { img.VMAs[0].End = img.VMAs[0].Start }, "vma 0 [0x555555554000-0x555555554000]: empty or inverted range"},
		{"vma inverted", func(img *Image) { img.VMAs[0].Start, img.VMAs[0].End = img.VMAs[0].End, img.VMAs[0].Start }, "empty or inverted range"},
		{"vma overlap", func(img *Image) { img.VMAs[1].Start -= PageSize }, "vma 1 [0x555555554000-0x555555556000]: starts below the end 0x555555555000 of vma 0"},
		{"vma unsorted", func(img *Image) { img.VMAs[0], img.VMAs[1] = img.VMAs[1], img.VMAs[0] }, "vma 1 [0x555555554000-0x555555555000]: starts below the end"},
		{"vma kind", func(img *Image) { img.VMAs[0].Kind = "socket" }, `vma 0 [0x555555554000-0x555555555000]: unknown kind "socket"`},
		{"vma file no path", func(img *Image) { img.VMAs[shared].Path = "" }, "vma 7 [0x7ffff7fb0000-0x7ffff7fb1000]: file-backed mapping without a path"},
		{"vma offset unaligned", func(img *Image) { img.VMAs[1].Offset = 0x1234 }, "file offset 0x1234 not page aligned"},
		{"data in file-shared", func(img *Image) { img.VMAs[shared].Pages = img.VMAs[exeRO].Pages }, `vma 7 [0x7ffff7fb0000-0x7ffff7fb1000]: kind "file-shared" cannot have page data`},
		{"data in vvar", func(img *Image) { img.VMAs[vvar].Pages = img.VMAs[exeRO].Pages }, `kind "vvar" cannot have page data`},
		{"data in vsyscall", func(img *Image) { img.VMAs[vsyscll].Pages = img.VMAs[exeRO].Pages }, `kind "vsyscall" cannot have page data`},
		// runs
		{"run no pages", func(img *Image) { r := &img.VMAs[heap].Pages[1]; r.NPages, r.CRC = 0, nil }, "vma 4 [0x555555559000-0x55555557a000]: page run 1 at 0x55555555e000 has no pages"},
		{"run unaligned", func(img *Image) { img.VMAs[heap].Pages[1].Addr++ }, "page run 1 at 0x55555555e001 not page aligned"},
		{"run below vma", func(img *Image) { img.VMAs[heap].Pages[0].Addr -= PageSize }, "vma 4 [0x555555559000-0x55555557a000]: page run 0 at 0x555555558000 (3 pages) outside the mapping"},
		{"run past vma", func(img *Image) { r := &img.VMAs[heap].Pages[2]; r.NPages++; r.CRC = append(r.CRC, 0) }, "page run 2 at 0x555555578000 (3 pages) outside the mapping"},
		{"run at vma end", func(img *Image) { img.VMAs[exeRO].Pages[0].Addr = img.VMAs[exeRO].End }, "page run 0 at 0x555555558000 (1 pages) outside the mapping"},
		{"run huge", func(img *Image) { img.VMAs[exeRO].Pages[0].NPages = 1 << 62 }, "outside the mapping"},
		{"run overlap", func(img *Image) { img.VMAs[heap].Pages[1].Addr = img.VMAs[heap].Pages[0].Addr + 2*PageSize }, "page run 1 at 0x55555555b000 starts below the end 0x55555555c000 of page run 0"},
		{"run unsorted", func(img *Image) {
			p := img.VMAs[heap].Pages
			p[0], p[1] = p[1], p[0]
		}, "page run 1 at 0x555555559000 starts below the end 0x55555555f000 of page run 0"},
		{"crc count", func(img *Image) { r := &img.VMAs[heap].Pages[0]; r.CRC = r.CRC[:2] }, "page run 0 at 0x555555559000 has 2 checksums for 3 pages"},
		{"data offset unaligned", func(img *Image) { img.VMAs[heap].Pages[0].DataOff += 512 }, "page run 0 at 0x555555559000: data offset 0x2200 not page aligned"},
		{"data offset huge", func(img *Image) { img.VMAs[heap].Pages[0].DataOff = 1<<63 - PageSize }, "data offset 0x7ffffffffffff000 beyond the largest file offset"},
		{"data overlap sorted pass", func(img *Image) { img.VMAs[heap].Pages[0].DataOff -= PageSize }, "vma 4 [0x555555559000-0x55555557a000]: page run 0 at 0x555555559000: data [0x1000-0x4000) in pages.crbpf overlaps page run 0 of vma 3"},
		{"data overlap unsorted", func(img *Image) {
			img.VMAs[stack].Pages[0].DataOff = 0 // now overlaps vma 2's run, found after sorting
		}, "in pages.crbpf overlaps page run 0 of vma"},
		{"total pages cap", func(img *Image) {
			r := &img.VMAs[heap].Pages[2]
			r.NPages = MaxTotalPages
			img.VMAs[heap].End = r.End()
			r.CRC = make([]uint32, r.NPages)
		}, "more than 16777216 pages of data in the image"},
		{"run cap", func(img *Image) {
			img.VMAs[heap].Pages = make([]PageRun, MaxPageRuns+1)
		}, "more than 2097152 page runs in the image"},
		// version 2: zero and inherited spans, hashes
		{"zero in anon", func(img *Image) { img.VMAs[heap].Zero = []Span{{Addr: img.VMAs[heap].Start + 10*PageSize, NPages: 1}} }, `vma 4 [0x555555559000-0x55555557a000]: kind "anon" cannot have zero spans`},
		{"inherit without parent", func(img *Image) { img.Header.ParentCRID = 0 }, "vma 4 [0x555555559000-0x55555557a000]: inherited pages in an image without a parent"},
		{"inherit in vvar", func(img *Image) { img.VMAs[vvar].Inherit = []Span{{Addr: img.VMAs[vvar].Start, NPages: 1}} }, `kind "vvar" cannot inherit pages`},
		{"inherit no pages", func(img *Image) { img.VMAs[heap].Inherit[0].NPages = 0 }, "inherited span 0 at 0x55555555c000 has no pages"},
		{"inherit unaligned", func(img *Image) { img.VMAs[heap].Inherit[0].Addr++ }, "inherited span 0 at 0x55555555c001 not page aligned"},
		{"inherit past vma", func(img *Image) { img.VMAs[heap].Inherit[1].NPages = 1 << 40 }, "inherited span 1 at 0x55555555f000 (1099511627776 pages) outside the mapping"},
		{"inherit unsorted", func(img *Image) {
			s := img.VMAs[heap].Inherit
			s[0], s[1] = s[1], s[0]
		}, "inherited span 1 at 0x55555555c000 unsorted or overlapping"},
		{"inherit overlaps run", func(img *Image) { img.VMAs[heap].Inherit[0].Addr -= PageSize }, "inherited span 0 at 0x55555555b000 overlaps page run 0"},
		{"zero overlaps run", func(img *Image) { img.VMAs[exeRO].Zero = []Span{{Addr: img.VMAs[exeRO].Start, NPages: 1}} }, "vma 2 [0x555555557000-0x555555558000]: zero span 0 at 0x555555557000 overlaps page run 0"},
		{"hashes short", func(img *Image) { img.Hashes.Pages-- }, "hashes: 17 page hashes for 18 page slots of data"},
		{"hashes sum", func(img *Image) { img.Hashes.SHA256 = "ab" }, `hashes: sha256 "ab" is not 64 hex digits`},
		// task
		{"regs amd64", func(img *Image) { img.Task.Regs = img.Task.Regs[:200] }, "task: registers are 200 bytes, want 216 (x86_64 user_regs_struct)"},
		{"regs cap", func(img *Image) { img.Header.Arch = "arm64"; img.Task.Regs = make([]byte, MaxRegset+1) }, "task: registers are 1048577 bytes, limit"},
		{"xstate cap", func(img *Image) { img.Task.XState = make([]byte, MaxRegset+1) }, "task: xstate is 1048577 bytes, limit"},
		{"sigaction range", func(img *Image) { img.Task.SigActions[0].Signo = 65 }, "task: signal action 0: signal 65 out of range 1-64"},
		{"sigaction dup", func(img *Image) { img.Task.SigActions[1].Signo = 2 }, "task: signal action 1: signal 2 unsorted or duplicate"},
		{"sigaction cap", func(img *Image) { img.Task.SigActions = make([]SigAction, MaxSignal+1) }, "task: 65 signal actions, limit 64"},
		{"siginfo size", func(img *Image) { img.Task.Pending[0].Raw = img.Task.Pending[0].Raw[:64] }, "task: pending signal 0: siginfo is 64 bytes, want 128"},
		{"shared siginfo size", func(img *Image) { img.Task.SharedPend = []Siginfo{{}} }, "task: shared_pending signal 0: siginfo is 0 bytes, want 128"},
		{"pending cap", func(img *Image) { img.Task.Pending = make([]Siginfo, MaxPending+1) }, "pending signals, limit"},
		{"rlimit resource", func(img *Image) { img.Task.Rlimits[0].Resource = -1 }, "task: rlimit 0: resource -1 out of range"},
		{"rlimit cap", func(img *Image) { img.Task.Rlimits = make([]Rlimit, MaxRlimits+1) }, "task: 65 rlimits, limit 64"},
		{"itimer which", func(img *Image) { img.Task.ITimers[0].Which = 3 }, "task: interval timer 0: which 3 out of range"},
		{"itimer cap", func(img *Image) { img.Task.ITimers = make([]ITimer, 4) }, "task: 4 interval timers, limit 3"},
		{"posix timer cap", func(img *Image) { img.Task.PosixTimers = make([]PosixTimer, MaxPosixTimer+1) }, "posix timers, limit"},
		// files
		{"file cap", func(img *Image) { img.Files = make([]File, MaxFiles+1) }, "files: 1048577 files, limit 1048576"},
		{"negative fd", func(img *Image) { img.Files[0].FD = -1 }, "file 0 (fd -1): negative fd"},
		{"duplicate fd", func(img *Image) { img.Files[4].FD = 3 }, "file 4 (fd 3): not above fd 3 of file 3 (unsorted or duplicate)"},
		{"unsorted fd", func(img *Image) { img.Files[3].FD, img.Files[4].FD = 5, 3 }, "file 4 (fd 3): not above fd 5 of file 3"},
		{"file kind", func(img *Image) { img.Files[4].Kind = "socket" }, `file 4 (fd 5): unknown kind "socket"`},
		{"file no path", func(img *Image) { img.Files[3].Path = "" }, "file 3 (fd 3): regular without a path"},
		// stats
		{"rounds cap", func(img *Image) { img.Stats.Rounds = make([]Round, MaxRounds+1) }, "stats: 65537 rounds, limit 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, _ := fixture()
			tt.mod(img)
			err := img.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v (%T) is not a *ValidationError matching ErrInvalid", err, err)
			}
			if !strings.HasPrefix(err.Error(), "image meta: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error\n  %q\nwant it to contain\n  %q", err, tt.msg)
			}
		})
	}
}

func TestValidateAllowsUnsortedDataOffsets(t *testing.T) {
	// A later pre-copy round rewrites pages at the end of the pages file:
	// data offsets need not follow address order, only stay disjoint.
	img, _ := fixture()
	end := img.DataEnd()
	img.VMAs[2].Pages[0].DataOff = end
	img.Hashes.Pages = end/PageSize + 1
	if err := img.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := img.DataEnd(); got != end+PageSize {
		t.Errorf("DataEnd = %#x, want %#x", got, end+PageSize)
	}
}

func TestHelpers(t *testing.T) {
	img, pages := fixture()
	if got, want := img.TotalPages(), uint64(len(pages)/PageSize); got != want {
		t.Errorf("TotalPages = %d, want %d", got, want)
	}
	if got := img.DataEnd(); got != uint64(len(pages)) {
		t.Errorf("DataEnd = %d, want %d", got, len(pages))
	}
	v := img.VMAs[4]
	if v.Len() != 33*PageSize || !v.Contains(v.Start) || v.Contains(v.End) {
		t.Errorf("VMA helpers wrong for %+v", v)
	}
	r := v.Pages[0]
	if r.Len() != 3*PageSize || r.End() != r.Addr+3*PageSize || r.DataEnd() != r.DataOff+3*PageSize {
		t.Errorf("PageRun helpers wrong for %+v", r)
	}
	if (&Image{}).TotalPages() != 0 || (&Image{}).DataEnd() != 0 {
		t.Error("empty image has pages")
	}
}

func TestAppendRuns(t *testing.T) {
	a := PageRun{Addr: 0x1000, NPages: 2, DataOff: 0, CRC: []uint32{1, 2}}
	b := PageRun{Addr: 0x3000, NPages: 1, DataOff: 0x2000, CRC: []uint32{3}} // continues a
	c := PageRun{Addr: 0x5000, NPages: 1, DataOff: 0x3000, CRC: []uint32{4}} // address gap
	d := PageRun{Addr: 0x6000, NPages: 1, DataOff: 0x8000, CRC: []uint32{5}} // data gap
	e := PageRun{Addr: 0x7000, NPages: 1, DataOff: 0x9000, CRC: []uint32{6}} // continues d
	got := AppendRuns(AppendRuns(nil, a), b, c, d, e)
	want := []PageRun{
		{Addr: 0x1000, NPages: 3, DataOff: 0, CRC: []uint32{1, 2, 3}},
		c,
		{Addr: 0x6000, NPages: 2, DataOff: 0x8000, CRC: []uint32{5, 6}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AppendRuns = %+v, want %+v", got, want)
	}
	if len(a.CRC) != 2 || a.NPages != 2 {
		t.Errorf("AppendRuns modified its input run: %+v", a)
	}
}
