package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/client"
	"github.com/crbpf/crbpf/daemon"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/metrics"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/spf13/cobra"
)

type roundOutput struct {
	Round            int     `json:"round"`
	DirtyPages       uint64  `json:"dirty_pages"`
	NewPages         uint64  `json:"new_pages"`
	Bytes            uint64  `json:"bytes"`
	Seconds          float64 `json:"seconds"`
	PredictedFreezeS float64 `json:"predicted_freeze_seconds"`
	WriteFaults      *uint64 `json:"write_faults,omitempty"`
	DeferredPages    uint64  `json:"deferred_pages,omitempty"`
}

type checkpointOutput struct {
	CRID          uint64  `json:"crid"`
	Image         string  `json:"image"`
	PID           int     `json:"pid"`
	FreezeSeconds float64 `json:"freeze_seconds"`
	TotalSeconds  float64 `json:"total_seconds"`
	// ReleaseSeconds: the paced removal of the write protection after the
	// resume, part of total_seconds (absent when there was none).
	ReleaseSeconds float64       `json:"release_seconds,omitempty"`
	PagesWritten   uint64        `json:"pages_written"`
	BytesWritten   uint64        `json:"bytes_written"`
	Killed         bool          `json:"killed"`
	Mode           string        `json:"mode"`
	ModeReason     string        `json:"mode_reason,omitempty"`
	Rounds         []roundOutput `json:"rounds,omitempty"`
	StopReason     string        `json:"stop_reason,omitempty"`
	FinalPages     uint64        `json:"final_pages"`
	Telemetry      string        `json:"telemetry,omitempty"`
	StateReused    bool          `json:"state_reused"`
	Warnings       []string      `json:"warnings,omitempty"`
	InMemory       bool          `json:"in_memory,omitempty"` // kept by the daemon (Image is empty)
	// Incremental checkpoints: the parent's crid, how unchanged pages
	// were found, pages taken from the parent and zero pages recorded.
	ParentCRID     uint64 `json:"parent_crid,omitempty"`
	Incremental    string `json:"incremental,omitempty"`
	InheritedPages uint64 `json:"inherited_pages,omitempty"`
	ZeroPages      uint64 `json:"zero_pages,omitempty"`
}

