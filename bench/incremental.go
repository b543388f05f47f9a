package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crbpf/crbpf/api"
)

// The -incremental mode: the size and freeze of an incremental image
// against a full one, and the per-checkpoint cost of continuous
// checkpoints through the daemon (see doc.go).

// incConfig holds the flags of the -incremental mode.
type incConfig struct {
	on    bool
	wait  time.Duration // the target runs this long between the parent and the incremental checkpoint
	every time.Duration // --every of the continuous run
	keep  int           // --keep of the continuous run
	n     int           // checkpoints taken by the continuous run
}

func (ic *incConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&ic.on, "incremental", false, "measure incremental and continuous checkpoints instead of pre-copy against full freeze (defaults: -sizes 1024 -rates 16 -hot 16)")
	fs.DurationVar(&ic.wait, "inc-wait", 2*time.Second, "with -incremental: time the target runs between the full checkpoint and the incremental one on it")
	fs.DurationVar(&ic.every, "every", time.Second, "with -incremental: --every of the continuous checkpoints")
	fs.IntVar(&ic.keep, "keep", 5, "with -incremental: --keep of the continuous checkpoints")
	fs.IntVar(&ic.n, "checkpoints", 8, "with -incremental: continuous checkpoints to take before Ctrl-C")
}

// defaults applies the -incremental mode's defaults to the flags not given
// and checks its own.
func (ic *incConfig) defaults(fs *flag.FlagSet, sizes, rates *string, hot *int) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["sizes"] {
		*sizes = "1024"
	}
	if !set["rates"] {
		*rates = "16"
	}
	if !set["hot"] {
		*hot = 16
	}
	switch {
	case ic.wait < 0:
		return errors.New("-inc-wait must not be negative")
	case ic.every <= 0:
		return errors.New("-every must be positive")
	case ic.keep < 2:
		return errors.New("-keep must be at least 2")
	case ic.n < 2:
		return errors.New("-checkpoints must be at least 2 (a full one and an incremental one)")
	}
	return nil
}

// diskCkpt is one `crbpf checkpoint -o IMG` of the incremental comparison.
type diskCkpt struct {
	Observed  time.Duration // largest gap the target saw during the run
	FreezeGap time.Duration // the target's gap around the final stop (0: not found)
	Freeze    time.Duration // crbpf's freeze_seconds
	Total     time.Duration // crbpf's total_seconds
	Size      uint64        // disk space of the image's files (du)
	Bytes     uint64        // crbpf's bytes_written
	Pages     uint64        // pages stored in the image (crbpf images show)
	Inherited uint64        // pages taken from the parent (idem)
	Err       string
}

func (c *diskCkpt) ok() bool { return c != nil && c.Err == "" }

// contCkpt is one checkpoint of `crbpf checkpoint --every`, as it printed
// it and as the target lived it.
type contCkpt struct {
	api.CheckpointResult
	At        int64         // CLOCK_MONOTONIC ns when its line arrived
	Since     time.Duration // since the previous line (0 for the first)
	Observed  time.Duration // largest gap since the previous line
	FreezeGap time.Duration // the gap around its "target stopped" (0: not found)
}

type incRep struct {
	Foreign   float64       // % of one CPU other processes used during the repetition
	BaseGap   time.Duration // largest gap in a window without crbpf
	Parent    *diskCkpt     // the full checkpoint the incremental one builds on
	Inc, Full *diskCkpt     // taken one right after the other
	IncFirst  bool
	Cont      []contCkpt
	Before    span // the target's loop in a window before the continuous run (daemon idle)
	During    span // ... from the first continuous checkpoint's line to the last's
	Err       string
}

type incCase struct {
	Case benchCase
	Hot  int // MiB
	Reps []incRep
}

type incReport struct {
	runInfo
	Cfg    incConfig
	Budget time.Duration
	Window time.Duration
	Reps   int
	Cases  []incCase
}

