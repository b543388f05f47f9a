package precopy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/writer"
)

// Tracker reports the pages of the target written since they were last
// reported, and protects them again.
type Tracker interface {
	// Track starts tracking [start, end): writes after it returns are
	// reported by Written.
	Track(start, end uint64) error
	Scanner
}

// Scanner is the reporting half of a Tracker.
type Scanner interface {
	// Written returns the written ranges of [start, end), appended to
	// buf[:0], and re-protects them. A mapping in the range that is not
	// tracked ends the call with an *UntrackedError; the ranges returned
	// with any error are valid and must be copied.
	Written(start, end uint64, buf []Range) ([]Range, error)
	// Peek is Written without the re-protecting, for a last scan after
	// which the tracking ends: the pages it reports stay writable.
	Peek(start, end uint64, buf []Range) ([]Range, error)
}

// After says what becomes of the tracking after the frozen Sync.
type After int

const (
	// TrackingEnds: the frozen Sync is the tracking's last use. It leaves
	// the pages it reports writable (Tracker.Peek) and copies new mappings
	// without tracking them. Protecting them again, with the target
	// stopped, only for the release to undo it cost 0.2 ms of a 1 GiB
	// freeze here, and as much again of the target's gap after it.
	TrackingEnds After = iota
	// TrackingGoesOn: a later checkpoint goes on from this one's tracking
	// (the daemon): what the frozen Sync reports is protected again, and
	// new mappings are tracked.
	TrackingGoesOn
)

// UntrackedError names a mapping the Tracker does not track (created or
// moved after tracking started).
type UntrackedError struct{ Start, End uint64 }

func (e *UntrackedError) Error() string {
	return fmt.Sprintf("mapping %#x-%#x is not tracked", e.Start, e.End)
}

// ChunkSize bounds one read of the target's memory; DESIGN.md measured
// large process_vm_readv chunks as the fast path.
const ChunkSize = 64 << 20

// logEntry records one copy: a run of stored pages, a range found zero or
// equal to the parent's, or (kind noData) a range whose earlier copies no
// longer hold.
type logEntry struct {
	start, end uint64
	kind       entryKind
	run        image.PageRun // kind entryStored
}

type entryKind uint8

const (
	entryNoData entryKind = iota // zero (anonymous) or the file's content
	entryStored                  // in the pages file: run
	entryZero                    // all zero
	entrySame                    // equal to the parent's page
)

// Stats are the figures of one Sync.
type Stats struct {
	Scanned    int           // ranges the Tracker reported
	DirtyPages uint64        // pages the Tracker reported
	NewPages   uint64        // pages of mappings copied whole
	Pages      uint64        // pages stored (non-zero)
	Bytes      uint64        // bytes stored
	Deferred   uint64        // pages that could not be read while the target ran, left to the next Sync
	Pieces     int           // pieces of the split last scan (see SetHelper)
	Helped     int           // of them, those the helper scanned
	Scan       time.Duration // time spent asking the Tracker (and reading pagemap)
	Duration   time.Duration // wall time of the Sync
}

// stagedChunk is a chunk read but not yet written (see WriteStaged).
type stagedChunk struct {
	addr  uint64
	data  []byte
	flags writer.Flags
}

// written is the result of one write to the image.
type written struct {
	wr  writer.Written
	err error
}

// Copier copies a target's pages into an image writer, round after round.
type Copier struct {
	pid     int
	w       *writer.Writer
	tracker Tracker
	pagemap *os.File
	mem     *os.File // /proc/PID/mem for mappings process_vm_readv cannot read
	pm      []procfs.PagemapEntry
	scan    []Range

	known     rangeSet // copied whole and tracked (or no tracker)
	untracked rangeSet // Track failed: copied whole every Sync
	retry     rangeSet // unreadable while the target ran: copied whole by the next Sync
	frozen    bool     // the target is stopped: a failed read is an error
	ending    bool     // set by SyncFrozen: the tracking ends after it (TrackingEnds)
	log       []logEntry

	bufs [2][]byte
	cur  int
	// trackStep is how much of a new mapping is tracked (registered and
	// protected) before it is copied: the larger of the buffers and
	// ChunkSize, so that a large sparse mapping of a small target is not
	// registered in thousands of steps (each takes the mmap lock).
	trackStep uint64
	inflight  chan written // the write in flight, nil when none
	// staged are the chunks the frozen Sync after pre-copy read into
	// bufs (stageUsed bytes of them, end to end) for WriteStaged.
	staged    []stagedChunk
	stageUsed uint64
	stats     *Stats
	ctx       context.Context // of the running Sync; nil in SyncFrozen
	// helper scans beside the frozen Sync (SetHelper); split is that
	// scan (BeginFrozen).
	helper             Helper
	split              *split
	splitMin, pieceMin uint64 // splitMin and pieceMin, lowered by tests
}

