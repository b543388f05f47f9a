package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/dirty"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/internal/sched"
	"github.com/crbpf/crbpf/loader"
	"github.com/crbpf/crbpf/precopy"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/writer"
	"golang.org/x/sys/unix"
)

// Auto asks for pre-copy where the kernel can track writes, with up to
// AutoRounds rounds ended by the downtime budget, and a full freeze
// elsewhere.
const (
	Auto       = -1
	AutoRounds = 6
)

// DefaultMaxDowntime is the freeze that pre-copy aims for.
const DefaultMaxDowntime = 10 * time.Millisecond

// Options says what to checkpoint and where.
type Options struct {
	PID int
	// Dir is the final image directory, which must not exist; empty means
	// ./crbpf-<crid>.
	Dir string
	// NewCRID issues the checkpoint's crid. It is called once the target
	// passed inspection, so refused targets use up no crid.
	NewCRID func() (uint64, error)
	Kill    bool   // end the target once the image is complete
	Version string // crbpf version recorded in the header
	Log     *slog.Logger

	// Precopy is the maximum number of copy rounds while the target runs
	// before the final freeze: 0 copies everything while frozen, Auto
	// decides.
	Precopy int
	// MaxDowntime ends pre-copy once the final round is predicted to fit.
	MaxDowntime time.Duration
	// Progress, if set, is called after each pre-copy round.
	Progress func(Round)
	// PrecopyEnded, if set, is called when pre-copy ends, with the number
	// of rounds and why (Result.StopReason), before the final stop.
	PrecopyEnded func(rounds int, reason string)
	// Releasing, if set, is called once the target runs again and the
	// paced removal of the write protection from tracked bytes of it
	// begins (not when the tracking is kept or the target killed). The
	// checkpoint returns when it is done: about a second per GiB.
	Releasing func(tracked uint64)

	// Telemetry, if set, is eBPF telemetry loaded by the caller (a daemon
	// keeps it attached): Run adds the target to it and removes it again,
	// and does not close it. Nil: Run loads its own for a pre-copy.
	Telemetry *loader.Tracker
	// SelfConn marks the target's fd SelfConnFD as its connection to the
	// daemon taking this checkpoint on its own request (a unix socket): it
	// is saved as image.FileSelfConn instead of being refused.
	SelfConn   bool
	SelfConnFD int

	// Parent, if set, makes the checkpoint incremental: pages equal to the
	// parent chain's are not stored but inherited from it.
	Parent *Parent
	// Tracking, if set, keeps write tracking armed on the target after the
	// checkpoint (unless it is killed or the checkpoint fails), and reuses
	// it when it was kept by the checkpoint that is Parent: only pages
	// written since are copied. The caller closes it when done.
	Tracking *Tracking
}

// Tracking is write tracking kept armed on a target between checkpoints.
type Tracking struct {
	pid     int
	crid    uint64 // the checkpoint whose freeze the tracker counts from
	tracker *uffdTracker
	known   []precopy.Range
	// Watched is for the owner (e.g. a daemon watching for the process's
	// exit); Run does not use it.
	Watched bool
}

// Active reports whether tracking is armed (on some process).
func (t *Tracking) Active() bool { return t != nil && t.tracker != nil }

// Armed reports whether tracking is kept for pid since checkpoint crid.
func (t *Tracking) Armed(pid int, crid uint64) bool {
	return t != nil && t.tracker != nil && t.pid == pid && t.crid == crid
}

// Close removes the protection from the target (paced, see
// dirty.ReleaseChunk) and forgets it. Closing twice is a no-op.
func (t *Tracking) Close() error {
	if t == nil || t.tracker == nil {
		return nil
	}
	tr := t.tracker
	t.forget()
	return tr.Close()
}

// forget drops the tracker without closing it.
func (t *Tracking) forget() {
	*t = Tracking{Watched: t.Watched}
}

// Parent is the image an incremental checkpoint builds on.
type Parent struct {
	Chain *chain.Chain // the parent image (its tip) and its ancestors
	// Hint is where the parent image is, for the image header: relative
	// to the new image's directory, or absolute. Empty: computed from
	// Chain's tip directory.
	Hint string
}

// Round describes one pre-copy round.
type Round struct {
	Index      int
	DirtyPages uint64 // pages reported written since the previous round
	NewPages   uint64 // pages of mappings seen for the first time (copied whole)
	Pages      uint64 // pages read
	Bytes      uint64
	Duration   time.Duration
	// DeferredPages could not be read because the target unmapped, shrank
	// or protected them during the round; the next round copies what is
	// still mapped.
	DeferredPages uint64
	// WriteFaults counts first writes to protected pages during the round
	// (eBPF; valid when FaultTelemetry).
	WriteFaults    uint64
	FaultTelemetry bool
	// PredictedFreeze is the time the final copy would take if pre-copy
	// stopped after this round (0 when no estimate is possible yet): this
	// round's scan time plus the expected dirty pages at the copy rate.
	PredictedFreeze time.Duration
}

