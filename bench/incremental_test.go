package main

import (
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/api"
)

func TestSpliceBetweenKeepsPrecopySection(t *testing.T) {
	pre := "# Benchmarks\n\n" + beginMarker + "\nPRE\n" + endMarker + "\n"
	once := spliceBetween(pre, "INC1\n", incBegin, incEnd)
	if want := pre + "\n" + incBegin + "\nINC1\n" + incEnd + "\n"; once != want {
		t.Fatalf("first splice = %q, want %q", once, want)
	}
	twice := spliceBetween(once, "INC2\n", incBegin, incEnd)
	if want := pre + "\n" + incBegin + "\nINC2\n" + incEnd + "\n"; twice != want {
		t.Fatalf("second splice = %q, want %q", twice, want)
	}
	// And the pre-copy section can still be replaced on its own.
	if got := splice(twice, "PRE2\n"); !strings.Contains(got, "\nPRE2\n") || !strings.Contains(got, "\nINC2\n") || strings.Contains(got, "\nPRE\n") {
		t.Errorf("splice of the pre-copy section = %q", got)
	}
}

func TestAttribute(t *testing.T) {
	ms := int64(time.Millisecond)
	lines := []timedLine{
		{At: 1000 * ms, Text: `{"crid":1,"freeze_seconds":0.003,"pages_written":100}`},
		{At: 2000 * ms, Text: `{"crid":2,"freeze_seconds":0.002,"pages_written":10,"parent_crid":1,"incremental":"tracked","merged":[7]}`},
	}
	gaps := []gap{
		{At: 50 * ms, Len: 9 * time.Millisecond},   // before the first line: arming
		{At: 900 * ms, Len: 4 * time.Millisecond},  // the first freeze
		{At: 1500 * ms, Len: 2 * time.Millisecond}, // scheduled out
		{At: 1900 * ms, Len: 3 * time.Millisecond}, // the second freeze
	}
	stops := []int64{901 * ms, 1901 * ms}
	cs, err := attribute(lines, 0, gaps, stops)
	if err != nil {
		t.Fatal(err)
	}
	if c := cs[0]; c.CRID != 1 || c.Observed != 9*time.Millisecond || c.FreezeGap != 4*time.Millisecond || c.Since != 0 {
		t.Errorf("first: %+v", c)
	}
	if c := cs[1]; c.Incremental != "tracked" || c.Observed != 3*time.Millisecond || c.FreezeGap != 3*time.Millisecond ||
		c.Since != time.Second || len(c.Merged) != 1 {
		t.Errorf("second: %+v", c)
	}
	if _, err := attribute([]timedLine{{At: 1, Text: "crid 3"}}, 0, nil, nil); err == nil {
		t.Error("a line that is not JSON was accepted")
	}
}

func TestLineLog(t *testing.T) {
	l := newLineLog()
	l.Write([]byte("a\nb"))
	l.Write([]byte("c\n\n"))
	var got []string
	for _, x := range l.all() {
		got = append(got, x.Text)
	}
	if strings.Join(got, "|") != "a|bc|" {
		t.Errorf("lines %q", got)
	}
	select {
	case <-l.notify:
	default:
		t.Error("no notification")
	}
}

func TestIncMarkdown(t *testing.T) {
	disk := func(size, bytes, inherited uint64) *diskCkpt {
		return &diskCkpt{Observed: 7 * time.Millisecond, FreezeGap: 3 * time.Millisecond, Freeze: 2 * time.Millisecond,
			Total: time.Second, Size: size, Bytes: bytes, Pages: bytes / 4096, Inherited: inherited}
	}
	cont := func(pages uint64, kind string, freezeGap time.Duration) contCkpt {
		return contCkpt{CheckpointResult: api.CheckpointResult{FreezeSeconds: 0.003, TotalSeconds: 0.5,
			PagesWritten: pages, BytesWritten: pages * 4096, Incremental: kind}, FreezeGap: freezeGap, Since: time.Second}
	}
	good := incRep{BaseGap: time.Millisecond, Parent: disk(1<<30, 1<<30, 0), Inc: disk(20<<20, 16<<20, 258048),
		Full: disk(1<<30, 1<<30, 0), IncFirst: true,
		Cont:   []contCkpt{cont(262144, "", 4*time.Millisecond), cont(4096, "tracked", 0), cont(2048, "tracked", 2*time.Millisecond)},
		Before: span{Iters: 1000, Pages: 100, WriteNs: 10000, Ms: 1000}, During: span{Iters: 900, Pages: 100, WriteNs: 2000000, Ms: 1000}}
	failed := incRep{Parent: disk(1<<30, 1<<30, 0), Inc: &diskCkpt{Err: "crbpf failed\nmore"}, Err: "incremental checkpoint: crbpf failed"}
	rp := &incReport{Cfg: incConfig{wait: 2 * time.Second, every: time.Second, keep: 5, n: 3}, Reps: 2, Window: time.Second,
		Cases: []incCase{{Case: benchCase{1024, 16}, Hot: 16, Reps: []incRep{good, failed}}}}
	md := rp.markdown()
	for _, want := range []string{
		"| on disk, MiB | 1024.0 | 20.0 | 0.0195× |",
		"| pages stored | 262144 | 4096 | 0.0156× |",
		"| MiB stored | 1024.0 | 12.0 (8.0–16.0) | 0.0117× (0.0078–0.0156) |",
		"| loop iterations/s, millions | 0.00 | 0.00 | 0.900× |",
		"| write cost, ns/page | 100 | 20000 | 200.0× |",
		"| disk: incremental | 2.00 | 3.00 | 7.00 | 1.000 | 4096 | 258048 | 16.0 | 20.0 | | | |",
		"| crbpf failed |",
		"| freeze gap, observed ms | 4.00 | 2.00 | 0.500× |", // the one not found left out
		"| 3.00 | – | ",
		"failed repetitions: 1",
		"from the 6th on",
		"later (tracked)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// Every table row has as many cells as its header.
	var cols int
	for _, l := range strings.Split(md, "\n") {
		if !strings.HasPrefix(l, "|") {
			cols = 0
			continue
		}
		n := strings.Count(l, "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row with %d separators in a table of %d: %s", n, cols, l)
		}
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 6: "6th", 11: "11th", 12: "12th", 21: "21st", 22: "22nd"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}
