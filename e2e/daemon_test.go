package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// daemonProc is a crbpf daemon started by a test.
type daemonProc struct {
	*testutil.Target
	sock, ready, metrics string
}

// startDaemon starts `crbpf daemon` on a private socket, with metrics on a
// free loopback port, and waits for its ready file.
func startDaemon(t *testing.T, flags ...string) *daemonProc {
	t.Helper()
	// Not under t.TempDir(), which other users cannot enter: the
	// unprivileged clients of TestDaemonNonRoot must reach the socket.
	dir, err := os.MkdirTemp("", "crbpf-daemon-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// In-memory images on tmpfs, removed with the test even when the
	// daemon is killed (it removes its default directory only when it
	// stops cleanly).
	images, err := os.MkdirTemp("/dev/shm", "crbpf-test-images-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(images) })
	d := &daemonProc{sock: filepath.Join(dir, "crbpf.sock"), ready: filepath.Join(dir, "ready")}
	args := append([]string{"daemon", "--socket", d.sock, "--ready-file", d.ready, "--metrics-addr", "127.0.0.1:0",
		"--image-dir", filepath.Join(images, "store")}, flags...)
	d.Target = testutil.StartCrbpf(t, args...)
	deadline := time.Now().Add(timeout)
	re := regexp.MustCompile(`msg=metrics addr=(\S+)`)
	for d.metrics == "" {
		for _, l := range d.Stderr() {
			if m := re.FindStringSubmatch(l); m != nil {
				d.metrics = m[1]
			}
		}
		if d.Exited() || time.Now().After(deadline) {
			t.Fatalf("daemon did not say its metrics address\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if _, err := os.Stat(d.ready); err == nil {
			break
		}
		if d.Exited() || time.Now().After(deadline) {
			t.Fatalf("daemon not ready\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// cli runs crbpf against the daemon, as uid (0: root).
func (d *daemonProc) cli(t *testing.T, uid int, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := testutil.CrbpfCmd(t, append([]string{"--socket", d.sock}, args...)...)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		cmd.Dir = "/"
	}
	return testutil.RunCmd(t, cmd)
}

// scrape returns the daemon's /metrics text.
func (d *daemonProc) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metricLine finds a sample line of the exposition text (name and labels
// exactly as written) and returns its value.
func metricLine(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in\n%s", series, text)
	return 0
}

func inMemoryCheckpoint(t *testing.T, d *daemonProc, uid, pid int, flags ...string) checkpointResult {
	t.Helper()
	stdout, stderr, code := d.cli(t, uid, append(append([]string{"checkpoint", "--in-memory", "--json"}, flags...), strconv.Itoa(pid))...)
	if code != exitOK {
		t.Fatalf("checkpoint --in-memory %d as uid %d: exit %d\n%s%s", pid, uid, code, stdout, stderr)
	}
	var r struct {
		checkpointResult
		InMemory bool `json:"in_memory"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || !r.InMemory || r.CRID == 0 {
		t.Fatalf("checkpoint --in-memory printed %q (%v)", stdout, err)
	}
	return r.checkpointResult
}

// TestDaemon: in-memory checkpoints by crid, restart from memory (the
// restored process gets crbpf's stdio and counts on), images ls/save/drop,
// the metrics endpoint, and a clean SIGTERM.
func TestDaemon(t *testing.T) {
	testutil.RequireRoot(t)
	d := startDaemon(t)
	orig := testutil.StartTarget(t, target(t, "counter"))
	orig.WaitLine(t, "COUNT 3", timeout)

	cp := inMemoryCheckpoint(t, d, 0, orig.PID)
	cp2 := inMemoryCheckpoint(t, d, 0, orig.PID, "--precopy", "0")
	if cp2.CRID <= cp.CRID {
		t.Errorf("crids %d then %d: not increasing", cp.CRID, cp2.CRID)
	}
	testutil.RequireUntouched(t, orig.PID)

	stdout, stderr, code := d.cli(t, 0, "images", "ls", "--json", t.TempDir())
	if code != exitOK {
		t.Fatalf("images ls: exit %d: %s", code, stderr)
	}
	var ls []struct {
		CRID     uint64 `json:"crid"`
		PID      int    `json:"pid"`
		InMemory bool   `json:"in_memory"`
	}
	if err := json.Unmarshal([]byte(stdout), &ls); err != nil || len(ls) != 2 || ls[0].CRID != cp.CRID || !ls[0].InMemory || ls[0].PID != orig.PID {
		t.Fatalf("images ls: %q (%v), want the two in-memory images", stdout, err)
	}

	// Restart from memory, detached: the process counts on, on the
	// restarting crbpf's stdout, from where the first checkpoint was.
	r, pid := restartDetached(t, strconv.FormatUint(cp.CRID, 10), "--socket", d.sock)
	l := r.WaitLine(t, "COUNT", timeout)
	n, _ := strconv.Atoi(strings.TrimPrefix(l, "COUNT "))
	r.WaitLine(t, fmt.Sprintf("COUNT %d", n+2), timeout)
	if comm(t, pid) != "counter" {
		t.Errorf("restored pid %d is %q", pid, comm(t, pid))
	}

	saved := filepath.Join(t.TempDir(), "saved")
	if _, stderr, code := d.cli(t, 0, "images", "save", strconv.FormatUint(cp2.CRID, 10), saved); code != exitOK {
		t.Fatalf("images save: exit %d: %s", code, stderr)
	}
	if _, stderr, code := testutil.RunCrbpf(t, "images", "verify", saved); code != exitOK {
		t.Errorf("saved image does not verify: %s", stderr)
	}
	if _, stderr, code := d.cli(t, 0, "images", "drop", strconv.FormatUint(cp2.CRID, 10)); code != exitOK {
		t.Fatalf("images drop: exit %d: %s", code, stderr)
	}
	stdout, stderr, code = d.cli(t, 0, "restart", "--detach", strconv.FormatUint(cp2.CRID, 10))
	expectError(t, "restart of a dropped crid", stdout, stderr, code, exitBadImage, `no in-memory image with crid`)

	m := d.scrape(t)
	for series, want := range map[string]float64{
		`crbpf_checkpoints_total{mode="precopy",result="ok"}`:     1,
		`crbpf_checkpoints_total{mode="full-freeze",result="ok"}`: 1,
		`crbpf_restarts_total{result="ok"}`:                       1,
		`crbpf_crids_issued_total`:                                2,
		`crbpf_last_crid`:                                         float64(cp2.CRID),
		`crbpf_inmemory_images`:                                   1,
		`crbpf_freeze_duration_seconds_count`:                     2,
	} {
		if got := metricLine(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if resp, err := http.Get("http://" + d.metrics + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if metricLine(t, m, `crbpf_ebpf_events_seen_total`) == 0 {
		t.Errorf("eBPF saw no events over two checkpoints")
	}

	d.Signal(t, unix.SIGTERM)
	if code := d.Wait(t, timeout); code != 0 {
		t.Errorf("daemon exited %d after SIGTERM\n%s", code, d.Log())
	}
	for _, p := range []string{d.sock, d.ready} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind after shutdown", p)
		}
	}
	if !testutil.Alive(pid) || !testutil.Alive(orig.PID) {
		t.Errorf("processes died with the daemon: restored %v, original %v", testutil.Alive(pid), testutil.Alive(orig.PID))
	}
}

// TestDaemonMemoryLimit: a checkpoint that does not fit the in-memory
// budget is refused (and its target left alone), or, with evict-oldest,
// makes room by dropping the oldest image and says so.
func TestDaemonMemoryLimit(t *testing.T) {
	testutil.RequireRoot(t)
	tg := testutil.StartTarget(t, target(t, "counter"))
	tg.WaitLine(t, "COUNT 2", timeout)

	d := startDaemon(t, "--memory-limit", "4KiB")
	stdout, stderr, code := d.cli(t, 0, "checkpoint", "--in-memory", strconv.Itoa(tg.PID))
	expectError(t, "checkpoint over the budget", stdout, stderr, code, exitFailure, `budget`)
	testutil.RequireUntouched(t, tg.PID)

	// A budget for one image of it, not two.
	st, err := testutil.Status(tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	var rss int64
	for _, k := range []string{"RssAnon", "RssShmem"} {
		kb, _ := strconv.ParseInt(strings.Fields(st[k] + " 0")[0], 10, 64)
		rss += kb << 10
	}
	d2 := startDaemon(t, "--memory-limit", strconv.FormatInt(rss*3/2, 10), "--memory-policy", "evict-oldest")
	cp1 := inMemoryCheckpoint(t, d2, 0, tg.PID)
	stdout, stderr, code = d2.cli(t, 0, "checkpoint", "--in-memory", strconv.Itoa(tg.PID))
	if code != exitOK {
		t.Fatalf("second checkpoint: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf("evicted in-memory image %d", cp1.CRID)) {
		t.Errorf("second checkpoint did not say it evicted crid %d: %s%s", cp1.CRID, stdout, stderr)
	}
	if got := metricLine(t, d2.scrape(t), "crbpf_inmemory_images"); got != 1 {
		t.Errorf("crbpf_inmemory_images = %v after eviction, want 1", got)
	}
	testutil.RequireUntouched(t, tg.PID)
}

// TestDaemonNonRoot: a real unprivileged user (nobody) may checkpoint and
// restart its own process through the daemon (the restored copy runs as
// nobody), and is refused, clearly, root's process and root's image.
func TestDaemonNonRoot(t *testing.T) {
	testutil.RequireRoot(t)
	const nobody = 65534
	d := startDaemon(t)
	rootTarget := testutil.StartTarget(t, target(t, "counter"))
	rootTarget.WaitLine(t, "COUNT 2", timeout)
	mine := testutil.StartCmd(t, func() *exec.Cmd {
		c := exec.Command(target(t, "counter"))
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return c
	}())
	mine.WaitLine(t, "COUNT 2", timeout)

	stdout, stderr, code := d.cli(t, nobody, "checkpoint", "--in-memory", strconv.Itoa(rootTarget.PID))
	expectError(t, "nobody checkpoints root's process", stdout, stderr, code, exitPrivilege, `only your own processes`)
	testutil.RequireUntouched(t, rootTarget.PID)

	rootCP := inMemoryCheckpoint(t, d, 0, rootTarget.PID)
	stdout, stderr, code = d.cli(t, nobody, "restart", "--detach", strconv.FormatUint(rootCP.CRID, 10))
	expectError(t, "nobody restarts root's image", stdout, stderr, code, exitPrivilege, `only images you made`)

	cp := inMemoryCheckpoint(t, d, nobody, mine.PID)
	testutil.RequireUntouched(t, mine.PID)
	stdout, stderr, code = d.cli(t, nobody, "images", "ls", "--json", "/")
	if code != exitOK || strings.Contains(stdout, fmt.Sprintf(`"crid":%d,`, rootCP.CRID)) || !strings.Contains(stdout, fmt.Sprintf(`"crid":%d,`, cp.CRID)) {
		t.Errorf("images ls as nobody: exit %d, %s%s: want its own image only", code, stdout, stderr)
	}
	// An image directory: only in a directory of nobody's.
	stdout, stderr, code = d.cli(t, nobody, "checkpoint", "-o", filepath.Join(t.TempDir(), "img"), strconv.Itoa(mine.PID))
	expectError(t, "nobody writes into root's directory", stdout, stderr, code, exitPrivilege, `not a directory of yours`)

	out := testutil.StartCmd(t, func() *exec.Cmd {
		c := testutil.CrbpfCmd(t, "--socket", d.sock, "restart", "--detach", "--json", strconv.FormatUint(cp.CRID, 10))
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		c.Dir = "/"
		return c
	}())
	js := out.WaitLine(t, "{", timeout)
	var rr struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(js), &rr); err != nil || rr.PID <= 0 {
		t.Fatalf("restart as nobody printed %q (%v)\n%s", js, err, out.Log())
	}
	testutil.Adopt(t, rr.PID)
	out.WaitLine(t, "COUNT", timeout)
	st, err := testutil.Status(rr.PID)
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(st["Uid"]); len(f) != 4 || f[0] != strconv.Itoa(nobody) || f[1] != strconv.Itoa(nobody) {
		t.Errorf("restored as nobody: Uid %q, want %d", st["Uid"], nobody)
	}
}

// TestDaemonShutdownMidCheckpoint: SIGTERM while the daemon is in the
// middle of pre-copy rounds: the client is told, the daemon exits 0, and
// the target is left running as it was: not traced, no userfaultfd, no
// write-protected page, and it still passes its own check.
func TestDaemonShutdownMidCheckpoint(t *testing.T) {
	testutil.RequireRoot(t)
	d := startDaemon(t)
	tg, ci := startChurn(t, 256)
	churnVerify(t, tg, tg.PID)
	cp := testutil.StartCrbpf(t, "--socket", d.sock, "checkpoint", "--in-memory",
		"--precopy", "50", "--max-downtime", "1ns", strconv.Itoa(tg.PID))
	// Wait until round 0 is under way (the target's memory is being
	// protected and copied): the checkpoint has at least two rounds more
	// to go, and a round stops within one chunk when cancelled.
	deadline := time.Now().Add(timeout)
	for !mainProtected(tg.PID, ci) {
		if cp.Exited() || time.Now().After(deadline) {
			t.Fatalf("the target's memory was never protected\n%s", cp.Log())
		}
		time.Sleep(time.Millisecond)
	}
	d.Signal(t, unix.SIGTERM)
	if code := cp.Wait(t, timeout); code == exitOK {
		t.Errorf("checkpoint succeeded though the daemon was stopped mid-rounds\n%s", cp.Log())
	}
	if code := d.Wait(t, timeout); code != 0 {
		t.Errorf("daemon exited %d\n%s", code, d.Log())
	}
	if msg := strings.Join(cp.Stderr(), "\n"); !strings.Contains(msg, "the daemon is shutting down") {
		t.Errorf("the client was not told why: %s", msg)
	}
	st, err := testutil.Status(tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	if st["TracerPid"] != "0" || st["State"][:1] == "t" || st["State"][:1] == "T" {
		t.Errorf("target left traced or stopped: TracerPid %s, State %s", st["TracerPid"], st["State"])
	}
	if u := userfaultfds(t, tg.PID); len(u) > 0 {
		t.Errorf("target left with a userfaultfd: %v", u)
	}
	if mainProtected(tg.PID, ci) {
		t.Errorf("target left with write-protected pages")
	}
	churnVerify(t, tg, tg.PID)
	noBadLines(t, "the target", tg.Lines())
}
