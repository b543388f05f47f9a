package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchCase is one resident size (MiB) and write rate (MiB/s).
type benchCase struct {
	Size int
	Rate float64
}

type config struct {
	cases  []benchCase
	hot    int // MiB; 0: the whole resident set
	reps   int
	out    string
	budget time.Duration // --max-downtime for the auto run; 0: crbpf's default
	warmup time.Duration
	window time.Duration
	settle time.Duration
	quiet  float64       // wait for other processes to use less than this % of a CPU
	quietW time.Duration // ... at most this long
	inc    incConfig     // -incremental: that mode instead of the matrix
}

func parseConfig(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	sizes := fs.String("sizes", "256,1024,4096", "resident sizes of the target, MiB")
	rates := fs.String("rates", "0,16,64,256", "rates at which the target dirties distinct pages, MiB/s")
	cases := fs.String("cases", "", "SIZE:RATE,... to run instead of every -sizes × -rates pair")
	c := &config{}
	fs.IntVar(&c.hot, "hot", 0, "hot set the target writes, MiB (0: its whole resident set)")
	fs.IntVar(&c.reps, "reps", 3, "repetitions per size and rate, each on a fresh target")
	fs.StringVar(&c.out, "out", "docs/benchmarks.md", "markdown file whose benchmark section is replaced (empty: print only)")
	fs.DurationVar(&c.budget, "max-downtime", 0, "--max-downtime for the --precopy auto run (0: crbpf's default, 10ms)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "time the target runs before the first measurement")
	fs.DurationVar(&c.window, "window", 0, "length of the baseline windows without crbpf (0: as long as a pre-copy checkpoint of the size takes, 2s + 2.5s per GiB; 1s with -incremental)")
	fs.DurationVar(&c.settle, "settle", 500*time.Millisecond, "pause after each checkpoint")
	fs.Float64Var(&c.quiet, "quiet", 25, "before each repetition, wait until other processes use less than this percentage of one CPU (0: do not wait)")
	fs.DurationVar(&c.quietW, "quiet-wait", 2*time.Minute, "longest wait for -quiet; the repetition runs anyway after it")
	c.inc.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.inc.on {
		if err := c.inc.defaults(fs, sizes, rates, &c.hot); err != nil {
			return nil, err
		}
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.reps < 1 {
		return nil, fmt.Errorf("-reps must be at least 1")
	}
	if *cases != "" {
		for _, s := range strings.Split(*cases, ",") {
			a, b, ok := strings.Cut(strings.TrimSpace(s), ":")
			size, err1 := strconv.Atoi(a)
			rate, err2 := strconv.ParseFloat(b, 64)
			if !ok || err1 != nil || err2 != nil || size <= 0 || rate < 0 {
				return nil, fmt.Errorf("-cases: bad SIZE:RATE %q", s)
			}
			c.cases = append(c.cases, benchCase{size, rate})
		}
	} else {
		ss, err := parseList(*sizes, "-sizes")
		if err != nil {
			return nil, err
		}
		rs, err := parseList(*rates, "-rates")
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if s <= 0 || s != float64(int(s)) {
				return nil, fmt.Errorf("-sizes: %v is not a whole positive number of MiB", s)
			}
			for _, r := range rs {
				c.cases = append(c.cases, benchCase{int(s), r})
			}
		}
	}
	for _, k := range c.cases {
		if c.hot > k.Size {
			return nil, fmt.Errorf("-hot %d MiB exceeds the resident size %d MiB", c.hot, k.Size)
		}
	}
	return c, nil
}

func parseList(s, name string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s: bad number %q", name, f)
		}
		out = append(out, v)
	}
	return out, nil
}

// env is what every case needs: the built binaries and the directories the
// benchmark owns.
type env struct {
	cfg      *config
	crbpf    string
	dirtier  string
	stateDir string
	shm      string // image directory under /dev/shm
	seq      int    // images taken so far
}