// Result describes a completed checkpoint.
type Result struct {
	CRID   uint64
	Image  string
	PID    int
	Freeze time.Duration // target stopped for the final copy (the downtime)
	Total  time.Duration
	// Release is the paced removal of the write protection after the
	// resume, part of Total (0 when the tracking was kept or the target
	// killed).
	Release time.Duration
	Pages   uint64
	Bytes   uint64
	Killed  bool
	// Mode is "precopy" or "full-freeze"; ModeReason says why when it is not
	// what was asked for.
	Mode       string
	ModeReason string
	Rounds     []Round
	StopReason string
	// Telemetry says what eBPF telemetry ran: "ebpf", or why it is reduced.
	Telemetry string
	// StateReused: the freeze used the task state read before it, which
	// eBPF showed unchanged, instead of injecting calls to read it.
	StateReused bool
	// FinalDirtyPages were copied while frozen.
	FinalDirtyPages uint64
	// ParentCRID is the parent of an incremental checkpoint (0: full);
	// Incremental says how unchanged pages were found; InheritedPages
	// were taken from the parent instead of stored, ZeroPages are zero
	// pages of private file mappings (recorded, not stored).
	ParentCRID     uint64
	Incremental    string
	InheritedPages uint64
	ZeroPages      uint64
	// Warnings are things that were saved with reduced fidelity.
	Warnings []string
}

