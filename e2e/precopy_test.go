package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// churnInfo is what churn.c's READY line says about its address space.
type churnInfo struct {
	mainAddr, mainPages uint64
	xwreq               string // address of the request the writer serves
}

// startChurn starts churn.c with a main region of mib MiB and returns it
// with its READY line's addresses.
func startChurn(t *testing.T, mib int) (*testutil.Target, churnInfo) {
	t.Helper()
	tg := testutil.StartTarget(t, target(t, "churn"), "run", strconv.Itoa(mib), t.TempDir())
	ready := tg.WaitLine(t, "READY", timeout)
	f := fields(ready)
	var ci churnInfo
	var err1, err2 error
	ci.mainAddr, err1 = strconv.ParseUint(f["main"], 0, 64)
	ci.mainPages, err2 = strconv.ParseUint(f["mainpages"], 10, 64)
	ci.xwreq = f["xwreq"]
	if err := errors.Join(err1, err2); err != nil || ci.xwreq == "" || f["pid"] != strconv.Itoa(tg.PID) {
		t.Fatalf("churn: bad READY line %q (%v)\n%s", ready, err, tg.Log())
	}
	return tg, ci
}

// startWriter starts churn.c's external writer on pid: it writes the pages
// that pid requests at xwreq into pid's memory with process_vm_writev.
func startWriter(t *testing.T, pid int, xwreq string) *testutil.Target {
	t.Helper()
	w := testutil.StartTarget(t, target(t, "churn"), "writer", strconv.Itoa(pid), xwreq)
	w.WaitLine(t, "WRITER READY", timeout)
	return w
}

var writerEnd = regexp.MustCompile(`^WRITER (STOPPED|GONE) requests=(\d+) pages=(\d+)$`)

// stopWriter asks the writer to stop after the request it is writing
// (SIGTERM) and waits until it has; it must exit 0, reporting that it
// stopped or that the target is gone. It returns the requests it served.
func stopWriter(t *testing.T, w *testutil.Target) int64 {
	t.Helper()
	if err := unix.Kill(w.PID, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		t.Fatalf("kill writer: %v", err)
	}
	m := w.WaitLineMatch(t, writerEnd, timeout)
	if code := w.Wait(t, timeout); code != 0 {
		t.Fatalf("writer exited %d\n%s", code, w.Log())
	}
	n, _ := strconv.ParseInt(m[2], 10, 64)
	return n
}

// churnVerify sends SIGUSR1 to pid and requires "VERIFY OK" on out; it
// returns the line's counters.
func churnVerify(t *testing.T, out *testutil.Target, pid int) map[string]string {
	t.Helper()
	kill(t, pid, unix.SIGUSR1)
	l := out.WaitLine(t, "VERIFY", timeout)
	if !strings.HasPrefix(l, "VERIFY OK ") {
		t.Fatalf("pid %d: %q, want VERIFY OK\n%s", pid, l, out.Log())
	}
	return fields(l)
}

// churnOps are churn.c's operation counters: each must have run before a
// checkpoint means anything.
var churnOps = []string{"mainw", "mainz", "bigz", "rdr", "rdz", "fpw", "fpz", "slotw", "slotz", "mmap", "munmap",
	"mremap_move", "mremap_inplace", "mprotect", "punch", "sbrk", "unsbrk", "brkw", "xwreq", "xwdone"}

func counter(t *testing.T, f map[string]string, k string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(f[k], 10, 64)
	if err != nil {
		t.Fatalf("VERIFY line without %s=: %v", k, f)
	}
	return n
}

// waitChurned verifies pid until every kind of operation has run and the
// writer has completed at least minXW more requests than before (-1: do
// not look at the writer), and returns the last counters.
func waitChurned(t *testing.T, out *testutil.Target, pid int, minXW int64) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := churnVerify(t, out, pid)
		done := minXW < 0 || counter(t, f, "xwdone") >= minXW
		for _, k := range churnOps {
			if counter(t, f, k) == 0 && (k != "xwreq" && k != "xwdone" || minXW >= 0) {
				done = false
			}
		}
		if done {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not run every kind of operation (or the writer did not serve %d requests) within %v: %v",
				pid, minXW, timeout, f)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// precopyResult is the pre-copy part of `checkpoint --json`.