func run() error {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (crbpf ptraces the target)")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	biggest := 0
	for _, k := range cfg.cases {
		biggest = max(biggest, k.Size)
	}
	if err := checkSpace(biggest); err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "crbpf-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	shm, err := os.MkdirTemp("/dev/shm", "crbpf-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(shm)
	e := &env{cfg: cfg, stateDir: filepath.Join(tmp, "state"), shm: shm}
	progress("building crbpf and the target")
	if e.crbpf, err = buildCrbpf(ctx, root, tmp); err != nil {
		return err
	}
	if e.dirtier, err = buildDirtier(ctx, tmp); err != nil {
		return err
	}
	if cfg.inc.on {
		return e.runIncremental(ctx, root)
	}
	write := func(rep *report) error {
		if cfg.out == "" {
			return nil
		}
		path := cfg.out
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		if err := spliceFile(path, rep.markdown()); err != nil {
			return err
		}
		progress("wrote %s", path)
		return nil
	}
	rep := &report{runInfo: startRun(e.crbpf, root), Cases: make([]caseResult, len(cfg.cases)),
		Hot: cfg.hot, Window: cfg.window, Budget: cfg.budget, Reps: cfg.reps}
	for i, k := range cfg.cases {
		rep.Cases[i] = caseResult{Case: k}
		for r := 0; r < cfg.reps; r++ {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted: %w", err)
			}
			progress("%d MiB at %g MiB/s, rep %d/%d", k.Size, k.Rate, r+1, cfg.reps)
			res, err := e.rep(ctx, k, r)
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			if err != nil {
				progress("  failed: %v", err)
				res.Err = err.Error()
			}
			rep.Cases[i].Reps = append(rep.Cases[i].Reps, res)
		}
		// Write what is done so far: a long run that is interrupted
		// keeps its finished cases.
		if i+1 < len(cfg.cases) {
			rep.Finished = time.Now()
			rep.Partial = true
			if err := write(rep); err != nil {
				return err
			}
		}
	}
	rep.finish()
	rep.Partial = false
	fmt.Print(rep.markdown())
	return write(rep)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// rep runs one repetition of case k on a fresh target; the returned
