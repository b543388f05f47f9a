package crid

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func open(t *testing.T) *Counter {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "state", "nested"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func next(t testing.TB, c *Counter) uint64 {
	t.Helper()
	id, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOpenCreatesDir(t *testing.T) {
	c := open(t)
	fi, err := os.Stat(c.Dir())
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v, want a 0700 directory", fi.Mode(), err)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestSequential(t *testing.T) {
	c := open(t)
	if last, err := c.Last(); err != nil || last != 0 {
		t.Fatalf("Last on a new dir = %d, %v; want 0", last, err)
	}
	for want := uint64(1); want <= 100; want++ {
		if id := next(t, c); id != want {
			t.Fatalf("Next = %d, want %d", id, want)
		}
	}
	if last, err := c.Last(); err != nil || last != 100 {
		t.Errorf("Last = %d, %v; want 100", last, err)
	}
	b, err := os.ReadFile(filepath.Join(c.Dir(), counterFile))
	if err != nil || string(b) != "100\n" {
		t.Errorf("counter file %q, %v; want \"100\\n\"", b, err)
	}
	// A second Counter on the same directory continues the sequence.
	c2, err := Open(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if id := next(t, c2); id != 101 {
		t.Errorf("Next on a reopened counter = %d, want 101", id)
	}
}

// checkIDs fails unless the sequences are each strictly increasing and
// together hold exactly 1..total.
func checkIDs(t *testing.T, seqs [][]uint64, total int) {
	t.Helper()
	var all []uint64
	for i, s := range seqs {
		for j := 1; j < len(s); j++ {
			if s[j] <= s[j-1] {
				t.Errorf("sequence %d not strictly increasing at %d: %d after %d", i, j, s[j], s[j-1])
			}
		}
		all = append(all, s...)
	}
	slices.Sort(all)
	if len(all) != total {
		t.Fatalf("%d ids, want %d", len(all), total)
	}
	for i, id := range all {
		if id != uint64(i+1) {
			t.Fatalf("ids are not exactly 1..%d: sorted position %d holds %d (duplicate or gap)", total, i, id)
		}
	}
}

func TestGoroutines(t *testing.T) {
	c := open(t)
	const workers, each = 8, 200
	seqs := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				id, err := c.Next()
				if err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], id)
			}
		})
	}
	wg.Wait()
	checkIDs(t, seqs, workers*each)
}

const helperEnv = "CRBPF_CRID_HELPER"

// TestHelperProcess is not a test: it is the child of TestProcesses and
// TestCrashedHolder, selected by helperEnv ("next:DIR:N" or "hold:DIR").
func TestHelperProcess(t *testing.T) {
	var mode, dir string
	var n int
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestProcesses and TestCrashedHolder")
	}
	if _, err := fmt.Sscanf(spec, "next:%d:%s", &n, &dir); err == nil {
		mode = "next"
	} else if _, err := fmt.Sscanf(spec, "hold:%s", &dir); err == nil {
		mode = "hold"
	}
	c, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "next":
		w := bufio.NewWriter(os.Stdout)
		for range n {
			id, err := c.Next()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Fprintln(w, id)
		}
		w.Flush()
	case "hold":
		f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
		if err == nil {
			err = flock(f, unix.LOCK_EX)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
	default:
		fmt.Fprintf(os.Stderr, "bad %s=%q\n", helperEnv, spec)
		os.Exit(2)
	}
	os.Exit(0)
}

