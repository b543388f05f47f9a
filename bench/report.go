package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// modeResult is one checkpoint of a repetition.
type modeResult struct {
	Observed time.Duration // largest gap the target saw during the run
	// FreezeGap is the target's gap that holds the final stop (0: not
	// found); Other the largest other gap, and in which phase it began.
	FreezeGap  time.Duration
	Other      time.Duration
	OtherPhase string
	Freeze     time.Duration // crbpf's freeze_seconds
	Total      time.Duration // crbpf's total_seconds
	Wall       time.Duration // the crbpf process, start to exit
	Mode       string
	Rounds     int
	Stop       string
	FinalPages uint64
	Steps      map[string]time.Duration
	Steal      time.Duration // the vCPUs' steal time during the run (ckptRun.Steal)
	Err        string
}

func (m *modeResult) fill(r *ckptRun, w window) {
	m.Observed = w.MaxGap
	fg, ok := freezeGap(r, w)
	if ok {
		m.FreezeGap = fg.Len
	}
	for _, g := range w.Gaps {
		if (ok && g == fg) || g.Len <= m.Other {
			continue
		}
		m.Other = g.Len
		m.OtherPhase = phase(r, fg, ok, g)
	}
	m.Freeze = time.Duration(r.Res.FreezeSeconds * 1e9)
	m.Total = time.Duration(r.Res.TotalSeconds * 1e9)
	m.Wall = r.Wall
	m.Mode = r.Res.Mode
	m.Rounds = len(r.Res.Rounds)
	m.Stop = r.Res.StopReason
	m.FinalPages = r.Res.FinalPages
	m.Steps = r.Steps
	m.Steal = r.Steal
}

// freezeGap finds the gap of w during which crbpf logged that it had
// stopped the target for the final copy.
func freezeGap(r *ckptRun, w window) (gap, bool) {
	if r.StoppedAt == 0 {
		return gap{}, false
	}
	const slack = int64(2 * time.Millisecond) // reading the log line
	var best gap
	for _, g := range w.Gaps {
		if g.At <= r.StoppedAt+slack && g.At+int64(g.Len) >= r.StoppedAt-slack && g.Len > best.Len {
			best = g
		}
	}
	return best, best.Len > 0
}

// phase names the part of a checkpoint a gap began in.
func phase(r *ckptRun, fg gap, fok bool, g gap) string {
	switch {
	case fok && g.At >= fg.At+int64(fg.Len):
		return "after resume"
	case len(r.RoundAt) > 0 && g.At < r.RoundAt[0]:
		return "arming, round 0"
	case len(r.RoundAt) > 0:
		return "later rounds"
	}
	return "before the stop"
}

func (m *modeResult) ok() bool { return m != nil && m.Err == "" }

// slowResult compares the target's loop with write tracking armed (a
// --precopy 8 --max-downtime 1ns run) against a window just before.
type slowResult struct {
	Before span // without crbpf
	Armed  span // from crbpf's start to the freeze
	Later  span // rounds after round 0 (from its progress line to the freeze)
	Rounds int
	Stop   string
	Err    string
}

type repResult struct {
	Foreign float64       // % of one CPU other processes used during the repetition
	BaseGap time.Duration // largest gap in a window without crbpf
	BaseIPS float64       // loop iterations/s then
	Full    *modeResult
	Pre     *modeResult
	Slow    *slowResult
	Err     string
}

type caseResult struct {
	Case benchCase
	Reps []repResult
}

type report struct {
	runInfo
	Hot     int
	Window  time.Duration // of the noise; 0: by size (config.baseWindow)
	Budget  time.Duration
	Reps    int
	Partial bool // cases are still to come
	Cases   []caseResult
}

// runInfo is what a report says about the run itself.
type runInfo struct {
	Command               string
	Started, Finished     time.Time
	Machine               []string
	Revision              string
	LoadBefore, LoadAfter string
	BusyBefore, BusyAfter []string
}

