package metrics

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// textfileGatherer gathers what the textfile at path holds, for testutil.
func textfileGatherer(path string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		m, err := p.TextToMetricFamilies(f)
		if err != nil {
			return nil, err
		}
		var fams []*dto.MetricFamily
		for _, f := range m {
			fams = append(fams, f)
		}
		slices.SortFunc(fams, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		return fams, nil
	})
}

// dirEntries returns the names in dir, sorted.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func okPrecopy(rounds int, pages uint64) Checkpoint {
	c := Checkpoint{
		Result: ResultOK, Mode: ModePrecopy, Duration: time.Second, Freeze: 2 * time.Millisecond,
		PagesWritten: pages, BytesWritten: pages * 4096,
	}
	for range rounds {
		c.Rounds = append(c.Rounds, Round{DirtyPages: 100, Duration: time.Millisecond})
	}
	return c
}

func TestWriteTextfileNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "crbpf.prom")
	s := New(testBuild, func() (EBPFCounters, error) { return EBPFCounters{Seen: 3}, nil })
	s.ObserveCheckpoint(okPrecopy(3, 500))
	s.ObserveRestart(Restart{Result: ResultError})
	s.CRIDIssued(9)
	if err := s.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}

	// The file holds exactly what the Set exposes.
	fams, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exposed bytes.Buffer
	var names []string
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&exposed, f); err != nil {
			t.Fatal(err)
		}
		names = append(names, f.GetName())
	}
	if len(names) != 21 {
		t.Errorf("Set gathers %d families, want 21", len(names))
	}
	if err := testutil.GatherAndCompare(textfileGatherer(path), &exposed, names...); err != nil {
		t.Error(err)
	}
	if inFile, err := textfileGatherer(path).Gather(); err != nil || len(inFile) != len(names) {
		t.Errorf("textfile holds %d families (%v), want the Set's %d", len(inFile), err, len(names))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o644 {
		t.Errorf("textfile mode %v, want -rw-r--r--", fi.Mode())
	}
	if got, want := dirEntries(t, dir), []string{"crbpf.prom", "crbpf.prom.lock"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q (no temporary file left)", got, want)
	}
}

func TestWriteTextfileMerges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "crbpf.prom")
	const unknown = `# HELP node_custom_backup_ok Written by another tool.
# TYPE node_custom_backup_ok gauge
node_custom_backup_ok{job="nightly"} 1
`
	if err := os.WriteFile(path, []byte(unknown), 0o644); err != nil {
		t.Fatal(err)
	}

	a := New(BuildInfo{Version: "v1", Revision: "r1", GoVersion: "go1.26.0"},
		func() (EBPFCounters, error) { return EBPFCounters{Seen: 100}, nil })
	a.ObserveCheckpoint(okPrecopy(2, 10))
	a.ObserveCheckpoint(Checkpoint{Result: ResultRefused})
	a.CRIDIssued(10)
	a.SetInMemory(2, 8192)
	if err := a.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	// Writing again without news adds nothing.
	if err := a.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}

	b := New(BuildInfo{Version: "v2", Revision: "r2", GoVersion: "go1.26.0"},
		func() (EBPFCounters, error) { return EBPFCounters{Seen: 50}, nil })
	b.ObserveCheckpoint(okPrecopy(3, 20))
	b.ObserveCheckpoint(Checkpoint{Result: ResultRefused})
	b.ObserveRestart(Restart{Result: ResultOK, Duration: time.Second})
	b.SetInMemory(1, 4096) // replaces a's
	if err := b.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}

	// a goes on (and replaces b's gauges) and writes only what it observed since its last write.
	a.ObserveCheckpoint(Checkpoint{Result: ResultError, Mode: ModeFullFreeze})
	if err := a.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	// c issues a CRID but holds no images: crbpf_last_crid is replaced,
	// the in-memory gauges (never set by c) are left as a wrote them.
	c := New(BuildInfo{Version: "v2", Revision: "r2", GoVersion: "go1.26.0"}, nil)
	c.CRIDIssued(12)
	c.ObserveCheckpoint(okPrecopy(2, 30))
	if err := c.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}

	want := unknown + checkpointsHeader + `
crbpf_checkpoints_total{mode="full-freeze",result="error"} 1
crbpf_checkpoints_total{mode="full-freeze",result="interrupted"} 0
crbpf_checkpoints_total{mode="full-freeze",result="ok"} 0
crbpf_checkpoints_total{mode="full-freeze",result="refused"} 0
crbpf_checkpoints_total{mode="none",result="error"} 0
crbpf_checkpoints_total{mode="none",result="interrupted"} 0
crbpf_checkpoints_total{mode="none",result="refused"} 2
crbpf_checkpoints_total{mode="precopy",result="error"} 0
crbpf_checkpoints_total{mode="precopy",result="interrupted"} 0
crbpf_checkpoints_total{mode="precopy",result="ok"} 3
crbpf_checkpoints_total{mode="precopy",result="refused"} 0
` + restartsHeader + `
crbpf_restarts_total{result="error"} 0
crbpf_restarts_total{result="ok"} 1
# HELP crbpf_build_info Always 1; the labels say which crbpf build is running.
# TYPE crbpf_build_info gauge
crbpf_build_info{goversion="go1.26.0",revision="r2",version="v2"} 1
# HELP crbpf_crids_issued_total Checkpoint/restart IDs issued.
# TYPE crbpf_crids_issued_total counter
crbpf_crids_issued_total 2
# HELP crbpf_last_crid The last checkpoint/restart ID issued.
# TYPE crbpf_last_crid gauge
crbpf_last_crid 12
# HELP crbpf_pages_written_total Memory pages written to images by successful checkpoints.
# TYPE crbpf_pages_written_total counter
crbpf_pages_written_total 60
# HELP crbpf_inmemory_images Checkpoint images currently held in memory.
# TYPE crbpf_inmemory_images gauge
crbpf_inmemory_images 2
# HELP crbpf_inmemory_bytes Bytes of checkpoint images currently held in memory.
# TYPE crbpf_inmemory_bytes gauge
crbpf_inmemory_bytes 8192
# HELP crbpf_ebpf_events_seen_total Write-tracking events the BPF programs saw.
# TYPE crbpf_ebpf_events_seen_total counter
crbpf_ebpf_events_seen_total 100
# HELP crbpf_precopy_rounds Pre-copy rounds per successful precopy-mode checkpoint.
# TYPE crbpf_precopy_rounds histogram
crbpf_precopy_rounds_bucket{le="0"} 0
crbpf_precopy_rounds_bucket{le="1"} 0
crbpf_precopy_rounds_bucket{le="2"} 2
crbpf_precopy_rounds_bucket{le="3"} 3
crbpf_precopy_rounds_bucket{le="4"} 3
crbpf_precopy_rounds_bucket{le="5"} 3
crbpf_precopy_rounds_bucket{le="6"} 3
crbpf_precopy_rounds_bucket{le="7"} 3
crbpf_precopy_rounds_bucket{le="8"} 3
crbpf_precopy_rounds_bucket{le="9"} 3
crbpf_precopy_rounds_bucket{le="10"} 3
crbpf_precopy_rounds_bucket{le="+Inf"} 3
crbpf_precopy_rounds_sum 7
crbpf_precopy_rounds_count 3
`
	if err := testutil.GatherAndCompare(textfileGatherer(path), strings.NewReader(want),
		"node_custom_backup_ok", "crbpf_checkpoints_total", "crbpf_restarts_total",
		"crbpf_build_info", "crbpf_crids_issued_total", "crbpf_last_crid",
		"crbpf_pages_written_total", "crbpf_inmemory_images", "crbpf_inmemory_bytes",
		"crbpf_ebpf_events_seen_total", "crbpf_precopy_rounds",
	); err != nil {
		t.Error(err)
	}
	// The file's own text for the family crbpf does not know is kept verbatim.
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), unknown) {
		t.Errorf("unknown family not kept verbatim:\n%s", got)
	}
}

