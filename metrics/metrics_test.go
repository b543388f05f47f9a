package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var testBuild = BuildInfo{Version: "v0.1.0", Revision: "abc123", GoVersion: "go1.26.0"}

const checkpointsHeader = `
# HELP crbpf_checkpoints_total Checkpoints finished, by result and by mode (none: failed before choosing one).
# TYPE crbpf_checkpoints_total counter
`

const restartsHeader = `
# HELP crbpf_restarts_total Restarts finished, by result.
# TYPE crbpf_restarts_total counter
`

func TestNewExportsEverySeriesAtZero(t *testing.T) {
	s := New(testBuild, nil)
	want := checkpointsHeader + `
crbpf_checkpoints_total{mode="full-freeze",result="error"} 0
crbpf_checkpoints_total{mode="full-freeze",result="interrupted"} 0
crbpf_checkpoints_total{mode="full-freeze",result="ok"} 0
crbpf_checkpoints_total{mode="full-freeze",result="refused"} 0
crbpf_checkpoints_total{mode="none",result="error"} 0
crbpf_checkpoints_total{mode="none",result="interrupted"} 0
crbpf_checkpoints_total{mode="none",result="refused"} 0
crbpf_checkpoints_total{mode="precopy",result="error"} 0
crbpf_checkpoints_total{mode="precopy",result="interrupted"} 0
crbpf_checkpoints_total{mode="precopy",result="ok"} 0
crbpf_checkpoints_total{mode="precopy",result="refused"} 0
` + restartsHeader + `
crbpf_restarts_total{result="error"} 0
crbpf_restarts_total{result="ok"} 0
# HELP crbpf_build_info Always 1; the labels say which crbpf build is running.
# TYPE crbpf_build_info gauge
crbpf_build_info{goversion="go1.26.0",revision="abc123",version="v0.1.0"} 1
# HELP crbpf_crids_issued_total Checkpoint/restart IDs issued.
# TYPE crbpf_crids_issued_total counter
crbpf_crids_issued_total 0
# HELP crbpf_last_crid The last checkpoint/restart ID issued.
# TYPE crbpf_last_crid gauge
crbpf_last_crid 0
# HELP crbpf_pages_written_total Memory pages written to images by successful checkpoints.
# TYPE crbpf_pages_written_total counter
crbpf_pages_written_total 0
# HELP crbpf_bytes_written_total Image bytes written by successful checkpoints.
# TYPE crbpf_bytes_written_total counter
crbpf_bytes_written_total 0
# HELP crbpf_inmemory_images Checkpoint images currently held in memory.
# TYPE crbpf_inmemory_images gauge
crbpf_inmemory_images 0
# HELP crbpf_inmemory_bytes Bytes of checkpoint images currently held in memory.
# TYPE crbpf_inmemory_bytes gauge
crbpf_inmemory_bytes 0
# HELP crbpf_precopy_rounds Pre-copy rounds per successful precopy-mode checkpoint.
# TYPE crbpf_precopy_rounds histogram
crbpf_precopy_rounds_bucket{le="0"} 0
crbpf_precopy_rounds_bucket{le="1"} 0
crbpf_precopy_rounds_bucket{le="2"} 0
crbpf_precopy_rounds_bucket{le="3"} 0
crbpf_precopy_rounds_bucket{le="4"} 0
crbpf_precopy_rounds_bucket{le="5"} 0
crbpf_precopy_rounds_bucket{le="6"} 0
crbpf_precopy_rounds_bucket{le="7"} 0
crbpf_precopy_rounds_bucket{le="8"} 0
crbpf_precopy_rounds_bucket{le="9"} 0
crbpf_precopy_rounds_bucket{le="10"} 0
crbpf_precopy_rounds_bucket{le="+Inf"} 0
crbpf_precopy_rounds_sum 0
crbpf_precopy_rounds_count 0
`
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want),
		"crbpf_checkpoints_total", "crbpf_restarts_total", "crbpf_build_info",
		"crbpf_crids_issued_total", "crbpf_last_crid", "crbpf_pages_written_total",
		"crbpf_bytes_written_total", "crbpf_inmemory_images", "crbpf_inmemory_bytes",
		"crbpf_precopy_rounds",
	); err != nil {
		t.Error(err)
	}
	// Every histogram exists, empty, from the start; no eBPF family without a source.
	n, err := testutil.GatherAndCount(s.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if want := 11 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 6; n != want {
		t.Errorf("fresh Set gathers %d series, want %d", n, want)
	}
	if n, _ := testutil.GatherAndCount(s.Registry(), ebpfCounterNames...); n != 0 {
		t.Errorf("Set without eBPF source exports %d eBPF series", n)
	}
}

