package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestRestoreCredentials: a process running as nobody, with supplementary
// groups, is restored with its own ids (not as root, who restarts it), is
// dumpable again, and counts on.
func TestRestoreCredentials(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command(target(t, "counter"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{100, 65534}}}
	orig := testutil.StartCmd(t, cmd)
	orig.WaitLine(t, "COUNT 3", timeout)
	before, err := testutil.Status(orig.PID)
	if err != nil {
		t.Fatal(err)
	}
	img := imgDir(t, "img")
	checkpoint(t, orig.PID, img, "--kill")
	orig.ReadToEOF(t, timeout)
	last := numbered(t, "COUNT", orig.Lines(), 1)
	orig.Wait(t, timeout)

	r, pid := restartDetached(t, img)
	r.WaitLine(t, fmt.Sprintf("COUNT %d", last+2), timeout)
	after, err := testutil.Status(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Uid", "Gid", "Groups", "NoNewPrivs"} {
		if strings.Join(strings.Fields(after[k]), " ") != strings.Join(strings.Fields(before[k]), " ") {
			t.Errorf("restored %s: %q, want the original's %q", k, after[k], before[k])
		}
	}
	if got := strings.Fields(after["Uid"]); len(got) != 4 || got[0] != "65534" {
		t.Errorf("restored Uid %q, want 65534 (nobody)", after["Uid"])
	}
	// Dumpable: its /proc files belong to it, not to root.
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/mem", pid), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 65534 {
		t.Errorf("/proc/%d/mem is owned by uid %d, want 65534 (the process is not dumpable)", pid, st.Uid)
	}
}