// Run takes a checkpoint. See the package doc for the safety rules it
// follows.
func Run(ctx context.Context, tr *ptrace.Tracer, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxDowntime <= 0 {
		o.MaxDowntime = DefaultMaxDowntime
	}
	start := time.Now()
	// Tracking kept by the parent's checkpoint: no arming, and only what
	// was written since is copied (pre-copy with one round, see below).
	reuse := o.Parent != nil && o.Tracking.Armed(o.PID, o.Parent.Chain.Tip().Image.Header.CRID)
	// With pre-copy everything up to the final stop runs beside the target
	// and must not take its CPU: issuing the crid (an fsync), loading the
	// eBPF programs, reserving the image (the page allocator's work for
	// every page), the rounds. The stops run on the tracer thread in the
	// normal class (sched.Unyield), never in a real-time one (see
	// sched.PauseGC); a full freeze runs at crbpf's own priority. With
	// loading and reserving at normal priority a 1 GiB target had gaps of
	// 14-18 ms before the arming stop in two of three timelines; yielding,
	// one of five had gaps over 8 ms (11 ms).
	//
	// crbpf first leaves the CPUs its target's threads run on while others
	// are left (sched.Avoid; on 2 vCPUs a busy 1 GiB target's largest gap
	// from the arming stop to the final stop, 12 alternating checkpoints
	// each: 8.2 ms without, 2.8 ms with, medians), then yields, and only
	// then does any work. Yielding on the target's CPU is worse than not
	// yielding: a thread made idle-class while it runs there was seen to
	// keep the CPU from the runnable target until the next tick (4 ms).
	unyield := func() {}
	if o.Precopy != 0 || reuse {
		stopAvoiding := sched.Avoid(o.PID)
		restorePolicy := sched.Yield()
		unyield = sync.OnceFunc(func() {
			stopAvoiding()
			restorePolicy()
		})
		defer unyield()
	}
	tgt, err := inspect(o.PID)
	if err != nil {
		return nil, err
	}
	// Every read of the target's /proc files from here on goes through one
	// Dir: in the freeze most of them then cost a pread of a file kept
	// open, none a path walk from /proc or a new buffer.
	pd, err := procfs.OpenDir(o.PID)
	if err != nil {
		return nil, gone(o.PID, err)
	}
	defer pd.Close()
	// A first look at mappings and files refuses unsupported targets before
	// they are stopped; the authoritative read happens while frozen.
	vmas := &vmaReader{}
	if err := precheck(pd, vmas, o.selfConn()); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.Dir != "" {
		// Refuse an existing image before a crid is spent on it.
		if _, err := os.Lstat(o.Dir); err == nil {
			return nil, fmt.Errorf("create image %s: %w", o.Dir, fs.ErrExist)
		}
	}
	id, err := o.NewCRID()
	if err != nil {
		return nil, fmt.Errorf("issue crid: %w", err)
	}
	if o.Dir == "" {
		o.Dir = fmt.Sprintf("crbpf-%d", id)
	}
	w, err := writer.Create(o.Dir)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	// Pre-copy's eBPF telemetry loads (50-80 ms) while the image's space is
	// reserved (about 0.1 s per GiB on tmpfs).
	var telemetry chan loadedTelemetry
	if (o.Precopy != 0 || reuse) && o.Telemetry == nil {
		telemetry = make(chan loadedTelemetry, 1)
		go func() {
			// A checkpoint reads the counters, never the event ring: the
			// smallest ring will do. Creating the default 64 MiB one
			// (allocating its pages and mapping them twice) and mapping it
			// into crbpf took 10-26 ms of kernel time that is not
			// preempted here (PREEMPT_NONE); on the target's CPU, before
			// Avoid had moved crbpf, the target waited 15.7 ms for it.
			t, err := loader.Load(loader.Options{Logger: o.Log, RingbufSize: os.Getpagesize()})
			telemetry <- loadedTelemetry{t, err}
		}()
		defer func() {
			if telemetry != nil { // returned before taking it
				if l := <-telemetry; l.err == nil {
					l.t.Close()
				}
			}
		}()
	}
	// Allocate the image's space while the target still runs, so that a
	// full file system is found before it is disturbed.
	if err := w.Reserve(tgt.status.RssAnon + tgt.status.RssShmem); err != nil {
		return nil, err
	}
	c := &ckpt{opts: o, crid: id, tgt: tgt, proc: pd, vmas: vmas, w: w, log: o.Log}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("checkpoint id: %w", err)
	}
	c.id = hex.EncodeToString(rnd[:])
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	c.kernelRelease = unix.ByteSliceToString(uts.Release[:])
	c.cmdline, _ = procfs.ReadCmdline(o.PID)
	res := &Result{CRID: id, Image: o.Dir, PID: o.PID, Mode: "full-freeze"}
	if o.Parent != nil {
		if err := c.useParent(res); err != nil {
			return nil, err
		}
	}

	var tracker *uffdTracker
	// Tracking kept by another checkpoint than the parent's: of no use here.
	if o.Tracking != nil && !reuse {
		o.Tracking.Close()
	}
	if reuse {
		res.Incremental = "tracked"
		if o.Precopy == 0 {
			o.Precopy = 1 // the round scans, it does not copy everything
		}
	}
	keep := false // the tracker outlives this checkpoint in o.Tracking
	if o.Precopy != 0 {
		// eBPF telemetry is optional: it says whether task state changed
		// after the arming stop (so the freeze need not read it again by
		// injection), and counts write faults per round.
		lt, lerr := o.Telemetry, error(nil)
		if lt == nil {
			l := <-telemetry
			telemetry = nil
			lt, lerr = l.t, l.err
			if lerr == nil {
				defer lt.Close()
			}
		}
		if lerr == nil {
			if lerr = lt.Add(o.PID); lerr == nil {
				defer lt.Remove(o.PID)
			}
		}
		if lerr != nil {
			res.Telemetry = "reduced: " + lerr.Error()
		} else {
			c.telemetry = lt
			res.Telemetry = "ebpf"
			if !lt.FaultTelemetry() {
				res.Telemetry = "ebpf without page-fault tracepoints (no write-fault counts)"
			}
		}
		err := error(nil)
		if reuse {
			tracker = o.Tracking.tracker
		} else {
			err = tr.Do(func() error {
				if _, err := c.prepareStops(); err != nil {
					return err
				}
				defer sched.Unyield()()
				// A running target is stopped twice, for the task state
				// (about ten injected calls, each two stops of the task)
				// and then for the arming (two): in one stop it was held
				// 1.1-1.7 ms, as long as the freeze after the split scan,
				// and each stop is a gap it lives. A target stopped in a
				// system call (it was not running) is armed in the same
				// stop: a second stop would find it in the
				// restart_syscall that resumed the call, and the
				// restored copy of one in nanosleep woke with EINTR
				// (TestBlockingSyscalls).
				arm := func(s *stopped) (err error) {
					tracker, err = armTracking(s)
					return err
				}
				if c.telemetry != nil {
					armed := false
					err := c.stopFor("task state read", func(s *stopped) error {
						if err := c.snapshotState(s); err != nil {
							return err
						}
						if int64(s.regs.Orig_rax) >= 0 {
							armed = true
							return arm(s)
						}
						return nil
					})
					if err != nil || armed {
						return err
					}
				}
				return c.stopFor("tracking armed", arm)
			})
		}
		switch {
		case err == nil:
			res.Mode = "precopy"
		case errors.Is(err, dirty.ErrNotSupported) && o.Precopy == Auto:
			res.ModeReason = "the kernel cannot track writes (" + err.Error() + ")"
			tracker.Close()
			tracker = nil
		default:
			tracker.Close()
			return nil, fmt.Errorf("arm write tracking for pid %d: %w", o.PID, err)
		}
	}
	// Closing the tracker removes every protection from the target: on
	// every path, and as soon as the final round is copied (unless it is
	// kept for the next checkpoint).
	defer func() {
		if keep {
			return
		}
		if reuse {
			o.Tracking.forget() // closed here
		}
		tracker.Close()
	}()

	var pt precopy.Tracker
	if tracker != nil {
		pt = tracker
	}
	bufs, err := precopy.NewBuffers(precopy.BufferSize(tgt.status.RssAnon + tgt.status.RssShmem))
	if err != nil {
		return nil, err
	}
	defer bufs.Close() // after cp.Close: deferred calls run last first
	cp, err := precopy.NewCopier(o.PID, w, bufs.Chunks(), pt)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = errors.Join(procfs.ErrNoProcess, err)
		}
		return nil, gone(o.PID, err)
	}
	defer cp.Close()
	if reuse {
		res.Mode = "precopy"
		var data []precopy.Range
		for _, v := range c.parentRes.VMAs {
			for _, r := range v.Pages {
				data = append(data, precopy.Range{Start: r.Addr, End: r.End()})
			}
		}
		cp.Continue(o.Tracking.known, data)
	}
	if tracker != nil {
		// The rounds run beside the target, yielding (see unyield): round
		// 0 copies everything at full speed.
		if err := c.precopy(ctx, cp, res); err != nil {
			return nil, err
		}
	}

	if tracker == nil {
		// A full freeze writes the whole image while the target is
		// stopped: make those writes plain copies (on tmpfs, and on VMs,
		// first touching memory costs more than copying into it). After
		// pre-copy the rounds wrote while the target ran, and the freeze
		// writes only after the resume.
		if err := w.Prefault(); err != nil {
			return nil, err
		}
	}
	if tracker == nil {
		unyield()
	}
	if err := tr.Do(func() error { return c.frozen(ctx, cp, res) }); err != nil {
		return nil, err
	}
	// The target runs again (or, with Kill, is still stopped until the
	// image is on disk): what is left costs it nothing. Removing the
	// protection is paced not to stall the running target; it overlaps
	// building the page index and committing the image.
	if !o.Kill {
		// What is left (page index, commit, removing the protection)
		// must not take the CPUs from the target, which runs again: on
		// 2 vCPUs it stalled it 70-140 ms at 1 GiB, 20-27 ms at nice 19.
		defer sched.Yield()()
	}
	waitRelease := func() {}
	if tracker != nil && o.keepsTracking() {
		keep = true
		*o.Tracking = Tracking{pid: o.PID, crid: id, tracker: tracker, known: cp.Known(), Watched: o.Tracking.Watched}
	} else if !o.Kill && tracker != nil {
		if o.Releasing != nil {
			o.Releasing(tracker.trackedBytes())
		}
		released := make(chan struct{})
		go func() {
			t0 := time.Now()
			tracker.Close()
			res.Release = time.Since(t0) // read after waitRelease
			o.Log.Debug("write protection removed", "duration", res.Release)
			close(released)
		}()
		waitRelease = func() { <-released }
		defer waitRelease()
	}
	// The freeze after pre-copy only read its last pages: write them now.
	// Failing that is failing the commit (with Kill the target resumes).
	commitErr := cp.WriteStaged()
	if commitErr == nil {
		c.fillImage(cp, res, start)
		commitErr = w.Commit(&c.img)
	}
	if commitErr == nil {
		committed = true
	} else if keep {
		// No image to continue from: the tracking goes with it.
		keep = false
		o.Tracking.forget()
	}
	res.Warnings = c.warnings
	if o.Kill {
		kerr := tr.Do(func() error {
			if commitErr != nil {
				return c.s.resume()
			}
			return c.s.kill()
		})
		if commitErr != nil {
			return nil, errors.Join(fmt.Errorf("write image: %w", commitErr), kerr)
		}
		if kerr != nil {
			return nil, fmt.Errorf("image %s is complete, but ending the target failed: %w", o.Dir, kerr)
		}
		res.Killed = true
		tracker.Discard() // the target is gone: nothing to pace
	} else if commitErr != nil {
		return nil, fmt.Errorf("write image: %w", commitErr)
	}
	waitRelease()
	res.Total = time.Since(start)
	return res, nil
}

