package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
)

// dashboardExprs returns every PromQL expression ("expr") in a Grafana
// dashboard JSON, with Grafana's interval variables made concrete.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "5m").Replace(s))
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// freePort returns a loopback TCP port nobody listens on (now).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// promQuery runs an instant query and returns the number of series (or
// the error Prometheus gave).
func promQuery(prom, expr string) (int, error) {
	resp, err := http.Get("http://" + prom + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("answer %q: %v", b, err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", r.Error)
	}
	return len(r.Data.Result), nil
}

// TestDashboards: a real Prometheus scrapes a real daemon that took
// checkpoints and made a restart; every expression of the shipped Grafana
// dashboards must evaluate without error and return data.
func TestDashboards(t *testing.T) {
	testutil.RequireRoot(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		testutil.SkipOrFail(t, "prometheus is not installed (Debian package prometheus; .ci/run installs it)")
	}
	exprs := dashboardExprs(t, filepath.Join("..", "deploy", "grafana", "dashboards", "crbpf.json"))
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}

	d := startDaemon(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: crbpf
    static_configs:
      - targets: [%q]
`, d.metrics)), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := freePort(t)
	p := testutil.StartTarget(t, promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+prom, "--log.level=warn")

	// Activity for every panel: pre-copy and full-freeze checkpoints, a
	// restart from memory.
	tg := testutil.StartTarget(t, target(t, "counter"))
	tg.WaitLine(t, "COUNT 2", timeout)
	cp := inMemoryCheckpoint(t, d, 0, tg.PID)
	inMemoryCheckpoint(t, d, 0, tg.PID, "--precopy", "0")
	_, pid := restartDetached(t, strconv.FormatUint(cp.CRID, 10), "--socket", d.sock)
	if pid <= 0 {
		t.Fatal("no restored pid")
	}

	// Wait until Prometheus has scraped the restart a few times.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := promQuery(prom, `count_over_time(crbpf_restarts_total{result="ok"}[1m]) >= 3 and crbpf_restarts_total{result="ok"} == 1`)
		if err == nil && n > 0 {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape the daemon (last: %d series, %v)\n%s", n, err, p.Log())
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, e := range exprs {
		n, err := promQuery(prom, e)
		switch {
		case err != nil:
			t.Errorf("%s: %v", e, err)
		case n == 0:
			t.Errorf("%s: no data", e)
		}
	}
	t.Logf("%d dashboard expressions evaluated", len(exprs))
}