func TestWriteTextfileRefusesConflicts(t *testing.T) {
	for _, tc := range []struct {
		name, content, wantErr string
	}{
		{"does not parse", "crbpf_checkpoints_total{result=\"ok\" 3\n", "does not parse"},
		{"other type", "# TYPE crbpf_pages_written_total gauge\ncrbpf_pages_written_total 5\n", "is a GAUGE in the file"},
		{"other buckets", `# TYPE crbpf_precopy_rounds histogram
crbpf_precopy_rounds_bucket{le="1"} 1
crbpf_precopy_rounds_bucket{le="+Inf"} 1
crbpf_precopy_rounds_sum 1
crbpf_precopy_rounds_count 1
`, "histogram buckets differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "crbpf.prom")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := New(testBuild, nil)
			s.ObserveCheckpoint(okPrecopy(1, 1))
			err := s.WriteTextfile(path)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteTextfile = %v, want an error containing %q", err, tc.wantErr)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.content {
				t.Errorf("refused file was changed to:\n%s", got)
			}
			if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
				t.Errorf("refused file mode changed to %v", fi.Mode())
			}
			if got, want := dirEntries(t, dir), []string{"crbpf.prom", "crbpf.prom.lock"}; !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q", got, want)
			}
		})
	}
}

func TestWriteTextfileConcurrentWritersAddUp(t *testing.T) {
	const writers, writesEach = 8, 10
	dir := t.TempDir()
	path := filepath.Join(dir, "crbpf.prom")
	var wg sync.WaitGroup
	errs := make(chan error, writers*writesEach)
	for w := range writers {
		wg.Go(func() {
			s := New(testBuild, nil) // one Set per writer, as separate CLI runs
			for range writesEach {
				s.ObserveCheckpoint(okPrecopy(w%4, 7))
				s.CRIDIssued(uint64(w))
				if err := s.WriteTextfile(path); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const n = writers * writesEach
	want := fmt.Sprintf(`
# HELP crbpf_crids_issued_total Checkpoint/restart IDs issued.
# TYPE crbpf_crids_issued_total counter
crbpf_crids_issued_total %d
# HELP crbpf_pages_written_total Memory pages written to images by successful checkpoints.
# TYPE crbpf_pages_written_total counter
crbpf_pages_written_total %d
`, n, 7*n)
	if err := testutil.GatherAndCompare(textfileGatherer(path), strings.NewReader(want),
		"crbpf_crids_issued_total", "crbpf_pages_written_total"); err != nil {
		t.Error(err)
	}
	fams, err := textfileGatherer(path).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "crbpf_precopy_rounds" {
			if h := f.GetMetric()[0].GetHistogram(); h.GetSampleCount() != n || h.GetSampleSum() != 1.5*n {
				t.Errorf("crbpf_precopy_rounds count %d sum %g, want %d and %g", h.GetSampleCount(), h.GetSampleSum(), n, 1.5*n)
			}
		}
	}
	if got, want := dirEntries(t, dir), []string{"crbpf.prom", "crbpf.prom.lock"}; !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}
