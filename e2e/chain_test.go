package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/internal/testutil"
)

// incrementalResult is the incremental part of `checkpoint --json`.
type incrementalResult struct {
	CRID           uint64 `json:"crid"`
	PagesWritten   uint64 `json:"pages_written"`
	ParentCRID     uint64 `json:"parent_crid"`
	Incremental    string `json:"incremental"`
	InheritedPages uint64 `json:"inherited_pages"`
}

// incrementalCheckpoint runs `crbpf checkpoint --json -o img [--parent
// parent] pid` and returns its result.
func incrementalCheckpoint(t *testing.T, pid int, img, parent string) incrementalResult {
	t.Helper()
	args := []string{"checkpoint", "--json", "-o", img}
	if parent != "" {
		args = append(args, "--parent", parent)
	}
	stdout, stderr, code := testutil.RunCrbpf(t, append(args, strconv.Itoa(pid))...)
	if code != exitOK {
		t.Fatalf("crbpf %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	var r incrementalResult
	if err := decodeOne(stdout, &r); err != nil {
		t.Fatalf("checkpoint --json: %v\n%s", err, stdout)
	}
	return r
}

// TestIncrementalChain takes a full checkpoint of the self-verifying churn
// target and then 5 incremental ones, each on the one before, while it
// churns and an external process writes into it. Every link is restarted:
// each restored copy verifies all of its memory against its own tables,
// and its count of verifications says it is the process as it was at that
// link's checkpoint (the test verifies once between checkpoints). The tip
// squashed into one image restarts the same way.
func TestIncrementalChain(t *testing.T) {
	testutil.RequireRoot(t)
	orig, ci := startChurn(t, 64)
	w := startWriter(t, orig.PID, ci.xwreq)
	waitChurned(t, orig, orig.PID, 20)

	type link struct {
		img      string
		res      incrementalResult
		verifies int64 // verifications before the checkpoint
		ops      int64
	}
	dir := t.TempDir()
	var links []link
	for k := range 6 {
		f := churnVerify(t, orig, orig.PID)
		l := link{img: filepath.Join(dir, fmt.Sprintf("c%d", k)), verifies: counter(t, f, "verifies"), ops: counter(t, f, "ops")}
		parent := ""
		if k > 0 {
			parent = links[k-1].img
		}
		l.res = incrementalCheckpoint(t, orig.PID, l.img, parent)
		t.Logf("link %d: crid %d parent %d: %d pages stored, %d inherited", k, l.res.CRID, l.res.ParentCRID, l.res.PagesWritten, l.res.InheritedPages)
		if k > 0 {
			p := links[k-1].res
			if l.res.ParentCRID != p.CRID || l.res.Incremental != "hash" {
				t.Errorf("link %d: parent_crid %d, incremental %q; want %d, \"hash\"", k, l.res.ParentCRID, l.res.Incremental, p.CRID)
			}
			if l.res.InheritedPages == 0 {
				t.Errorf("link %d: no page taken from the parent", k)
			}
			im, err := image.Load(l.img)
			if err != nil {
				t.Fatal(err)
			}
			if h := im.Header; h.ParentCRID != p.CRID || h.Parent != "../"+filepath.Base(links[k-1].img) {
				t.Errorf("link %d header: parent crid %d at %q, want %d at ../%s", k, h.ParentCRID, h.Parent, p.CRID, filepath.Base(links[k-1].img))
			}
		}
		links = append(links, l)
		time.Sleep(50 * time.Millisecond)
	}
	stopWriter(t, w)
	noBadLines(t, "the original", orig.Lines())

	check := func(name, img string, l link) {
		t.Helper()
		out, pid := restartDetached(t, img)
		f := churnVerify(t, out, pid)
		if got := counter(t, f, "verifies"); got != l.verifies+1 {
			t.Errorf("%s: the restored copy has verified %d times, want %d: it is not the process of that checkpoint", name, got-1, l.verifies)
		}
		if got := counter(t, f, "ops"); got < l.ops {
			t.Errorf("%s: the restored copy is at op %d, before the checkpoint's %d", name, got, l.ops)
		}
		f2 := churnVerify(t, out, pid)
		if counter(t, f2, "ops") <= counter(t, f, "ops") {
			t.Errorf("%s: the restored copy does not go on churning", name)
		}
		noBadLines(t, name, out.Lines())
		testutil.KillAndReap(t, pid)
	}
	for k, l := range links {
		check(fmt.Sprintf("link %d (crid %d)", k, l.res.CRID), l.img, l)
	}

	tip := links[len(links)-1]
	stdout, stderr, code := testutil.RunCrbpf(t, "images", "verify", tip.img)
	if code != exitOK || !strings.Contains(stdout, "chain of 6 images") {
		t.Errorf("images verify of the tip: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = testutil.RunCrbpf(t, "images", "show", "--json", tip.img)
	var shown struct {
		Chain []struct {
			CRID  uint64 `json:"crid"`
			Error string `json:"error"`
		} `json:"chain"`
	}
	if code != exitOK || json.Unmarshal([]byte(stdout), &shown) != nil || len(shown.Chain) != 6 {
		t.Errorf("images show --json of the tip: exit %d, chain %+v\n%s%s", code, shown.Chain, stdout, stderr)
	} else {
		for i, c := range shown.Chain {
			if want := links[len(links)-1-i].res.CRID; c.CRID != want || c.Error != "" {
				t.Errorf("images show: chain link %d is crid %d (%q), want crid %d", i, c.CRID, c.Error, want)
			}
		}
	}
	sq := filepath.Join(dir, "squashed")
	if stdout, stderr, code := testutil.RunCrbpf(t, "images", "squash", "-o", sq, tip.img); code != exitOK {
		t.Fatalf("images squash: exit %d\n%s%s", code, stdout, stderr)
	}
	im, err := image.Load(sq)
	if err != nil {
		t.Fatal(err)
	}
	if im.Header.CRID != tip.res.CRID || im.Header.ParentCRID != 0 {
		t.Errorf("squashed image: crid %d parent %d, want %d and none", im.Header.CRID, im.Header.ParentCRID, tip.res.CRID)
	}
	// The squashed image stands alone: the chain can go.
	for _, l := range links {
		if err := os.RemoveAll(l.img); err != nil {
			t.Fatal(err)
		}
	}
	check("the squashed tip", sq, tip)
}

// TestIncrementalChainTamper: restart of an image whose ancestor is
// missing, truncated, altered or replaced fails before the process can run,
// with an error naming the ancestor's crid, and leaves no process.
func TestIncrementalChainTamper(t *testing.T) {
	testutil.RequireRoot(t)
	tg := testutil.StartTarget(t, target(t, "counter"))
	tg.WaitLine(t, "COUNT 3", timeout)
	base := t.TempDir()
	var crids []uint64
	for k := range 3 {
		parent := ""
		if k > 0 {
			parent = filepath.Join(base, fmt.Sprintf("c%d", k-1))
		}
		r := incrementalCheckpoint(t, tg.PID, filepath.Join(base, fmt.Sprintf("c%d", k)), parent)
		if k > 0 && r.InheritedPages == 0 {
			t.Fatalf("link %d inherits nothing from an idle counter", k)
		}
		crids = append(crids, r.CRID)
	}
	// copyChain copies the three images into a new directory, side by
	// side as the parent hints expect.
	copyChain := func(t *testing.T) string {
		dir := t.TempDir()
		for k := range 3 {
			src := filepath.Join(base, fmt.Sprintf("c%d", k))
			if err := os.Rename(copyImage(t, src), filepath.Join(dir, fmt.Sprintf("c%d", k))); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tip := func(dir string) string { return filepath.Join(dir, "c2") }
	for _, tt := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		re     string
	}{
		{"root deleted", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "c0")) },
			fmt.Sprintf(`parent image crid %d of crid %d at \S+/c0: missing \(no such directory\)$`, crids[0], crids[1])},
		{"parent truncated", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, "c1", image.PagesFile), image.PageSize) },
			fmt.Sprintf(`parent image crid %d of crid %d at \S+/c1: .*truncated`, crids[1], crids[2])},
		{"root meta altered", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "c0", image.MetaFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-10] ^= 0x20
			os.WriteFile(p, b, 0o600)
		}, fmt.Sprintf(`parent image crid %d of crid %d at \S+/c0: .*checksum mismatch`, crids[0], crids[1])},
		{"root page altered", func(t *testing.T, dir string) { flipInheritedPage(t, tip(dir), 2) },
			fmt.Sprintf(`parent image crid %d of crid %d at \S+/c0: .*crc32c 0x[0-9a-f]+, want 0x[0-9a-f]+`, crids[0], crids[1])},
		{"parent replaced", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "c1"))
			incrementalCheckpoint(t, tg.PID, filepath.Join(dir, "c1"), "")
		}, fmt.Sprintf(`parent image crid %d of crid %d at \S+/c1: the image there is crid \d+`, crids[1], crids[2])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyChain(t)
			tt.tamper(t, dir)
			refuseRestart(t, tip(dir), exitBadImage, tt.re)
			stdout, stderr, code := testutil.RunCrbpf(t, "images", "verify", tip(dir))
			expectError(t, "images verify", stdout, stderr, code, exitBadImage, tt.re)
		})
	}
	// Untouched, the chain restarts.
	dir := copyChain(t)
	out, pid := restartDetached(t, tip(dir))
	out.WaitLine(t, "COUNT", timeout)
	testutil.KillAndReap(t, pid)
}

// flipInheritedPage flips a byte of a page that the image in dir reads
// from link src of its chain.
func flipInheritedPage(t *testing.T, dir string, src int) {
	t.Helper()
	c, err := chain.Load(dir, chain.OnDisk)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.VMAs {
		for _, r := range v.Pages {
			if r.Src != src || v.Kind == image.KindVDSO {
				continue
			}
			f, err := os.OpenFile(filepath.Join(c.Links[src].Dir, image.PagesFile), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			off := int64(r.DataOff + 100)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x55
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s reads no page from link %d of its chain", dir, src)
}