// fillImage completes the image from the copier's records (after its
// last Sync and WriteStaged) and the checkpoint's result.
func (c *ckpt) fillImage(cp *precopy.Copier, res *Result, start time.Time) {
	img := &c.img
	for i := range img.VMAs {
		v := &img.VMAs[i]
		cp.Fill(v)
		for _, s := range v.Inherit {
			res.InheritedPages += s.NPages
		}
		for _, s := range v.Zero {
			res.ZeroPages += s.NPages
		}
	}
	img.Header.ParentCRID, img.Header.Parent = c.parentCRID, c.parentHint
	if c.opts.Parent != nil {
		img.Header.ParentID = c.opts.Parent.Chain.Tip().Image.Header.ID
	}
	var stored uint64
	for _, v := range img.VMAs {
		for _, r := range v.Pages {
			stored += r.NPages
		}
	}
	res.Pages, res.Bytes = stored, stored*image.PageSize
	img.Stats = image.Stats{FreezeNanos: int64(res.Freeze), TotalNanos: int64(time.Since(start)),
		PagesWritten: res.Pages, BytesWritten: res.Bytes, StopReason: res.StopReason}
	for _, r := range res.Rounds {
		img.Stats.Rounds = append(img.Stats.Rounds, image.Round{Index: r.Index, DirtyPages: r.DirtyPages,
			Bytes: r.Bytes, Nanos: int64(r.Duration)})
	}
}