// SetHelper lets the frozen Sync split its scan of the tracked memory
// with h's thread, when the Tracker is a SideTracker (see BeginFrozen).
// Call it before SyncFrozen.
func (c *Copier) SetHelper(h Helper) { c.helper = h }

// NewCopier prepares copying pid's memory into w, through bufs (two
// buffers of one size, a multiple of the page size; see NewBuffers).
// tracker may be nil: then a single Sync copies everything (the
// full-freeze path).
func NewCopier(pid int, w *writer.Writer, bufs [2][]byte, tracker Tracker) (*Copier, error) {
	if n := len(bufs[0]); n == 0 || n%os.Getpagesize() != 0 || len(bufs[1]) != n {
		return nil, fmt.Errorf("copy buffers of %d and %d bytes: want one size, a multiple of the page size", n, len(bufs[1]))
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("open pagemap of pid %d: %w", pid, err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		pm.Close()
		return nil, fmt.Errorf("open memory of pid %d: %w", pid, err)
	}
	return &Copier{pid: pid, w: w, tracker: tracker, pagemap: pm, mem: mem, bufs: bufs,
		trackStep: max(uint64(len(bufs[0])), ChunkSize), splitMin: splitMin, pieceMin: pieceMin}, nil
}

// Known returns the ranges that are tracked and were copied (as of the
// last Sync): after a checkpoint's last Sync, what a Tracker kept armed
// reports about from then on.
func (c *Copier) Known() []Range { return slices.Clone(c.known.r) }

// Continue starts a Copier where the Copier of a previous checkpoint (the
// parent) left off with the same Tracker still armed: known are its Known
// ranges, whose pages the parent has unless the Tracker reports them
// written since; parentData are the ranges where the parent has page
// data. Those pages start as "equal to the parent's"; Sync then copies only
// what the Tracker reports (and mappings that are new). Call it before the
// first Sync.
func (c *Copier) Continue(known, parentData []Range) {
	for _, r := range known {
		c.known.add(r.Start, r.End)
	}
	for _, p := range parentData {
		in, _ := c.known.split(p.Start, p.End)
		for _, r := range in {
			c.log = append(c.log, logEntry{start: r.Start, end: r.End, kind: entrySame})
		}
	}
}

// Close waits for a write in flight and closes the Copier's files.
func (c *Copier) Close() error {
	err := c.flush()
	c.mem.Close()
	return errors.Join(err, c.pagemap.Close())
}

// copied reports whether a mapping kind has pages in the image.
func copied(kind string) bool {
	switch kind {
	case image.KindAnon, image.KindFile, image.KindShmemAnon, image.KindVDSO:
		return true
	}
	return false
}

// trackable reports whether writes to a mapping kind can be tracked.
func trackable(kind string) bool {
	return kind == image.KindAnon || kind == image.KindFile || kind == image.KindShmemAnon
}

// Sync brings the copy up to date with the mappings vmas (as just read from
// /proc/PID/maps) while the target runs: mappings or parts not seen before
// are tracked and copied whole; known ones are scanned and what was written
// is copied again. A part that cannot be read because the target unmapped,
// shrank or protected it since vmas were read is left to the next Sync,
// which copies it whole if it is still mapped.
//
// A cancelled ctx ends Sync within one copy chunk (ChunkSize or the
// buffer size) with ctx's error, and the Copier is then only fit for
// Close: round 0 of a large target takes seconds, and an interrupted
// checkpoint should not make its user wait for it.
func (c *Copier) Sync(ctx context.Context, vmas []image.VMA) (Stats, error) {
	c.ctx = ctx
	defer func() { c.ctx = nil }()
	return c.sync(vmas)
}

// SyncFrozen is the last Sync, with the target stopped: vmas are exact, so
// every read must succeed. With a Tracker (after pre-copy) it only reads,
// into the copy buffers: call WriteStaged once the target runs again; then
// says whether the tracking goes on after it.
func (c *Copier) SyncFrozen(vmas []image.VMA, then After) (Stats, error) {
	c.frozen = true
	c.ending = then == TrackingEnds
	return c.sync(vmas)
}

func (c *Copier) sync(vmas []image.VMA) (Stats, error) {
	t0 := time.Now()
	var st Stats
	c.stats = &st
	defer func() { c.stats, c.split = nil, nil }()
	if c.frozen && c.ending {
		c.BeginFrozen(TrackingEnds)
		if c.split != nil {
			c.finishSplit()
		}
	}
	for i := range vmas {
		v := &vmas[i]
		if !copied(v.Kind) {
			continue
		}
		if err := c.syncVMA(v); err != nil {
			return st, err
		}
	}
	err := c.flush()
	st.Duration = time.Since(t0)
	return st, err
}

func (c *Copier) syncVMA(v *image.VMA) error {
	old, fresh := c.known.split(v.Start, v.End)
	// Known parts: copy what the Tracker says was written.
	if c.tracker != nil {
		for _, r := range old {
			if err := c.scanCopy(v, r); err != nil {
				return err
			}
		}
	}
	// Parts that could not be tracked are copied whole every time.
	unt, _ := c.untracked.split(v.Start, v.End)
	for _, r := range unt {
		if err := c.copyWhole(v, r); err != nil {
			return err
		}
	}
	// Parts a running round could not read: copied whole once more (a
	// failing read puts its rest back). Untracked parts were just copied.
	again, _ := c.retry.split(v.Start, v.End)
	for _, r := range again {
		c.retry.remove(r.Start, r.End)
		_, tracked := c.untracked.split(r.Start, r.End)
		for _, p := range tracked {
			if err := c.copyWhole(v, p); err != nil {
				return err
			}
		}
	}
	// New parts: track first, then copy, so no write is missed.
	for _, r := range fresh {
		// Parts already known as untracked were copied whole above; track
		// and copy the rest (skipping the whole range lost new pages).
		_, rest := c.untracked.split(r.Start, r.End)
		for _, p := range rest {
			if err := c.trackAndCopy(v, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Copier) trackAndCopy(v *image.VMA, r Range) error {
	if c.tracker != nil && c.ending {
		// Nothing will scan it again: copying it is enough.
		c.known.add(r.Start, r.End)
	} else if c.tracker != nil && trackable(v.Kind) {
		// Track and copy trackStep bytes at a time: protecting a range
		// rewrites its page table entries, which on this machine (a
		// guest whose page tables the hypervisor shadows) stalls the
		// running target. Protecting a 1 GiB mapping in one call took
		// 17-32 ms and the target had a gap of 14-16 ms during it and
		// one of 19-26 ms starting when it returned; 64 MiB chunks, each
		// followed by its copy (~30 ms), took 0.5-2 ms each and left
		// no gap over 11 ms. A chunk is protected before it is read, so
		// a write just before its protection is in the copy.
		for a := r.Start; a < r.End; a += c.trackStep {
			p := Range{a, min(a+c.trackStep, r.End)}
			if err := c.tracker.Track(p.Start, p.End); err != nil {
				c.untracked.add(p.Start, r.End)
				return c.copyWhole(v, Range{p.Start, r.End})
			}
			c.known.add(p.Start, p.End)
			if err := c.copyWhole(v, p); err != nil {
				return err
			}
		}
		return nil
	} else if c.tracker == nil {
		c.known.add(r.Start, r.End)
	} else {
		// vDSO and friends: copied whole every Sync (two pages).
		c.untracked.add(r.Start, r.End)
	}
	return c.copyWhole(v, r)
}

// scanCopy copies the written ranges of r, handling mappings that appeared
// there since they were tracked.
func (c *Copier) scanCopy(v *image.VMA, r Range) error {
	if c.split != nil {
		return c.scanSplit(v, r)
	}
	return c.scanCopyFrom(v, r)
}

// scanCopyFrom scans r and copies what was written.
func (c *Copier) scanCopyFrom(v *image.VMA, r Range) error {
	for start := r.Start; start < r.End; {
		t0 := time.Now()
		written := c.tracker.Written
		if c.ending {
			written = c.tracker.Peek
		}
		got, err := written(start, r.End, c.scan)
		c.stats.Scan += time.Since(t0)
		c.scan = got
		if err := c.copyReported(v, got, r); err != nil {
			return err
		}
		var ue *UntrackedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ue):
			u := Range{max(ue.Start, start), min(ue.End, r.End)}
			if u.Start >= u.End {
				return fmt.Errorf("scan %#x-%#x: untracked range %#x-%#x outside it", start, r.End, ue.Start, ue.End)
			}
			c.known.remove(u.Start, u.End)
			if err := c.trackAndCopy(v, u); err != nil {
				return err
			}
			start = u.End
		default:
			return fmt.Errorf("scan written pages of %#x-%#x: %w", start, r.End, err)
		}
	}
	return nil
}

// copyReported copies the ranges a scan reported written, cut to within
// (a scan of a larger range may report beyond it).
func (c *Copier) copyReported(v *image.VMA, got []Range, within Range) error {
	for _, d := range got {
		d = Range{max(d.Start, within.Start), min(d.End, within.End)}
		if d.Start >= d.End {
			continue
		}
		c.stats.Scanned++
		c.stats.DirtyPages += (d.End - d.Start) / image.PageSize
		if err := c.copyDirty(v, d); err != nil {
			return err
		}
	}
	return nil
}

// copyWhole copies every page of r that restart cannot get elsewhere.
func (c *Copier) copyWhole(v *image.VMA, r Range) error {
	var ranges []Range
	switch v.Kind {
	case image.KindVDSO, image.KindShmemAnon:
		// vDSO: saved so restart can compare it. Shared memory pages are
		// often absent from this process's page tables: read it all.
		ranges = []Range{r}
	case image.KindAnon:
		sel, err := c.selectPages(r, func(e procfs.PagemapEntry) bool { return e.Present() || (e.Swapped() && !e.PTEMarker()) })
		if err != nil {
			return err
		}
		ranges = sel
	case image.KindFile:
		sel, err := c.selectPages(r, c.privateCopy)
		if err != nil {
			return err
		}
		ranges = sel
	}
	c.stats.NewPages += (r.End - r.Start) / image.PageSize
	c.log = append(c.log, logEntry{start: r.Start, end: r.End})
	for _, s := range ranges {
		if err := c.copyRange(v, s); err != nil {
			return err
		}
	}
	return nil
}

// privateCopy selects the pages of a private file mapping that the process
// changed: the others come back from the file. A non-present entry counts
// only when it is really in swap: uffd-wp leaves a PTE marker (shown as a
// swap entry) where MADV_DONTNEED gave a protected page back to the file,
// and where it protected a page never touched.
func (c *Copier) privateCopy(e procfs.PagemapEntry) bool {
	return (e.Present() || (e.Swapped() && !e.PTEMarker())) && !e.FileOrSharedAnon()
}

// copyDirty copies a range the Tracker reported written.
func (c *Copier) copyDirty(v *image.VMA, d Range) error {
	c.log = append(c.log, logEntry{start: d.Start, end: d.End, kind: entryNoData})
	if v.Kind != image.KindFile {
		return c.copyRange(v, d)
	}
	// A written page of a private file mapping is a private copy, unless
	// MADV_DONTNEED gave it back to the file since.
	sel, err := c.selectPages(d, c.privateCopy)
	if err != nil {
		return err
	}
	for _, s := range sel {
		if err := c.copyRange(v, s); err != nil {
			return err
		}
	}
	return nil
}

// FixFilePages records, for each private file mapping, that pages which
// are no longer private copies come from the file, whatever was copied of
// them before. It covers MADV_DONTNEED of a still-protected page, which no
// Tracker reports. Call it while the target is frozen, after the last Sync.
func (c *Copier) FixFilePages(vmas []image.VMA) error {
	for i := 0; i < len(vmas); i++ {
		if vmas[i].Kind != image.KindFile {
			continue
		}
		// A file's mappings (text, data, ...) usually lie end to end:
		// one pagemap read for all of them (records may span several
		// mappings; Fill clips them).
		span := Range{vmas[i].Start, vmas[i].End}
		for i+1 < len(vmas) && vmas[i+1].Kind == image.KindFile && vmas[i+1].Start == span.End {
			i++
			span.End = vmas[i].End
		}
		shared, err := c.selectPages(span, func(e procfs.PagemapEntry) bool { return !c.privateCopy(e) })
		if err != nil {
			return err
		}
		for _, r := range shared {
			c.log = append(c.log, logEntry{start: r.Start, end: r.End, kind: entryNoData})
		}
	}
	return nil
}

func (c *Copier) selectPages(r Range, keep func(procfs.PagemapEntry) bool) ([]Range, error) {
	var out []Range
	const step = 1 << 30 // bound the pagemap buffer to 2 MiB of entries
	for start := r.Start; start < r.End; start += step {
		end := min(start+step, r.End)
		entries, err := procfs.ReadPagemapFile(c.pagemap, start, end, c.pm[:0])
		if err != nil {
			return nil, fmt.Errorf("read pagemap of %#x-%#x: %w", start, end, err)
		}
		c.pm = entries
		for i, e := range entries {
			if !keep(e) {
				continue
			}
			addr := start + uint64(i)*image.PageSize
			if n := len(out); n > 0 && out[n-1].End == addr {
				out[n-1].End += image.PageSize
			} else {
				out = append(out, Range{addr, addr + image.PageSize})
			}
		}
	}
	return out, nil
}

// copyRange reads r from the target and hands it to the writer, which runs
// while the next chunk is read; in the frozen Sync after pre-copy it only
// stages what it read (see WriteStaged).
func (c *Copier) copyRange(v *image.VMA, r Range) error {
	readable := v.Prot&0x1 != 0
	// The vDSO is kept whole: restart compares it with the running
	// kernel's.
	flags := writer.SkipZero | writer.Dedup
	if v.Kind == image.KindVDSO {
		flags = 0
	}
	for addr := r.Start; addr < r.End; {
		if c.ctx != nil {
			if err := c.ctx.Err(); err != nil {
				return err
			}
		}
		n := min(r.End-addr, uint64(len(c.bufs[c.cur])))
		buf := c.bufs[c.cur][:n]
		staging := c.frozen && c.tracker != nil
		if staging {
			var err error
			if buf, err = c.stageBuf(n); err != nil {
				return err
			}
		}
		var got int
		var err error
		if readable {
			got, err = ptrace.ReadMem(c.pid, addr, buf)
		} else {
			got, err = c.mem.ReadAt(buf, int64(addr))
		}
		if err != nil || uint64(got) != n {
			if c.frozen {
				if err == nil {
					err = fmt.Errorf("short read of %d bytes", got)
				}
				return fmt.Errorf("read %s %#x-%#x: %w", v.Name, addr, addr+n, err)
			}
			if errors.Is(err, ptrace.ErrTaskGone) {
				return err
			}
			// The target unmapped, shrank or protected this part since
			// its mappings were read: keep the whole pages read, leave
			// the rest to the next Sync.
			got = max(got, 0) &^ (image.PageSize - 1)
			rest := addr + uint64(got)
			c.retry.add(rest, r.End)
			c.stats.Deferred += (r.End - rest) / image.PageSize
			if got == 0 {
				return nil
			}
			n = uint64(got)
			buf = buf[:n]
			r.End = rest
		}
		c.stats.Pages += n / image.PageSize
		c.stats.Bytes += n
		if staging {
			c.staged = append(c.staged, stagedChunk{addr: addr, data: buf, flags: flags})
			c.stageUsed += n
			addr += n
			continue
		}
		if err := c.flush(); err != nil {
			return err
		}
		done := make(chan written, 1)
		c.inflight = done
		go func(addr uint64) {
			wr, err := c.w.WritePages(addr, buf, flags)
			done <- written{wr, err}
		}(addr)
		c.cur ^= 1
		addr += n
	}
	return nil
}

// stageBuf returns room for n bytes in the staging area (the two copy
// buffers, end to end), writing out what is staged when it is full.
func (c *Copier) stageBuf(n uint64) ([]byte, error) {
	if err := c.flush(); err != nil {
		return nil, err
	}
	size := uint64(len(c.bufs[0]))
	for {
		off := c.stageUsed
		if off < size && off+n > size {
			off = size // a chunk does not span the two buffers
		}
		if off+n <= 2*size {
			c.stageUsed = off
			b := c.bufs[off/size]
			off %= size
			return b[off : off+n], nil
		}
		if err := c.WriteStaged(); err != nil {
			return nil, err
		}
	}
}

// WriteStaged writes the pages the last Sync with the target stopped (after
// pre-copy) read but did not write: that Sync only reads, into the copy
// buffers, and its writes (hashing, the image file) wait until the target
// runs again. Call it after SyncFrozen and FixFilePages, before Fill.
func (c *Copier) WriteStaged() error {
	for _, s := range c.staged {
		wr, err := c.w.WritePages(s.addr, s.data, s.flags)
		c.record(wr)
		if err != nil {
			return err
		}
	}
	c.staged, c.stageUsed = c.staged[:0], 0
	return nil
}

// flush waits for the write in flight, if any, and records its runs. Only
// the caller's goroutine touches the log; records of disjoint ranges may
// land in any order, those of one range land after its "no data" record.
func (c *Copier) flush() error {
	if c.inflight == nil {
		return nil
	}
	res := <-c.inflight
	c.inflight = nil
	c.record(res.wr)
	return res.err
}

// record logs what one write stored.
func (c *Copier) record(wr writer.Written) {
	for _, run := range wr.Runs {
		c.log = append(c.log, logEntry{start: run.Addr, end: run.End(), kind: entryStored, run: run})
	}
	for _, s := range wr.Zero {
		c.log = append(c.log, logEntry{start: s.Addr, end: s.End(), kind: entryZero})
	}
	for _, s := range wr.Same {
		c.log = append(c.log, logEntry{start: s.Addr, end: s.End(), kind: entrySame})
	}
}

// Fill sets the page runs of v and, for pages without data, its zero and
// inherited spans: for each page, its last copy, unless a later record says
// it has no data. Call it after the last Sync (and FixFilePages), when the
// target runs again: it costs a pass over v's pages.
func (c *Copier) Fill(v *image.VMA) {
	if len(c.staged) > 0 {
		panic("precopy: Fill before WriteStaged")
	}
	v.Pages, v.Zero, v.Inherit = nil, nil, nil
	if !copied(v.Kind) {
		return
	}
	n := (v.End - v.Start) / image.PageSize
	type slot struct {
		off  uint64
		crc  uint32
		kind entryKind
	}
	slots := make([]slot, n)
	for _, e := range c.log {
		a, b := max(e.start, v.Start), min(e.end, v.End)
		if a >= b {
			continue
		}
		for p := a; p < b; p += image.PageSize {
			i := (p - v.Start) / image.PageSize
			if e.kind != entryStored {
				slots[i] = slot{kind: e.kind}
				continue
			}
			k := (p - e.run.Addr) / image.PageSize
			slots[i] = slot{off: e.run.DataOff + k*image.PageSize, crc: e.run.CRC[k], kind: entryStored}
		}
	}
	for i := uint64(0); i < n; i++ {
		s := slots[i]
		addr := v.Start + i*image.PageSize
		switch s.kind {
		case entryZero:
			// Pages of other kinds without data are zero anyway.
			if v.Kind == image.KindFile {
				v.Zero = image.AppendSpan(v.Zero, addr, addr+image.PageSize)
			}
		case entrySame:
			v.Inherit = image.AppendSpan(v.Inherit, addr, addr+image.PageSize)
		case entryStored:
			if k := len(v.Pages) - 1; k >= 0 && v.Pages[k].End() == addr && v.Pages[k].DataEnd() == s.off {
				v.Pages[k].NPages++
				v.Pages[k].CRC = append(v.Pages[k].CRC, s.crc)
				continue
			}
			v.Pages = append(v.Pages, image.PageRun{Addr: addr, NPages: 1, DataOff: s.off, CRC: []uint32{s.crc}})
		}
	}
}