func newCheckpointCmd(g *globals) *cobra.Command {
	var (
		out         string
		kill        bool
		asJSON      bool
		precopyFlag string
		maxDowntime time.Duration
		inMemory    bool
		parent      string
		every       time.Duration
		keep        int
	)
	cmd := &cobra.Command{
		Use:   "checkpoint [flags] PID",
		Short: "Write an image of a running process",
		Long: `Writes the process's memory, registers and kernel state to an image directory
and lets it run on unchanged (or, with --kill, ends it once the image is
complete and on disk). Every checkpoint gets a crid, a unique increasing id.

With pre-copy (the default where the kernel supports write tracking), memory
is copied while the process keeps running, in rounds; between rounds crbpf
learns from the kernel which pages were written (userfaultfd write-protect
and PAGEMAP_SCAN) and copies only those again. Pre-copy ends after --precopy
rounds, when the predicted final copy fits --max-downtime (and the last round
itself took no longer: otherwise one more, short, round runs), or when the dirty
set stops shrinking; then the process is stopped for a short final copy of
what is still dirty plus its registers and kernel state. One line per round
goes to stderr. --precopy 0 copies everything while the process is stopped.

With --parent the checkpoint is incremental: it stores only the pages that
differ from the parent image's (compared by a CRC-32C and a 64-bit hash per
page, so the parent's data is not read) and takes the others from it at
restart. The parent is an image directory, or a crid: an in-memory image when
the daemon takes the checkpoint, otherwise an image next to the new one.
Restart needs every image of the chain; 'crbpf images squash' merges one.

With --every the daemon takes checkpoints continuously: in memory, one every
interval, each incremental on the one before, with write tracking kept armed
on the process between them (only pages written since the last one are
copied, nothing is compared). At most --keep are kept: the oldest is merged
into the next, which becomes self-contained. One line per checkpoint; it ends
when the process exits or on Ctrl-C (the images stay in the daemon's memory:
crbpf images ls).

The target must be single-threaded, without children, and use only regular
files, directories, character devices, and a terminal or pipes on fds 0-2.
Anything else is refused before the target is touched (exit code 5).
If crbpf fails or is interrupted (SIGINT/SIGTERM) after stopping the target,
the target is put back exactly as it was and keeps running.`,
		Example: `  crbpf checkpoint 1234
  crbpf checkpoint -o /tmp/img --kill 1234
  crbpf checkpoint --json 1234 | jq .crid
  crbpf checkpoint --precopy 3 --max-downtime 5ms 1234
  crbpf checkpoint --precopy 0 1234      # full freeze
  crbpf checkpoint -o img1 1234 && crbpf checkpoint --parent img1 -o img2 1234
  crbpf checkpoint --every 5s --keep 10 1234   # continuous, through the daemon`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return usageErr("PID must be a positive number, got %q", args[0])
			}
			rounds := checkpoint.Auto
			if precopyFlag != "auto" {
				n, err := strconv.Atoi(precopyFlag)
				if err != nil || n < 0 {
					return usageErr("--precopy wants a number of rounds or auto, got %q", precopyFlag)
				}
				rounds = n
			}
			if inMemory && out != "" {
				return usageErr("--in-memory and -o exclude each other")
			}
			if cmd.Flags().Changed("keep") && every == 0 {
				return usageErr("--keep goes with --every")
			}
			if every != 0 {
				switch {
				case every < 0:
					return usageErr("--every wants a positive interval, got %v", every)
				case out != "" || kill:
					return usageErr("--every keeps the images in the daemon's memory: no -o or --kill")
				case keep < 2:
					return usageErr("--keep wants at least 2 (a base and one increment), got %d", keep)
				}
				inMemory = true
			}
			dc, err := g.daemonClient(inMemory)
			if err != nil {
				return err
			}
			if dc != nil {
				defer dc.Close()
				req := api.Request{PID: pid, Precopy: precopyFlag, Kill: kill, InMemory: out == "", Parent: parent}
				if _, isCRID := cridArg(parent); parent != "" && !isCRID {
					if req.Parent, err = filepath.Abs(parent); err != nil {
						return err
					}
				}
				if cmd.Flags().Changed("max-downtime") {
					req.MaxDowntime = maxDowntime.String()
				}
				if out != "" {
					if req.Dir, err = filepath.Abs(out); err != nil {
						return err
					}
				}
				if every != 0 {
					req.Every, req.Keep = every.String(), keep
					return g.continuousViaDaemon(cmd.Context(), dc, req, asJSON)
				}
				return g.checkpointViaDaemon(dc, req, asJSON)
			}
			var par *checkpoint.Parent
			if parent != "" {
				if par, err = localParent(parent, out); err != nil {
					return err
				}
			}
			counter, err := g.counter()
			if err != nil {
				return err
			}
			tr := ptrace.NewTracer()
			defer tr.Close()
			var issued uint64
			newCRID := func() (uint64, error) {
				id, err := counter.Next()
				if err == nil {
					issued = id
				}
				return id, err
			}
			started := time.Now()
			res, err := checkpoint.Run(cmd.Context(), tr, checkpoint.Options{
				PID: pid, Dir: out, Kill: kill, Version: crbpfVersion(), Log: g.logger(),
				NewCRID: newCRID, Precopy: rounds, MaxDowntime: maxDowntime, Parent: par,
				Progress: func(r checkpoint.Round) {
					faults := ""
					if r.FaultTelemetry {
						faults = fmt.Sprintf(", %d write faults (%.0f pages/s)", r.WriteFaults, float64(r.WriteFaults)/r.Duration.Seconds())
					}
					if r.DeferredPages > 0 {
						faults += fmt.Sprintf(", %d pages unmapped or protected while copied (left to the next round)", r.DeferredPages)
					}
					g.progress("round %d: %d dirty + %d new pages, %d bytes copied in %v, %.1f MB/s%s; final copy would take %v",
						r.Index, r.DirtyPages, r.NewPages, r.Bytes, r.Duration.Round(time.Microsecond),
						float64(r.Bytes)/r.Duration.Seconds()/1e6, faults, r.PredictedFreeze.Round(time.Microsecond))
				},
				PrecopyEnded: func(rounds int, reason string) {
					g.progress("pre-copy ended after %d rounds: %s", rounds, reason)
				},
				Releasing: func(tracked uint64) {
					g.progress("pid %d resumed; removing write protection from %.1f MiB, paced so that it keeps running", pid, float64(tracked)/(1<<20))
				},
			})
			g.recordMetrics(func(s *metrics.Set) {
				if issued != 0 {
					s.CRIDIssued(issued)
				}
				s.ObserveCheckpoint(daemon.CheckpointMetrics(res, err, time.Since(started)))
			})
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("interrupted: no image was written; pid %d was left running as it was: %w", pid, err)
				}
				return err
			}
			for _, w := range res.Warnings {
				g.progress("warning: %s", w)
			}
			abs, _ := filepath.Abs(res.Image)
			o := checkpointOutput{CRID: res.CRID, Image: abs, PID: res.PID, FreezeSeconds: res.Freeze.Seconds(),
				TotalSeconds: res.Total.Seconds(), ReleaseSeconds: res.Release.Seconds(), PagesWritten: res.Pages, BytesWritten: res.Bytes,
				Killed: res.Killed, Warnings: res.Warnings, Mode: res.Mode, ModeReason: res.ModeReason,
				StopReason: res.StopReason, FinalPages: res.FinalDirtyPages,
				Telemetry: res.Telemetry, StateReused: res.StateReused,
				ParentCRID: res.ParentCRID, Incremental: res.Incremental, InheritedPages: res.InheritedPages, ZeroPages: res.ZeroPages}
			for _, r := range res.Rounds {
				ro := roundOutput{Round: r.Index, DirtyPages: r.DirtyPages, NewPages: r.NewPages,
					Bytes: r.Bytes, Seconds: r.Duration.Seconds(), PredictedFreezeS: r.PredictedFreeze.Seconds(),
					DeferredPages: r.DeferredPages}
				if r.FaultTelemetry {
					ro.WriteFaults = &r.WriteFaults
				}
				o.Rounds = append(o.Rounds, ro)
			}
			if res.ModeReason != "" {
				g.progress("full freeze: %s", res.ModeReason)
			}
			if strings.HasPrefix(res.Telemetry, "reduced") || strings.Contains(res.Telemetry, "without") {
				g.progress("telemetry %s", res.Telemetry)
			}
			if res.Release > 0 {
				g.progress("write protection removed in %v", res.Release.Round(time.Millisecond))
			}
			if res.ParentCRID != 0 {
				g.progress("incremental on parent crid %d (unchanged pages found by %s): %d pages stored, %d taken from the parent",
					res.ParentCRID, incrementalHow(res.Incremental), res.Pages, res.InheritedPages)
			}
			if asJSON {
				return g.printJSON(o)
			}
			state := "resumed"
			if res.Killed {
				state = "killed"
			}
			fmt.Fprintf(g.stdout, "crid %d: pid %d checkpointed to %s (%s; %s, frozen %.3f ms for %d pages; image %d pages, %d bytes)\n",
				o.CRID, o.PID, abs, state, o.Mode, o.FreezeSeconds*1e3, o.FinalPages, o.PagesWritten, o.BytesWritten)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image directory to create (default ./crbpf-<crid>)")
	cmd.Flags().BoolVar(&kill, "kill", false, "end the process once the image is complete")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	cmd.Flags().StringVar(&precopyFlag, "precopy", "auto", "pre-copy rounds while the process runs: N, 0 for a full freeze, or auto")
	cmd.Flags().BoolVar(&inMemory, "in-memory", false, "keep the image in the daemon's memory and print its crid (needs `crbpf daemon`)")
	cmd.Flags().DurationVar(&every, "every", 0, "checkpoint continuously at this interval, through the daemon")
	cmd.Flags().IntVar(&keep, "keep", 10, "with --every: how many checkpoints to keep in memory")
	cmd.Flags().StringVar(&parent, "parent", "", "make the checkpoint incremental on this image (`CRID|IMG`)")
	cmd.Flags().DurationVar(&maxDowntime, "max-downtime", checkpoint.DefaultMaxDowntime, "end pre-copy once the final copy is predicted to take at most this")
	return cmd
}