// precopy copies memory in rounds while the target runs, until a stop rule
// holds. Round 0 copies everything; each later round copies what was
// written during the previous one.
func (c *ckpt) precopy(ctx context.Context, cp *precopy.Copier, res *Result) error {
	pid := c.opts.PID
	max := c.opts.Precopy
	if max == Auto {
		max = AutoRounds
	}
	var rate0 float64 // bytes/s of round 0, large sequential copies
	for k := 0; ; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		vmas, err := c.vmas.read(c.proc)
		if err != nil {
			return err
		}
		faults0 := c.writeFaults()
		st, err := cp.Sync(ctx, vmas)
		if err != nil {
			return gone(pid, err)
		}
		r := Round{Index: k, DirtyPages: st.DirtyPages, NewPages: st.NewPages, Pages: st.Pages, Bytes: st.Bytes,
			Duration: st.Duration, DeferredPages: st.Deferred}
		if c.telemetry != nil && c.telemetry.FaultTelemetry() {
			// First writes to protected pages while this round copied:
			// about the pages the next round (or the freeze) will copy.
			r.WriteFaults = c.writeFaults() - faults0
			r.FaultTelemetry = true
		}
		rate := float64(st.Bytes) / st.Duration.Seconds()
		if k == 0 {
			// Collect round 0's garbage now: the next rounds and the freeze
			// then allocate in pages already touched rather than in new
			// ones, and a page's first touch costs 17 µs on this VM. With
			// this and growStack, crbpf took 4 page faults in a median
			// freeze instead of 8 (1 GiB target, 16 MiB/s).
			runtime.GC()
			rate0 = rate
		}
		if st.Bytes < 4<<20 || rate < rate0 {
			// Small rounds are dominated by fixed costs: judge by round 0.
			rate = rate0
		}
		if k > 0 && rate > 0 {
			// The freeze will copy what is written between this round's
			// scan and the stop: the live count of first writes to
			// protected pages (eBPF) is the closest estimate; without it,
			// what this round found.
			// The freeze also scans the whole address space again, and
			// copies again what this round could not read: a prediction is
			// never 0 (eBPF does not see writes by other processes).
			next := st.DirtyPages
			if r.FaultTelemetry {
				next = r.WriteFaults
			}
			next += st.Deferred
			r.PredictedFreeze = st.Scan + time.Duration(float64(next*image.PageSize)/rate*1e9)
		}
		res.Rounds = append(res.Rounds, r)
		if c.opts.Progress != nil {
			c.opts.Progress(r)
		}
		res.StopReason = stopRule(res.Rounds, max, c.opts.MaxDowntime)
		if res.StopReason == "" {
			continue
		}
		if c.opts.PrecopyEnded != nil {
			c.opts.PrecopyEnded(len(res.Rounds), res.StopReason)
		}
		return nil
	}
}

// stopRule says why pre-copy ends after the last of rounds, or "" to go on
// with another round; max is the maximum number of rounds.
//
// The budget rule ends it once the final copy is predicted to fit the
// budget and the last round itself took no longer than the budget. A
// longer round (after round 0 the first one is: it copies what was written
// while everything was copied) leaves the freeze what the target wrote
// during all of it, and a prediction that fits the budget says the next
// round will be short: one more round then shrinks the freeze at the cost
// of a short round. 1 GiB written at 16 MiB/s after a slow round 0: round
// 1 took 106 ms and predicted a 4.8 ms copy of 400-600 pages; round 2 took
// 10 ms and the target wrote about 50 pages during it, what the freeze
// then copies (docs/benchmarks.md, "The freeze after pre-copy").
func stopRule(rounds []Round, max int, budget time.Duration) string {
	k := len(rounds) - 1
	r := rounds[k]
	// A round after a long one whose prediction fit the budget too ends it
	// however long it took: rounds no shorter are coming.
	short := r.Duration <= budget || k > 1 && rounds[k-1].PredictedFreeze <= budget
	switch {
	case k+1 >= max:
		return fmt.Sprintf("reached the maximum of %d rounds", max)
	case k > 0 && r.PredictedFreeze <= budget && short:
		return fmt.Sprintf("predicted final copy %v fits the %v downtime budget", r.PredictedFreeze.Round(time.Microsecond), budget)
	case k > 1 && float64(r.DirtyPages) >= 0.9*float64(rounds[k-1].DirtyPages):
		return fmt.Sprintf("the dirty set stopped shrinking (%d then %d pages)", rounds[k-1].DirtyPages, r.DirtyPages)
	}
	return ""
}

// writeFaults is the eBPF count of write faults so far (0 without it).
func (c *ckpt) writeFaults() uint64 {
	if c.telemetry == nil {
		return 0
	}
	n, err := c.telemetry.Counters()
	if err != nil {
		return 0
	}
	return n.WriteFaultsUser + n.WriteFaultsKernel
}

// precheck classifies mappings and fds without stopping the target.
func precheck(pd *procfs.Dir, vr *vmaReader, self int) error {
	vmas, err := vr.read(pd)
	if err != nil {
		return err
	}
	if err := checkSharedAnon(pd.PID(), vmas); err != nil {
		return err
	}
	_, err = collectFiles(pd, self)
	return err
}

// loadedTelemetry is the result of loader.Load.
type loadedTelemetry struct {
	t   *loader.Tracker
	err error
}

// keepsTracking reports whether the write tracking outlives the checkpoint
// (kept in Tracking for the next one) when pre-copy armed it.
func (o *Options) keepsTracking() bool { return !o.Kill && o.Tracking != nil }

