package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
)

// TestCRID: checkpoints of a running process (left running, counting on
// without a gap) get strictly increasing crids from the state directory;
// the crid and pid of --json match `images show --json`; without -o the
// image is ./crbpf-<crid>.
func TestCRID(t *testing.T) {
	testutil.RequireRoot(t)
	tg := testutil.StartTarget(t, target(t, "counter"))
	tg.WaitLine(t, "COUNT 3", timeout)
	state := t.TempDir()

	var prev uint64
	for i := range 2 {
		img := imgDir(t, "img"+strconv.Itoa(i))
		cp := checkpoint(t, tg.PID, img, "--state-dir", state)
		if i > 0 && cp.CRID <= prev {
			t.Errorf("crid %d after %d: not increasing", cp.CRID, prev)
		}
		prev = cp.CRID
		if cp.PID != tg.PID {
			t.Errorf("--json pid %d, want %d", cp.PID, tg.PID)
		}
		if abs, _ := filepath.Abs(cp.Image); abs != img {
			t.Errorf("--json image %q, want %q", cp.Image, img)
		}
		if cp.PagesWritten == 0 || cp.BytesWritten < cp.PagesWritten*4096 || cp.FreezeSeconds < 0 {
			t.Errorf("--json figures look wrong: %+v", cp)
		}
		stdout, stderr, code := testutil.RunCrbpf(t, "images", "show", "--json", img)
		if code != exitOK {
			t.Fatalf("images show --json: exit %d: %s", code, stderr)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(stdout), &obj); err != nil {
			t.Fatalf("images show --json: %v\n%s", err, stdout)
		}
		if crid, _ := jsonNumber(obj, "crid"); uint64(crid) != cp.CRID {
			t.Errorf("images show crid %v, checkpoint said %d", crid, cp.CRID)
		}
		if pid, _ := jsonNumber(obj, "pid"); int(pid) != tg.PID {
			t.Errorf("images show pid %v, want %d", pid, tg.PID)
		}
	}

	// Default output directory, relative to the working directory.
	cwd := t.TempDir()
	cmd := testutil.CrbpfCmd(t, "checkpoint", "--json", "--state-dir", state, strconv.Itoa(tg.PID))
	cmd.Dir = cwd
	stdout, stderr, code := testutil.RunCmd(t, cmd)
	if code != exitOK {
		t.Fatalf("checkpoint without -o: exit %d: %s", code, stderr)
	}
	cp := parseCheckpointJSON(t, stdout)
	if cp.CRID <= prev {
		t.Errorf("crid %d after %d: not increasing", cp.CRID, prev)
	}
	want := filepath.Join(cwd, "crbpf-"+strconv.FormatUint(cp.CRID, 10))
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Errorf("no image directory %s: %v", want, err)
	}
	if got := cp.Image; got != want && filepath.Join(cwd, got) != want {
		t.Errorf("--json image %q, want %q", got, want)
	}

	// The target ran on through three checkpoints without losing a count.
	testutil.RequireUntouched(t, tg.PID)
	tg.WaitLine(t, "COUNT", timeout)
	numbered(t, "COUNT", tg.Lines(), 1)
}

// TestCheck: `crbpf check` passes on the machines the tests run on.
func TestCheck(t *testing.T) {
	testutil.RequireRoot(t)
	stdout, stderr, code := testutil.RunCrbpf(t, "check")
	if code != exitOK {
		t.Errorf("crbpf check: exit %d\n%s%s", code, stdout, stderr)
	}
	if stdout == "" {
		t.Error("crbpf check printed nothing")
	}
}