type precopyResult struct {
	Mode       string `json:"mode"`
	ModeReason string `json:"mode_reason"`
	Killed     bool   `json:"killed"`
	StopReason string `json:"stop_reason"`
	FinalPages uint64 `json:"final_pages"`
	// ReleaseSeconds: the paced removal of the protection after the resume.
	ReleaseSeconds float64 `json:"release_seconds"`
	Rounds         []struct {
		Round      int    `json:"round"`
		DirtyPages uint64 `json:"dirty_pages"`
		NewPages   uint64 `json:"new_pages"`
		Bytes      uint64 `json:"bytes"`
		// WriteFaults: first writes to protected pages eBPF saw while
		// the round copied (nil without fault telemetry).
		WriteFaults *uint64 `json:"write_faults"`
	} `json:"rounds"`
}

// precopyCheckpoint runs `crbpf checkpoint --json -o img flags... pid`,
// requires exit 0 and returns the contract fields and the pre-copy ones.
func precopyCheckpoint(t *testing.T, pid int, img string, flags ...string) (checkpointResult, precopyResult) {
	t.Helper()
	args := append([]string{"checkpoint", "--json", "-o", img}, flags...)
	args = append(args, strconv.Itoa(pid))
	stdout, stderr, code := testutil.RunCrbpf(t, args...)
	if code != exitOK {
		t.Fatalf("crbpf %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	cr := parseCheckpointJSON(t, stdout)
	var pr precopyResult
	if err := json.Unmarshal([]byte(stdout), &pr); err != nil {
		t.Fatalf("checkpoint --json: %v\n%s", err, stdout)
	}
	if pr.Mode == "precopy" {
		checkEndedLine(t, strings.Split(stderr, "\n"), pr)
	}
	return cr, pr
}

// checkEndedLine checks that stderr says why pre-copy ended when it did:
// after the last round's line, before the line saying the target runs
// again.
func checkEndedLine(t *testing.T, lines []string, pr precopyResult) {
	t.Helper()
	want := fmt.Sprintf("pre-copy ended after %d rounds: %s", len(pr.Rounds), pr.StopReason)
	ended, lastRound, resumed := -1, -1, -1
	for i, l := range lines {
		switch {
		case l == want:
			ended = i
		case strings.HasPrefix(l, "round "):
			lastRound = i
		case strings.Contains(l, " resumed; ") && resumed < 0:
			resumed = i
		}
	}
	if ended < 0 || ended < lastRound || resumed >= 0 && resumed < ended {
		t.Errorf("stderr: want %q after the last round line (%d) and before the resume (%d), found at %d:\n%s",
			want, lastRound, resumed, ended, strings.Join(lines, "\n"))
	}
}

// checkRounds checks the pre-copy report of a checkpoint of churn with at
// most max rounds (exactly max if exact).
func checkRounds(t *testing.T, pr precopyResult, ci churnInfo, max int, exact, killed bool) {
	t.Helper()
	if pr.Mode != "precopy" {
		t.Errorf("mode %q (%s), want precopy", pr.Mode, pr.ModeReason)
	}
	if pr.Killed != killed {
		t.Errorf("killed %v, want %v", pr.Killed, killed)
	}
	n := len(pr.Rounds)
	switch {
	case exact && n != max:
		t.Errorf("%d rounds (%s), want exactly %d: the downtime budget of 1ns can never be met", n, pr.StopReason, max)
	case n < 2 || n > max:
		t.Errorf("%d rounds (%s), want 2 to %d", n, pr.StopReason, max)
	}
	if pr.StopReason == "" {
		t.Errorf("no stop_reason")
	}
	// A live target has its protection removed, paced, before crbpf
	// returns; a killed one has none left to remove.
	if live := !killed; live != (pr.ReleaseSeconds > 0) {
		t.Errorf("release_seconds %v with killed %v", pr.ReleaseSeconds, killed)
	}
	for i, r := range pr.Rounds {
		if r.Round != i {
			t.Errorf("rounds[%d] is round %d", i, r.Round)
		}
		if i == 0 && r.NewPages < ci.mainPages {
			t.Errorf("round 0 copied %d new pages, less than the %d of churn's main region", r.NewPages, ci.mainPages)
		}
		// churn writes all the time: a round that saw no written page
		// means the tracker saw nothing, unless churn did not run at all
		// since the previous scan (this VM stalls a process for tens of
		// ms at times; once for all of a 66 ms round 0). eBPF tells: a
		// write to a page the previous scan protected faults.
		if i > 0 && r.DirtyPages == 0 {
			switch prev := pr.Rounds[i-1].WriteFaults; {
			case prev == nil || *prev > 0:
				t.Errorf("round %d reports no dirty pages while churn writes without pause (write faults seen during round %d: %s): %+v",
					i, i-1, faultCount(prev), pr.Rounds)
			default:
				t.Logf("round %d saw no written page, and eBPF no write to a protected page since the previous scan: churn did not run", i)
			}
		}
	}
}

func faultCount(n *uint64) string {
	if n == nil {
		return "no fault telemetry"
	}
	return strconv.FormatUint(*n, 10)
}

// noBadLines fails on a VERIFY BAD or CHURN FAILED line.
func noBadLines(t *testing.T, who string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, "VERIFY BAD") || strings.HasPrefix(l, "CHURN FAILED") {
			t.Errorf("%s printed %q", who, l)
		}
	}
}

