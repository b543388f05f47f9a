package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed testdata/dirtier.c
var dirtierSrc []byte

// buildDirtier compiles the target into dir and returns its path.
func buildDirtier(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "dirtier.c")
	if err := os.WriteFile(src, dirtierSrc, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "dirtier")
	out, err := exec.CommandContext(ctx, "gcc", "-O2", "-Wall", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gcc dirtier.c: %w\n%s", err, out)
	}
	return bin, nil
}

// monoNow is CLOCK_MONOTONIC in nanoseconds, the target's clock.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// syncBuffer is a bytes.Buffer safe for one writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// target is one running dirtier. Its stdout is read by one goroutine,
// which also reaps it; stop ends and reaps it on every path.
type target struct {
	cmd    *exec.Cmd
	pid    int
	in     io.WriteCloser
	lines  chan string // stdout lines; closed at end of file
	stderr *syncBuffer
	done   chan struct{} // closed once the process is reaped
	err    error         // exit status, valid after done
}

// startTarget starts the dirtier and waits for READY, which it prints once
// its memory is resident.
func startTarget(bin string, sizeMiB, hotMiB int, rate float64, ready time.Duration) (*target, error) {
	cmd := exec.Command(bin, strconv.Itoa(sizeMiB), strconv.Itoa(hotMiB), strconv.FormatFloat(rate, 'f', -1, 64))
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t := &target{cmd: cmd, in: in, lines: make(chan string, 16), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = t.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dirtier: %w", err)
	}
	t.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20) // "G" answers are long
		for sc.Scan() {
			t.lines <- sc.Text()
		}
		close(t.lines)
		io.Copy(io.Discard, out)
		t.err = cmd.Wait()
		close(t.done)
	}()
	line, err := t.next(ready)
	if err == nil && !strings.HasPrefix(line, "READY ") {
		err = fmt.Errorf("unexpected first line %q", line)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dirtier %d MiB did not get ready: %w", sizeMiB, err), t.stop())
	}
	return t, nil
}

func (t *target) next(timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case l, ok := <-t.lines:
		if !ok {
			<-t.done
			return "", fmt.Errorf("dirtier exited (%v): %s", t.err, strings.TrimSpace(t.stderr.String()))
		}
		return l, nil
	case <-timer.C:
		return "", fmt.Errorf("no answer from dirtier within %v", timeout)
	}
}

// do sends one command and returns the fields of its answer, whose first
// field repeats the command letter.
func (t *target) do(cmd string) ([]uint64, error) {
	if _, err := io.WriteString(t.in, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("dirtier command %q: %w", cmd, err)
	}
	line, err := t.next(5 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("dirtier command %q: %w", cmd, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != cmd[:1] {
		return nil, fmt.Errorf("dirtier command %q: answer %q", cmd, line)
	}
	var v []uint64
	for _, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dirtier command %q: answer %q", cmd, line)
		}
		v = append(v, n)
	}
	return v, nil
}

// reset starts a new window: the largest gap is forgotten.
func (t *target) reset() error {
	_, err := t.do("R")
	return err
}

// window is what the target saw since the last reset.
type window struct {
	Start, End int64 // CLOCK_MONOTONIC ns
	Iters      uint64
	Pages      uint64
	MaxGap     time.Duration
	MaxGapAt   int64 // when the largest gap began
	Gaps       []gap // the largest gaps of at least 1 ms, in time order
}

// gap is one long wait between two iterations of the target's loop.
type gap struct {
	At  int64 // CLOCK_MONOTONIC ns when it began
	Len time.Duration
}

func (w window) seconds() float64 { return float64(w.End-w.Start) / 1e9 }

func (t *target) query() (window, error) {
	v, err := t.do("Q")
	if err != nil {
		return window{}, err
	}
	if len(v) != 6 {
		return window{}, fmt.Errorf("dirtier Q: %d fields", len(v))
	}
	w := window{Start: int64(v[0]), End: int64(v[1]), Iters: v[2], Pages: v[3],
		MaxGap: time.Duration(v[4]), MaxGapAt: int64(v[5])}
	g, err := t.do("G")
	if err != nil {
		return w, err
	}
	for i := 0; i+1 < len(g); i += 2 {
		if g[i] > 0 {
			w.Gaps = append(w.Gaps, gap{At: int64(g[i+1]), Len: time.Duration(g[i])})
		}
	}
	slices.SortFunc(w.Gaps, func(a, b gap) int { return cmp.Compare(a.At, b.At) })
	return w, nil
}

// span is the target's throughput over [t0, t1), from its 1 ms buckets.
type span struct {
	Iters, Pages uint64
	WriteNs      uint64
	Ms           uint64
}

func (s span) itersPerSec() float64 { return float64(s.Iters) / (float64(s.Ms) / 1e3) }

func (s span) nsPerPage() float64 {
	if s.Pages == 0 {
		return 0
	}
	return float64(s.WriteNs) / float64(s.Pages)
}

func (t *target) counts(t0, t1 int64) (span, error) {
	v, err := t.do(fmt.Sprintf("C %d %d", t0, t1))
	if err != nil {
		return span{}, err
	}
	if len(v) != 4 {
		return span{}, fmt.Errorf("dirtier C: %d fields", len(v))
	}
	return span{Iters: v[0], Pages: v[1], WriteNs: v[2], Ms: v[3]}, nil
}

// stop ends the target and reaps it: "X" and end of file on stdin, then
// SIGKILL if it has not exited within two seconds.
func (t *target) stop() error {
	go func() {
		for range t.lines { // let the reader reach end of file and reap
		}
	}()
	io.WriteString(t.in, "X\n")
	t.in.Close()
	select {
	case <-t.done:
		return nil
	case <-time.After(2 * time.Second):
	}
	if err := t.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill dirtier %d: %w", t.pid, err)
	}
	select {
	case <-t.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("dirtier %d did not exit after SIGKILL", t.pid)
	}
}
