package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/metrics"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/restore"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

type restartOutput struct {
	PID            int      `json:"pid"`
	OriginalPID    int      `json:"original_pid"`
	SamePID        bool     `json:"same_pid"`
	CRID           uint64   `json:"crid"`
	RestoreSeconds float64  `json:"restore_seconds"`
	Warnings       []string `json:"warnings,omitempty"`
}

func newRestartCmd(g *globals) *cobra.Command {
	var (
		detach  bool
		asJSON  bool
		pidMode string
		mapFDs  []string
	)
	cmd := &cobra.Command{
		Use:   "restart [flags] IMG|CRID",
		Short: "Restart a process from an image",
		Long: `Restores the process saved in IMG in a new process, where it left off.

The image is verified first (checksums of metadata and every page). The
original PID is reused when it is free; otherwise the process gets a new PID
and crbpf says so (--pid strict refuses instead).

Files are reopened by path with their flags and offsets. A terminal or pipe
that the process had on fds 0-2 becomes crbpf's own stdin/stdout/stderr,
like a shell job. --map-fd SAVED=OURS hands crbpf's fd OURS to the process
as its fd SAVED instead (e.g. --map-fd 1=2 sends its stdout to crbpf's
stderr; --map-fd 7=0 gives it crbpf's stdin as fd 7). The restored process is crbpf's child and in crbpf's
process group.

In the foreground (default) crbpf waits for the process, forwards SIGTERM to
it (and SIGINT, SIGHUP, SIGQUIT unless crbpf is the terminal's foreground
job, whose signals the process receives directly), and exits with its exit
status, or 128+N if signal N killed it. --detach returns at once and prints
the PID.

A CRID (a number that is not a directory here) names an image in the
daemon's memory: the daemon restores it with crbpf's stdin, stdout and
stderr; in the foreground crbpf waits for its exit through the daemon.`,
		Example: `  crbpf restart ./crbpf-42
  crbpf restart 42                  # from the daemon's memory
  crbpf restart --detach --json ./crbpf-42
  crbpf restart --pid strict ./crbpf-42
  crbpf restart --map-fd 1=2 ./crbpf-42 2>log.txt`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			strict := false
			switch pidMode {
			case "auto":
			case "strict":
				strict = true
			default:
				return usageErr("--pid must be auto or strict, got %q", pidMode)
			}
			inherit, err := parseMapFDs(mapFDs)
			if err != nil {
				return err
			}
			dir := args[0]
			if crid, ok := cridArg(dir); ok {
				if len(inherit) > 0 || strict {
					return usageErr("--map-fd and --pid strict are for image directories, not in-memory images")
				}
				return g.restartViaDaemon(crid, detach, asJSON)
			}
			ch, err := chain.Load(dir, chain.OnDisk)
			if err != nil {
				return err
			}
			img, err := ch.Resolve()
			if err != nil {
				return err
			}
			if n := len(ch.Links); n > 1 {
				g.logger().Info("restoring from a chain of images", "crid", img.Header.CRID, "images", n, "crids", ch.CRIDs())
			}
			tr := ptrace.NewTracer()
			defer tr.Close()
			started := time.Now()
			res, err := restore.Run(cmd.Context(), tr, restore.Options{
				Dir: dir, Image: img, Chain: ch, StrictPID: strict, Log: g.logger(), Verify: true,
				Stdio: [3]*os.File{os.Stdin, os.Stdout, os.Stderr}, Inherit: inherit,
			})
			g.recordMetrics(func(s *metrics.Set) {
				r := metrics.Restart{Result: metrics.ResultOK, Duration: time.Since(started)}
				if err != nil {
					r.Result = metrics.ResultError
				} else {
					r.Duration = res.Duration
				}
				s.ObserveRestart(r)
			})
			if err != nil {
				if errors.Is(err, restore.ErrPIDTaken) {
					return &exitError{code: exitFailure, err: err}
				}
				return err
			}
			for _, w := range res.Warnings {
				g.progress("warning: %s", w)
			}
			out := restartOutput{PID: res.PID, OriginalPID: img.Header.PID, SamePID: res.SamePID,
				CRID: img.Header.CRID, RestoreSeconds: res.Duration.Seconds(), Warnings: res.Warnings}
			if detach {
				if asJSON {
					return g.printJSON(out)
				}
				fmt.Fprintln(g.stdout, res.PID)
				return nil
			}
			if asJSON {
				if err := g.printJSON(out); err != nil {
					return err
				}
			} else if g.verbose {
				g.progress("restored crid %d as pid %d in %.1f ms", out.CRID, res.PID, out.RestoreSeconds*1e3)
			}
			code, err := waitForeground(res.PID)
			if err != nil {
				return err
			}
			if code != 0 {
				// The restored process's own status, silently, like a shell job.
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "return once restored, printing the PID")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	cmd.Flags().StringVar(&pidMode, "pid", "auto", "auto: reuse the original PID when free; strict: fail if it is taken")
	cmd.Flags().StringArrayVar(&mapFDs, "map-fd", nil, "SAVED=OURS: give the process crbpf's fd OURS as its fd SAVED instead of reopening it (repeatable)")
	return cmd
}

// parseMapFDs parses --map-fd SAVED=OURS values.
func parseMapFDs(vals []string) (map[int]*os.File, error) {
	out := map[int]*os.File{}
	for _, v := range vals {
		saved, ours, ok := strings.Cut(v, "=")
		s, err1 := strconv.Atoi(saved)
		o, err2 := strconv.Atoi(ours)
		if !ok || err1 != nil || err2 != nil || s < 0 || o < 0 {
			return nil, usageErr("--map-fd wants SAVED=OURS with two fd numbers, got %q", v)
		}
		if _, err := unix.FcntlInt(uintptr(o), unix.F_GETFD, 0); err != nil {
			return nil, usageErr("--map-fd %s: crbpf has no fd %d", v, o)
		}
		out[s] = os.NewFile(uintptr(o), fmt.Sprintf("fd %d", o))
	}
	return out, nil
}

// forwardSignals passes SIGTERM (and SIGINT, SIGHUP, SIGQUIT unless the
// terminal sends those to pid itself, crbpf being its foreground job) on
// to the restored process pid until the returned function is called.
func forwardSignals(pid int) (stop func()) {
	sigs := make(chan os.Signal, 8)
	fwd := []os.Signal{syscall.SIGTERM}
	if !terminalForeground() {
		fwd = append(fwd, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	} else {
		// The process is in our process group and gets the terminal's
		// signals itself; crbpf must just survive them.
		signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	}
	signal.Notify(sigs, fwd...)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				unix.Kill(pid, s.(syscall.Signal))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// waitForeground waits for the restored child, forwarding signals, and
// returns the exit code crbpf should exit with.
func waitForeground(pid int) (int, error) {
	defer forwardSignals(pid)()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return exitFailure, fmt.Errorf("wait for restored pid %d: %w", pid, err)
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
}

// terminalForeground reports whether crbpf is the foreground job of its
// controlling terminal (then terminal signals reach the restored process
// directly, as it shares crbpf's process group).
func terminalForeground() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		return false
	}
	return pgrp == unix.Getpgrp()
}

// cridArg reports whether arg names an in-memory image: a number that is
// not a path here.
func cridArg(arg string) (uint64, bool) {
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	if _, err := os.Lstat(arg); err == nil {
		return 0, false
	}
	return n, true
}

// restartViaDaemon has the daemon restore an in-memory image with crbpf's
// stdio; in the foreground it waits for the process's exit (forwarding
// SIGTERM, and SIGINT unless the terminal sends it there itself).
func (g *globals) restartViaDaemon(crid uint64, detach, asJSON bool) error {
	dc, err := g.daemonClient(true)
	if err != nil {
		return err
	}
	defer dc.Close()
	r, err := dc.Restart(api.Request{CRID: crid, Wait: !detach}, []*os.File{os.Stdin, os.Stdout, os.Stderr})
	g.recordMetrics(func(s *metrics.Set) {
		m := metrics.Restart{Result: metrics.ResultOK}
		if err != nil {
			m.Result = metrics.ResultError
		} else {
			m.Duration = time.Duration(r.RestoreSeconds * float64(time.Second))
		}
		s.ObserveRestart(m)
	})
	if err != nil {
		return daemonErr(err)
	}
	out := restartOutput{PID: r.PID, CRID: r.CRID, SamePID: r.SamePID, RestoreSeconds: r.RestoreSeconds}
	if detach {
		if asJSON {
			return g.printJSON(out)
		}
		fmt.Fprintln(g.stdout, r.PID)
		return nil
	}
	if asJSON {
		if err := g.printJSON(out); err != nil {
			return err
		}
	}
	defer forwardSignals(r.PID)()
	code, err := dc.WaitExit()
	if err != nil {
		return fmt.Errorf("wait for restored pid %d through the daemon: %w", r.PID, err)
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