// TestChurnSelfCheck runs churn.c's selfcheck without crbpf: after churning
// with every kind of operation (and its own process_vm_writev writer), each
// injected stale page, torn page, missed zap, lost write, stale read(2)
// copy, wrong brk, missing or read-only mapping and changed file must be
// reported as exactly one problem of the right kind, and verify must pass
// again once it is repaired. It needs gcc, not root.
func TestChurnSelfCheck(t *testing.T) {
	tg := testutil.StartTarget(t, target(t, "churn"), "selfcheck", t.TempDir())
	m := tg.WaitLineMatch(t, regexp.MustCompile(`^SELFCHECK (OK|BAD)`), timeout)
	if code := tg.Wait(t, timeout); code != 0 || m[1] != "OK" {
		t.Fatalf("churn selfcheck: exit %d\n%s", code, tg.Log())
	}
	for _, l := range tg.Lines() {
		if strings.Contains(l, "BAD") || strings.Contains(l, "FAILED") {
			t.Errorf("selfcheck reported a problem: %q", l)
		}
	}
	t.Log(strings.Join(tg.Lines(), "\n"))
}

// pmUffdWP is PM_UFFD_WP in /proc/PID/pagemap entries: the page (or the
// pte marker of an unpopulated one) is userfaultfd write-protected.
const pmUffdWP = 1 << 57

// uffdProtected counts the pages of pid's mappings whose pagemap entry has
// PM_UFFD_WP and describes the first one.
func uffdProtected(pid int) (n int, first string, err error) {
	maps, err := testutil.Maps(pid)
	if err != nil {
		return 0, "", err
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return 0, "", err
	}
	defer pm.Close()
	buf := make([]byte, 8<<16)
	for _, l := range maps {
		var start, end uint64
		if _, err := fmt.Sscanf(l, "%x-%x", &start, &end); err != nil {
			return 0, "", fmt.Errorf("maps line %q: %w", l, err)
		}
		if strings.HasSuffix(l, "[vsyscall]") {
			continue
		}
		for addr := start; addr < end; {
			cnt := min((end-addr)/4096, uint64(len(buf)/8))
			got, err := pm.ReadAt(buf[:cnt*8], int64(addr/4096*8))
			if err != nil && got == 0 {
				return 0, "", fmt.Errorf("read pagemap at %#x: %w", addr, err)
			}
			for i := 0; i+8 <= got; i += 8 {
				if binary.LittleEndian.Uint64(buf[i:])&pmUffdWP != 0 {
					if n == 0 {
						first = fmt.Sprintf("%#x in %s", addr+uint64(i/8)*4096, l)
					}
					n++
				}
			}
			addr += uint64(got/8) * 4096
		}
	}
	return n, first, nil
}