func TestNewDefaultsGoVersion(t *testing.T) {
	s := New(BuildInfo{Version: "v1"}, nil)
	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != buildInfoName {
			continue
		}
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() == "goversion" && !strings.HasPrefix(l.GetValue(), "go") {
				t.Errorf("goversion = %q, want the runtime's", l.GetValue())
			}
		}
		return
	}
	t.Error("no crbpf_build_info")
}

func TestObserveCheckpointsAndRestart(t *testing.T) {
	s := New(testBuild, nil)
	s.ObserveCheckpoint(Checkpoint{
		Result: ResultOK, Mode: ModePrecopy,
		Duration: 800 * time.Millisecond, Freeze: 3 * time.Millisecond,
		Rounds: []Round{
			{DirtyPages: 5000, Bytes: 5000 * 4096, Duration: 200 * time.Millisecond},
			{DirtyPages: 300, Bytes: 300 * 4096, Duration: 20 * time.Millisecond},
			{DirtyPages: 10, Bytes: 10 * 4096, Duration: time.Millisecond},
		},
		PagesWritten: 6000, BytesWritten: 6000*4096 + 512,
	})
	// A failure feeds only the counter: its durations and rounds are not observed.
	s.ObserveCheckpoint(Checkpoint{
		Result: ResultError, Duration: time.Hour, Freeze: time.Hour,
		Rounds: []Round{{DirtyPages: 1}}, PagesWritten: 1, BytesWritten: 1,
	})
	s.ObserveRestart(Restart{Result: ResultOK, Duration: 40 * time.Millisecond})

	want := checkpointsHeader + `
crbpf_checkpoints_total{mode="full-freeze",result="error"} 0
crbpf_checkpoints_total{mode="full-freeze",result="interrupted"} 0
crbpf_checkpoints_total{mode="full-freeze",result="ok"} 0
crbpf_checkpoints_total{mode="full-freeze",result="refused"} 0
crbpf_checkpoints_total{mode="none",result="error"} 1
crbpf_checkpoints_total{mode="none",result="interrupted"} 0
crbpf_checkpoints_total{mode="none",result="refused"} 0
crbpf_checkpoints_total{mode="precopy",result="error"} 0
crbpf_checkpoints_total{mode="precopy",result="interrupted"} 0
crbpf_checkpoints_total{mode="precopy",result="ok"} 1
crbpf_checkpoints_total{mode="precopy",result="refused"} 0
` + restartsHeader + `
crbpf_restarts_total{result="error"} 0
crbpf_restarts_total{result="ok"} 1
# HELP crbpf_pages_written_total Memory pages written to images by successful checkpoints.
# TYPE crbpf_pages_written_total counter
crbpf_pages_written_total 6000
# HELP crbpf_bytes_written_total Image bytes written by successful checkpoints.
# TYPE crbpf_bytes_written_total counter
crbpf_bytes_written_total 2.4576512e+07
# HELP crbpf_precopy_rounds Pre-copy rounds per successful precopy-mode checkpoint.
# TYPE crbpf_precopy_rounds histogram
crbpf_precopy_rounds_bucket{le="0"} 0
crbpf_precopy_rounds_bucket{le="1"} 0
crbpf_precopy_rounds_bucket{le="2"} 0
crbpf_precopy_rounds_bucket{le="3"} 1
crbpf_precopy_rounds_bucket{le="4"} 1
crbpf_precopy_rounds_bucket{le="5"} 1
crbpf_precopy_rounds_bucket{le="6"} 1
crbpf_precopy_rounds_bucket{le="7"} 1
crbpf_precopy_rounds_bucket{le="8"} 1
crbpf_precopy_rounds_bucket{le="9"} 1
crbpf_precopy_rounds_bucket{le="10"} 1
crbpf_precopy_rounds_bucket{le="+Inf"} 1
crbpf_precopy_rounds_sum 3
crbpf_precopy_rounds_count 1
# HELP crbpf_precopy_round_dirty_pages Pages found dirty and copied per pre-copy round of successful checkpoints.
# TYPE crbpf_precopy_round_dirty_pages histogram
crbpf_precopy_round_dirty_pages_bucket{le="1"} 0
crbpf_precopy_round_dirty_pages_bucket{le="4"} 0
crbpf_precopy_round_dirty_pages_bucket{le="16"} 1
crbpf_precopy_round_dirty_pages_bucket{le="64"} 1
crbpf_precopy_round_dirty_pages_bucket{le="256"} 1
crbpf_precopy_round_dirty_pages_bucket{le="1024"} 2
crbpf_precopy_round_dirty_pages_bucket{le="4096"} 2
crbpf_precopy_round_dirty_pages_bucket{le="16384"} 3
crbpf_precopy_round_dirty_pages_bucket{le="65536"} 3
crbpf_precopy_round_dirty_pages_bucket{le="262144"} 3
crbpf_precopy_round_dirty_pages_bucket{le="1.048576e+06"} 3
crbpf_precopy_round_dirty_pages_bucket{le="4.194304e+06"} 3
crbpf_precopy_round_dirty_pages_bucket{le="1.6777216e+07"} 3
crbpf_precopy_round_dirty_pages_bucket{le="+Inf"} 3
crbpf_precopy_round_dirty_pages_sum 5310
crbpf_precopy_round_dirty_pages_count 3
# HELP crbpf_freeze_duration_seconds Time the target was stopped during successful checkpoints: the downtime it saw.
# TYPE crbpf_freeze_duration_seconds histogram
crbpf_freeze_duration_seconds_bucket{le="0.0001"} 0
crbpf_freeze_duration_seconds_bucket{le="0.00025"} 0
crbpf_freeze_duration_seconds_bucket{le="0.0005"} 0
crbpf_freeze_duration_seconds_bucket{le="0.00075"} 0
crbpf_freeze_duration_seconds_bucket{le="0.001"} 0
crbpf_freeze_duration_seconds_bucket{le="0.0015"} 0
crbpf_freeze_duration_seconds_bucket{le="0.002"} 0
crbpf_freeze_duration_seconds_bucket{le="0.003"} 1
crbpf_freeze_duration_seconds_bucket{le="0.004"} 1
crbpf_freeze_duration_seconds_bucket{le="0.005"} 1
crbpf_freeze_duration_seconds_bucket{le="0.0075"} 1
crbpf_freeze_duration_seconds_bucket{le="0.01"} 1
crbpf_freeze_duration_seconds_bucket{le="0.015"} 1
crbpf_freeze_duration_seconds_bucket{le="0.02"} 1
crbpf_freeze_duration_seconds_bucket{le="0.025"} 1
crbpf_freeze_duration_seconds_bucket{le="0.03"} 1
crbpf_freeze_duration_seconds_bucket{le="0.04"} 1
crbpf_freeze_duration_seconds_bucket{le="0.05"} 1
crbpf_freeze_duration_seconds_bucket{le="0.075"} 1
crbpf_freeze_duration_seconds_bucket{le="0.1"} 1
crbpf_freeze_duration_seconds_bucket{le="0.25"} 1
crbpf_freeze_duration_seconds_bucket{le="0.5"} 1
crbpf_freeze_duration_seconds_bucket{le="1"} 1
crbpf_freeze_duration_seconds_bucket{le="2.5"} 1
crbpf_freeze_duration_seconds_bucket{le="5"} 1
crbpf_freeze_duration_seconds_bucket{le="10"} 1
crbpf_freeze_duration_seconds_bucket{le="+Inf"} 1
crbpf_freeze_duration_seconds_sum 0.003
crbpf_freeze_duration_seconds_count 1
`
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want),
		"crbpf_checkpoints_total", "crbpf_restarts_total", "crbpf_pages_written_total",
		"crbpf_bytes_written_total", "crbpf_precopy_rounds", "crbpf_precopy_round_dirty_pages",
		"crbpf_freeze_duration_seconds",
	); err != nil {
		t.Error(err)
	}
	for _, h := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{"crbpf_checkpoint_duration_seconds", 1, 0.8},
		{"crbpf_restart_duration_seconds", 1, 0.04},
		{"crbpf_precopy_round_duration_seconds", 3, 0.221},
	} {
		count, sum := histogramCountSum(t, s, h.name)
		if count != h.count || sum < h.sum-1e-9 || sum > h.sum+1e-9 {
			t.Errorf("%s: count %d sum %g, want %d and %g", h.name, count, sum, h.count, h.sum)
		}
	}
}