// startRun notes the run's command, machine, crbpf revision and load.
func startRun(crbpf, root string) runInfo {
	ri := runInfo{Command: commandLine(), Started: time.Now(), Machine: machineFacts(), Revision: revision(crbpf, root)}
	ri.LoadBefore, ri.BusyBefore = loadFacts()
	return ri
}

// finish notes the end of the run and the load then.
func (ri *runInfo) finish() {
	ri.Finished = time.Now()
	ri.LoadAfter, ri.BusyAfter = loadFacts()
}

// facts writes the list of the run's facts that opens a report.
func (ri *runInfo) facts(p func(format string, args ...any)) {
	p("- Command: `%s`", ri.Command)
	p("- Date: %s, %s", ri.Started.UTC().Format("2006-01-02 15:04 UTC"), roundDur(ri.Finished.Sub(ri.Started)))
	p("- crbpf: %s", ri.Revision)
	for _, m := range ri.Machine {
		p("- %s", m)
	}
	p("- Load average before / after: %s / %s", ri.LoadBefore, ri.LoadAfter)
	if len(ri.BusyBefore)+len(ri.BusyAfter) > 0 {
		p("- Other processes using the CPUs (over 10%% of one, sampled for 1 s) before: %s; after: %s",
			orNone(ri.BusyBefore), orNone(ri.BusyAfter))
	}
}

// stat is a median with its range.
type stat struct {
	Med, Min, Max float64
	N             int
}