// userfaultfds lists pid's fds that are userfaultfds, by their link or by
// the "API:" line that only a userfaultfd's fdinfo has.
func userfaultfds(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := testutil.Fds(pid)
	if err != nil {
		t.Fatalf("fds of pid %d: %v", pid, err)
	}
	var found []string
	for fd, link := range fds {
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		if strings.Contains(link, "userfaultfd") || regexp.MustCompile(`(?m)^API:`).Match(info) {
			found = append(found, fmt.Sprintf("fd %d -> %s (fdinfo %q)", fd, link, info))
		}
	}
	return found
}

// mainProtected: some page of churn's main region (first 16 MiB) is
// write-protected, so crbpf armed tracking and registered it (round 0).
func mainProtected(pid int, ci churnInfo) bool {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return false
	}
	defer pm.Close()
	buf := make([]byte, 8*min(4096, ci.mainPages))
	n, _ := pm.ReadAt(buf, int64(ci.mainAddr/4096*8))
	for i := 0; i+8 <= n; i += 8 {
		if binary.LittleEndian.Uint64(buf[i:])&pmUffdWP != 0 {
			return true
		}
	}
	return false
}

// roundsReported counts crbpf checkpoint's "round N:" progress lines.
func roundsReported(cp *testutil.Target) int {
	n := 0
	for _, l := range cp.Stderr() {
		if strings.HasPrefix(l, "round ") {
			n++
		}
	}
	return n
}

// TestPrecopyKilledMidRound SIGKILLs `crbpf checkpoint --precopy 8
// --max-downtime 1ns` of a 512 MiB churn.c (with its writer) at points
// while pre-copy runs: after fixed delays from its start, at and after the
// moment its main region is first write-protected (round 0 copying), and
// as soon as round 0 or round 1 is reported. Afterwards the target must be
// untraced and running, hold no userfaultfd, have no page left
// write-protected (pagemap bit 57), and pass its self-check. One target
// takes every kill in turn and is finally checkpointed for real, restarted
// and verified.
func TestPrecopyKilledMidRound(t *testing.T) {
	testutil.RequireRoot(t)
	tg, ci := startChurn(t, 512)
	w := startWriter(t, tg.PID, ci.xwreq)
	waitChurned(t, tg, tg.PID, 50)

	type kcase struct {
		name  string
		until func(cp *testutil.Target) bool // nil: start at once
		delay time.Duration                  // then wait this long
	}
	protected := func(*testutil.Target) bool { return mainProtected(tg.PID, ci) }
	round := func(k int) func(*testutil.Target) bool {
		return func(cp *testutil.Target) bool { return roundsReported(cp) > k }
	}
	// In a stop (the arming stop, or the freeze if that one was missed):
	// crbpf may be between two calls it injected.
	traced := func(*testutil.Target) bool {
		st, err := testutil.Status(tg.PID)
		return err == nil && st["TracerPid"] != "0"
	}
	cases := []kcase{
		{"50ms", nil, 50 * time.Millisecond},
		{"150ms", nil, 150 * time.Millisecond},
		{"300ms", nil, 300 * time.Millisecond},
		{"protected", protected, 0},
		{"protected+50ms", protected, 50 * time.Millisecond},
		{"protected+150ms", protected, 150 * time.Millisecond},
		{"protected+300ms", protected, 300 * time.Millisecond},
		{"round0-reported", round(0), 0},
		{"round1-reported", round(1), 0},
		{"traced", traced, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			cp := testutil.StartCrbpf(t, "checkpoint", "--precopy", "8", "--max-downtime", "1ns", "-o", img, strconv.Itoa(tg.PID))
			if c.until != nil {
				deadline := time.Now().Add(timeout)
				for !c.until(cp) && !cp.Exited() {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not reached within %v\n%s", c.name, timeout, cp.Log())
					}
					if c.name == "traced" {
						// A stop lasts 1-3 ms; a poll without pauses
						// would starve crbpf (SCHED_IDLE in its rounds)
						// on this 2-CPU machine.
						time.Sleep(200 * time.Microsecond)
					} else {
						time.Sleep(time.Millisecond)
					}
				}
			}
			time.Sleep(c.delay)
			st, _ := testutil.Status(tg.PID)
			signalIfRunning(t, cp, unix.SIGKILL)
			code := cp.Wait(t, timeout)
			rounds := roundsReported(cp)
			t.Logf("crbpf exited %d with %d rounds reported; target at the kill: State %q TracerPid %s",
				code, rounds, st["State"], st["TracerPid"])
			switch code {
			case 128 + int(unix.SIGKILL):
			case exitOK:
				t.Logf("crbpf finished before it was killed: this case did not test a kill\n%s", cp.Log())
			default:
				t.Errorf("crbpf exited %d before it was killed\n%s", code, cp.Log())
			}
			if st["TracerPid"] != "0" {
				t.Logf("the target was traced when crbpf was killed (not a pre-copy round)")
			}

			waitReleased(t, tg.PID)
			if fds := userfaultfds(t, tg.PID); len(fds) > 0 {
				t.Errorf("pid %d holds a userfaultfd after crbpf was killed: %v", tg.PID, fds)
			}
			// The kernel removes all protection when the last userfaultfd
			// reference goes away; give it a moment.
			deadline := time.Now().Add(timeout)
			for {
				n, first, err := uffdProtected(tg.PID)
				if err != nil {
					t.Fatalf("pagemap of pid %d: %v", tg.PID, err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%d pages of pid %d are still userfaultfd write-protected %v after crbpf was killed; first %s",
						n, tg.PID, timeout, first)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			f1 := churnVerify(t, tg, tg.PID)
			f2 := churnVerify(t, tg, tg.PID)
			if counter(t, f2, "ops") <= counter(t, f1, "ops") {
				t.Errorf("pid %d does not run: ops %s then %s", tg.PID, f1["ops"], f2["ops"])
			}
		})
	}

	t.Run("checkpoint-after", func(t *testing.T) {
		img := imgDir(t, "img")
		cr, pr := precopyCheckpoint(t, tg.PID, img, "--precopy", "3", "--kill")
		t.Logf("checkpoint: %d rounds (%s), final copy %d pages, image %d pages",
			len(pr.Rounds), pr.StopReason, pr.FinalPages, cr.PagesWritten)
		checkRounds(t, pr, ci, 3, false, true)
		tg.ReadToEOF(t, timeout)
		if code := tg.Wait(t, timeout); code != 128+int(unix.SIGKILL) {
			t.Errorf("original exited %d after checkpoint --kill, want 137 (SIGKILL)", code)
		}
		noBadLines(t, "the original", tg.Lines())
		stopWriter(t, w)
		out, pid := restartDetached(t, img)
		churnVerify(t, out, pid)
		noBadLines(t, "the restored process", out.Lines())
	})
}

