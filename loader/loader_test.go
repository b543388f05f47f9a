//go:build linux

package loader

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/crbpf/crbpf/internal/testutil"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// buildC compiles testdata/NAME.c into a temporary directory.
func buildC(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-o", bin,
		filepath.Join("testdata", name+".c")).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc %s.c: %v\n%s", name, err, out)
	}
	return bin
}

// target is a running test program, talking line by line on stdin/stdout.
type target struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startTarget(t testing.TB, bin string, args ...string) *target {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	tg := &target{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	if got := tg.line(t); got != "ready" {
		t.Fatalf("target said %q, want ready", got)
	}
	return tg
}

func (tg *target) pid() int { return tg.cmd.Process.Pid }

func (tg *target) line(t testing.TB) string {
	t.Helper()
	if !tg.lines.Scan() {
		t.Fatalf("target %d: no line: %v", tg.pid(), tg.lines.Err())
	}
	return tg.lines.Text()
}

func (tg *target) send(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(tg.stdin, s+"\n"); err != nil {
		t.Fatalf("target %d: %v", tg.pid(), err)
	}
}

// report is what testdata/target.c prints once it is done.
type report struct {
	Mmap, Brk0, Brk1, Zero uint64
	Pages                  int
}

func (tg *target) run(t testing.TB) report {
	t.Helper()
	tg.send(t, "go")
	l := tg.line(t)
	var r report
	if _, err := fmt.Sscanf(l, "mmap=%v pages=%d brk0=%v brk1=%v zero=%v",
		&r.Mmap, &r.Pages, &r.Brk0, &r.Brk1, &r.Zero); err != nil {
		t.Fatalf("target report %q: %v", l, err)
	}
	return r
}

func load(t testing.TB, opts Options) *Tracker {
	t.Helper()
	tr, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// pollAll drains the ring buffer into a slice.
func pollAll(t testing.TB, tr *Tracker) []Event {
	t.Helper()
	var evs []Event
	n, err := tr.Poll(func(e Event) { evs = append(evs, e) })
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if n != len(evs) {
		t.Fatalf("Poll returned %d, delivered %d events", n, len(evs))
	}
	return evs
}

func TestTracker(t *testing.T) {
	testutil.RequireRoot(t)
	bin := buildC(t, "target")
	const page = 4096

	for _, emit := range []bool{false, true} {
		t.Run(fmt.Sprintf("emit_faults=%v", emit), func(t *testing.T) {
			tr := load(t, Options{EmitFaultEvents: emit, RingbufSize: 1 << 20})
			if !tr.FaultTelemetry() {
				t.Fatal("FaultTelemetry() = false on x86 with exceptions:page_fault_* present")
			}

			tracked := startTarget(t, bin)
			other := startTarget(t, bin)
			if err := tr.Add(tracked.pid()); err != nil {
				t.Fatal(err)
			}
			if n, err := tr.Poll(func(Event) {}); err != nil || n != 0 {
				t.Fatalf("Poll before any activity = %d, %v; want 0, nil", n, err)
			}

			r := tracked.run(t)
			other.run(t)

			evs := pollAll(t, tr)
			c, err := tr.Counters()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("counters %+v, %d events", c, len(evs))

			if c.WriteFaultsUser < uint64(r.Pages) {
				t.Errorf("WriteFaultsUser = %d, want >= %d", c.WriteFaultsUser, r.Pages)
			}
			if c.WriteFaultsKernel < 1 {
				t.Errorf("WriteFaultsKernel = %d, want >= 1 (read() from /dev/zero into fresh pages)", c.WriteFaultsKernel)
			}
			if c.Dropped != 0 {
				t.Errorf("Dropped = %d", c.Dropped)
			}
			if c.Emitted != uint64(len(evs)) {
				t.Errorf("Emitted = %d, Poll delivered %d", c.Emitted, len(evs))
			}

			pid := uint32(tracked.pid())
			var faultPages = map[uint64]bool{}
			var asChanges uint64
			kernelFaults := 0
			for _, e := range evs {
				if e.Tgid != pid {
					t.Errorf("event for untracked tgid: %v", &e)
					continue
				}
				switch e.Kind {
				case KindWriteFaultUser:
					if e.Addr >= r.Mmap && e.Addr < r.Mmap+uint64(r.Pages)*page {
						faultPages[e.Addr&^(page-1)] = true
					}
					if e.Arg0&2 == 0 {
						t.Errorf("fault event without the write bit: %v", &e)
					}
				case KindWriteFaultKernel:
					kernelFaults++
				case KindMmap, KindMunmap, KindMremap, KindBrk, KindMprotect, KindMadvise:
					asChanges++
				}
			}
			if asChanges != 7 || c.ASChanges != 7 {
				t.Errorf("ASChanges = %d, events show %d; want 7 (see testdata/target.c)", c.ASChanges, asChanges)
			}
			if emit {
				if len(faultPages) != r.Pages {
					t.Errorf("fault events cover %d pages of the mapping, want %d", len(faultPages), r.Pages)
				}
				if kernelFaults == 0 {
					t.Errorf("no kernel write fault event")
				}
			} else if len(faultPages) != 0 || kernelFaults != 0 {
				t.Errorf("fault events with EmitFaultEvents off: %d user pages, %d kernel", len(faultPages), kernelFaults)
			}

			size := uint64(r.Pages) * page
			want := []struct {
				kind      Kind
				addr, len uint64
				arg0      uint64
			}{
				{KindMmapRet, r.Mmap, 0, 0},
				{KindMprotect, r.Mmap, size, 1 /* PROT_READ */},
				{KindMadvise, r.Mmap, size, 4 /* MADV_DONTNEED */},
				{KindMunmap, r.Mmap, size, 0},
				{KindBrk, 0, 0, 0},
				{KindBrkRet, r.Brk0, 0, 0},
				{KindBrk, r.Brk0 + 4*page, 0, 0},
				{KindBrkRet, r.Brk1, 0, 0},
				{KindMmapRet, r.Zero, 0, 0},
			}
			// The events must appear in this order (other events between).
			i := 0
			for _, e := range evs {
				if i == len(want) {
					break
				}
				w := want[i]
				if e.Kind == w.kind && e.Addr == w.addr && e.Len == w.len && e.Arg0 == w.arg0 {
					i++
				}
			}
			if i < len(want) {
				var got strings.Builder
				for _, e := range evs {
					if e.Kind.IsAddressSpaceChange() {
						fmt.Fprintf(&got, "\n\t%v", &e)
					}
				}
				t.Errorf("missing event %d: %v addr=%#x len=%#x arg0=%#x; address-space events:%s",
					i, want[i].kind, want[i].addr, want[i].len, want[i].arg0, got.String())
			}
			// The mmap that created the mapping: its entry precedes the result.
			found := false
			for j, e := range evs {
				if e.Kind == KindMmapRet && e.Addr == r.Mmap {
					for _, p := range evs[:j] {
						if p.Kind == KindMmap && p.Len == size && p.Arg0 == 3 /* RW */ {
							found = true
						}
					}
				}
			}
			if !found {
				t.Errorf("no mmap entry event (len %#x, PROT_READ|PROT_WRITE) before its result", size)
			}

			// After Remove, the process is not tracked any more.
			if err := tr.Remove(tracked.pid()); err != nil {
				t.Fatal(err)
			}
			if err := tr.Remove(tracked.pid()); err != nil {
				t.Fatalf("second Remove: %v", err)
			}
			before, _ := tr.Counters()
			tracked2 := startTarget(t, bin) // a fresh one: the first is done
			tracked2.run(t)
			if evs := pollAll(t, tr); len(evs) != 0 {
				t.Errorf("%d events after Remove, first %v", len(evs), &evs[0])
			}
			if after, _ := tr.Counters(); after != before {
				t.Errorf("counters moved with nothing tracked: %+v -> %+v", before, after)
			}
		})
	}
}

func TestCloseDetachesEverything(t *testing.T) {
	testutil.RequireRoot(t)
	tr, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}

	// Every object the tracker holds, and every map its programs use
	// (.rodata included, which the Tracker does not hold itself).
	var progIDs []ebpf.ProgramID
	mapIDs := map[ebpf.MapID]string{}
	for _, p := range tr.objs.programs() {
		if p.prog == nil {
			t.Fatalf("program %s not loaded", p.name)
		}
		info, err := p.prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		progIDs = append(progIDs, id)
		ids, _ := info.MapIDs()
		for _, id := range ids {
			mapIDs[id] = "used by " + p.name
		}
	}
	for _, m := range []*ebpf.Map{tr.objs.Events, tr.objs.Counters, tr.objs.Targets} {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		mapIDs[id] = info.Name
	}
	// The programs are attached only while a process is tracked.
	linkIDs := func() []link.ID {
		var ids []link.ID
		for _, l := range tr.links {
			info, err := l.Info()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, info.ID)
		}
		return ids
	}
	if ids := linkIDs(); len(ids) != 0 {
		t.Fatalf("%d links with nothing tracked, want none", len(ids))
	}
	self, other := os.Getpid(), os.Getppid()
	for _, pid := range []int{self, other, self} {
		if err := tr.Add(pid); err != nil {
			t.Fatal(err)
		}
	}
	first := linkIDs()
	if want := len(tr.objs.programs()); len(progIDs) != want || len(first) != want {
		t.Fatalf("%d programs, %d links; want %d of each", len(progIDs), len(first), want)
	}
	if err := tr.Remove(self); err != nil {
		t.Fatal(err)
	}
	if ids := linkIDs(); !slices.Equal(ids, first) {
		t.Fatalf("links %v after removing one of two tracked processes, want %v", ids, first)
	}
	if err := tr.Remove(other); err != nil {
		t.Fatal(err)
	}
	if ids := linkIDs(); len(ids) != 0 {
		t.Fatalf("links %v with nothing tracked any more, want none", ids)
	}
	if err := tr.Add(self); err != nil {
		t.Fatal(err)
	}
	// Every link ever made must be gone after Close.
	allLinks := append(first, linkIDs()...)
	if len(mapIDs) != 4 {
		t.Fatalf("maps %v, want events, counters, targets and .rodata", mapIDs)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// The kernel frees the objects once the last reference is gone; links
	// and programs go synchronously, maps after an RCU grace period.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for _, id := range allLinks {
			if l, err := link.NewFromID(id); err == nil {
				l.Close()
				left = append(left, fmt.Sprintf("link %d", id))
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("link %d: %v", id, err)
			}
		}
		for _, id := range progIDs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left = append(left, fmt.Sprintf("program %d", id))
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("program %d: %v", id, err)
			}
		}
		for id, what := range mapIDs {
			if m, err := ebpf.NewMapFromID(id); err == nil {
				m.Close()
				left = append(left, fmt.Sprintf("map %d (%s)", id, what))
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("map %d: %v", id, err)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still present after Close: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// And the way an operator would look (bpftool is optional): no line of
	// `bpftool prog show` names one of our programs' IDs.
	if _, err := exec.LookPath("bpftool"); err == nil {
		out, err := exec.Command("bpftool", "prog", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("bpftool prog show: %v\n%s", err, out)
		}
		ours := map[string]bool{}
		for _, id := range progIDs {
			ours[fmt.Sprintf("%d:", id)] = true
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && ours[f[0]] {
				t.Errorf("bpftool still shows %q", line)
			}
		}
	}
}

// Where the exceptions tracepoints are missing (any architecture but x86),
// Load leaves the fault programs out and the rest still works. Here the
// fault programs ask for tracepoints no kernel has.
func TestWithoutFaultTracepoints(t *testing.T) {
	testutil.RequireRoot(t)
	loadSpec = func() (*ebpf.CollectionSpec, error) {
		spec, err := loadTrack()
		if err != nil {
			return nil, err
		}
		spec.Programs[trackProgPageFaultUser].AttachTo = "crbpf_no_such_tracepoint"
		spec.Programs[trackProgPageFaultKernel].AttachTo = "crbpf_no_such_tracepoint"
		return spec, nil
	}
	t.Cleanup(func() { loadSpec = loadTrack })

	var logs strings.Builder
	tr := load(t, Options{EmitFaultEvents: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if tr.FaultTelemetry() {
		t.Error("FaultTelemetry() = true without the fault tracepoints")
	}
	if !strings.Contains(logs.String(), "reduced telemetry") {
		t.Errorf("no log line about reduced telemetry; logs:\n%s", logs.String())
	}
	tg := startTarget(t, buildC(t, "target"))
	if err := tr.Add(tg.pid()); err != nil {
		t.Fatal(err)
	}
	if want := len(tr.objs.programs()) - 2; tr.objs.PageFaultUser != nil || tr.objs.PageFaultKernel != nil || len(tr.links) != want {
		t.Errorf("fault programs loaded (%v, %v) or %d links, want %d", tr.objs.PageFaultUser, tr.objs.PageFaultKernel, len(tr.links), want)
	}
	r := tg.run(t)
	evs := pollAll(t, tr)
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.WriteFaultsUser != 0 || c.WriteFaultsKernel != 0 || c.ASChanges != 7 {
		t.Errorf("counters %+v, want no faults and 7 address-space changes", c)
	}
	munmap := false
	for _, e := range evs {
		if e.Kind == KindWriteFaultUser || e.Kind == KindWriteFaultKernel {
			t.Errorf("fault event without fault programs: %v", &e)
		}
		munmap = munmap || e.Kind == KindMunmap && e.Addr == r.Mmap
	}
	if !munmap {
		t.Errorf("no munmap event for %#x", r.Mmap)
	}
}

// A verifier rejection must come back with the whole log.
func TestVerifierErrorHasWholeLog(t *testing.T) {
	testutil.RequireRoot(t)
	loadSpec = func() (*ebpf.CollectionSpec, error) {
		spec, err := loadTrack()
		if err != nil {
			return nil, err
		}
		// Use a register that was never written.
		p := spec.Programs[trackProgSysExit]
		p.Instructions = asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Add.Reg(asm.R0, asm.R2),
			asm.Return(),
		}
		return spec, nil
	}
	t.Cleanup(func() { loadSpec = loadTrack })

	tr, err := Load(Options{})
	if err == nil {
		tr.Close()
		t.Fatal("Load succeeded with an invalid program")
	}
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v does not wrap *ebpf.VerifierError", err)
	}
	msg := err.Error()
	for _, line := range ve.Log {
		if !strings.Contains(msg, line) {
			t.Errorf("verifier log line %q missing from the error:\n%s", line, msg)
		}
	}
	if !strings.Contains(msg, "sys_exit") {
		t.Errorf("error does not name the program:\n%s", msg)
	}
	t.Logf("%v", err)
}

func TestLoadOptions(t *testing.T) {
	testutil.RequireRoot(t)
	for _, size := range []int{-1, 1000, 4096 + 1, 3 << 20, 2 << 30} {
		if tr, err := Load(Options{RingbufSize: size}); err == nil {
			tr.Close()
			t.Errorf("Load(RingbufSize: %d) succeeded", size)
		}
	}
	tr := load(t, Options{RingbufSize: 4096})
	if got := tr.objs.Events.MaxEntries(); got != 4096 {
		t.Errorf("ring buffer size %d, want 4096", got)
	}
	for _, pid := range []int{0, -1, 1 << 30} {
		if err := tr.Add(pid); err == nil {
			t.Errorf("Add(%d) succeeded", pid)
		}
	}
}

func TestEventResult(t *testing.T) {
	for _, tc := range []struct {
		addr  uint64
		want  uint64
		errno uintptr
	}{
		{0x7f0000000000, 0x7f0000000000, 0},
		{^uint64(12 - 1), 0, 12}, // -ENOMEM
		{^uint64(4095 - 1), 0, 4095},
		{^uint64(4096 - 1), ^uint64(4096 - 1), 0},
	} {
		e := Event{Kind: KindMmapRet, Addr: tc.addr}
		got, errno := e.Result()
		if got != tc.want || uintptr(errno) != tc.errno {
			t.Errorf("Result(%#x) = %#x, %d; want %#x, %d", tc.addr, got, errno, tc.want, tc.errno)
		}
	}
}

// TestStateChanges: a process that installs a signal handler moves its
// state-change count; one that only sleeps does not.
func TestStateChanges(t *testing.T) {
	testutil.RequireRoot(t)
	tr := load(t, Options{})

	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	time.Sleep(100 * time.Millisecond) // let it reach its sleep
	if err := tr.Add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	a, err := tr.StateChanges(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if b, err := tr.StateChanges(sleeper.Process.Pid); err != nil || b != a {
		t.Errorf("sleeping process: state changes %d then %d (%v), want unchanged", a, b, err)
	}

	self := os.Getpid()
	if err := tr.Add(self); err != nil {
		t.Fatal(err)
	}
	before, err := tr.StateChanges(self)
	if err != nil {
		t.Fatal(err)
	}
	// Any rt_sigaction counts (crbpf cannot tell a query from a change
	// without reading the arguments, and a spurious re-read is harmless).
	var old [4]uint64
	if _, _, e := syscall.Syscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGWINCH), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		t.Fatal(e)
	}
	after, err := tr.StateChanges(self)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("after rt_sigaction: state changes %d, was %d; want more", after, before)
	}
	if _, err := tr.StateChanges(1 << 21); err == nil {
		t.Error("StateChanges of an untracked pid did not fail")
	}
}