// runIncremental runs the -incremental mode: every case and repetition,
// then prints the report and writes it into its own section of -out.
func (e *env) runIncremental(ctx context.Context, root string) error {
	cfg := e.cfg
	rep := &incReport{runInfo: startRun(e.crbpf, root), Cfg: cfg.inc, Budget: cfg.budget, Window: cfg.baseWindow(cfg.cases[0].Size), Reps: cfg.reps}
	for _, k := range cfg.cases {
		c := incCase{Case: k, Hot: cmp.Or(cfg.hot, k.Size)}
		for r := 0; r < cfg.reps; r++ {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted: %w", err)
			}
			progress("incremental: %d MiB, hot %d MiB at %g MiB/s, rep %d/%d", k.Size, c.Hot, k.Rate, r+1, cfg.reps)
			res, err := e.incRep(ctx, k, c.Hot, r)
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			if err != nil {
				progress("  failed: %v", err)
				res.Err = err.Error()
			}
			c.Reps = append(c.Reps, res)
		}
		rep.Cases = append(rep.Cases, c)
	}
	rep.finish()
	md := rep.markdown()
	fmt.Print(md)
	if cfg.out == "" {
		return nil
	}
	path := cfg.out
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	if err := spliceSection(path, md, incBegin, incEnd); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	progress("wrote %s", path)
	return nil
}

// incRep runs one repetition on a fresh target: the incremental
// comparison on disk, then continuous checkpoints through a daemon.
func (e *env) incRep(ctx context.Context, k benchCase, hot, n int) (res incRep, err error) {
	// Room for the target, two full images on disk, and later the
	// daemon's chain and a merge of it.
	if err := checkSpace(2 * k.Size); err != nil {
		return res, err
	}
	if err := e.waitQuiet(ctx); err != nil {
		return res, err
	}
	c0 := sampleCPU()
	defer func() { res.Foreign = foreignPercent(c0, sampleCPU()) }()
	gib := float64(k.Size) / 1024
	t, w, err := e.startBaseline(ctx, k, hot)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := t.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	res.BaseGap = w.MaxGap
	timeout := time.Duration((60 + 30*gib) * float64(time.Second))

	// Incremental against full, on disk.
	e.seq++
	dir := filepath.Join(e.shm, fmt.Sprintf("inc-%d", e.seq))
	defer os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return res, err
	}
	parent := filepath.Join(dir, "parent")
	if res.Parent, err = e.diskCheckpoint(ctx, t, "parent", parent, timeout); err != nil {
		return res, fmt.Errorf("full checkpoint (the parent): %w", err)
	}
	if err := sleep(ctx, e.cfg.inc.wait); err != nil {
		return res, err
	}
	pair := []struct {
		name string
		dst  **diskCkpt
		args []string
	}{{"incremental", &res.Inc, []string{"--parent", parent}}, {"full", &res.Full, nil}}
	res.IncFirst = n%2 == 0
	if !res.IncFirst {
		pair[0], pair[1] = pair[1], pair[0]
	}
	for _, m := range pair {
		if *m.dst, err = e.diskCheckpoint(ctx, t, m.name, filepath.Join(dir, m.name), timeout, m.args...); err != nil {
			return res, fmt.Errorf("%s checkpoint: %w", m.name, err)
		}
		if err := sleep(ctx, e.cfg.settle); err != nil {
			return res, err
		}
	}
	os.RemoveAll(dir) // free the memory before the daemon fills it again

	// Continuous checkpoints through the daemon.
	d, err := e.startDaemon(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if derr := d.stop(); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if err := sleep(ctx, e.cfg.settle); err != nil {
		return res, err
	}
	if err := t.reset(); err != nil {
		return res, err
	}
	if err := sleep(ctx, e.cfg.baseWindow(k.Size)); err != nil {
		return res, err
	}
	if w, err = t.query(); err != nil {
		return res, err
	}
	if res.Before, err = t.counts(w.Start, w.End); err != nil {
		return res, err
	}
	if err := t.reset(); err != nil {
		return res, err
	}
	timeout = time.Duration(e.cfg.inc.n)*(e.cfg.inc.every+10*time.Second) + time.Duration(30*gib*float64(time.Second))
	start := monoNow()
	lines, err := e.continuous(ctx, d, t.pid, timeout)
	if err != nil {
		return res, fmt.Errorf("continuous checkpoints: %w", err)
	}
	if w, err = t.query(); err != nil {
		return res, err
	}
	if res.Cont, err = attribute(lines, start, w.Gaps, d.stops()); err != nil {
		return res, fmt.Errorf("continuous checkpoints: %w", err)
	}
	for i, c := range res.Cont {
		kind := cmp.Or(c.Incremental, "full")
		progress("  continuous %d: %-7s freeze %7.2f ms (gap %7.2f, largest %7.2f), total %6.3f s, %6d pages, merged %v",
			i+1, kind, c.FreezeSeconds*1e3, ms(c.FreezeGap), ms(c.Observed), c.TotalSeconds, c.PagesWritten, c.Merged)
	}
	if res.During, err = t.counts(res.Cont[0].At, res.Cont[len(res.Cont)-1].At); err != nil {
		return res, err
	}
	return res, nil
}