// TestPrecopyCorrectness checkpoints churn.c (64 MiB) with pre-copy while it
// rewrites pages, zaps them, reads files into them, maps, unmaps, moves and
// protects mappings and moves brk, and while a second process writes into
// it with process_vm_writev. Whatever pre-copy missed shows up as a stale,
// torn or lost page, a missed zap or a wrong mapping in the restored
// process's self-check. With --kill the original must die once the image
// is complete and the restored process (original PID) verify OK, also
// after a new writer served it; without --kill the original and a restored
// copy next to it must both verify OK.
func TestPrecopyCorrectness(t *testing.T) {
	testutil.RequireRoot(t)
	type pcase struct {
		name   string
		flags  []string
		rounds int
		exact  bool // the budget cannot be met: every round runs
	}
	cases := []pcase{
		{"precopy3", []string{"--precopy", "3"}, 3, false},
		{"precopy8", []string{"--precopy", "8"}, 8, false},
		{"precopy3-1ns", []string{"--precopy", "3", "--max-downtime", "1ns"}, 3, true},
	}
	for _, c := range cases {
		for _, killed := range []bool{true, false} {
			name := c.name + "/live"
			if killed {
				name = c.name + "/kill"
			}
			t.Run(name, func(t *testing.T) {
				orig, ci := startChurn(t, 64)
				w := startWriter(t, orig.PID, ci.xwreq)
				before := waitChurned(t, orig, orig.PID, 50)
				t.Logf("before the checkpoint: %v", before)
				img := imgDir(t, "img")
				flags := c.flags
				if killed {
					flags = append(flags[:len(flags):len(flags)], "--kill")
				}
				cr, pr := precopyCheckpoint(t, orig.PID, img, flags...)
				t.Logf("checkpoint: %d rounds (%s), final copy %d pages, image %d pages; rounds %+v",
					len(pr.Rounds), pr.StopReason, pr.FinalPages, cr.PagesWritten, pr.Rounds)
				checkRounds(t, pr, ci, c.rounds, c.exact, killed)

				if killed {
					orig.ReadToEOF(t, timeout)
					if code := orig.Wait(t, timeout); code != 128+int(unix.SIGKILL) {
						t.Errorf("original exited %d after checkpoint --kill, want 137 (SIGKILL)", code)
					}
					noBadLines(t, "the original", orig.Lines())
					served := stopWriter(t, w)
					t.Logf("the writer served %d requests", served)

					out, pid := restartDetached(t, img)
					if pid != orig.PID {
						t.Errorf("restored as pid %d, want the original pid %d (it was free)", pid, orig.PID)
					}
					f1 := churnVerify(t, out, pid)
					t.Logf("restored: %v", f1)
					// The request protocol and every region go on working:
					// a new writer serves the restored process.
					w2 := startWriter(t, pid, ci.xwreq)
					f2 := waitChurned(t, out, pid, counter(t, f1, "xwdone")+50)
					stopWriter(t, w2)
					f3 := churnVerify(t, out, pid)
					if counter(t, f3, "ops") <= counter(t, f2, "ops") || counter(t, f2, "ops") <= counter(t, f1, "ops") {
						t.Errorf("restored process does not go on churning: ops %s, %s, %s", f1["ops"], f2["ops"], f3["ops"])
					}
					noBadLines(t, "the restored process", out.Lines())
					return
				}

				// Without --kill the original runs on, with the writer.
				after := churnVerify(t, orig, orig.PID)
				if counter(t, after, "ops") <= counter(t, before, "ops") {
					t.Errorf("original stopped churning after the checkpoint: ops %s then %s", before["ops"], after["ops"])
				}
				stopWriter(t, w)
				churnVerify(t, orig, orig.PID)

				out, pid := restartDetached(t, img)
				if pid == orig.PID {
					t.Fatalf("restored copy has the original's pid %d, which is in use", pid)
				}
				f1 := churnVerify(t, out, pid)
				t.Logf("restored copy: %v", f1)
				churnVerify(t, orig, orig.PID)
				f2 := churnVerify(t, out, pid)
				if counter(t, f2, "ops") <= counter(t, f1, "ops") {
					t.Errorf("restored copy does not go on churning: ops %s then %s", f1["ops"], f2["ops"])
				}
				for _, p := range []int{orig.PID, pid} {
					if !testutil.Alive(p) {
						t.Errorf("pid %d is gone", p)
					}
				}
				noBadLines(t, "the original", orig.Lines())
				noBadLines(t, "the restored copy", out.Lines())
			})
		}
	}
}

// TestPrecopySparse: pre-copy of a process with a large, mostly untouched
// mapping leaves it as sparse as it was. Write-protecting never-populated
// pages leaves markers that pagemap shows as swapped; copying those as if
// they were pages allocated the whole mapping in the target.
func TestPrecopySparse(t *testing.T) {
	testutil.RequireRoot(t)
	tg := testutil.StartTarget(t, target(t, "sparse"))
	tg.WaitLine(t, "TICK 2", timeout)
	rss := func() int64 {
		st, err := testutil.Status(tg.PID)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := strconv.ParseInt(strings.Fields(st["RssAnon"])[0], 10, 64)
		if err != nil {
			t.Fatalf("RssAnon %q: %v", st["RssAnon"], err)
		}
		return kb
	}
	before := rss()
	img := imgDir(t, "img")
	_, pr := precopyCheckpoint(t, tg.PID, img, "--precopy", "3", "--max-downtime", "1ns")
	if after := rss(); after > before+1024 {
		t.Errorf("RssAnon grew from %d kB to %d kB over a pre-copy checkpoint (%d rounds)", before, after, len(pr.Rounds))
	}
	tg.WaitLine(t, "TICK", timeout)
	testutil.RequireUntouched(t, tg.PID)
}
