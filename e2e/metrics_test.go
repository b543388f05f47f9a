package e2e

import (
	"os"
	"strconv"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsTextfile: with --metrics-textfile, each CLI run adds its
// figures to a node_exporter textfile: a checkpoint by result and mode, the
// crid it issued, its freeze and pages, refusals and errors (no crid spent
// on them), and a restart.
func TestMetricsTextfile(t *testing.T) {
	testutil.RequireRoot(t)
	tg := testutil.StartTarget(t, target(t, "counter"))
	tg.WaitLine(t, "COUNT 2", timeout)
	prom := t.TempDir() + "/crbpf.prom"
	state := t.TempDir()
	img := imgDir(t, "img")
	mf := []string{"--metrics-textfile", prom, "--state-dir", state}

	cp := checkpoint(t, tg.PID, img, mf...)
	// The image exists now: refused before a crid is issued.
	if _, stderr, code := testutil.RunCrbpf(t, append([]string{"checkpoint", "-o", img}, append(mf, strconv.Itoa(tg.PID))...)...); code == exitOK {
		t.Fatalf("checkpoint into an existing image succeeded: %s", stderr)
	}
	// kthreadd, a kernel thread: refused.
	if _, stderr, code := testutil.RunCrbpf(t, append([]string{"checkpoint", "-o", imgDir(t, "kthread")}, append(mf, "2")...)...); code != exitUnsupported {
		t.Fatalf("checkpoint of pid 2 (kthreadd): exit %d, want %d: %s", code, exitUnsupported, stderr)
	}
	_, pid := restartDetached(t, img, mf...)
	if pid <= 0 {
		t.Fatal("no restored pid")
	}

	f, err := os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parse %s: %v", prom, err)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		fam, ok := fams[name]
		if !ok {
			t.Fatalf("%s: no family %s", prom, name)
		}
	metrics:
		for _, m := range fam.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("%s: no %s%v", prom, name, labels)
		return 0
	}
	want := []struct {
		name   string
		labels []string
		v      float64
	}{
		{"crbpf_checkpoints_total", []string{"result", "ok", "mode", cp.Mode}, 1},
		{"crbpf_checkpoints_total", []string{"result", "error", "mode", "none"}, 1},
		{"crbpf_checkpoints_total", []string{"result", "refused", "mode", "none"}, 1},
		{"crbpf_crids_issued_total", nil, 1},
		{"crbpf_last_crid", nil, float64(cp.CRID)},
		{"crbpf_freeze_duration_seconds", nil, 1},
		{"crbpf_pages_written_total", nil, float64(cp.PagesWritten)},
		{"crbpf_restarts_total", []string{"result", "ok"}, 1},
		{"crbpf_restart_duration_seconds", nil, 1},
	}
	for _, w := range want {
		if got := value(w.name, w.labels...); got != w.v {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.v)
		}
	}
	if cp.Mode != "precopy" && cp.Mode != "full-freeze" {
		t.Errorf("checkpoint mode %q", cp.Mode)
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}
