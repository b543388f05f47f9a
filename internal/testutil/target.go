package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultTimeout is the safety net for waiting on a process: long enough
// that only a hang reaches it.
const DefaultTimeout = 30 * time.Second

// Target is a started process with pipes on its stdin, stdout and stderr.
// Its stdout is read line by line: WaitLine, NextLine, WaitLineMatch and
// ReadToEOF consume lines in order; every line (consumed or not) and all of
// stderr are kept for failure messages.
type Target struct {
	Cmd *exec.Cmd
	PID int

	name  string
	stdin *os.File // write end; the process has the read end on fd 0
	outR  *os.File
	errR  *os.File

	mu      sync.Mutex
	stdout  []string
	stderr  []string
	next    int           // index of the next stdout line to consume
	outEOF  bool          // stdout reached EOF
	changed chan struct{} // closed (and replaced) when stdout grows or ends

	exited  chan struct{} // closed once the process is reaped and its output read
	drained chan struct{} // closed when both output readers reached EOF
	readers sync.WaitGroup
	state   *os.ProcessState
	waitErr error

	stopOnce sync.Once
}

// StartTarget starts argv as a Target; see StartCmd.
func StartTarget(t testing.TB, argv ...string) *Target {
	t.Helper()
	if len(argv) == 0 {
		t.Fatal("StartTarget: empty argv")
	}
	return StartCmd(t, exec.Command(argv[0], argv[1:]...))
}

// StartCmd starts cmd with fresh pipes on fds 0-2 (cmd.Stdin, Stdout and
// Stderr must be nil) and registers a cleanup that SIGKILLs the process and
// all its descendants and reaps them.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Target {
	t.Helper()
	if cmd.Stdin != nil || cmd.Stdout != nil || cmd.Stderr != nil {
		t.Fatal("StartCmd: cmd.Stdin, Stdout and Stderr must be nil")
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	tg := &Target{
		Cmd:     cmd,
		name:    describe(cmd),
		stdin:   inW,
		outR:    outR,
		errR:    errR,
		changed: make(chan struct{}),
		exited:  make(chan struct{}),
		drained: make(chan struct{}),
	}
	err = startRegistered(cmd, tg.name)
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		t.Fatalf("start %s: %v", tg.name, err)
	}
	tg.PID = cmd.Process.Pid
	tg.readers.Add(2)
	go tg.readLines(outR, true)
	go tg.readLines(errR, false)
	go func() {
		tg.readers.Wait()
		close(tg.drained)
	}()
	go func() {
		tg.waitErr = cmd.Wait()
		tg.state = cmd.ProcessState
		unregister(tg.PID)
		// The pipes are ours, not exec's, so Wait does not wait for the
		// readers: without this a last line written just before exit could
		// be missing from Stderr and Lines after Wait. A descendant that
		// inherited the pipes keeps them open, so the wait is bounded.
		select {
		case <-tg.drained:
		case <-time.After(drainTimeout):
		}
		close(tg.exited)
	}()
	t.Cleanup(func() { tg.Stop(t) })
	return tg
}

func describe(cmd *exec.Cmd) string {
	args := append([]string{filepath.Base(cmd.Path)}, cmd.Args[1:]...)
	s := strings.Join(args, " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// drainTimeout bounds how long a reaped process's output is waited for.
const drainTimeout = 2 * time.Second

func (tg *Target) readLines(r io.Reader, isStdout bool) {
	defer tg.readers.Done()
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(line, "\n")
			tg.mu.Lock()
			if isStdout {
				tg.stdout = append(tg.stdout, line)
				tg.broadcastLocked()
			} else {
				tg.stderr = append(tg.stderr, line)
			}
			tg.mu.Unlock()
		}
		if err != nil {
			if isStdout {
				tg.mu.Lock()
				tg.outEOF = true
				tg.broadcastLocked()
				tg.mu.Unlock()
			}
			return
		}
	}
}

func (tg *Target) broadcastLocked() {
	close(tg.changed)
	tg.changed = make(chan struct{})
}

// String names the process for messages: its PID and command line.
func (tg *Target) String() string { return fmt.Sprintf("pid %d (%s)", tg.PID, tg.name) }

// Log returns the process's recent stdout and stderr lines and its exit
// status, for failure messages.
func (tg *Target) Log() string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var b strings.Builder
	tail := func(what string, lines []string) {
		const keep = 40
		start := max(0, len(lines)-keep)
		fmt.Fprintf(&b, "--- %s of %s (%d lines", what, tg, len(lines))
		if start > 0 {
			fmt.Fprintf(&b, ", last %d", keep)
		}
		b.WriteString(")\n")
		for _, l := range lines[start:] {
			b.WriteString("  " + l + "\n")
		}
	}
	tail("stdout", tg.stdout)
	tail("stderr", tg.stderr)
	select {
	case <-tg.exited:
		fmt.Fprintf(&b, "--- exit: %s\n", tg.state)
	default:
		fmt.Fprintf(&b, "--- still running\n")
	}
	return b.String()
}

// next returns the next unconsumed stdout line, waiting until deadline.
func (tg *Target) nextLine(deadline time.Time) (string, error) {
	for {
		tg.mu.Lock()
		if tg.next < len(tg.stdout) {
			l := tg.stdout[tg.next]
			tg.next++
			tg.mu.Unlock()
			return l, nil
		}
		if tg.outEOF {
			tg.mu.Unlock()
			return "", io.EOF
		}
		ch := tg.changed
		tg.mu.Unlock()
		wait := time.Until(deadline)
		if wait <= 0 {
			return "", errTimeout
		}
		timer := time.NewTimer(wait)
		select {
		case <-ch:
		case <-timer.C:
		}
		timer.Stop()
	}
}

