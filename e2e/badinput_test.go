package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// snapshot is what a refused checkpoint must leave unchanged.
type snapshot struct {
	fds  map[int]string
	maps []string
}

func takeSnapshot(t *testing.T, pid int) snapshot {
	t.Helper()
	fds, err := testutil.Fds(pid)
	if err != nil {
		t.Fatal(err)
	}
	m, err := testutil.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{fds, m}
}

// requireSame fails if the target's fds or mappings changed since s.
func (s snapshot) requireSame(t *testing.T, pid int) {
	t.Helper()
	now := takeSnapshot(t, pid)
	if !maps.Equal(s.fds, now.fds) {
		t.Errorf("pid %d: fds changed by the refused checkpoint:\nbefore %v\nafter  %v", pid, s.fds, now.fds)
	}
	if !slices.Equal(s.maps, now.maps) {
		t.Errorf("pid %d: mappings changed by the refused checkpoint:\nbefore\n%v\nafter\n%v", pid, s.maps, now.maps)
	}
}

// refuseCheckpoint runs `crbpf checkpoint -o DIR pid` and expects it to
// fail with code and a one-line message matching re, and to create no
// image directory.
func refuseCheckpoint(t *testing.T, pid int, code int, re string) {
	t.Helper()
	img := imgDir(t, "img")
	stdout, stderr, got := testutil.RunCrbpf(t, "checkpoint", "-o", img, strconv.Itoa(pid))
	expectError(t, fmt.Sprintf("checkpoint %d", pid), stdout, stderr, got, code, re)
	if _, err := os.Stat(img); err == nil {
		t.Errorf("refused checkpoint left an image directory %s", img)
	}
}

// freePID returns a PID no process has (counting down from pid_max).
func freePID(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for pid := pidMax - 1; pid > 1; pid-- {
		if !testutil.Exists(pid) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}

// TestCheckpointBadInputs: checkpoint refuses what it cannot or must not
// checkpoint, with the documented exit code and a one-line message saying
// why, and leaves a live target running, untraced and unchanged (its own
// self-check still passes).
func TestCheckpointBadInputs(t *testing.T) {
	testutil.RequireRoot(t)

	t.Run("no-such-process", func(t *testing.T) {
		pid := freePID(t)
		refuseCheckpoint(t, pid, exitTargetGone, `\b`+strconv.Itoa(pid)+`\b`)
	})

	t.Run("kernel-thread", func(t *testing.T) {
		if c := comm(t, 2); c != "kthreadd" {
			t.Skipf("pid 2 is %q, not kthreadd", c)
		}
		refuseCheckpoint(t, 2, exitUnsupported, `(?i)kernel thread`)
	})

	t.Run("zombie", func(t *testing.T) {
		parent := testutil.StartTarget(t, target(t, "zombie"))
		z, err := strconv.Atoi(strings.TrimPrefix(parent.WaitLine(t, "ZOMBIE ", timeout), "ZOMBIE "))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := testutil.ReadStat(z); err != nil || st.State != 'Z' {
			t.Fatalf("pid %d is not a zombie: %+v %v", z, st, err)
		}
		before := takeSnapshot(t, parent.PID)
		// A zombie is a process that is gone (3) as much as one in an
		// unsupported state (5); either is fine if the message says zombie.
		want := exitUnsupported
		stdout, stderr, code := testutil.RunCrbpf(t, "checkpoint", "-o", imgDir(t, "img"), strconv.Itoa(z))
		if code == exitTargetGone {
			want = exitTargetGone
		}
		expectError(t, "checkpoint of a zombie", stdout, stderr, code, want, `(?i)zombie`)
		if st, err := testutil.ReadStat(z); err != nil || st.State != 'Z' || st.PPID != parent.PID {
			t.Errorf("zombie %d changed: %+v %v", z, st, err)
		}
		testutil.RequireUntouched(t, parent.PID)
		before.requireSame(t, parent.PID)
		parent.Signal(t, unix.SIGUSR1)
		if l := parent.WaitLine(t, "SELFCHECK", timeout); l != fmt.Sprintf("SELFCHECK OK zombie=%d", z) {
			t.Errorf("zombie.c self-check after the refusal: %q", l)
		}
	})

	t.Run("itself", func(t *testing.T) {
		// crbpf is asked to checkpoint its own PID: sh execs crbpf with $$.
		cmd := testutil.CrbpfCmd(t)
		cmd.Args = []string{"sh", "-c", `exec "$0" checkpoint -o "$1" $$`, cmd.Path, imgDir(t, "img")}
		cmd.Path = "/bin/sh"
		stdout, stderr, code := testutil.RunCmd(t, cmd)
		expectError(t, "checkpoint of crbpf itself", stdout, stderr, code, exitUnsupported, `(?i)itself|own|self`)
	})

	t.Run("no-privilege", func(t *testing.T) {
		tg := testutil.StartTarget(t, target(t, "counter"))
		tg.WaitLine(t, "COUNT 3", timeout)
		before := takeSnapshot(t, tg.PID)
		// A directory nobody can use for the state and the image.
		dir := t.TempDir()
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(testutil.BuildCrbpf(t), "checkpoint", "-o", filepath.Join(dir, "img"), strconv.Itoa(tg.PID))
		cmd.Env = append(os.Environ(), "CRBPF_STATE_DIR="+dir)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		stdout, stderr, code := testutil.RunCmd(t, cmd)
		expectError(t, "checkpoint as nobody", stdout, stderr, code, exitPrivilege,
			`CAP_(SYS_PTRACE|CHECKPOINT_RESTORE|SYS_ADMIN)`)
		testutil.RequireUntouched(t, tg.PID)
		before.requireSame(t, tg.PID)
		tg.WaitLine(t, "COUNT 20", timeout)
		numbered(t, "COUNT", tg.Lines(), 1)
	})

	// Targets crbpf does not support: refused, named, left running.
	for _, tc := range []struct {
		name string
		re   string
	}{
		{"threads", `(?i)(\b2\b.*thread|thread.*\b2\b)`},
		{"socket", `(?i)(fd|descriptor)\D{0,4}[78]\b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := testutil.StartTarget(t, target(t, tc.name))
			tg.WaitLine(t, "READY", timeout)
			tg.WaitLine(t, "TICK 1", timeout)
			before := takeSnapshot(t, tg.PID)
			refuseCheckpoint(t, tg.PID, exitUnsupported, tc.re)
			testutil.RequireUntouched(t, tg.PID)
			before.requireSame(t, tg.PID)
			tg.Signal(t, unix.SIGUSR1)
			if l := tg.WaitLine(t, "SELFCHECK", timeout); !regexp.MustCompile(`^SELFCHECK OK`).MatchString(l) {
				t.Errorf("%s self-check after the refusal: %q", tc.name, l)
			}
		})
	}

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"checkpoint"},
			{"checkpoint", "not-a-pid"},
			{"checkpoint", "1", "2"},
			{"restart"},
			{"no-such-command"},
		} {
			_, stderr, code := testutil.RunCrbpf(t, args...)
			if code != exitUsage {
				t.Errorf("crbpf %q: exit %d, want %d (usage); stderr: %s", args, code, exitUsage, stderr)
			}
			if !regexp.MustCompile(`(?m)^crbpf: `).MatchString(stderr) {
				t.Errorf("crbpf %q: no \"crbpf: \" error line on stderr:\n%s", args, stderr)
			}
		}
	})
}