func TestFullFreezeCheckpointObservesNoRounds(t *testing.T) {
	s := New(testBuild, nil)
	s.ObserveCheckpoint(Checkpoint{Result: ResultOK, Mode: ModeFullFreeze, Freeze: 20 * time.Millisecond})
	if c, _ := histogramCountSum(t, s, "crbpf_precopy_rounds"); c != 0 {
		t.Errorf("full-freeze checkpoint observed in crbpf_precopy_rounds (count %d)", c)
	}
	if c, _ := histogramCountSum(t, s, "crbpf_freeze_duration_seconds"); c != 1 {
		t.Errorf("crbpf_freeze_duration_seconds count %d, want 1", c)
	}
}

func TestUnknownLabelValuesStayBounded(t *testing.T) {
	s := New(testBuild, nil)
	for i := range 3 {
		s.ObserveCheckpoint(Checkpoint{Result: fmt.Sprintf("pid %d", 4000+i), Mode: fmt.Sprintf("mode %d", i)})
		s.ObserveRestart(Restart{Result: fmt.Sprintf("crid %d", i)})
	}
	got := 0
	for _, name := range []string{"crbpf_checkpoints_total", "crbpf_restarts_total"} {
		n, err := testutil.GatherAndCount(s.Registry(), name)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if got != 11+2+2 {
		t.Errorf("%d result/mode series, want %d (pre-registered + one unknown each)", got, 11+2+2)
	}
	if v := testutil.ToFloat64(s.checkpoints.WithLabelValues(unknownLabel, unknownLabel)); v != 3 {
		t.Errorf("unknown checkpoints = %g, want 3", v)
	}
	if v := testutil.ToFloat64(s.restarts.WithLabelValues(unknownLabel)); v != 3 {
		t.Errorf("unknown restarts = %g, want 3", v)
	}
}

func TestCRIDIssued(t *testing.T) {
	s := New(testBuild, nil)
	s.CRIDIssued(7)
	s.CRIDIssued(42)
	want := `
# HELP crbpf_crids_issued_total Checkpoint/restart IDs issued.
# TYPE crbpf_crids_issued_total counter
crbpf_crids_issued_total 2
# HELP crbpf_last_crid The last checkpoint/restart ID issued.
# TYPE crbpf_last_crid gauge
crbpf_last_crid 42
`
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want),
		"crbpf_crids_issued_total", "crbpf_last_crid"); err != nil {
		t.Error(err)
	}
}

