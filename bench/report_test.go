package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		s := stats(tc.in)
		if s.Med != tc.med || s.Min != tc.min || s.Max != tc.max || s.N != len(tc.in) {
			t.Errorf("stats(%v) = %+v", tc.in, s)
		}
	}
	if s := stats(nil); s.N != 0 || fmtStat(s, 1, "") != "–" {
		t.Errorf("stats(nil) = %+v", s)
	}
}

func TestSplice(t *testing.T) {
	for _, tc := range []struct{ name, old, want string }{
		{"empty", "", beginMarker + "\nNEW\n" + endMarker + "\n"},
		{"no markers", "# B\n\nnotes\n", "# B\n\nnotes\n\n" + beginMarker + "\nNEW\n" + endMarker + "\n"},
		{"replace", "# B\n" + beginMarker + "\nOLD\n" + endMarker + "\n\n## Notes\nkept\n",
			"# B\n" + beginMarker + "\nNEW\n" + endMarker + "\n\n## Notes\nkept\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := splice(tc.old, "NEW\n"); got != tc.want {
				t.Errorf("splice = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFreezeGap(t *testing.T) {
	ms := int64(time.Millisecond)
	r := &ckptRun{Start: 0, RoundAt: []int64{1000 * ms, 1100 * ms}, StoppedAt: 1101 * ms}
	w := window{Gaps: []gap{
		{At: 500 * ms, Len: 40 * time.Millisecond},   // arming, round 0
		{At: 1050 * ms, Len: 20 * time.Millisecond},  // later rounds
		{At: 1100 * ms, Len: 8 * time.Millisecond},   // the final stop
		{At: 1109 * ms, Len: 120 * time.Millisecond}, // after resume
	}}
	fg, ok := freezeGap(r, w)
	if !ok || fg.At != 1100*ms {
		t.Fatalf("freezeGap = %+v, %v", fg, ok)
	}
	var m modeResult
	m.fill(r, w)
	if m.FreezeGap != 8*time.Millisecond || m.Other != 120*time.Millisecond || m.OtherPhase != "after resume" {
		t.Errorf("fill: freeze gap %v, other %v (%s)", m.FreezeGap, m.Other, m.OtherPhase)
	}
	for _, tc := range []struct {
		g    gap
		want string
	}{{w.Gaps[0], "arming, round 0"}, {w.Gaps[1], "later rounds"}, {w.Gaps[3], "after resume"}} {
		if got := phase(r, fg, true, tc.g); got != tc.want {
			t.Errorf("phase(%+v) = %q, want %q", tc.g, got, tc.want)
		}
	}
}

func TestStoppedAt(t *testing.T) {
	const msec = int64(time.Millisecond)
	for _, c := range []struct {
		line string
		at   int64
		want int64
		ok   bool
	}{
		{`time=2026-11-27T10:13:07.880Z level=DEBUG msg="target stopped" pid=7 held=2.5ms`, 10 * msec, 10*msec - 2500*int64(time.Microsecond), true},
		{`time=2026-11-27T10:13:07.880Z level=DEBUG msg="target stopped" pid=7`, 10 * msec, 10 * msec, true},
		{`time=2026-11-27T10:13:07.880Z level=DEBUG msg="freeze step" step=state since_stop=1ms`, 10 * msec, 0, false},
	} {
		got, ok := stoppedAt(c.line, c.at)
		if got != c.want || ok != c.ok {
			t.Errorf("stoppedAt(%q, %d) = %d, %v; want %d, %v", c.line, c.at, got, ok, c.want, c.ok)
		}
	}
}

func TestDamon(t *testing.T) {
	root := t.TempDir()
	if got := damon(root); got != "" {
		t.Errorf("damon(no kdamonds) = %q, want empty", got)
	}
	files := map[string]string{
		"0/state":                 "on\n",
		"0/contexts/0/operations": "paddr\n",
		"0/contexts/0/monitoring_attrs/intervals/sample_us": "500000\n",
		"0/contexts/0/schemes/0/action":                     "pageout\n",
		"1/state":                                           "off\n",
		"1/contexts/0/operations":                           "vaddr\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := "kdamond 0 on (paddr, sampling every 500ms, scheme pageout)"
	if got := damon(root); got != want {
		t.Errorf("damon() = %q, want %q", got, want)
	}
}

func TestBaseWindow(t *testing.T) {
	for _, tc := range []struct {
		args []string
		size int
		want time.Duration
	}{
		{nil, 1024, 4500 * time.Millisecond},
		{nil, 256, 2625 * time.Millisecond},
		{[]string{"-window", "3s"}, 4096, 3 * time.Second},
		{[]string{"-incremental"}, 1024, time.Second},
		{[]string{"-incremental", "-window", "2s"}, 1024, 2 * time.Second},
	} {
		c, err := parseConfig(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.baseWindow(tc.size); got != tc.want {
			t.Errorf("%v: baseWindow(%d) = %v, want %v", tc.args, tc.size, got, tc.want)
		}
	}
}
