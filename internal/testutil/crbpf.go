package testutil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stateDirs maps each test to its crbpf state directory.
var stateDirs sync.Map // testing.TB -> string

// StateDir returns the crbpf state directory (crid counter) of the test t,
// a t.TempDir created on first use. RunCrbpf and StartCrbpf pass it in
// CRBPF_STATE_DIR.
func StateDir(t testing.TB) string {
	t.Helper()
	if d, ok := stateDirs.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	if prev, loaded := stateDirs.LoadOrStore(t, d); loaded {
		return prev.(string)
	}
	t.Cleanup(func() { stateDirs.Delete(t) })
	return d
}

// CrbpfCmd returns an unstarted crbpf command with CRBPF_STATE_DIR set to
// StateDir(t).
func CrbpfCmd(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(BuildCrbpf(t), args...)
	cmd.Env = append(os.Environ(), "CRBPF_STATE_DIR="+StateDir(t))
	return cmd
}

// RunCrbpf runs crbpf with args to completion; see RunCmd.
func RunCrbpf(t testing.TB, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	return RunCmd(t, CrbpfCmd(t, args...))
}

// StartCrbpf starts crbpf with args as a Target (for `crbpf restart`, whose
// stdout then carries the restored process's lines).
func StartCrbpf(t testing.TB, args ...string) *Target {
	t.Helper()
	return StartCmd(t, CrbpfCmd(t, args...))
}

// RunTimeout is the safety net for one command run by RunCmd.
const RunTimeout = 2 * time.Minute

// RunCmd runs cmd (stdin /dev/null) to completion and returns its output
// and exit code (128+N if signal N killed it). It fails the test if the
// command hangs, or if it left a process behind: a live child of the test
// binary that no test owns once the command has exited (an orphan of the
// command re-parented to the subreaper test binary); such a process is
// killed.
func RunCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, exitCode int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// A process left behind could hold the output pipes open forever.
	cmd.WaitDelay = 5 * time.Second
	name := describe(cmd)
	if err := startRegistered(cmd, name); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(RunTimeout):
		desc := Descendants(pid)
		cmd.Process.Kill()
		for _, d := range desc {
			unix.Kill(d.PID, unix.SIGKILL)
		}
		<-done
		unregister(pid)
		for _, d := range desc {
			reap(d.PID, DefaultTimeout)
		}
		killStrays()
		t.Fatalf("%s did not finish within %v\nstdout:\n%s\nstderr:\n%s", name, RunTimeout, out.String(), errb.String())
	}
	unregister(pid)
	if errors.Is(err, exec.ErrWaitDelay) {
		t.Errorf("%s exited but something it started kept its output open", name)
	}
	for _, s := range killStrays() {
		t.Errorf("%s %s", name, s)
	}
	code := ExitCode(cmd.ProcessState)
	t.Logf("$ %s  => exit %d\n%s%s", name, code, indent("stdout| ", out.String()), indent("stderr| ", errb.String()))
	return out.String(), errb.String(), code
}

func indent(prefix, s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix) + "\n"
}