// after says what becomes of the tracking after the freeze's last Sync.
func (o *Options) after() precopy.After {
	if o.keepsTracking() {
		return precopy.TrackingGoesOn
	}
	return precopy.TrackingEnds
}

// selfConn is the fd of the target's connection to the daemon taking the
// checkpoint, or -1.
func (o *Options) selfConn() int {
	if !o.SelfConn {
		return -1
	}
	return o.SelfConnFD
}

func gone(pid int, err error) error {
	if errors.Is(err, procfs.ErrNoProcess) || errors.Is(err, ptrace.ErrTaskGone) || errors.Is(err, dirty.ErrTargetGone) {
		return fmt.Errorf("pid %d exited during the checkpoint: %w", pid, errors.Join(ErrTargetGone, err))
	}
	return err
}

// ckpt carries one checkpoint's state across tracer-thread steps.
type ckpt struct {
	opts     Options
	crid     uint64
	id       string // random id of the checkpoint (image.Header.ID)
	tgt      *target
	proc     *procfs.Dir // the target's /proc directory
	vmas     *vmaReader  // reads its mappings
	w        *writer.Writer
	log      *slog.Logger
	img      image.Image
	warnings []string
	s        *stopped // the final stop
	kit      *kit     // for the stops, prepared before the first
	steps    freezeSteps
	// kernelRelease and cmdline (informational) are read before the
	// freeze, so that it does not pay for them.
	kernelRelease string
	cmdline       []string
	// telemetry is the eBPF tracker, nil when unavailable; snapshot is the
	// task state read by injection at the arming stop, and snapshotAt the
	// state-change count then.
	telemetry  *loader.Tracker
	snapshot   *injected
	snapshotAt uint64
	// parentCRID and parentHint go to the header of an incremental image.
	parentCRID uint64
	parentHint string
	parentRes  *image.Image // the parent chain resolved
	// restartOf is the call the arming stop interrupted with
	// -ERESTART_RESTARTBLOCK, resumed through restart_syscall.
	restartOf restartCall
}

type restartCall struct {
	nr, ip uint64
}

// stopFor stops the target for do, resumes it and logs how long it was
// held as what; c.restartOf is the call the stop interrupted.
// Precondition: called on the tracer thread, after prepareStops.
func (c *ckpt) stopFor(what string, do func(*stopped) error) error {
	defer sched.PauseGC()() // see there
	s, err := stop(c.opts.PID, c.kit)
	if err != nil {
		return err
	}
	c.restartOf = interruptedCall(s.regs)
	err = do(s)
	held := s.held()
	err = errors.Join(err, s.resume())
	c.log.Debug(what, "pid", c.opts.PID, "held", held, "err", err)
	return err
}

// interruptedCall returns the syscall a stop interrupted with
// -ERESTART_RESTARTBLOCK (the kernel resumes it via restart_syscall, whose
// number then replaces it in orig_rax), or zero.
func interruptedCall(r unix.PtraceRegs) restartCall {
	if int64(r.Rax) == -516 && int64(r.Orig_rax) >= 0 && r.Orig_rax != unix.SYS_RESTART_SYSCALL {
		return restartCall{nr: r.Orig_rax, ip: r.Rip}
	}
	return restartCall{}
}

// frozen stops the target, collects its state and the last dirty pages
// and, unless it is to be killed, resumes it.
// Precondition: called on the tracer thread.
func (c *ckpt) frozen(ctx context.Context, cp *precopy.Copier, res *Result) (err error) {
	pid := c.opts.PID
	// What the freeze would otherwise fault in, done while the target runs.
	growStack()
	if res.Mode == "precopy" {
		// From before the stop until the helper has ended (deferred
		// first, so resumed last): see sched.PauseGC.
		defer sched.PauseGC()()
	}
	if res.Mode == "precopy" && c.opts.after() == precopy.TrackingEnds {
		// A thread to split the last scan with, which starts as soon
		// as the target is stopped (precopy.Copier.BeginFrozen). 1 GiB
		// written at 16 MiB/s, 10 alternating checkpoints each: held
		// 1.54 → 1.25 ms (docs/benchmarks.md, "Splitting the last
		// scan").
		if h := startScanHelper(sched.CPU()); h != nil {
			// Woken, the helper's thread must find a free P (Go's
			// right to run Go code) at once: with one P per CPU, the
			// tracer holds one and the runtime's other threads,
			// which may only run on the tracer's CPU, often held the
			// other, and the helper did not start before the tracer
			// was done (5 of 8 checkpoints).
			prev := runtime.GOMAXPROCS(0)
			runtime.GOMAXPROCS(prev + 2)
			cp.SetHelper(h)
			defer func() {
				cp.SetHelper(nil)
				h.Close()
				runtime.GOMAXPROCS(prev)
			}()
		}
	}
	k, err := c.prepareStops()
	if err != nil {
		return err
	}
	// The rounds yielded: the stop and the wake-up after it do not.
	defer sched.Unyield()()
	faults := minorFaults() // before the stop: not a syscall more inside it
	s, err := stop(pid, k)
	if err != nil {
		return err
	}
	c.s = s
	if res.Mode == "precopy" {
		// The helper, if any, scans while this thread reads the rest.
		cp.BeginFrozen(c.opts.after())
	}
	c.steps.begin = s.held()
	defer func() {
		if err != nil {
			err = errors.Join(gone(pid, err), s.resume())
		}
	}()
	if err := c.collect(ctx, cp, res); err != nil {
		return err
	}
	res.Freeze = s.held()
	if !c.opts.Kill {
		err = s.resume()
	}
	c.steps.faults = minorFaults() - faults
	c.logFreeze(res.Freeze)
	return err
}

