package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/restore"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// demoScript counts forever, one line every 100 ms, keeping its state in a
// Python list so that a restore that lost memory would show.
const demoScript = `import sys, time
seen = []
while True:
    seen.append(len(seen) + 1)
    assert seen == list(range(1, len(seen) + 1))
    print("count", seen[-1], flush=True)
    time.sleep(0.1)
`

func newDemoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Checkpoint, kill and restart a small python3 counter",
		Long: `Starts a python3 loop that counts, checkpoints it with --kill semantics into a
temporary image, restarts it from the image, and shows that it continued from
the next number. Needs root (ptrace) and python3. Leaves nothing behind.`,
		Example: `  sudo crbpf demo`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			py, err := exec.LookPath("python3")
			if err != nil {
				return fmt.Errorf("the demo needs python3: %w", err)
			}
			tmp, err := os.MkdirTemp("", "crbpf-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			counter, err := g.counter()
			if err != nil {
				return err
			}
			pr, pw, err := os.Pipe()
			if err != nil {
				return err
			}
			defer pr.Close()
			target := exec.Command(py, "-c", demoScript)
			target.Stdout, target.Stderr = pw, os.Stderr
			if err := target.Start(); err != nil {
				pw.Close()
				return err
			}
			lines := make(chan string, 64)
			go func() {
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			last := 0
			read := func(who string, n int) error {
				for i := 0; i < n; i++ {
					select {
					case l, ok := <-lines:
						if !ok {
							return fmt.Errorf("the %s counter stopped printing", who)
						}
						fmt.Fprintf(g.stdout, "  %s: %s\n", who, l)
						if v, err := strconv.Atoi(strings.TrimPrefix(l, "count ")); err == nil {
							if last != 0 && v != last+1 {
								return fmt.Errorf("counter jumped from %d to %d", last, v)
							}
							last = v
						}
					case <-time.After(10 * time.Second):
						return fmt.Errorf("no output from the %s counter for 10s", who)
					}
				}
				return nil
			}
			fmt.Fprintf(g.stdout, "started python3 counter, pid %d\n", target.Process.Pid)
			if err := read("original", 5); err != nil {
				target.Process.Kill()
				target.Wait()
				return err
			}
			tr := ptrace.NewTracer()
			defer tr.Close()
			dir := filepath.Join(tmp, "image")
			res, err := checkpoint.Run(cmd.Context(), tr, checkpoint.Options{PID: target.Process.Pid, Dir: dir,
				Kill: true, Version: crbpfVersion(), Log: g.logger(), NewCRID: counter.Next, Precopy: checkpoint.Auto})
			target.Wait()
			if err != nil {
				target.Process.Kill()
				return fmt.Errorf("checkpoint: %w", err)
			}
			// Lines the counter printed before it was stopped.
			for _, l := range drain(lines) {
				fmt.Fprintf(g.stdout, "  original: %s\n", l)
				if v, err := strconv.Atoi(strings.TrimPrefix(l, "count ")); err == nil {
					last = v
				}
			}
			fmt.Fprintf(g.stdout, "checkpointed as crid %d (%s, %d rounds; frozen %.1f ms; image %d bytes) and killed pid %d\n",
				res.CRID, res.Mode, len(res.Rounds), res.Freeze.Seconds()*1e3, res.Bytes, res.PID)
			img, err := image.Load(dir)
			if err != nil {
				return err
			}
			rres, err := restore.Run(cmd.Context(), tr, restore.Options{Dir: dir, Image: img, Log: g.logger(),
				Stdio: [3]*os.File{os.Stdin, pw, os.Stderr}})
			pw.Close()
			if err != nil {
				return fmt.Errorf("restart: %w", err)
			}
			fmt.Fprintf(g.stdout, "restarted as pid %d in %.1f ms\n", rres.PID, rres.Duration.Seconds()*1e3)
			readErr := read("restored", 5)
			unix.Kill(rres.PID, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(rres.PID, &ws, 0, nil)
			if readErr != nil {
				return readErr
			}
			fmt.Fprintln(g.stdout, "the restored counter continued where the original stopped")
			return nil
		},
	}
}

// drain returns the lines already buffered, after a short grace period for
// those still in the pipe.
func drain(lines chan string) []string {
	var out []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return out
			}
			out = append(out, l)
		case <-time.After(200 * time.Millisecond):
			return out
		}
	}
}