// TestStateChangeSyscalls: each syscall the table marks as a state change
// moves the count (an exec too, and an x32 call, whose number the table does
// not know); others, address-space changes included, do not.
func TestStateChangeSyscalls(t *testing.T) {
	testutil.RequireRoot(t)
	tr := load(t, Options{})
	tg := startTarget(t, buildC(t, "statecalls"))
	pid := tg.pid()
	if err := tr.Add(pid); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		call  string
		moves bool
	}{
		{"getpid", false},
		{"mmap", false},
		{"rt_sigaction", true},
		{"sigaltstack", true},
		{"setitimer", true},
		{"alarm", true},
		{"timer_create", true},
		{"timer_settime", true},
		{"timer_delete", true},
		{"set_tid_address", true},
		{"brk", true},
		{"x32_getpid", true},
		{"execve", true},
		{"execveat", true},
		{"getpid", false},
	} {
		before, err := tr.StateChanges(pid)
		if err != nil {
			t.Fatal(err)
		}
		tg.send(t, tc.call)
		want := "ok"
		if strings.HasPrefix(tc.call, "exec") {
			want = "ready"
		}
		if got := tg.line(t); got != want {
			t.Fatalf("%s: target said %q, want %q", tc.call, got, want)
		}
		after, err := tr.StateChanges(pid)
		if err != nil {
			t.Fatal(err)
		}
		if moved := after != before; moved != tc.moves {
			t.Errorf("%s: state changes %d -> %d, want moved=%v", tc.call, before, after, tc.moves)
		}
	}
}