func stats(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Med: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// fmtStat prints a median and its range with prec decimals, or "–".
func fmtStat(s stat, prec int, unit string) string {
	if s.N == 0 {
		return "–"
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', prec, 64) }
	if s.N == 1 {
		return f(s.Med) + unit
	}
	return fmt.Sprintf("%s%s (%s–%s)", f(s.Med), unit, f(s.Min), f(s.Max))
}

// msPrec picks decimals for milliseconds: three below 1, two below 10,
// one below 100, none above.
func msPrec(s stat) int {
	switch {
	case s.Med < 1:
		return 3
	case s.Med < 10:
		return 2
	case s.Med < 100:
		return 1
	}
	return 0
}

func fmtMs(s stat) string { return fmtStat(s, msPrec(s), "") }

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// collect gathers one figure over the repetitions where it exists.
func collect(reps []repResult, f func(repResult) (float64, bool)) stat {
	var v []float64
	for _, r := range reps {
		if x, ok := f(r); ok {
			v = append(v, x)
		}
	}
	return stats(v)
}

func fullMs(get func(*modeResult) time.Duration) func(repResult) (float64, bool) {
	return func(r repResult) (float64, bool) {
		if !r.Full.ok() {
			return 0, false
		}
		return ms(get(r.Full)), true
	}
}

func preMs(get func(*modeResult) time.Duration) func(repResult) (float64, bool) {
	return func(r repResult) (float64, bool) {
		if !r.Pre.ok() {
			return 0, false
		}
		return ms(get(r.Pre)), true
	}
}

func preFig(get func(*modeResult) float64) func(repResult) (float64, bool) {
	return func(r repResult) (float64, bool) {
		if !r.Pre.ok() {
			return 0, false
		}
		return get(r.Pre), true
	}
}

func observed(m *modeResult) time.Duration { return m.Observed }
func freeze(m *modeResult) time.Duration   { return m.Freeze }
func total(m *modeResult) time.Duration    { return m.Total }
func wall(m *modeResult) time.Duration     { return m.Wall }

// downRatio is full-freeze downtime over pre-copy downtime, per repetition.
func downRatio(r repResult) (float64, bool) {
	if !r.Full.ok() || !r.Pre.ok() || r.Pre.Observed <= 0 {
		return 0, false
	}
	return float64(r.Full.Observed) / float64(r.Pre.Observed), true
}

// totalRatio is pre-copy total time over full-freeze total time.
func totalRatio(r repResult) (float64, bool) {
	if !r.Full.ok() || !r.Pre.ok() || r.Full.Total <= 0 {
		return 0, false
	}
	return float64(r.Pre.Total) / float64(r.Full.Total), true
}

// wallRatio is pre-copy over full-freeze wall time of the crbpf process.
func wallRatio(r repResult) (float64, bool) {
	if !r.Full.ok() || !r.Pre.ok() || r.Full.Wall <= 0 {
		return 0, false
	}
	return float64(r.Pre.Wall) / float64(r.Full.Wall), true
}

func (c caseResult) label() string {
	return fmt.Sprintf("| %d | %g |", c.Case.Size, c.Case.Rate)
}

func (c caseResult) failures() int {
	n := 0
	for _, r := range c.Reps {
		if r.Err != "" {
			n++
		}
	}
	return n
}

// stopReasons summarizes why pre-copy ended, e.g. "budget ×2, max rounds".
func stopReasons(reps []repResult) string {
	counts := map[string]int{}
	var order []string
	for _, r := range reps {
		if !r.Pre.ok() {
			continue
		}
		k := shortReason(r.Pre.Stop)
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	var parts []string
	for _, k := range order {
		if counts[k] > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
		} else {
			parts = append(parts, k)
		}
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}

func shortReason(s string) string {
	switch {
	case strings.Contains(s, "downtime budget"):
		return "budget"
	case strings.Contains(s, "maximum of"):
		return "max rounds"
	case strings.Contains(s, "stopped shrinking"):
		return "not shrinking"
	case s == "":
		return "none"
	}
	return s
}

func (rp *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	budget := "10ms (crbpf's default)"
	if rp.Budget > 0 {
		budget = rp.Budget.String()
	}
	hot := "its whole resident set"
	if rp.Hot > 0 {
		hot = fmt.Sprintf("%d MiB", rp.Hot)
	}
	p("## Pre-copy against full freeze")
	p("")
	p("Generated by `go run ./bench`; do not edit between the markers, run it again.")
	p("")
	if rp.Partial {
		p("**Partial: the run has not finished; the cases below are those done so far.**")
		p("")
	}
	rp.facts(p)
	p("")
	p("The target (`bench/testdata/dirtier.c`) holds R MiB of patterned memory and, in a tight loop,")
	p("dirties W MiB/s of distinct pages (one store per page, round-robin over %s) and", hot)
	p("records the largest gap between consecutive iterations: **observed** downtime is that gap")
	p("during a checkpoint, the stop as the process lived it. **crbpf** is `freeze_seconds` from")
	p("`crbpf checkpoint --json`. Each of the %d repetitions per row starts a fresh target, then runs", rp.Reps)
	p("`--precopy 0` (full freeze) and `--precopy auto` (budget %s) on it, in alternating order,", budget)
	p("images in /dev/shm, target left running. Before them, the slowdown run below (which also makes")
	p("both measured runs write their images into memory the machine has used before: the first touch")
	p("of fresh memory is slow here and would penalize whichever came first). Cells are median (min–max); ratios are taken per")
	p("repetition, between the two checkpoints of the same target, then summarized. **Noise** is the")
	if rp.Window > 0 {
		p("largest gap in a %v window without crbpf: observed downtimes below it cannot be told apart.", rp.Window)
	} else {
		p("largest gap in a window without crbpf as long as a pre-copy checkpoint of the size takes (2 s +")
		p("2.5 s per GiB): observed downtimes below it cannot be told apart.")
	}
	p("**Others' CPU %%** is the CPU time processes other than the benchmark, its target and crbpf used")
	p("during the repetition, in percent of one CPU: this machine is shared, and such load lengthens")
	p("every stop on it (each repetition first waits, a bounded time, for it to drop).")
	p("**Steal** (every run, below) is the time the hypervisor kept the vCPUs from running while they")
	p("had work, during the crbpf process, summed over the CPUs (/proc/stat, 10 ms resolution): gaps it")
	p("holds are the host's, not crbpf's stops, though crbpf's own work can trigger them.")
	p("")

	p("### Downtime (ms)")
	p("")
	p("*Observed* is the largest gap during the whole checkpoint run, what the goals are about;")
	p("*freeze gap* is the target's gap around crbpf's final stop alone (found by the time of the")
	p("`target stopped` log line).")
	p("")
	p("| R MiB | W MiB/s | others' CPU %% | noise | full freeze: observed | full freeze: crbpf | pre-copy: observed | pre-copy: freeze gap | pre-copy: crbpf | full ÷ pre-copy (observed) | failed reps |")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range rp.Cases {
		p("%s %s | %s | %s | %s | %s | %s | %s | %s | %d |", c.label(),
			fmtStat(collect(c.Reps, func(r repResult) (float64, bool) { return r.Foreign, true }), 0, ""),
			fmtMs(collect(c.Reps, func(r repResult) (float64, bool) { return ms(r.BaseGap), r.BaseGap > 0 })),
			fmtMs(collect(c.Reps, fullMs(observed))), fmtMs(collect(c.Reps, fullMs(freeze))),
			fmtMs(collect(c.Reps, preMs(observed))),
			fmtMs(collect(c.Reps, func(r repResult) (float64, bool) { return ms(r.Pre.FreezeGap), r.Pre.ok() && r.Pre.FreezeGap > 0 })),
			fmtMs(collect(c.Reps, preMs(freeze))),
			fmtStat(collect(c.Reps, downRatio), 1, "×"), c.failures())
	}
	p("")

	p("### Total checkpoint time and rounds")
	p("")
	p("*total* is crbpf's `total_seconds`; *wall* is the crbpf process from start to exit (for pre-copy")
	p("it also holds loading and, after `total_seconds` ends, closing the eBPF programs).")
	p("")
	p("| R MiB | W MiB/s | full freeze: total s | pre-copy: total s | pre-copy ÷ full (total) | full freeze: wall s | pre-copy: wall s | pre-copy ÷ full (wall) | rounds | pre-copy ended by | pages copied frozen |")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
	for _, c := range rp.Cases {
		sec := func(get func(*modeResult) time.Duration, full bool) stat {
			return collect(c.Reps, func(r repResult) (float64, bool) {
				m := r.Pre
				if full {
					m = r.Full
				}
				if !m.ok() {
					return 0, false
				}
				return get(m).Seconds(), true
			})
		}
		p("%s %s | %s | %s | %s | %s | %s | %s | %s | %s |", c.label(),
			fmtStat(sec(total, true), 3, ""), fmtStat(sec(total, false), 3, ""),
			fmtStat(collect(c.Reps, totalRatio), 2, "×"),
			fmtStat(sec(wall, true), 3, ""), fmtStat(sec(wall, false), 3, ""),
			fmtStat(collect(c.Reps, wallRatio), 2, "×"),
			fmtStat(collect(c.Reps, preFig(func(m *modeResult) float64 { return float64(m.Rounds) })), 0, ""),
			stopReasons(c.Reps),
			fmtStat(collect(c.Reps, preFig(func(m *modeResult) float64 { return float64(m.FinalPages) })), 0, ""))
	}
	p("")

	p("### Where the stops go (ms, medians)")
	p("")
	p("From the `crbpf -v` log, times since the final stop at which each step ended: *state*, the")
	p("ptrace reads (and injected calls when the task state must be read again); *proc+files*, the")
	p("/proc reads and the fd table; *copy*, the /proc/PID/maps read and the page copy (all pages for a")
	p("full freeze, the last dirty ones for pre-copy). A full freeze runs the three side by side; after")
	p("pre-copy they run one after the other on the tracer thread, in the order state, copy,")
	p("proc+files, and the copy only reads (its pages are written after the resume). *crbpf*")
	p("(`freeze_seconds`) ends when all three are done, before the registers are put back")
	p("and the task detached. *freeze gap − crbpf* is the part of the final stop crbpf's clock does not")
	p("see. *Largest other gap* is the longest the target waited outside the final stop during the run,")
	p("and when it began (before the stop; arming and round 0; later rounds; after resume).")
	p("")
	p("| R MiB | W MiB/s | mode | state | proc+files | copy | crbpf | freeze gap | freeze gap − crbpf | largest other gap | began |")
	p("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range rp.Cases {
		for _, full := range []bool{true, false} {
			mode, pick := "pre-copy", func(r repResult) *modeResult { return r.Pre }
			if full {
				mode, pick = "full freeze", func(r repResult) *modeResult { return r.Full }
			}
			get := func(f func(*modeResult) (float64, bool)) string {
				return fmtStat(medOnly(collect(c.Reps, func(r repResult) (float64, bool) {
					m := pick(r)
					if !m.ok() {
						return 0, false
					}
					return f(m)
				})), 2, "")
			}
			step := func(name string) string {
				return get(func(m *modeResult) (float64, bool) {
					d, ok := m.Steps[name]
					return ms(d), ok
				})
			}
			phases := map[string]int{}
			var order []string
			for _, r := range c.Reps {
				if m := pick(r); m.ok() && m.Other > 0 {
					if phases[m.OtherPhase] == 0 {
						order = append(order, m.OtherPhase)
					}
					phases[m.OtherPhase]++
				}
			}
			var ph []string
			for _, k := range order {
				ph = append(ph, fmt.Sprintf("%s ×%d", k, phases[k]))
			}
			p("%s %s | %s | %s | %s | %s | %s | %s | %s | %s |", c.label(), mode, step("state"), step("proc+files"), step("final copy"),
				get(func(m *modeResult) (float64, bool) { return ms(m.Freeze), true }),
				get(func(m *modeResult) (float64, bool) { return ms(m.FreezeGap), m.FreezeGap > 0 }),
				get(func(m *modeResult) (float64, bool) { return ms(m.FreezeGap - m.Freeze), m.FreezeGap > 0 }),
				get(func(m *modeResult) (float64, bool) { return ms(m.Other), m.Other > 0 }),
				orNone(ph))
		}
	}
	p("")

	p("### Target slowdown while write tracking is armed")
	p("")
	p("`crbpf checkpoint --precopy 8 --max-downtime 1ns` keeps tracking armed for as many rounds as the")
	p("stop rules allow; it is the first checkpoint of each repetition. *armed* is the window from the")
	p("start of round 0 (tracking was armed just before) to the final stop; *later rounds* starts after")
	p("round 0. *before* is the noise window of the same target, just before, without crbpf.")
	p("Throughput is the target's loop iterations per second (it includes")
	p("CPU taken by crbpf on this 2-vCPU machine); write cost is the time the target spent per page")
	p("store, which includes the write-protect fault on the first store to a protected page.")
	p("")
	p("| R MiB | W MiB/s | armed window ms | loop throughput armed ÷ before | later rounds: window ms | later rounds ÷ before | write cost before ns/page | write cost armed ns/page | pages/s armed ÷ asked |")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range rp.Cases {
		slow := func(f func(*slowResult) (float64, bool)) func(repResult) (float64, bool) {
			return func(r repResult) (float64, bool) {
				if r.Slow == nil || r.Slow.Err != "" || r.Slow.Before.Ms == 0 {
					return 0, false
				}
				return f(r.Slow)
			}
		}
		armedMs := collect(c.Reps, slow(func(s *slowResult) (float64, bool) { return float64(s.Armed.Ms), true }))
		armedR := collect(c.Reps, slow(func(s *slowResult) (float64, bool) {
			return s.Armed.itersPerSec() / s.Before.itersPerSec(), s.Armed.Ms >= 20
		}))
		laterMs := collect(c.Reps, slow(func(s *slowResult) (float64, bool) { return float64(s.Later.Ms), true }))
		laterR := collect(c.Reps, slow(func(s *slowResult) (float64, bool) {
			return s.Later.itersPerSec() / s.Before.itersPerSec(), s.Later.Ms >= 20
		}))
		wBefore := collect(c.Reps, slow(func(s *slowResult) (float64, bool) { return s.Before.nsPerPage(), s.Before.Pages > 0 }))
		wArmed := collect(c.Reps, slow(func(s *slowResult) (float64, bool) { return s.Armed.nsPerPage(), s.Armed.Pages > 0 }))
		asked := c.Case.Rate * 256 // pages/s
		pages := collect(c.Reps, slow(func(s *slowResult) (float64, bool) {
			return float64(s.Armed.Pages) / (float64(s.Armed.Ms) / 1e3) / asked, asked > 0 && s.Armed.Ms >= 20
		}))
		p("%s %s | %s | %s | %s | %s | %s | %s |", c.label(), fmtStat(armedMs, 0, ""), fmtStat(armedR, 2, "×"),
			fmtStat(laterMs, 0, ""), fmtStat(laterR, 2, "×"), fmtStat(wBefore, 0, ""), fmtStat(wArmed, 0, ""), fmtStat(pages, 2, "×"))
	}
	p("")

	p("### Goals")
	p("")
	for _, g := range rp.goals() {
		p("- %s", g)
	}
	p("")

	p("<details><summary>Every run</summary>")
	p("")
	p("| R MiB | W MiB/s | rep | others' CPU %% | noise ms | mode | observed ms | freeze gap ms | crbpf ms | other gap ms | began | steal ms | total s | wall s | rounds | stop | frozen pages | error |")
	p("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|")
	for _, c := range rp.Cases {
		for i, r := range c.Reps {
			for _, m := range []struct {
				name string
				m    *modeResult
			}{{"full freeze", r.Full}, {"pre-copy", r.Pre}} {
				if m.m == nil {
					continue
				}
				p("%s %d | %.0f | %.2f | %s | %.2f | %.2f | %.2f | %.2f | %s | %.0f | %.3f | %.3f | %d | %s | %d | %s |", c.label(), i+1, r.Foreign, ms(r.BaseGap), m.name,
					ms(m.m.Observed), ms(m.m.FreezeGap), ms(m.m.Freeze), ms(m.m.Other), m.m.OtherPhase,
					ms(m.m.Steal), m.m.Total.Seconds(), m.m.Wall.Seconds(), m.m.Rounds, shortReason(m.m.Stop), m.m.FinalPages, cell(m.m.Err))
			}
			if r.Err != "" && (r.Full == nil || r.Full.ok()) && (r.Pre == nil || r.Pre.ok()) {
				p("%s %d | %.0f | %.2f | other | | | | | | | | | | | | %s |", c.label(), i+1, r.Foreign, ms(r.BaseGap), cell(r.Err))
			}
		}
	}
	p("")
	p("</details>")
	return b.String()
}

func medOnly(s stat) stat { s.N = min(s.N, 1); return s }

// cell makes an error fit one table cell.
func cell(s string) string {
	s = strings.ReplaceAll(strings.SplitN(s, "\n", 2)[0], "|", "\\|")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func orNone(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, ", ")
}

func roundDur(d time.Duration) string {
	return "took " + d.Round(time.Second).String()
}

// goals compares the results with the targets, in plain words.
func (rp *report) goals() []string {
	find := func(size int, rate float64) *caseResult {
		for i := range rp.Cases {
			if rp.Cases[i].Case.Size == size && rp.Cases[i].Case.Rate == rate {
				return &rp.Cases[i]
			}
		}
		return nil
	}
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	var out []string
	if c := find(1024, 64); c != nil {
		d := collect(c.Reps, preMs(observed))
		cr := collect(c.Reps, preMs(freeze))
		r := collect(c.Reps, downRatio)
		if d.N == 0 {
			out = append(out, "1 GiB at 64 MiB/s: no successful pre-copy run.")
		} else {
			out = append(out, fmt.Sprintf("1 GiB at 64 MiB/s, downtime ≤ 10 ms median: %s (observed %s ms; crbpf reports %s ms).",
				verdict(d.Med <= 10), fmtMs(d), fmtMs(cr)))
			out = append(out, fmt.Sprintf("1 GiB at 64 MiB/s, downtime ≥ 50× below full freeze: %s (%s, observed, per repetition).",
				verdict(r.N > 0 && r.Med >= 50), fmtStat(r, 1, "×")))
		}
	} else {
		out = append(out, "1 GiB at 64 MiB/s: not measured in this run.")
	}
	if c := find(1024, 16); c != nil {
		d := collect(c.Reps, preMs(observed))
		cr := collect(c.Reps, preMs(freeze))
		if d.N == 0 {
			out = append(out, "1 GiB at 16 MiB/s: no successful pre-copy run.")
		} else {
			out = append(out, fmt.Sprintf("1 GiB at 16 MiB/s, downtime ≤ 2 ms median: %s (observed %s ms; crbpf reports %s ms).",
				verdict(d.Med <= 2), fmtMs(d), fmtMs(cr)))
		}
	} else {
		out = append(out, "1 GiB at 16 MiB/s: not measured in this run.")
	}
	for _, k := range []struct {
		name  string
		ratio func(repResult) (float64, bool)
	}{{"crbpf's total_seconds", totalRatio}, {"wall time of the crbpf process", wallRatio}} {
		var met, missed []string
		for _, c := range rp.Cases {
			r := collect(c.Reps, k.ratio)
			if r.N == 0 {
				continue
			}
			name := fmt.Sprintf("%d MiB at %g MiB/s (%.2f×)", c.Case.Size, c.Case.Rate, r.Med)
			if r.Med <= 2 {
				met = append(met, name)
			} else {
				missed = append(missed, name)
			}
		}
		out = append(out, fmt.Sprintf("Total checkpoint time ≤ 2× the full-freeze path, by %s (median per row): %s for %s; %s for %s.",
			k.name, verdict(true), orNone(met), verdict(false), orNone(missed)))
	}
	return out
}

// machineFacts describes the machine for the report.
func machineFacts() []string {
	var uts unix.Utsname
	unix.Uname(&uts)
	facts := []string{fmt.Sprintf("Kernel: %s %s (uname -r), %d CPUs (nproc)",
		unix.ByteSliceToString(uts.Sysname[:]), unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU())}
	if mem, err := meminfo("MemTotal"); err == nil {
		facts = append(facts, fmt.Sprintf("Memory: %.1f GiB", float64(mem)/(1<<30)))
	}
	cpu := firstMatch("/proc/cpuinfo", "model name")
	virt := "no hypervisor flag"
	if out, err := exec.Command("dmesg").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if i := strings.Index(l, "Hypervisor detected: "); i >= 0 {
				virt = strings.TrimSpace(l[i:])
				break
			}
		}
	}
	if virt == "no hypervisor flag" && strings.Contains(firstMatch("/proc/cpuinfo", "flags"), " hypervisor") {
		virt = "a virtual machine (cpuinfo hypervisor flag)"
	}
	if strings.Contains(virt, "PVM") {
		virt += ": a PVM guest, where page faults and first touches of memory are slow"
	}
	facts = append(facts, fmt.Sprintf("CPU: %s; %s", cpu, virt))
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		facts = append(facts, "Clock source: "+strings.TrimSpace(string(cs)))
	}
	if thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err == nil {
		facts = append(facts, "THP: "+strings.TrimSpace(string(thp)))
	}
	if d := damon("/sys/kernel/mm/damon/admin/kdamonds"); d != "" {
		facts = append(facts, "DAMON: "+d)
	}
	return facts
}