func helper(dir, spec string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestProcesses runs 4 processes taking 100 ids each while this process
// takes 100 more.
func TestProcesses(t *testing.T) {
	c := open(t)
	const procs, each = 4, 100
	seqs := make([][]uint64, procs+1)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := range procs {
		cmd := helper(c.Dir(), fmt.Sprintf("next:%d:%s", each, c.Dir()))
		wg.Go(func() {
			out, err := cmd.Output()
			if err != nil {
				errs[p] = fmt.Errorf("helper %d: %w", p, err)
				return
			}
			for _, f := range splitLines(string(out)) {
				id, err := strconv.ParseUint(f, 10, 64)
				if err != nil {
					errs[p] = fmt.Errorf("helper %d printed %q", p, f)
					return
				}
				seqs[p] = append(seqs[p], id)
			}
		})
	}
	for range each {
		seqs[procs] = append(seqs[procs], next(t, c))
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for p := range procs {
		if len(seqs[p]) != each {
			t.Fatalf("helper %d returned %d ids, want %d", p, len(seqs[p]), each)
		}
	}
	checkIDs(t, seqs, (procs+1)*each)
	if last, err := c.Last(); err != nil || last != (procs+1)*each {
		t.Errorf("Last = %d, %v; want %d", last, err, (procs+1)*each)
	}
}

func splitLines(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		out = append(out, strings.TrimSuffix(line, "\n"))
	}
	return out
}

// TestCrashedHolder kills a process while it holds the lock: the kernel
// releases the lock with the process, and Next proceeds.
func TestCrashedHolder(t *testing.T) {
	c := open(t)
	next(t, c)
	cmd := helper(c.Dir(), "hold:"+c.Dir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	done := make(chan uint64)
	go func() {
		id, err := c.Next()
		if err != nil {
			t.Error(err)
		}
		done <- id
	}()
	select {
	case id := <-done:
		t.Fatalf("Next returned %d while another process held the lock", id)
	case <-time.After(200 * time.Millisecond):
	}
	cmd.Process.Kill()
	select {
	case id := <-done:
		if id != 2 {
			t.Errorf("Next after the holder died = %d, want 2", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still blocked after the lock holder was killed")
	}
}

func TestCorruptCounter(t *testing.T) {
	for _, content := range []string{
		"", "\n", "abc", "12x\n", "-1\n", "+1\n", " 1\n", "1 \n", "1\n\n", "007\n",
		"18446744073709551616\n",      // MaxUint64 + 1
		"1844674407370955161500000\n", // longer than any uint64
	} {
		t.Run(strconv.Quote(content), func(t *testing.T) {
			c := open(t)
			path := filepath.Join(c.Dir(), counterFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if id, err := c.Next(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Next = %d, %v; want ErrCorrupt", id, err)
			}
			if _, err := c.Last(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Last: %v, want ErrCorrupt", err)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("counter file changed to %q", b)
			}
		})
	}
}

func TestCounterFileForms(t *testing.T) {
	c := open(t)
	path := filepath.Join(c.Dir(), counterFile)
	for _, tt := range []struct {
		content string
		want    uint64
	}{
		{"41", 42}, {"41\n", 42}, {"0\n", 1}, {"18446744073709551614\n", math.MaxUint64},
	} {
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if id := next(t, c); id != tt.want {
			t.Errorf("after %q Next = %d, want %d", tt.content, id, tt.want)
		}
	}
	if id, err := c.Next(); err == nil {
		t.Errorf("Next after MaxUint64 = %d, want an error", id)
	}
}

func TestStaleTempFile(t *testing.T) {
	c := open(t)
	next(t, c)
	// A crash between writing crid.tmp and the rename leaves it behind.
	if err := os.WriteFile(filepath.Join(c.Dir(), tempFile), []byte("999999 garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if id := next(t, c); id != 2 {
		t.Errorf("Next with a stale %s = %d, want 2", tempFile, id)
	}
}

func TestStateDirFromEnv(t *testing.T) {
	t.Setenv(EnvStateDir, "")
	if d := StateDirFromEnv(); d != DefaultStateDir {
		t.Errorf("unset: %q, want %q", d, DefaultStateDir)
	}
	t.Setenv(EnvStateDir, "/run/crbpf-test")
	if d := StateDirFromEnv(); d != "/run/crbpf-test" {
		t.Errorf("set: %q", d)
	}
}