// localParent finds the parent of a checkpoint taken without the daemon:
// an image directory, or a crid among the images next to the new image.
func localParent(arg, out string) (*checkpoint.Parent, error) {
	dir := arg
	if crid, ok := cridArg(arg); ok {
		where := filepath.Dir(filepath.Clean(out))
		if out == "" {
			where = "."
		}
		found, err := findImage(where, crid)
		if err != nil {
			return nil, err
		}
		dir = found
	}
	c, err := chain.Load(dir, chain.OnDisk)
	if err != nil {
		return nil, &exitError{code: exitBadImage, err: fmt.Errorf("parent: %w", err)}
	}
	return &checkpoint.Parent{Chain: c}, nil
}

// findImage returns the image directory in dir whose crid is crid.
func findImage(dir string, crid uint64) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if img, err := image.Load(p); err == nil && img.Header.CRID == crid {
			return p, nil
		}
	}
	return "", &exitError{code: exitBadImage, err: fmt.Errorf("no image with crid %d in %s (in-memory images need the daemon); give the parent image's directory", crid, dir)}
}

// checkpointViaDaemon asks the daemon for the checkpoint and prints what
// it answered like a local checkpoint.
func (g *globals) checkpointViaDaemon(dc *client.Client, req api.Request, asJSON bool) error {
	r, err := dc.Checkpoint(req, func(r api.Round) {
		g.progress("round %d: %d dirty + %d new pages, %d bytes copied in %v", r.Round, r.DirtyPages, r.NewPages,
			r.Bytes, time.Duration(r.Seconds*float64(time.Second)).Round(time.Microsecond))
	})
	if err != nil {
		return daemonErr(err)
	}
	for _, crid := range r.Evicted {
		g.progress("evicted in-memory image %d to make room (--memory-policy evict-oldest)", crid)
	}
	if asJSON {
		return g.printJSON(checkpointOutput{CRID: r.CRID, Image: r.Image, PID: r.PID, FreezeSeconds: r.FreezeSeconds,
			TotalSeconds: r.TotalSeconds, PagesWritten: r.PagesWritten, BytesWritten: r.BytesWritten, Killed: r.Killed,
			Mode: r.Mode, StopReason: r.StopReason, InMemory: r.InMemory,
			ParentCRID: r.ParentCRID, Incremental: r.Incremental, InheritedPages: r.InheritedPages})
	}
	if r.ParentCRID != 0 {
		g.progress("incremental on parent crid %d (unchanged pages found by %s): %d pages stored, %d taken from the parent",
			r.ParentCRID, incrementalHow(r.Incremental), r.PagesWritten, r.InheritedPages)
	}
	state := "resumed"
	if r.Killed {
		state = "killed"
	}
	where := r.Image
	if r.InMemory {
		where = "the daemon's memory"
	}
	fmt.Fprintf(g.stdout, "crid %d: pid %d checkpointed to %s (%s; %s, frozen %.3f ms; image %d pages, %d bytes)\n",
		r.CRID, r.PID, where, state, r.Mode, r.FreezeSeconds*1e3, r.PagesWritten, r.BytesWritten)
	return nil
}

