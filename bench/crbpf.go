package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// buildCrbpf builds ./cmd/crbpf of the module at root into dir.
func buildCrbpf(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "crbpf")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/crbpf")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/crbpf: %w\n%s", err, out)
	}
	return bin, nil
}

// crbpfResult is the part of `crbpf checkpoint --json` the benchmark uses.
type crbpfResult struct {
	FreezeSeconds float64 `json:"freeze_seconds"`
	TotalSeconds  float64 `json:"total_seconds"`
	BytesWritten  uint64  `json:"bytes_written"`
	Mode          string  `json:"mode"`
	ModeReason    string  `json:"mode_reason"`
	StopReason    string  `json:"stop_reason"`
	FinalPages    uint64  `json:"final_pages"`
	Telemetry     string  `json:"telemetry"`
	StateReused   bool    `json:"state_reused"`
	Rounds        []struct {
		Round      int     `json:"round"`
		DirtyPages uint64  `json:"dirty_pages"`
		Bytes      uint64  `json:"bytes"`
		Seconds    float64 `json:"seconds"`
	} `json:"rounds"`
}

// ckptRun is one crbpf checkpoint as the benchmark saw it.
type ckptRun struct {
	Args       []string
	Res        crbpfResult
	Wall       time.Duration
	Start, End int64   // CLOCK_MONOTONIC ns around the crbpf process
	RoundAt    []int64 // CLOCK_MONOTONIC ns when each "round N:" line arrived
	// StoppedAt is when the final stop began, by the -v line "target
	// stopped" (see stoppedAt).
	StoppedAt int64
	// Steps are the freeze steps of the -v log: time since the stop when
	// each step ended ("state", "proc+files", "final copy"; side by side
	// in a full freeze, one after the other after pre-copy).
	Steps  map[string]time.Duration
	Stderr string
	// Steal is the vCPUs' steal time during the crbpf process, summed
	// over the CPUs (10 ms resolution): time the hypervisor ran something
	// else, which the target sees as gaps crbpf did not make.
	Steal time.Duration
}

var (
	roundLine = regexp.MustCompile(`^round \d+: `)
	stepLine  = regexp.MustCompile(`msg="freeze step" step=(\S+) since_stop=(\S+)`)
	copyLine  = regexp.MustCompile(`msg="final copy done" .*since_stop=(\S+)`)
	stopLine  = regexp.MustCompile(`msg="target stopped"(?:.* held=(\S+))?`)
)

// stoppedAt returns when the final stop began, from a -v line that arrived
// at: crbpf logs "target stopped" once the target runs again, with how long
// it was held (older versions logged it at the stop, without).
func stoppedAt(line string, at int64) (int64, bool) {
	m := stopLine.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	if d, err := time.ParseDuration(m[1]); err == nil {
		at -= int64(d)
	}
	return at, true
}

// runCheckpoint runs `crbpf -v checkpoint --json -o img args... pid`,
// bounded by timeout: then it is interrupted (crbpf puts the target back)
// and killed ten seconds later if still running.
func runCheckpoint(ctx context.Context, bin, stateDir, img string, pid int, timeout time.Duration, args ...string) (*ckptRun, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{"--state-dir", stateDir, "-v", "checkpoint", "--json", "-o", img}, args...)
	argv = append(argv, strconv.Itoa(pid))
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	r := &ckptRun{Args: args, Steps: map[string]time.Duration{}}
	var stderr strings.Builder
	t0 := time.Now()
	steal0 := stealTicks()
	r.Start = monoNow()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start crbpf: %w", err)
	}
	sc := bufio.NewScanner(errPipe)
	for sc.Scan() {
		at := monoNow()
		line := sc.Text()
		stderr.WriteString(line + "\n")
		if t, ok := stoppedAt(line, at); ok {
			r.StoppedAt = t
		}
		if roundLine.MatchString(line) {
			r.RoundAt = append(r.RoundAt, at)
		}
		if m := stepLine.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[2]); err == nil {
				r.Steps[m[1]] = d
			}
		}
		if m := copyLine.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				r.Steps["final copy"] = d
			}
		}
	}
	err = cmd.Wait()
	r.End = monoNow()
	r.Steal = time.Duration(stealTicks()-steal0) * 10 * time.Millisecond
	r.Wall = time.Since(t0)
	r.Stderr = stderr.String()
	if err != nil {
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
			err = fmt.Errorf("timed out after %v: %w", timeout, err)
		}
		return r, fmt.Errorf("crbpf %s: %w\n%s", strings.Join(argv, " "), err, tail(r.Stderr, 20))
	}
	if err := json.Unmarshal(stdout.Bytes(), &r.Res); err != nil {
		return r, fmt.Errorf("crbpf output %q: %w", stdout.String(), err)
	}
	return r, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
