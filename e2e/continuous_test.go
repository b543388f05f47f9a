package e2e

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// continuousLine is one checkpoint of `checkpoint --every --json`.
type continuousLine struct {
	CRID           uint64   `json:"crid"`
	PID            int      `json:"pid"`
	InMemory       bool     `json:"in_memory"`
	PagesWritten   uint64   `json:"pages_written"`
	FreezeSeconds  float64  `json:"freeze_seconds"`
	ParentCRID     uint64   `json:"parent_crid"`
	Incremental    string   `json:"incremental"`
	InheritedPages uint64   `json:"inherited_pages"`
	Merged         []uint64 `json:"merged"`
}

// TestContinuous: `checkpoint --every --keep` through the daemon takes a
// full checkpoint and then incremental ones, each on the one before, from
// the write tracking it keeps armed (not by comparing pages); it keeps the
// last --keep by merging the oldest into the next. Ctrl-C stops it and
// removes the protection from the target, which goes on unharmed; the kept
// images restart and verify themselves; when the process exits, continuous
// checkpoints end by themselves.
func TestContinuous(t *testing.T) {
	testutil.RequireRoot(t)
	d := startDaemon(t)
	orig, ci := startChurn(t, 32)
	w := startWriter(t, orig.PID, ci.xwreq)
	waitChurned(t, orig, orig.PID, 20)

	const keep = 3
	cli := testutil.StartCrbpf(t, "--socket", d.sock, "checkpoint", "--every", "300ms", "--keep", strconv.Itoa(keep), "--json", strconv.Itoa(orig.PID))
	var lines []continuousLine
	for len(lines) < 6 {
		l := cli.WaitLine(t, "{", timeout)
		var c continuousLine
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("checkpoint --every printed %q: %v\n%s", l, err, cli.Log())
		}
		lines = append(lines, c)
	}
	var merged []uint64
	for i, c := range lines {
		t.Logf("checkpoint %d: %+v", i, c)
		if c.PID != orig.PID || !c.InMemory || c.CRID == 0 {
			t.Errorf("checkpoint %d: %+v", i, c)
		}
		if i == 0 {
			if c.ParentCRID != 0 {
				t.Errorf("first checkpoint has parent %d, want a full one", c.ParentCRID)
			}
			continue
		}
		if p := lines[i-1].CRID; c.ParentCRID != p || c.Incremental != "tracked" || c.InheritedPages == 0 {
			t.Errorf("checkpoint %d: parent %d (%q, %d pages inherited), want parent %d from the tracked dirty set, pages inherited",
				i, c.ParentCRID, c.Incremental, c.InheritedPages, p)
		}
		merged = append(merged, c.Merged...)
	}
	// Six taken, three kept: the first three were merged, in order.
	if len(merged) != 3 || merged[0] != lines[0].CRID || merged[1] != lines[1].CRID || merged[2] != lines[2].CRID {
		t.Errorf("merged %v, want the crids of the first three checkpoints", merged)
	}

	// Ctrl-C: the CLI says the checkpoints stay, the daemon stops them and
	// unprotects the target.
	cli.Signal(t, syscall.SIGINT)
	if code := cli.Wait(t, timeout); code != exitOK {
		t.Fatalf("checkpoint --every after SIGINT: exit %d\n%s", code, cli.Log())
	}
	deadline := time.Now().Add(timeout)
	for {
		n, first, err := uffdProtected(orig.PID)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && len(userfaultfds(t, orig.PID)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("continuous checkpoints stopped, but %d pages of pid %d are still write-protected (first %s)", n, orig.PID, first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopWriter(t, w)
	churnVerify(t, orig, orig.PID)

	// What is kept: the last three, the oldest now self-contained.
	stdout, stderr, code := d.cli(t, 0, "images", "ls", "--json")
	if code != exitOK {
		t.Fatalf("images ls: exit %d\n%s%s", code, stdout, stderr)
	}
	var listed []struct {
		CRID   uint64 `json:"crid"`
		Parent uint64 `json:"parent_crid"`
	}
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil {
		t.Fatalf("images ls --json: %v\n%s", err, stdout)
	}
	kept := lines[len(lines)-keep:]
	if len(listed) != keep {
		t.Fatalf("images ls lists %d images, want the %d kept: %s", len(listed), keep, stdout)
	}
	for i, l := range listed {
		want := uint64(0) // the oldest kept is self-contained now
		if i > 0 {
			want = kept[i-1].CRID
		}
		if l.CRID != kept[i].CRID || l.Parent != want {
			t.Errorf("images ls entry %d: crid %d parent %d, want crid %d parent %d", i, l.CRID, l.Parent, kept[i].CRID, want)
		}
	}
	// The oldest kept (merged into) and the newest restart and verify.
	for _, c := range []continuousLine{lines[len(lines)-keep], lines[len(lines)-1]} {
		out, pid := restartDetached(t, strconv.FormatUint(c.CRID, 10), "--socket", d.sock)
		churnVerify(t, out, pid)
		noBadLines(t, "restored crid "+strconv.FormatUint(c.CRID, 10), out.Lines())
		testutil.KillAndReap(t, pid)
	}
	// The oldest kept image builds on nothing any more; the newest cannot
	// be dropped before... nothing builds on it: drop it, then its parent.
	if _, stderr, code := d.cli(t, 0, "images", "drop", strconv.FormatUint(lines[len(lines)-2].CRID, 10)); code == exitOK || !strings.Contains(stderr, "is the parent of") {
		t.Errorf("drop of a parent: exit %d, %s", code, stderr)
	}

	// When the process exits, continuous checkpoints end by themselves.
	cli = testutil.StartCrbpf(t, "--socket", d.sock, "checkpoint", "--every", "200ms", "--keep", "2", strconv.Itoa(orig.PID))
	cli.WaitLine(t, "crid ", timeout)
	cli.WaitLine(t, "crid ", timeout)
	if err := unix.Kill(orig.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := cli.Wait(t, timeout); code != exitOK {
		t.Fatalf("checkpoint --every after the target exited: exit %d\n%s", code, cli.Log())
	}
	if !strings.Contains(strings.Join(cli.Stderr(), "\n"), "exited") {
		t.Errorf("checkpoint --every did not say the process exited:\n%s", cli.Log())
	}
}

// TestDaemonKeepsTracking: after a checkpoint the daemon keeps write
// tracking armed on the process, so a checkpoint on that one copies only
// what was written since ("tracked"); one on an older parent compares
// hashes and re-arms. The copies restart and verify themselves, and when
// the daemon stops the protection is gone and the process runs on.
func TestDaemonKeepsTracking(t *testing.T) {
	testutil.RequireRoot(t)
	d := startDaemon(t)
	orig, ci := startChurn(t, 32)
	w := startWriter(t, orig.PID, ci.xwreq)
	waitChurned(t, orig, orig.PID, 20)

	take := func(parent uint64) continuousLine {
		t.Helper()
		args := []string{"checkpoint", "--in-memory", "--json"}
		if parent != 0 {
			args = append(args, "--parent", strconv.FormatUint(parent, 10))
		}
		stdout, stderr, code := d.cli(t, 0, append(args, strconv.Itoa(orig.PID))...)
		if code != exitOK {
			t.Fatalf("checkpoint: exit %d\n%s%s", code, stdout, stderr)
		}
		var c continuousLine
		if err := json.Unmarshal([]byte(stdout), &c); err != nil {
			t.Fatalf("checkpoint --json: %v\n%s", err, stdout)
		}
		t.Logf("crid %d on %d: %q, %d stored, %d inherited", c.CRID, parent, c.Incremental, c.PagesWritten, c.InheritedPages)
		if c.ParentCRID != parent {
			t.Errorf("crid %d: parent %d, want %d", c.CRID, c.ParentCRID, parent)
		}
		return c
	}
	c1 := take(0)
	if n, _, err := uffdProtected(orig.PID); err != nil || n == 0 {
		t.Errorf("after a checkpoint through the daemon %d pages are write-protected (%v), want tracking kept armed", n, err)
	}
	c2 := take(c1.CRID)
	c3 := take(c1.CRID)
	c4 := take(c3.CRID)
	for _, c := range []struct {
		got  continuousLine
		want string
	}{{c2, "tracked"}, {c3, "hash"}, {c4, "tracked"}} {
		if c.got.Incremental != c.want || c.got.InheritedPages == 0 {
			t.Errorf("crid %d: incremental %q with %d pages inherited, want %q and some", c.got.CRID, c.got.Incremental, c.got.InheritedPages, c.want)
		}
	}
	stopWriter(t, w)
	// Saved to disk, an incremental image stands alone (squashed).
	saved := filepath.Join(t.TempDir(), "c4")
	if stdout, stderr, code := d.cli(t, 0, "images", "save", strconv.FormatUint(c4.CRID, 10), saved); code != exitOK {
		t.Fatalf("images save: exit %d\n%s%s", code, stdout, stderr)
	}
	im, err := image.Load(saved)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range im.VMAs {
		if len(v.Inherit) > 0 || im.Header.CRID != c4.CRID {
			t.Fatalf("saved image crid %d inherits %d spans in %#x-%#x: want crid %d, self-contained", im.Header.CRID, len(v.Inherit), v.Start, v.End, c4.CRID)
		}
	}
	for _, img := range []string{strconv.FormatUint(c2.CRID, 10), strconv.FormatUint(c4.CRID, 10), saved} {
		out, pid := restartDetached(t, img, "--socket", d.sock)
		churnVerify(t, out, pid)
		noBadLines(t, "restored "+img, out.Lines())
		testutil.KillAndReap(t, pid)
	}
	d.Signal(t, syscall.SIGTERM)
	if code := d.Wait(t, timeout); code != exitOK {
		t.Fatalf("daemon exited %d\n%s", code, d.Log())
	}
	if n, first, err := uffdProtected(orig.PID); err != nil || n != 0 {
		t.Errorf("after the daemon stopped %d pages are still write-protected (first %s, %v)", n, first, err)
	}
	churnVerify(t, orig, orig.PID)
}