// damon describes the DAMON monitors running on the machine (their
// kdamond threads walk page tables and share the CPUs with the target),
// or returns "" when none runs.
func damon(root string) string {
	dirs, _ := filepath.Glob(filepath.Join(root, "[0-9]*"))
	var on []string
	for _, d := range dirs {
		read := func(rel string) string {
			b, _ := os.ReadFile(filepath.Join(d, rel))
			return strings.TrimSpace(string(b))
		}
		if read("state") != "on" {
			continue
		}
		var ctxs []string
		cdirs, _ := filepath.Glob(filepath.Join(d, "contexts", "[0-9]*"))
		for _, c := range cdirs {
			rel, _ := filepath.Rel(d, c)
			desc := read(filepath.Join(rel, "operations"))
			if us, err := strconv.Atoi(read(filepath.Join(rel, "monitoring_attrs", "intervals", "sample_us"))); err == nil {
				desc += fmt.Sprintf(", sampling every %v", time.Duration(us)*time.Microsecond)
			}
			sdirs, _ := filepath.Glob(filepath.Join(c, "schemes", "[0-9]*"))
			for _, s := range sdirs {
				r, _ := filepath.Rel(d, s)
				desc += ", scheme " + read(filepath.Join(r, "action"))
			}
			ctxs = append(ctxs, desc)
		}
		on = append(on, fmt.Sprintf("kdamond %s on (%s)", filepath.Base(d), strings.Join(ctxs, "; ")))
	}
	return strings.Join(on, ", ")
}