// repResult holds whatever was measured before an error.
func (e *env) rep(ctx context.Context, k benchCase, n int) (res repResult, err error) {
	if err := checkSpace(k.Size); err != nil {
		return res, err
	}
	if err := e.waitQuiet(ctx); err != nil {
		return res, err
	}
	c0 := sampleCPU()
	defer func() { res.Foreign = foreignPercent(c0, sampleCPU()) }()
	hot := e.cfg.hot
	if hot == 0 {
		hot = k.Size
	}
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
	res.BaseIPS = float64(w.Iters) / w.seconds()
	timeout := time.Duration((60 + 30*gib) * float64(time.Second))

	// Slowdown while write tracking is armed: pre-copy rounds that go on
	// as long as the stop rules allow. It runs first, on a target that has
	// never been write-protected (a page protected once costs a fault on
	// its next write even after the protection is removed), and it also
	// makes the measured checkpoints below write their images into memory
	// the machine has used before: the first touch of fresh memory is slow
	// on VMs and would penalize whichever mode came first.
	s := &slowResult{}
	res.Slow = s
	r, cw, err := e.checkpoint(ctx, t, timeout, "--precopy", "8", "--max-downtime", "1ns")
	if err != nil {
		s.Err = err.Error()
		return res, err
	}
	s.Rounds, s.Stop = len(r.Res.Rounds), r.Res.StopReason
	if s.Before, err = t.counts(w.Start, w.End); err != nil {
		return res, err
	}
	// The window ends where the target's gap of the final stop begins
	// (else at the last round line, printed just before the stop).
	end := r.End
	if fg, ok := freezeGap(r, cw); ok {
		end = fg.At
	} else if n := len(r.RoundAt); n > 0 {
		end = r.RoundAt[n-1]
	}
	end -= int64(time.Millisecond) // a bucket is a millisecond
	// Round 0 starts right after tracking is armed.
	start := r.Start
	if len(r.RoundAt) > 0 && len(r.Res.Rounds) > 0 {
		start = r.RoundAt[0] - int64(r.Res.Rounds[0].Seconds*1e9)
	}
	if s.Armed, err = t.counts(start, end); err != nil {
		return res, err
	}
	if len(r.RoundAt) > 0 {
		if s.Later, err = t.counts(r.RoundAt[0], end); err != nil {
			return res, err
		}
	}
	if err := sleep(ctx, e.cfg.settle); err != nil {
		return res, err
	}

	// The measured pair, in an order that alternates between repetitions.
	pre := []string{"--precopy", "auto"}
	if e.cfg.budget > 0 {
		pre = append(pre, "--max-downtime", e.cfg.budget.String())
	}
	modes := []struct {
		dst  **modeResult
		args []string
	}{{&res.Full, []string{"--precopy", "0"}}, {&res.Pre, pre}}
	if n%2 == 1 {
		modes[0], modes[1] = modes[1], modes[0]
	}
	for _, m := range modes {
		r, w, err := e.checkpoint(ctx, t, timeout, m.args...)
		mr := &modeResult{}
		*m.dst = mr
		if r != nil {
			mr.fill(r, w)
		}
		if err != nil {
			mr.Err = err.Error()
			return res, err
		}
		if err := sleep(ctx, e.cfg.settle); err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkpoint takes one image of t into /dev/shm, with the target's window
// reset just before and read just after, and deletes the image.
func (e *env) checkpoint(ctx context.Context, t *target, timeout time.Duration, args ...string) (*ckptRun, window, error) {
	e.seq++
	img := filepath.Join(e.shm, fmt.Sprintf("img-%d", e.seq))
	defer os.RemoveAll(img)
	if err := t.reset(); err != nil {
		return nil, window{}, err
	}
	r, err := runCheckpoint(ctx, e.crbpf, e.stateDir, img, t.pid, timeout, args...)
	w, qerr := t.query()
	if err == nil {
		err = qerr
	}
	if err == nil {
		progress("  %-28s observed %8.2f ms, crbpf freeze %8.2f ms, total %7.3f s, %d rounds %s",
			strings.Join(args, " "), ms(w.MaxGap), r.Res.FreezeSeconds*1e3, r.Res.TotalSeconds,
			len(r.Res.Rounds), r.Res.StopReason)
		gs := slices.Clone(w.Gaps)
		slices.SortFunc(gs, func(a, b gap) int { return cmp.Compare(b.Len, a.Len) })
		var parts []string
		for _, g := range gs[:min(len(gs), 6)] {
			parts = append(parts, fmt.Sprintf("%.1f@%.0f", ms(g.Len), ms(time.Duration(g.At-r.Start))))
		}
		var rs []string
		for _, at := range r.RoundAt {
			rs = append(rs, fmt.Sprintf("%.0f", ms(time.Duration(at-r.Start))))
		}
		progress("    largest gaps ms@ms since crbpf start: %s; round lines at %s; stopped at %.0f; exit at %.0f; vCPU steal %.0f ms",
			strings.Join(parts, " "), strings.Join(rs, " "), ms(time.Duration(r.StoppedAt-r.Start)), ms(time.Duration(r.End-r.Start)), ms(r.Steal))
	}
	return r, w, err
}

// waitQuiet waits, when asked (-quiet), until other processes leave the
// CPUs alone, or -quiet-wait passes.
func (e *env) waitQuiet(ctx context.Context) error {
	if e.cfg.quiet <= 0 {
		return nil
	}
	p, err := waitQuiet(ctx, e.cfg.quiet, e.cfg.quietW)
	if err != nil {
		return err
	}
	if p >= e.cfg.quiet {
		progress("  other processes still use %.0f%% of a CPU; running anyway", p)
	}
	return nil
}

// startBaseline starts the target of case k with a hot set of hot MiB,
// lets it warm up and measures a window of it without crbpf (the noise,
// and the "before" of slowdowns). The caller stops the target; on error
// nothing is left running.
func (e *env) startBaseline(ctx context.Context, k benchCase, hot int) (*target, window, error) {
	gib := float64(k.Size) / 1024
	t, err := startTarget(e.dirtier, k.Size, hot, k.Rate, time.Duration((30+30*gib)*float64(time.Second)))
	if err != nil {
		return nil, window{}, err
	}
	w, err := func() (window, error) {
		if err := sleep(ctx, e.cfg.warmup); err != nil {
			return window{}, err
		}
		if err := t.reset(); err != nil {
			return window{}, err
		}
		if err := sleep(ctx, e.cfg.baseWindow(k.Size)); err != nil {
			return window{}, err
		}
		return t.query()
	}()
	if err != nil {
		return nil, window{}, errors.Join(err, t.stop())
	}
	return t, w, nil
}

// baseWindow is the length of a window without crbpf for a target of
// size MiB. By default about as long as a pre-copy checkpoint of that size
// takes here (2.4 s at 256 MiB, 3.8 s at 1 GiB, 8-14 s at 4 GiB), so
// that the noise it measures is the noise such a run is exposed to: on
// this VM gaps of ~20 ms come every 10-15 s without crbpf, which a 1 s
// window mostly misses.
func (c *config) baseWindow(size int) time.Duration {
	switch {
	case c.window > 0:
		return c.window
	case c.inc.on:
		return time.Second
	}
	return 2*time.Second + time.Duration(float64(size)/1024*2.5*float64(time.Second))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// checkSpace refuses a case whose target and image would not fit: the
// image goes to /dev/shm, and both it and the target live in memory.
func checkSpace(sizeMiB int) error {
	need := uint64(sizeMiB) << 20
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil {
		return fmt.Errorf("statfs /dev/shm: %w", err)
	}
	if avail := st.Bavail * uint64(st.Bsize); avail < need+256<<20 {
		return fmt.Errorf("/dev/shm has %d MiB free, a %d MiB image needs %d MiB", avail>>20, sizeMiB, sizeMiB+256)
	}
	avail, err := memAvailable()
	if err != nil {
		return err
	}
	if avail < 2*need+512<<20 {
		return fmt.Errorf("MemAvailable is %d MiB, a %d MiB target and its image need %d MiB", avail>>20, sizeMiB, 2*sizeMiB+512)
	}
	return nil
}

func memAvailable() (uint64, error) {
	return meminfo("MemAvailable")
}

func meminfo(key string) (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no %s", key)
}

// moduleRoot is the directory of the go.mod the benchmark runs in.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run it inside the crbpf module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

// commandLine is how this run was started, for the report.
func commandLine() string {
	parts := []string{"go run ./bench"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