var errTimeout = errors.New("timed out")

func (tg *Target) waitLine(t testing.TB, what string, timeout time.Duration, match func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l, err := tg.nextLine(deadline)
		if err == io.EOF {
			t.Fatalf("%s: stdout ended before %s\n%s", tg, what, tg.Log())
		}
		if err != nil {
			t.Fatalf("%s: no %s within %v\n%s", tg, what, timeout, tg.Log())
		}
		if match(l) {
			return l
		}
	}
}

// WaitLine consumes stdout lines until one starts with prefix and returns
// it. It fails the test at EOF or after timeout.
func (tg *Target) WaitLine(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	return tg.waitLine(t, fmt.Sprintf("line starting with %q", prefix), timeout,
		func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// WaitLineMatch consumes stdout lines until one matches re and returns its
// submatches.
func (tg *Target) WaitLineMatch(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	l := tg.waitLine(t, fmt.Sprintf("line matching %q", re), timeout, re.MatchString)
	return re.FindStringSubmatch(l)
}

// NextLine consumes and returns the next stdout line.
func (tg *Target) NextLine(t testing.TB, timeout time.Duration) string {
	t.Helper()
	return tg.waitLine(t, "another line", timeout, func(string) bool { return true })
}

// ReadToEOF waits for stdout to end and returns the lines not consumed yet.
func (tg *Target) ReadToEOF(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lines []string
	for {
		l, err := tg.nextLine(deadline)
		if err == io.EOF {
			return lines
		}
		if err != nil {
			t.Fatalf("%s: stdout did not end within %v\n%s", tg, timeout, tg.Log())
		}
		lines = append(lines, l)
	}
}

// Lines returns every stdout line read so far, consumed or not.
func (tg *Target) Lines() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.stdout...)
}

// Stderr returns the stderr lines read so far.
func (tg *Target) Stderr() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.stderr...)
}

// WriteStdin writes s to the process's stdin.
func (tg *Target) WriteStdin(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(tg.stdin, s); err != nil {
		t.Fatalf("%s: write stdin: %v", tg, err)
	}
}

// Signal sends sig to the process.
func (tg *Target) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := unix.Kill(tg.PID, sig); err != nil {
		t.Fatalf("%s: kill %v: %v\n%s", tg, sig, err, tg.Log())
	}
}

// Exited says whether the process has exited and been reaped.
func (tg *Target) Exited() bool {
	select {
	case <-tg.exited:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit code, or 128+N
// if signal N killed it (like a shell).
func (tg *Target) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-tg.exited:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\n%s", tg, timeout, tg.Log())
	}
	return ExitCode(tg.state)
}

// ExitCode returns the exit code of ps, or 128+N if signal N killed it.
func ExitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Stop SIGKILLs the process and its descendants and reaps them; it is the
// cleanup StartCmd registers and may be called earlier. Processes left as
// children of the test binary by the time it returns are reported as
// errors and killed too.
func (tg *Target) Stop(t testing.TB) {
	t.Helper()
	tg.stopOnce.Do(func() {
		var killed []int
		for round := 0; round < 2; round++ {
			desc := Descendants(tg.PID)
			if !tg.Exited() {
				unix.Kill(tg.PID, unix.SIGKILL)
			}
			for _, d := range desc {
				unix.Kill(d.PID, unix.SIGKILL)
				killed = append(killed, d.PID)
			}
		}
		select {
		case <-tg.exited:
		case <-time.After(DefaultTimeout):
			t.Errorf("%s did not die from SIGKILL within %v", tg, DefaultTimeout)
		}
		for _, pid := range killed {
			if err := reap(pid, DefaultTimeout); err != nil {
				t.Errorf("descendant of %s: %v", tg, err)
			}
		}
		tg.stdin.Close()
		tg.outR.Close()
		tg.errR.Close()
		for _, s := range killStrays() {
			t.Errorf("after stopping %s: %s", tg, s)
		}
	})
}

// reap waits for pid to disappear, reaping it if it is (or becomes) a
// child of the test binary.
func reap(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if wpid == pid {
			return nil
		}
		if errors.Is(err, unix.ECHILD) && !Exists(pid) {
			return nil // not ours, and gone
		}
		if time.Now().After(deadline) {
			st, _ := ReadStat(pid)
			return fmt.Errorf("pid %d (%s, state %c, parent %d) did not go away within %v",
				pid, st.Comm, st.State, st.PPID, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Adopt makes the test responsible for pid, a process it did not start
// (for example one restored by `crbpf restart --detach`): a cleanup
// SIGKILLs and reaps it.
func Adopt(t testing.TB, pid int) {
	t.Helper()
	if pid <= 1 {
		t.Fatalf("Adopt: bad pid %d", pid)
	}
	register(pid, "adopted")
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		if err := reap(pid, DefaultTimeout); err != nil {
			t.Errorf("adopted %v", err)
		}
		unregister(pid)
	})
}

// KillAndReap SIGKILLs an adopted pid now and waits until it is gone.
func KillAndReap(t testing.TB, pid int) {
	t.Helper()
	unix.Kill(pid, unix.SIGKILL)
	if err := reap(pid, DefaultTimeout); err != nil {
		t.Fatal(err)
	}
}