func firstMatch(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// revision is the commit crbpf was built from: from its build info, or
// else read from the module's .git directory (no git command is run).
func revision(bin, root string) string {
	rev, modified := "", ""
	if out, err := exec.Command("go", "version", "-m", bin).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "build" {
				k, v, _ := strings.Cut(f[1], "=")
				switch k {
				case "vcs.revision":
					rev = v
				case "vcs.modified":
					if v == "true" {
						modified = " with uncommitted changes"
					}
				}
			}
		}
	}
	if rev == "" {
		rev, modified = gitHead(filepath.Join(root, ".git")), " (HEAD; the working tree may differ)"
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "commit " + rev + modified
}

// gitHead reads the commit HEAD points to from a .git directory.
func gitHead(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		return ""
	}
	head := strings.TrimSpace(string(b))
	ref, ok := strings.CutPrefix(head, "ref: ")
	if !ok {
		return head
	}
	if b, err := os.ReadFile(filepath.Join(dir, ref)); err == nil {
		return strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "packed-refs")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if h, r, ok := strings.Cut(l, " "); ok && r == ref {
				return h
			}
		}
	}
	return ""
}

// loadFacts returns the load average and the processes that used more
// than 10% of a CPU over one second: other work on the machine shows up
// as noise in every figure.
func loadFacts() (string, []string) {
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	self := os.Getpid()
	before := cpuTimes()
	time.Sleep(time.Second)
	after := cpuTimes()
	var busy []string
	for pid, a := range after {
		b, ok := before[pid]
		if !ok || pid == self {
			continue
		}
		pct := float64(a.ticks-b.ticks) / 100 * 100 // USER_HZ is 100
		if pct > 10 {
			busy = append(busy, fmt.Sprintf("%s %.0f%%", a.comm, pct))
		}
	}
	slices.Sort(busy)
	return load, busy
}

type procTime struct {
	comm  string
	ticks uint64
}

func cpuTimes() map[int]procTime {
	out := map[int]procTime{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(b[j+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		s, _ := strconv.ParseUint(f[12], 10, 64)
		out[pid] = procTime{comm: string(b[i+1 : j]), ticks: u + s}
	}
	return out
}

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// spliceFile puts md between the markers of path, creating the file (with
// a title) when it does not exist and appending the section when it has no
// markers. Text outside the markers is kept.
func spliceFile(path, md string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err != nil {
		old = []byte("# Benchmarks\n\n")
	}
	return os.WriteFile(path, []byte(splice(string(old), md)), 0o644)
}

func splice(old, md string) string {
	section := beginMarker + "\n" + md + endMarker
	i := strings.Index(old, beginMarker)
	j := strings.Index(old, endMarker)
	if i < 0 || j < i {
		if old != "" && !strings.HasSuffix(old, "\n\n") {
			old = strings.TrimRight(old, "\n") + "\n\n"
		}
		return old + section + "\n"
	}
	return old[:i] + section + old[j+len(endMarker):]
}