// continuousViaDaemon has the daemon checkpoint the process every
// req.Every until it exits or ctx ends (Ctrl-C closes the connection, which
// ends them), printing one line (or JSON object) per checkpoint.
func (g *globals) continuousViaDaemon(ctx context.Context, dc *client.Client, req api.Request, asJSON bool) error {
	stop := context.AfterFunc(ctx, func() { dc.Close() })
	defer stop()
	g.progress("checkpointing pid %d every %s, keeping %d in the daemon's memory; Ctrl-C stops", req.PID, req.Every, req.Keep)
	end, err := dc.Continuous(req, func(r api.CheckpointResult) {
		if asJSON {
			g.printJSON(r)
			return
		}
		how := "full"
		if r.ParentCRID != 0 {
			how = fmt.Sprintf("on crid %d (%s), %d pages inherited", r.ParentCRID, r.Incremental, r.InheritedPages)
		}
		merged := ""
		if len(r.Merged) > 0 {
			merged = fmt.Sprintf("; merged %v into the next", r.Merged)
		}
		fmt.Fprintf(g.stdout, "crid %d: pid %d, %s, frozen %.3f ms, %d pages stored in %.3f s%s\n",
			r.CRID, r.PID, how, r.FreezeSeconds*1e3, r.PagesWritten, r.TotalSeconds, merged)
	})
	if ctx.Err() != nil {
		g.progress("stopped; the checkpoints taken stay in the daemon's memory (crbpf images ls)")
		return nil
	}
	if err != nil {
		return daemonErr(err)
	}
	g.progress("%d checkpoints, ended: %s; kept in memory: %v", end.Checkpoints, end.Reason, end.Kept)
	return nil
}

// incrementalHow says how an incremental checkpoint found unchanged pages.
func incrementalHow(kind string) string {
	switch kind {
	case "tracked":
		return "the write tracking kept armed since the parent"
	case "hash":
		return "comparing page hashes with the parent's"
	}
	return kind
}

// daemonErr maps a daemon's refusal to the CLI's exit codes.
func daemonErr(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	code := exitFailure
	switch ae.Code {
	case api.CodeBadRequest:
		code = exitUsage
	case api.CodeGone:
		code = exitTargetGone
	case api.CodeForbidden:
		code = exitPrivilege
	case api.CodeRefused:
		code = exitUnsupported
	case api.CodeNotFound:
		code = exitBadImage
	}
	return &exitError{code: code, err: fmt.Errorf("daemon: %s", ae.Message)}
}
