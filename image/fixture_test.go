package image

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"time"
)

// fixturePage returns the deterministic content of the page at addr in the
// fixture image.
func fixturePage(addr uint64) []byte {
	p := make([]byte, PageSize)
	for i := 0; i < PageSize; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], addr^uint64(i)*0x9e3779b97f4a7c15)
	}
	return p
}

// fixture returns a realistic image of a small single-threaded C program
// and the content of its pages file. Runs are laid out in VMA order.
func fixture() (*Image, []byte) {
	const (
		r  = 1 // PROT_READ
		w  = 2 // PROT_WRITE
		x  = 4 // PROT_EXEC
		sh = 1 // MAP_SHARED
		pr = 2 // MAP_PRIVATE
		gd = 0x100
	)
	exe := "/usr/local/bin/counter"
	libc := "/usr/lib/x86_64-linux-gnu/libc.so.6"
	vmas := []VMA{
		{Start: 0x555555554000, End: 0x555555555000, Prot: r, Flags: pr, Kind: KindFile, Name: exe, Path: exe, Dev: 0xfe01, Inode: 1311},
		{Start: 0x555555555000, End: 0x555555556000, Prot: r | x, Flags: pr, Kind: KindFile, Name: exe, Path: exe, Offset: 0x1000, Dev: 0xfe01, Inode: 1311},
		{Start: 0x555555557000, End: 0x555555558000, Prot: r, Flags: pr, Kind: KindFile, Name: exe, Path: exe, Offset: 0x2000, Dev: 0xfe01, Inode: 1311},
		{Start: 0x555555558000, End: 0x555555559000, Prot: r | w, Flags: pr, Kind: KindFile, Name: exe, Path: exe, Offset: 0x3000, Dev: 0xfe01, Inode: 1311},
		{Start: 0x555555559000, End: 0x55555557a000, Prot: r | w, Flags: pr, Kind: KindAnon, Name: "[heap]"},
		{Start: 0x7ffff7d80000, End: 0x7ffff7da8000, Prot: r, Flags: pr, Kind: KindFile, Name: libc, Path: libc, Dev: 0xfe01, Inode: 40213},
		{Start: 0x7ffff7f90000, End: 0x7ffff7f94000, Prot: r | w, Flags: pr, Kind: KindAnon},
		{Start: 0x7ffff7fb0000, End: 0x7ffff7fb1000, Prot: r | w, Flags: sh, Kind: KindFileShared, Name: "/dev/shm/counter", Path: "/dev/shm/counter", Dev: 0x19, Inode: 7},
		{Start: 0x7ffff7fb8000, End: 0x7ffff7fb9000, Prot: r | w, Flags: sh, Kind: KindShmemAnon, Name: "/dev/zero (deleted)", Inode: 1029},
		{Start: 0x7ffff7fc1000, End: 0x7ffff7fc5000, Prot: r, Flags: pr, Kind: KindVVAR, Name: "[vvar]"},
		{Start: 0x7ffff7fc5000, End: 0x7ffff7fc7000, Prot: r, Flags: pr, Kind: KindVVARVclock, Name: "[vvar_vclock]"},
		{Start: 0x7ffff7fc7000, End: 0x7ffff7fc9000, Prot: r | x, Flags: pr, Kind: KindVDSO, Name: "[vdso]"},
		{Start: 0x7ffffffde000, End: 0x7ffffffff000, Prot: r | w, Flags: pr | gd, Kind: KindAnon, Name: "[stack]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: x, Flags: pr, Kind: KindVsyscall, Name: "[vsyscall]"},
	}
	// Stored pages per VMA index: (first page index, count) pairs. The
	// heap and stack have holes where zero pages were skipped.
	stored := map[int][][2]uint64{
		2:  {{0, 1}},
		3:  {{0, 1}},
		4:  {{0, 3}, {5, 1}, {31, 2}},
		6:  {{0, 4}},
		8:  {{0, 1}},
		11: {{0, 2}},
		12: {{30, 3}},
	}
	var pages []byte
	for i := range vmas {
		for _, s := range stored[i] {
			run := PageRun{Addr: vmas[i].Start + s[0]*PageSize, NPages: s[1], DataOff: uint64(len(pages))}
			for p := range s[1] {
				b := fixturePage(run.Addr + p*PageSize)
				run.CRC = append(run.CRC, PageCRC(b))
				pages = append(pages, b...)
			}
			vmas[i].Pages = append(vmas[i].Pages, run)
		}
	}
	// Version 2: pages inherited from the parent (crid 41) and a page of
	// a private file mapping that is zero.
	vmas[4].Inherit = []Span{{Addr: vmas[4].Start + 3*PageSize, NPages: 2}, {Addr: vmas[4].Start + 6*PageSize, NPages: 1}}
	vmas[1].Zero = []Span{{Addr: vmas[1].Start, NPages: 1}}
	var hashes []uint64
	for off := 0; off < len(pages); off += PageSize {
		hashes = append(hashes, PageHash(pages[off:off+PageSize]))
	}
	_, hashIndex := EncodeHashes(hashes)
	regs := make([]byte, AMD64RegsSize)
	for i := range regs {
		regs[i] = byte(i * 7)
	}
	xstate := make([]byte, 832)
	for i := range xstate {
		xstate[i] = byte(i ^ 0x5a)
	}
	si := make([]byte, SiginfoSize)
	si[0] = 10 // SIGUSR1
	img := &Image{
		Header: Header{
			CRID:          42,
			ID:            "5f0c6b1e9a2d4c7b8e3f10a2b4c6d8e0",
			ParentCRID:    41,
			ParentID:      "0123456789abcdef0123456789abcdef",
			Parent:        "../counter-41",
			PID:           4127,
			Time:          time.Date(2026, 11, 26, 23, 30, 1, 123456789, time.UTC),
			KernelRelease: "6.18.44",
			Arch:          "amd64",
			CrbpfVersion:  "v0.1.0",
			Comm:          "counter",
			Exe:           exe,
			Cmdline:       []string{exe, "--every", "100ms", "a&b<c>"},
		},
		MM: MM{
			StartCode: 0x555555555000, EndCode: 0x555555555e2d,
			StartData: 0x555555557df0, EndData: 0x555555558010,
			StartBrk: 0x555555559000, Brk: 0x55555557a123,
			StartStack: 0x7fffffffe2c0,
			ArgStart:   0x7fffffffe5a1, ArgEnd: 0x7fffffffe5c7,
			EnvStart: 0x7fffffffe5c7, EnvEnd: 0x7fffffffefd9,
			Auxv:    []uint64{33, 0x7ffff7fc7000, 6, 4096, 3, 0x555555554040, 9, 0x555555555060, 0, 0},
			ExePath: exe,
		},
		VMAs: vmas,
		Task: Task{
			TID:         4127,
			Regs:        regs,
			XState:      xstate,
			SigMask:     1 << 13,
			SigActions:  []SigAction{{Signo: 2, Handler: 0x5555555551a9, Flags: 0x04000000, Restorer: 0x7ffff7dc5050, Mask: 0}, {Signo: 10, Handler: 0x5555555551c0, Flags: 0x14000000, Restorer: 0x7ffff7dc5050, Mask: 1 << 1}},
			SigAltStack: SigAltStack{Flags: 2},
			Pending:     []Siginfo{{Raw: si}},
			Rseq:        &Rseq{Addr: 0x7ffff7d7f9e0, Len: 32, Sig: 0x53053053},
			RobustList:  RobustList{Head: 0x7ffff7d7f740, Len: 24},
			ClearTID:    0x7ffff7d7fa10,
			Comm:        "counter",
			Cwd:         "/home/user",
			Umask:       0o022,
			Rlimits:     []Rlimit{{Resource: 3, Cur: 8 << 20, Max: ^uint64(0)}, {Resource: 7, Cur: 1024, Max: 524288}},
			ITimers:     []ITimer{{Which: 0, Interval: 100e6, Value: 42e6}},
			PosixTimers: []PosixTimer{{ID: 0, ClockID: 1, Notify: 0, Signo: 14, Value: 7, Interval: 0, Remain: 250e6}},
		},
		Files: []File{
			{FD: 0, Kind: FileStdio, Path: "/dev/pts/3", Flags: 2, Mode: 0o20620},
			{FD: 1, Kind: FileStdio, Path: "/dev/pts/3", Flags: 2, Mode: 0o20620},
			{FD: 2, Kind: FileStdio, Path: "/dev/pts/3", Flags: 2, Mode: 0o20620},
			{FD: 3, Kind: FileRegular, Path: "/var/log/counter.log", Flags: 0o2001, Cloexec: true, Pos: 8192, Mode: 0o100644, Dev: 0xfe01, Inode: 5512, Size: 8192},
			{FD: 5, Kind: FileChar, Path: "/dev/null", Flags: 0, Mode: 0o20666},
			{FD: 7, Kind: FileDir, Path: "/home/user", Flags: 0o200000, Cloexec: true, Mode: 0o40755},
		},
		Stats: Stats{
			FreezeNanos: 8_600_000, TotalNanos: 310_000_000,
			PagesWritten: 13, BytesWritten: 13 * PageSize,
			Rounds:     []Round{{Index: 0, DirtyPages: 40, Bytes: 40 * PageSize, Nanos: 1_200_000}, {Index: 1, DirtyPages: 3, Bytes: 3 * PageSize, Nanos: 90_000}},
			StopReason: "converged",
		},
		Hashes: hashIndex,
	}
	return img, pages
}

// jsonOf encodes img as Encode does, without validating it.
func jsonOf(img *Image) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(img); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
