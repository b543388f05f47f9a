package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/internal/testutil"
)

// copyImage copies the image directory src into a new temp dir.
func copyImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "img")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// counterImage checkpoints a running counter (left running) and returns the
// image, the checkpoint result and the counter.
func counterImage(t *testing.T) (string, checkpointResult, *testutil.Target) {
	t.Helper()
	tg := testutil.StartTarget(t, target(t, "counter"))
	tg.WaitLine(t, "COUNT 3", timeout)
	img := imgDir(t, "img")
	return img, checkpoint(t, tg.PID, img), tg
}

// refuseRestart runs `crbpf restart img` and expects it to fail with code
// and a message matching re, leaving no process behind (RunCmd checks).
func refuseRestart(t *testing.T, img string, code int, re string) {
	t.Helper()
	stdout, stderr, got := testutil.RunCrbpf(t, "restart", img)
	expectError(t, "restart of a damaged image", stdout, stderr, got, code, re)
}

// TestImages covers `images show` and `images verify` and restart's checks
// of damaged images.
func TestImages(t *testing.T) {
	testutil.RequireRoot(t)
	img, cp, tg := counterImage(t)

	t.Run("show", func(t *testing.T) {
		stdout, stderr, code := testutil.RunCrbpf(t, "images", "show", "--json", img)
		if code != exitOK {
			t.Fatalf("images show --json: exit %d: %s", code, stderr)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(stdout), &obj); err != nil {
			t.Fatalf("images show --json is not one JSON object: %v\n%s", err, stdout)
		}
		if crid, ok := jsonNumber(obj, "crid"); !ok || uint64(crid) != cp.CRID {
			t.Errorf("images show --json crid %v (found %v), want %d", crid, ok, cp.CRID)
		}
		if pid, ok := jsonNumber(obj, "pid"); !ok || int(pid) != tg.PID {
			t.Errorf("images show --json pid %v (found %v), want %d", pid, ok, tg.PID)
		}
		stdout, stderr, code = testutil.RunCrbpf(t, "images", "show", img)
		if code != exitOK || !regexp.MustCompile(`\b`+strconv.FormatUint(cp.CRID, 10)+`\b`).MatchString(stdout) {
			t.Errorf("images show: exit %d, crid %d not shown:\n%s%s", code, cp.CRID, stdout, stderr)
		}
	})

	t.Run("verify", func(t *testing.T) {
		if _, stderr, code := testutil.RunCrbpf(t, "images", "verify", img); code != exitOK {
			t.Errorf("images verify of a fresh image: exit %d: %s", code, stderr)
		}
	})

	t.Run("flipped-byte", func(t *testing.T) {
		bad := copyImage(t, img)
		addr := flipPageByte(t, bad)
		// The message names the page by its address.
		re := `(?i)page.*0x0*` + strconv.FormatUint(addr, 16) + `\b`
		stdout, stderr, code := testutil.RunCrbpf(t, "images", "verify", bad)
		expectError(t, "verify with a flipped byte", stdout, stderr, code, exitBadImage, re)
		refuseRestart(t, bad, exitBadImage, re)
	})

	t.Run("truncated", func(t *testing.T) {
		bad := copyImage(t, img)
		pages := filepath.Join(bad, image.PagesFile)
		fi, err := os.Stat(pages)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(pages, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		re := `(?i)truncated|short|size`
		stdout, stderr, code := testutil.RunCrbpf(t, "images", "verify", bad)
		expectError(t, "verify truncated", stdout, stderr, code, exitBadImage, re)
		refuseRestart(t, bad, exitBadImage, re)
	})

	t.Run("not-an-image", func(t *testing.T) {
		empty := t.TempDir()
		junk := t.TempDir()
		if err := os.WriteFile(filepath.Join(junk, image.MetaFile), []byte("hello, not an image\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "plain-file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{empty, junk, file, filepath.Join(empty, "does-not-exist")} {
			for _, args := range [][]string{{"images", "show"}, {"images", "verify"}, {"restart"}} {
				stdout, stderr, code := testutil.RunCrbpf(t, append(args, dir)...)
				expectError(t, args[len(args)-1]+" "+dir, stdout, stderr, code, exitBadImage, `(?i)image`)
			}
		}
	})

	t.Run("other-kernel", func(t *testing.T) {
		bad := copyImage(t, img)
		im, err := image.Load(bad)
		if err != nil {
			t.Fatal(err)
		}
		const fake = "2.6.32-not-this-kernel"
		im.Header.KernelRelease = fake
		f, err := os.Create(filepath.Join(bad, image.MetaFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := image.Encode(f, im); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := testutil.RunCrbpf(t, "images", "verify", bad); code != exitOK {
			t.Errorf("re-encoded image does not verify (exit %d: %s): the test broke it, not only the kernel", code, stderr)
		}
		refuseRestart(t, bad, exitBadImage, `(?i)kernel.*`+regexp.QuoteMeta(fake))
	})

	// The target was never touched by any of this.
	testutil.RequireUntouched(t, tg.PID)
	tg.WaitLine(t, "COUNT", timeout)
	numbered(t, "COUNT", tg.Lines(), 1)
}

// flipPageByte flips one byte in the middle of the largest page run of the
// image in dir and returns the address of that page.
func flipPageByte(t *testing.T, dir string) uint64 {
	t.Helper()
	im, err := image.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var best *image.PageRun
	for i := range im.VMAs {
		for j := range im.VMAs[i].Pages {
			if r := &im.VMAs[i].Pages[j]; best == nil || r.NPages > best.NPages {
				best = r
			}
		}
	}
	if best == nil {
		t.Fatal("image has no page data")
	}
	page := best.NPages / 2
	off := int64(best.DataOff + page*image.PageSize + 123)
	f, err := os.OpenFile(filepath.Join(dir, image.PagesFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return best.Addr + page*image.PageSize
}
