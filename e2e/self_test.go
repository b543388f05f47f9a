package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
)

// TestSelfCheckpoint: a C program (with client/c/crbpf_self.c) and a
// python3 program (with client/python/crbpf_self.py) checkpoint themselves
// through the daemon: the original gets the crid (> 0) and goes on; the
// copy restarted from that crid gets 0 and the crid it came from, with its
// memory as it was.
func TestSelfCheckpoint(t *testing.T) {
	testutil.RequireRoot(t)
	for _, lang := range []string{"c", "python", "c-nobody"} {
		t.Run(lang, func(t *testing.T) {
			d := startDaemon(t)
			var argv []string
			if lang != "python" {
				helper, err := filepath.Abs("../client/c/crbpf_self.c")
				if err != nil {
					t.Fatal(err)
				}
				argv = []string{testutil.BuildC(t, filepath.Join("testdata", "selfckpt.c"), helper), d.sock}
			} else {
				dir, err := filepath.Abs("../client/python")
				if err != nil {
					t.Fatal(err)
				}
				argv = []string{testutil.Python3(t), filepath.Join("testdata", "selfckpt.py"), d.sock, dir}
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			if lang == "c-nobody" {
				// An unprivileged process may always checkpoint itself;
				// its copy runs as itself again.
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			orig := testutil.StartCmd(t, cmd)
			m := orig.WaitLineMatch(t, regexp.MustCompile(`^ORIGINAL crid=(\d+) state=12345$`), timeout)
			crid, _ := strconv.ParseUint(m[1], 10, 64)
			if crid == 0 {
				t.Fatalf("original got crid %q", m[1])
			}
			orig.WaitLine(t, "TICK 2", timeout)

			r, pid := restartDetached(t, m[1], "--socket", d.sock)
			// The copy shares crbpf's stdout and may print before crbpf's
			// JSON, which restartDetached consumed: look at every line.
			// The Python copy's line reached the pipe in two writes, the
			// text and then its newline, with crbpf's JSON between them
			// (CI, twice): then the JSON follows the text on its line.
			r.WaitLine(t, "TICK 2", timeout)
			want := fmt.Sprintf("RESTORED from=%d state=12345", crid)
			found := false
			for _, l := range r.Lines() {
				found = found || l == want || strings.HasPrefix(l, want+"{")
			}
			if !found {
				t.Fatalf("the restored copy did not print %q\n%s", want, r.Log())
			}
			if pid == orig.PID {
				t.Errorf("the copy has the original's pid %d, which is in use", pid)
			}
			for _, l := range append(orig.Lines(), r.Lines()...) {
				if len(l) >= 5 && l[:5] == "ERROR" {
					t.Errorf("%s", l)
				}
			}
			if lang == "c-nobody" {
				st, err := testutil.Status(pid)
				if err != nil {
					t.Fatal(err)
				}
				if f := strings.Fields(st["Uid"]); len(f) < 2 || f[1] != "65534" {
					t.Errorf("the copy runs as uid %q, want 65534", st["Uid"])
				}
			}
			orig.WaitLine(t, "TICK 5", timeout)
		})
	}
}