// freezeSteps are the times since the final stop at which the freeze's
// steps ended, logged once the target runs again: a log line written
// inside the freeze cost it 0.3-0.6 ms here.
type freezeSteps struct {
	begin, status time.Duration // the helper woken; status read
	maps          time.Duration // /proc/PID/maps read
	state, proc   time.Duration // ptrace reads; /proc reads and fd table
	copied        time.Duration // maps read, last scan and copy
	copy          precopy.Stats
	faults        int64 // crbpf's page faults from just before the stop to the resume
}

// logFreeze logs the final stop (held: how long, up to the resume) and
// its steps.
func (c *ckpt) logFreeze(held time.Duration) {
	f := &c.steps
	c.log.Debug("target stopped", "pid", c.opts.PID, "held", held, "faults", f.faults)
	c.log.Debug("freeze step", "step", "begin", "since_stop", f.begin)
	c.log.Debug("freeze step", "step", "status", "since_stop", f.status)
	c.log.Debug("freeze step", "step", "maps", "since_stop", f.maps)
	c.log.Debug("freeze step", "step", "state", "since_stop", f.state)
	c.log.Debug("freeze step", "step", "proc+files", "since_stop", f.proc)
	c.log.Debug("final copy done", "dirty_pages", f.copy.DirtyPages, "new_pages", f.copy.NewPages, "bytes", f.copy.Bytes,
		"scan", f.copy.Scan, "pieces", f.copy.Pieces, "helped", f.copy.Helped, "duration", f.copy.Duration, "since_stop", f.copied)
}

func (c *ckpt) collect(ctx context.Context, cp *precopy.Copier, res *Result) error {
	pid := c.opts.PID
	s := c.s
	status, err := c.proc.Status()
	if err != nil {
		return err
	}
	c.steps.status = s.held()
	if status.Threads != 1 {
		return &UnsupportedError{PID: pid, What: fmt.Sprintf("%d threads", status.Threads), Why: "multi-threaded processes are not supported yet"}
	}
	img := &c.img
	st0, reuse, err := c.snapshotValid()
	if err != nil {
		return err
	}
	if !reuse {
		if st0, err = injectState(s, status); err != nil {
			return err
		}
		// The registers, mask and stack as they were, before the copy.
		if err := s.endInjection(); err != nil {
			return err
		}
	}
	res.StateReused = reuse
	st0.apply(&img.Task, &img.MM)
	if err := ctx.Err(); err != nil {
		return err
	}
	// Nothing is injected from here on. Three independent reads: the
	// memory (maps, last scan and copy), /proc (ids, files) and ptrace
	// (which must stay on this thread).
	var st precopy.Stats
	mem := func() error {
		var err error
		if img.VMAs, err = c.vmas.read(c.proc); err != nil {
			return err
		}
		c.steps.maps = s.held()
		if st, err = cp.SyncFrozen(img.VMAs, c.opts.after()); err != nil {
			return err
		}
		err = cp.FixFilePages(img.VMAs)
		c.steps.copy, c.steps.copied = st, s.held()
		return err
	}
	proc := func() error {
		err := c.collectProc(status, s.mask)
		if err == nil {
			img.Files, err = collectFiles(c.proc, c.opts.selfConn())
		}
		c.steps.proc = s.held()
		return err
	}
	regs := func() error {
		err := collectPtrace(s.task, s.rseq, &img.Task, c.kit.xsaveBuf())
		c.steps.state = s.held()
		return err
	}
	if res.Mode == "precopy" {
		// After pre-copy all of it takes about 1 ms, on this thread alone:
		// handing parts to other threads cost more in wakeups (0.5-4 ms
		// here) than running them one after the other.
		if err := errors.Join(regs(), mem(), proc()); err != nil {
			return err
		}
	} else {
		// A full freeze copies all memory: the rest runs beside it.
		var memErr, procErr error
		var wg sync.WaitGroup
		wg.Go(func() { memErr = mem() })
		wg.Go(func() { procErr = proc() })
		regsErr := regs()
		wg.Wait()
		if err := errors.Join(regsErr, procErr, memErr); err != nil {
			return err
		}
	}
	res.FinalDirtyPages = st.DirtyPages + st.NewPages
	saved := s.regs // moved out of an rseq critical section by stop
	if saved.Orig_rax == unix.SYS_RESTART_SYSCALL && c.restartOf.ip == saved.Rip && c.restartOf.nr != 0 {
		// Stopped again in the restart_syscall that resumed the call the
		// arming stop interrupted: a new process has no restart block, so it
		// must issue that call again (its arguments are still in place).
		saved.Orig_rax = c.restartOf.nr
	}
	ptrace.FixRestart(&saved, false)
	img.Task.Regs = regsBytes(saved)
	return ctx.Err()
}