func TestSetInMemory(t *testing.T) {
	s := New(testBuild, nil)
	s.SetInMemory(3, 1<<30)
	s.SetInMemory(2, 1<<20)
	want := `
# HELP crbpf_inmemory_images Checkpoint images currently held in memory.
# TYPE crbpf_inmemory_images gauge
crbpf_inmemory_images 2
# HELP crbpf_inmemory_bytes Bytes of checkpoint images currently held in memory.
# TYPE crbpf_inmemory_bytes gauge
crbpf_inmemory_bytes 1.048576e+06
`
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want),
		"crbpf_inmemory_images", "crbpf_inmemory_bytes"); err != nil {
		t.Error(err)
	}
}

func TestMetricsPassLint(t *testing.T) {
	s := New(testBuild, func() (EBPFCounters, error) { return EBPFCounters{}, nil })
	problems, err := testutil.GatherAndLint(s.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestHandler(t *testing.T) {
	s := New(testBuild, func() (EBPFCounters, error) { return EBPFCounters{Seen: 5}, nil })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	for _, line := range []string{
		`crbpf_build_info{goversion="go1.26.0",revision="abc123",version="v0.1.0"} 1`,
		`crbpf_ebpf_events_seen_total 5`,
		`crbpf_checkpoints_total{mode="precopy",result="ok"} 0`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("GET /metrics lacks %q:\n%s", line, body)
		}
	}
	// Also through the registry: ScrapeAndCompare parses what was served.
	want := `
# HELP crbpf_ebpf_events_seen_total Write-tracking events the BPF programs saw.
# TYPE crbpf_ebpf_events_seen_total counter
crbpf_ebpf_events_seen_total 5
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "crbpf_ebpf_events_seen_total"); err != nil {
		t.Error(err)
	}
}

// histogramCountSum returns the sample count and sum of the named histogram.
func histogramCountSum(t *testing.T, s *Set, name string) (uint64, float64) {
	t.Helper()
	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0, 0
}

func TestSetLastCRID(t *testing.T) {
	s := New(BuildInfo{Version: "v"}, nil)
	s.SetLastCRID(41)
	want := "# HELP crbpf_crids_issued_total " + help(t, s, "crbpf_crids_issued_total") + "\n# TYPE crbpf_crids_issued_total counter\ncrbpf_crids_issued_total 0\n"
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want), "crbpf_crids_issued_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(s.lastCRID); got != 41 {
		t.Errorf("crbpf_last_crid %v, want 41", got)
	}
}

// help is the help text of a family of s.
func help(t *testing.T, s *Set, name string) string {
	t.Helper()
	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetHelp()
		}
	}
	t.Fatalf("no family %s", name)
	return ""
}