// diskCheckpoint takes one image of t into img (kept; the caller removes
// it), with the target's window reset just before and read just after.
func (e *env) diskCheckpoint(ctx context.Context, t *target, name, img string, timeout time.Duration, args ...string) (*diskCkpt, error) {
	c := &diskCkpt{}
	if e.cfg.budget > 0 {
		args = append(args, "--max-downtime", e.cfg.budget.String())
	}
	err := t.reset()
	var r *ckptRun
	if err == nil {
		r, err = runCheckpoint(ctx, e.crbpf, e.stateDir, img, t.pid, timeout, args...)
	}
	var w window
	if err == nil {
		w, err = t.query()
	}
	if err == nil {
		c.Size, err = imageSize(img)
	}
	if err == nil {
		c.Pages, c.Inherited, err = imagePages(ctx, e.crbpf, img)
	}
	if err != nil {
		c.Err = err.Error()
		return c, err
	}
	c.Observed = w.MaxGap
	if g, ok := freezeGap(r, w); ok {
		c.FreezeGap = g.Len
	}
	c.Freeze = time.Duration(r.Res.FreezeSeconds * 1e9)
	c.Total = time.Duration(r.Res.TotalSeconds * 1e9)
	c.Bytes = r.Res.BytesWritten
	progress("  %-11s observed %8.2f ms (freeze gap %8.2f), crbpf freeze %8.2f ms, total %7.3f s, %8.1f MiB on disk",
		name, ms(c.Observed), ms(c.FreezeGap), ms(c.Freeze), c.Total.Seconds(), mib(c.Size))
	return c, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// imageSize is the disk space the files of the image at dir take, as du
// counts it.
func imageSize(dir string) (uint64, error) {
	var n uint64
	for _, f := range []string{"pages.crbpf", "meta.crbpf", "hashes.crbpf"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return 0, fmt.Errorf("image size: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, fmt.Errorf("image size: no stat of %s", fi.Name())
		}
		n += uint64(st.Blocks) * 512
	}
	return n, nil
}

// imagePages returns the pages stored in the image at dir and those it
// takes from its parent, as crbpf images show --json counts them.
func imagePages(ctx context.Context, bin, dir string) (stored, inherited uint64, err error) {
	out, err := exec.CommandContext(ctx, bin, "images", "show", "--json", dir).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("crbpf images show %s: %w", dir, err)
	}
	var v struct {
		Stored    uint64 `json:"pages_stored"`
		Inherited uint64 `json:"pages_inherited"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return 0, 0, fmt.Errorf("crbpf images show %s: %w", dir, err)
	}
	return v.Stored, v.Inherited, nil
}

// timedLine is one line a process wrote, with when it arrived
// (CLOCK_MONOTONIC ns).
type timedLine struct {
	At   int64
	Text string
}

// lineLog collects the lines written to it with their arrival time; it
// never blocks the writer and signals each new line on notify.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []timedLine
	notify  chan struct{}
}

func newLineLog() *lineLog { return &lineLog{notify: make(chan struct{}, 1)} }

func (l *lineLog) Write(p []byte) (int, error) {
	at := monoNow()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := slices.Index(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, timedLine{At: at, Text: string(l.partial[:i])})
		l.partial = l.partial[i+1:]
		select {
		case l.notify <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (l *lineLog) all() []timedLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *lineLog) String() string {
	var b strings.Builder
	for _, t := range l.all() {
		b.WriteString(t.Text + "\n")
	}
	return b.String()
}

// daemonProc is a `crbpf daemon` the benchmark started, on its own socket
// and image directory.
type daemonProc struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	dir    string // socket and ready file
	images string
	sock   string
	log    *lineLog // its stderr (-v)
	done   chan struct{}
}

// startDaemon starts crbpf daemon -v and waits for its ready file.
func (e *env) startDaemon(ctx context.Context) (*daemonProc, error) {
	dir, err := os.MkdirTemp("", "crbpf-bench-daemon-")
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithCancel(ctx)
	d := &daemonProc{cancel: cancel, dir: dir, images: filepath.Join(e.shm, "daemon"),
		sock: filepath.Join(dir, "crbpf.sock"), log: newLineLog(), done: make(chan struct{})}
	ready := filepath.Join(dir, "ready")
	d.cmd = exec.CommandContext(dctx, e.crbpf, "--state-dir", e.stateDir, "-v", "daemon", "--socket", d.sock,
		"--ready-file", ready, "--metrics-addr", "127.0.0.1:0", "--image-dir", d.images)
	// SIGTERM stops it cleanly, also when the benchmark dies.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	d.cmd.Cancel = func() error { return d.cmd.Process.Signal(syscall.SIGTERM) }
	d.cmd.WaitDelay = 10 * time.Second
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start crbpf daemon: %w", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return d, nil
		}
		select {
		case <-tick.C:
			continue
		case <-d.done:
			err = errors.New("it exited")
		case <-deadline:
			err = errors.New("no ready file after 60s")
		case <-ctx.Done():
			err = ctx.Err()
		}
		return nil, errors.Join(fmt.Errorf("crbpf daemon: %w\n%s", err, tail(d.log.String(), 20)), d.stop())
	}
}

// stop ends the daemon with SIGTERM (SIGKILL ten seconds later), reaps it
// and removes its directories.
func (d *daemonProc) stop() error {
	d.cancel()
	<-d.done
	os.RemoveAll(d.dir)
	os.RemoveAll(d.images)
	if ps := d.cmd.ProcessState; ps == nil || !ps.Success() {
		return fmt.Errorf("crbpf daemon did not stop cleanly (%v)\n%s", d.cmd.ProcessState, tail(d.log.String(), 20))
	}
	return nil
}

// stops are the times the daemon's final stops began.
func (d *daemonProc) stops() []int64 {
	var at []int64
	for _, l := range d.log.all() {
		if t, ok := stoppedAt(l.Text, l.At); ok {
			at = append(at, t)
		}
	}
	return at
}

// continuous runs `crbpf checkpoint --every --keep --json pid` through d
// until it has printed cfg.inc.n checkpoints, then interrupts it (SIGINT:
// it stops, and the daemon removes the protection from the target) and
// reaps it.
func (e *env) continuous(ctx context.Context, d *daemonProc, pid int, timeout time.Duration) ([]timedLine, error) {
	ic := e.cfg.inc
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"--socket", d.sock, "checkpoint", "--every", ic.every.String(), "--keep", strconv.Itoa(ic.keep), "--json"}
	if e.cfg.budget > 0 {
		args = append(args, "--max-downtime", e.cfg.budget.String())
	}
	args = append(args, strconv.Itoa(pid))
	cmd := exec.CommandContext(cctx, e.crbpf, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	out, stderr := newLineLog(), newLineLog()
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start crbpf: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	var err error
	for len(out.all()) < ic.n && err == nil {
		select {
		case <-out.notify:
		case <-exited:
			err = fmt.Errorf("exited after %d checkpoints (%v)", len(out.all()), cmd.ProcessState)
		case <-cctx.Done():
			err = fmt.Errorf("after %d checkpoints: %w", len(out.all()), context.Cause(cctx))
		}
	}
	cancel()
	<-exited
	if ps := cmd.ProcessState; err == nil && !ps.Success() {
		err = fmt.Errorf("exit after SIGINT: %v", ps)
	}
	if err != nil {
		return nil, fmt.Errorf("crbpf %s: %w\n%s%s", strings.Join(args, " "), err, tail(stderr.String(), 10), tail(d.log.String(), 10))
	}
	return out.all()[:ic.n], nil
}

// attribute parses the continuous checkpoints' lines and gives each the
// target's gaps that began after the previous line (the first: after
// start) up to its own: the largest, and the one around the daemon's last
// "target stopped" in that span.
func attribute(lines []timedLine, start int64, gaps []gap, stops []int64) ([]contCkpt, error) {
	out := make([]contCkpt, len(lines))
	prev := start
	for i, l := range lines {
		c := &out[i]
		c.At = l.At
		if err := json.Unmarshal([]byte(l.Text), &c.CheckpointResult); err != nil {
			return nil, fmt.Errorf("checkpoint %d: line %q: %w", i+1, l.Text, err)
		}
		if i > 0 {
			c.Since = time.Duration(l.At - prev)
		}
		var mine []gap
		for _, g := range gaps {
			if g.At > prev && g.At <= l.At {
				mine = append(mine, g)
				c.Observed = max(c.Observed, g.Len)
			}
		}
		r := &ckptRun{}
		for _, s := range stops {
			if s > prev && s <= l.At {
				r.StoppedAt = s
			}
		}
		if g, ok := freezeGap(r, window{Gaps: mine}); ok {
			c.FreezeGap = g.Len
		}
		prev = l.At
	}
	return out, nil
}

const (
	incBegin = "<!-- bench:incremental:begin -->"
	incEnd   = "<!-- bench:incremental:end -->"
)

// spliceSection puts md between the markers begin and end of path, as
// spliceFile does with the pre-copy section's.
func spliceSection(path, md, begin, end string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err != nil {
		old = []byte("# Benchmarks\n\n")
	}
	return os.WriteFile(path, []byte(spliceBetween(string(old), md, begin, end)), 0o644)
}

func spliceBetween(old, md, begin, end string) string {
	section := begin + "\n" + md + end
	i := strings.Index(old, begin)
	j := strings.Index(old, end)
	if i < 0 || j < i {
		if old != "" && !strings.HasSuffix(old, "\n\n") {
			old = strings.TrimRight(old, "\n") + "\n\n"
		}
		return old + section + "\n"
	}
	return old[:i] + section + old[j+len(end):]
}

// ratioPrec picks decimals for a ratio: enough for small ones.
func ratioPrec(s stat) int {
	switch {
	case s.Med < 0.1:
		return 4
	case s.Med < 1:
		return 3
	case s.Med < 10:
		return 2
	}
	return 1
}

func fmtRatio(s stat) string { return fmtStat(s, ratioPrec(s), "×") }

// over gathers one figure over the repetitions where it exists.
func over[T any](v []T, f func(T) (float64, bool)) stat {
	var xs []float64
	for _, x := range v {
		if y, ok := f(x); ok {
			xs = append(xs, y)
		}
	}
	return stats(xs)
}

func (c incCase) label() string {
	return fmt.Sprintf("%d MiB, hot set %d MiB written at %g MiB/s", c.Case.Size, c.Hot, c.Case.Rate)
}

func (c incCase) failures() int {
	n := 0
	for _, r := range c.Reps {
		if r.Err != "" {
			n++
		}
	}
	return n
}

// later are the continuous checkpoints after the first of every
// repetition, with the first of their repetition.
type laterCkpt struct{ c, first *contCkpt }

func (c incCase) later() []laterCkpt {
	var out []laterCkpt
	for i := range c.Reps {
		r := &c.Reps[i]
		if r.Err != "" || len(r.Cont) == 0 {
			continue
		}
		for j := 1; j < len(r.Cont); j++ {
			out = append(out, laterCkpt{&r.Cont[j], &r.Cont[0]})
		}
	}
	return out
}

// diskFig is a figure of one of a repetition's disk checkpoints, where
// that checkpoint succeeded.
func diskFig(which func(incRep) *diskCkpt, get func(*diskCkpt) (float64, bool)) func(incRep) (float64, bool) {
	return func(r incRep) (float64, bool) {
		if d := which(r); d.ok() {
			return get(d)
		}
		return 0, false
	}
}

// always is a figure that every checkpoint has.
func always[T any](f func(T) float64) func(T) (float64, bool) {
	return func(x T) (float64, bool) { return f(x), true }
}

// found is a figure that is 0 when it was not measured: a gap around a
// stop that could not be told.
func found[T any](f func(T) float64) func(T) (float64, bool) {
	return func(x T) (float64, bool) { v := f(x); return v, v > 0 }
}

func parentOf(r incRep) *diskCkpt { return r.Parent }
func incOf(r incRep) *diskCkpt    { return r.Inc }
func fullOf(r incRep) *diskCkpt   { return r.Full }

// taken names the disk checkpoints of r in the order they were taken.
func (r incRep) taken() ([]string, []*diskCkpt) {
	if r.IncFirst {
		return []string{"parent", "incremental", "full"}, []*diskCkpt{r.Parent, r.Inc, r.Full}
	}
	return []string{"parent", "full", "incremental"}, []*diskCkpt{r.Parent, r.Full, r.Inc}
}

func (rp *incReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ic := rp.Cfg
	budget := "10ms (crbpf's default)"
	if rp.Budget > 0 {
		budget = rp.Budget.String()
	}
	fixed := func(n int) func(stat) int { return func(stat) int { return n } }
	p("## Incremental and continuous checkpoints")
	p("")
	p("Generated by `go run ./bench -incremental`; do not edit between the markers, run it again.")
	p("")
	rp.facts(p)
	p("")
	p("The target (`bench/testdata/dirtier.c`) holds R MiB of patterned memory and, in a tight loop,")
	p("dirties W MiB/s of distinct pages round-robin over a hot set of H MiB, recording the gaps")
	p("between consecutive iterations: **observed** figures are those gaps, stops as the process lived")
	p("them; **crbpf** figures are from `crbpf checkpoint --json`. Each of the %d repetitions per case", rp.Reps)
	p("starts a fresh target, measures the largest gap in a %v window without crbpf (the **noise**), then:", rp.Window)
	p("")
	p("1. takes a full checkpoint (the parent), lets the target run %v, then takes one with", ic.wait)
	p("   `--parent` on it (**incremental**: unchanged pages found by comparing page hashes) and another")
	p("   **full** one, one right after the other, in an order that alternates between repetitions;")
	p("   pre-copy auto, budget %s, images in /dev/shm. *On disk* is the space of", budget)
	p("   `pages.crbpf`, `meta.crbpf` and `hashes.crbpf` (du), which also holds the copies of pages")
	p("   that pre-copy rounds replaced; *freeze gap* is the target's gap around crbpf's `target")
	p("   stopped` log line; ratios are taken per repetition;")
	p("2. starts `crbpf daemon` and runs `crbpf checkpoint --every %v --keep %d --json` through it until", ic.every, ic.keep)
	p("   it has printed %d checkpoints, then interrupts it (SIGINT). The first is full, in memory; each", ic.n)
	p("   later one is incremental on the one before and copies only the pages the write tracking, kept")
	p("   armed between checkpoints, saw written (\"tracked\"); from the %s on, each also merges the", ordinal(ic.keep+1))
	p("   oldest kept image into the next before it is reported (a fold: the next reuses the oldest's")
	p("   pages file and appends its own, so only its own pages are copied; a full copy only once the")
	p("   dead data carried along would outweigh the live).")
	p("")
	p("Cells are median (min–max).")
	p("")

	p("### Incremental image against a full one")
	p("")
	for _, c := range rp.Cases {
		p("#### %s", c.label())
		p("")
		p("| | full | incremental | incremental ÷ full |")
		p("|---|---:|---:|---:|")
		row := func(name string, prec func(stat) int, get func(*diskCkpt) (float64, bool)) {
			f := over(c.Reps, diskFig(fullOf, get))
			i := over(c.Reps, diskFig(incOf, get))
			ratio := over(c.Reps, func(r incRep) (float64, bool) {
				a, oka := diskFig(incOf, get)(r)
				b, okb := diskFig(fullOf, get)(r)
				return a / b, oka && okb && b > 0
			})
			p("| %s | %s | %s | %s |", name, fmtStat(f, prec(f), ""), fmtStat(i, prec(i), ""), fmtRatio(ratio))
		}
		row("on disk, MiB", fixed(1), always(func(d *diskCkpt) float64 { return mib(d.Size) }))
		row("pages stored", fixed(0), always(func(d *diskCkpt) float64 { return float64(d.Pages) }))
		row("freeze, crbpf ms", msPrec, always(func(d *diskCkpt) float64 { return ms(d.Freeze) }))
		row("freeze gap, observed ms", msPrec, found(func(d *diskCkpt) float64 { return ms(d.FreezeGap) }))
		row("largest gap of the run, observed ms", msPrec, always(func(d *diskCkpt) float64 { return ms(d.Observed) }))
		row("total s", fixed(3), always(func(d *diskCkpt) float64 { return d.Total.Seconds() }))
		p("")
		p("Noise %s ms; others' CPU %s%% of one; failed repetitions: %d. The incremental image took",
			fmtMs(over(c.Reps, func(r incRep) (float64, bool) { return ms(r.BaseGap), r.BaseGap > 0 })),
			fmtStat(over(c.Reps, func(r incRep) (float64, bool) { return r.Foreign, true }), 0, ""), c.failures())
		p("%s pages from its parent, whose checkpoint (the first of the target) froze it for %s ms",
			fmtStat(over(c.Reps, diskFig(incOf, always(func(d *diskCkpt) float64 { return float64(d.Inherited) }))), 0, ""),
			fmtMs(over(c.Reps, diskFig(parentOf, always(func(d *diskCkpt) float64 { return ms(d.Freeze) })))))
		p("(crbpf) and took %s s.", fmtStat(over(c.Reps, diskFig(parentOf, always(func(d *diskCkpt) float64 { return d.Total.Seconds() }))), 3, ""))
		p("")
	}

	p("### Continuous checkpoints, every %v", ic.every)
	p("")
	p("*Later* are checkpoints 2 to %d of every repetition, pooled; each one's ratio to the first (full)", ic.n)
	p("is taken against the first of its repetition. *Freeze gap* is the target's gap around the daemon's")
	p("final stop, dated by its `target stopped` log line (– where none was found); *largest gap* is the")
	p("largest the target saw between the previous checkpoint's line and the checkpoint's own; *interval*")
	p("is the time between two lines.")
	p("")
	for _, c := range rp.Cases {
		p("#### %s", c.label())
		p("")
		later := c.later()
		p("| | first (full) | later (%s) | later ÷ first |", cmp.Or(strings.Join(kinds(later), ", "), "none"))
		p("|---|---:|---:|---:|")
		row := func(name string, prec func(stat) int, get func(*contCkpt) (float64, bool)) {
			f := over(c.Reps, func(r incRep) (float64, bool) {
				if r.Err != "" || len(r.Cont) == 0 {
					return 0, false
				}
				return get(&r.Cont[0])
			})
			l := over(later, func(x laterCkpt) (float64, bool) { return get(x.c) })
			ratio := over(later, func(x laterCkpt) (float64, bool) {
				a, oka := get(x.c)
				b, okb := get(x.first)
				return a / b, oka && okb && b > 0
			})
			p("| %s | %s | %s | %s |", name, fmtStat(f, prec(f), ""), fmtStat(l, prec(l), ""), fmtRatio(ratio))
		}
		row("freeze, crbpf ms", msPrec, always(func(x *contCkpt) float64 { return x.FreezeSeconds * 1e3 }))
		row("freeze gap, observed ms", msPrec, found(func(x *contCkpt) float64 { return ms(x.FreezeGap) }))
		row("largest gap, observed ms", msPrec, always(func(x *contCkpt) float64 { return ms(x.Observed) }))
		row("total s", fixed(3), always(func(x *contCkpt) float64 { return x.TotalSeconds }))
		row("pages stored", fixed(0), always(func(x *contCkpt) float64 { return float64(x.PagesWritten) }))
		row("MiB stored", fixed(1), always(func(x *contCkpt) float64 { return mib(x.BytesWritten) }))
		p("| interval s | – | %s | – |", fmtStat(over(later, func(x laterCkpt) (float64, bool) { return x.c.Since.Seconds(), true }), 3, ""))
		p("")
		lg := over(c.Reps, func(r incRep) (float64, bool) {
			var m time.Duration
			for _, x := range r.Cont[min(1, len(r.Cont)):] {
				m = max(m, x.Observed)
			}
			return ms(m), r.Err == "" && len(r.Cont) > 1
		})
		p("Largest gap the target saw from the first checkpoint's line to the last's (tracking armed")
		p("throughout): %s ms, against a noise of %s ms.", fmtMs(lg),
			fmtMs(over(c.Reps, func(r incRep) (float64, bool) { return ms(r.BaseGap), r.BaseGap > 0 })))
		p("")
		p("The target's loop in a %v window just before (daemon running, no tracking) and from the first", rp.Window)
		p("checkpoint's line to the last's (tracking armed, with checkpoints and merges running beside it")
		p("on this machine's CPUs). Write cost is the time the target spent per page store; it includes the")
		p("write-protect fault on the first store to a page after each checkpoint.")
		p("")
		p("| | before | during | during ÷ before |")
		p("|---|---:|---:|---:|")
		trow := func(name string, prec int, get func(span) (float64, bool)) {
			fig := func(which func(incRep) span) func(incRep) (float64, bool) {
				return func(r incRep) (float64, bool) {
					if r.Err != "" || which(r).Ms == 0 {
						return 0, false
					}
					return get(which(r))
				}
			}
			before := fig(func(r incRep) span { return r.Before })
			during := fig(func(r incRep) span { return r.During })
			ratio := over(c.Reps, func(r incRep) (float64, bool) {
				b, okb := before(r)
				d, okd := during(r)
				return d / b, okb && okd && b > 0
			})
			p("| %s | %s | %s | %s |", name, fmtStat(over(c.Reps, before), prec, ""), fmtStat(over(c.Reps, during), prec, ""), fmtRatio(ratio))
		}
		trow("loop iterations/s, millions", 2, func(s span) (float64, bool) { return s.itersPerSec() / 1e6, true })
		trow("write cost, ns/page", 0, func(s span) (float64, bool) { return s.nsPerPage(), s.Pages > 0 })
		trow("pages written/s", 0, func(s span) (float64, bool) { return float64(s.Pages) / (float64(s.Ms) / 1e3), true })
		p("")
	}

	p("<details><summary>Every checkpoint</summary>")
	p("")
	p("| case | rep | checkpoint | freeze crbpf ms | freeze gap ms | largest gap ms | total s | pages stored | pages inherited | MiB stored | MiB on disk | interval s | merged crids | error |")
	p("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, c := range rp.Cases {
		name := fmt.Sprintf("%d MiB, %d @ %g MiB/s", c.Case.Size, c.Hot, c.Case.Rate)
		for i, r := range c.Reps {
			names, ds := r.taken()
			for k, d := range ds {
				switch {
				case d == nil:
				case d.Err != "":
					p("| %s | %d | disk: %s | | | | | | | | | | | %s |", name, i+1, names[k], cell(d.Err))
				default:
					p("| %s | %d | disk: %s | %.2f | %s | %.2f | %.3f | %d | %d | %.1f | %.1f | | | |", name, i+1, names[k], ms(d.Freeze),
						gapCell(d.FreezeGap), ms(d.Observed), d.Total.Seconds(), d.Pages, d.Inherited, mib(d.Bytes), mib(d.Size))
				}
			}
			for j, x := range r.Cont {
				since := "–"
				if j > 0 {
					since = fmt.Sprintf("%.3f", x.Since.Seconds())
				}
				p("| %s | %d | every %v: %d, %s | %.2f | %s | %.2f | %.3f | %d | %d | %.1f | | %s | %s | |", name, i+1, ic.every, j+1,
					cmp.Or(x.Incremental, "full"), x.FreezeSeconds*1e3, gapCell(x.FreezeGap), ms(x.Observed), x.TotalSeconds,
					x.PagesWritten, x.InheritedPages, mib(x.BytesWritten), since, fmtCRIDs(x.Merged))
			}
			if r.Err != "" {
				p("| %s | %d | | | | | | | | | | | | %s |", name, i+1, cell(r.Err))
			}
		}
	}
	p("")
	p("</details>")
	return b.String()
}

// gapCell is a gap around a stop in ms, or "–" when it was not found.
func gapCell(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", ms(d))
}

// kinds lists how the later checkpoints were made ("tracked").
func kinds(l []laterCkpt) []string {
	var out []string
	for _, x := range l {
		if k := cmp.Or(x.c.Incremental, "full"); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func fmtCRIDs(v []uint64) string {
	var s []string
	for _, c := range v {
		s = append(s, strconv.FormatUint(c, 10))
	}
	return strings.Join(s, " ")
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}