func (c *ckpt) collectProc(status *procfs.Status, mask uint64) error {
	pid, pd := c.opts.PID, c.proc
	img := &c.img
	st := c.tgt.stat
	var err error
	img.MM = image.MM{StartCode: st.StartCode, EndCode: st.EndCode, StartData: st.StartData, EndData: st.EndData,
		StartBrk: st.StartBrk, Brk: img.MM.Brk, StartStack: st.StartStack, ArgStart: st.ArgStart, ArgEnd: st.ArgEnd,
		EnvStart: st.EnvStart, EnvEnd: st.EnvEnd}
	if img.MM.Auxv, err = pd.Auxv(); err != nil {
		return err
	}
	if img.MM.ExePath, err = pd.Exe(); err != nil {
		return err
	}
	t := &img.Task
	t.TID = pid
	t.SigMask = mask
	if t.Comm, err = pd.Comm(); err != nil {
		return err
	}
	if t.Personality, err = pd.Personality(); err != nil {
		return err
	}
	if t.Cwd, err = pd.Cwd(); err != nil {
		return err
	}
	t.Umask = status.Umask
	t.Creds = creds(status)
	// From /proc: prlimit(2) on a process of another user needs
	// CAP_SYS_RESOURCE, which root may lack (containers).
	limits, err := pd.Limits()
	if err != nil {
		return err
	}
	t.Rlimits = t.Rlimits[:0]
	for _, l := range limits {
		t.Rlimits = append(t.Rlimits, image.Rlimit{Resource: l.Resource, Cur: l.Cur, Max: l.Max})
	}
	img.Header = image.Header{CRID: c.crid, ID: c.id, PID: pid, Time: time.Now().UTC(),
		KernelRelease: c.kernelRelease, Arch: runtime.GOARCH,
		CrbpfVersion: c.opts.Version, Comm: t.Comm, Exe: img.MM.ExePath, Cmdline: c.cmdline}
	return nil
}

// creds are the task's ids from its status.
func creds(st *procfs.Status) *image.Creds {
	c := &image.Creds{NoNewPrivs: st.NoNewPrivs != 0}
	for i := range 4 {
		c.UID[i], c.GID[i] = uint32(st.Uid[i]), uint32(st.Gid[i])
	}
	for _, g := range st.Groups {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
}

// useParent prepares an incremental checkpoint: the writer leaves out pages
// equal to the parent chain's, found by their CRC and hash (the parent's
// data is not read).
func (c *ckpt) useParent(res *Result) error {
	p := c.opts.Parent
	tip := p.Chain.Tip()
	resolved, err := p.Chain.Resolve()
	if err != nil {
		return err
	}
	pages, err := p.Chain.Pages(resolved)
	if err != nil {
		return err
	}
	hint := p.Hint
	if hint == "" {
		if hint, err = relHint(c.opts.Dir, tip.Dir); err != nil {
			return err
		}
	}
	c.w.SetParent(pages)
	c.parentRes = resolved
	c.parentCRID, c.parentHint = tip.Image.Header.CRID, hint
	res.ParentCRID, res.Incremental = c.parentCRID, "hash"
	c.log.Debug("incremental checkpoint", "parent", c.parentCRID, "chain", p.Chain.CRIDs(), "parent_pages", pages.Len())
	return nil
}

// relHint is the path of parent relative to the image directory dir.
func relHint(dir, parent string) (string, error) {
	ad, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	ap, err := filepath.Abs(parent)
	if err != nil {
		return "", err
	}
	return filepath.Rel(ad, ap)
}

// growStack grows the calling goroutine's stack beyond what a freeze
// needs. Grown inside the freeze, it was copied to new pages twice there:
// page faults (17 µs each on this VM) and the copy, 0.1-0.2 ms each time.
// A collection shrinks stacks again, so it is called just before the stop.
//
//go:noinline
func growStack() byte {
	var b [64 << 10]byte
	for i := range b {
		b[i] = byte(i)
	}
	return b[len(b)/3]
}

// prepareStops prepares what the stops need (kit), once, while the target
// runs.
func (c *ckpt) prepareStops() (*kit, error) {
	if c.kit == nil {
		k, err := prepare(c.opts.PID)
		if err != nil {
			return nil, gone(c.opts.PID, err)
		}
		c.kit = k
	}
	return c.kit, nil
}

// touched returns n bytes whose pages have been written to: reading a
// register set into a 64 KiB buffer allocated in the freeze faulted in up
// to 7 new pages there.
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += os.Getpagesize() {
		b[i] = 1
	}
	return b
}

// minorFaults is how many page faults crbpf has taken.
func minorFaults() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Minflt
}
