package main

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/spf13/cobra"
)

type checkpointOutput struct {
	CRID          uint64   `json:"crid"`
	Image         string   `json:"image"`
	PID           int      `json:"pid"`
	FreezeSeconds float64  `json:"freeze_seconds"`
	TotalSeconds  float64  `json:"total_seconds"`
	PagesWritten  uint64   `json:"pages_written"`
	BytesWritten  uint64   `json:"bytes_written"`
	Killed        bool     `json:"killed"`
	Warnings      []string `json:"warnings,omitempty"`
}

func newCheckpointCmd(g *globals) *cobra.Command {
	var (
		out    string
		kill   bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "checkpoint [flags] PID",
		Short: "Write an image of a running process",
		Long: `Stops the process, writes its memory, registers and kernel state to an image
directory, and resumes it unchanged (or, with --kill, ends it once the image is
complete and on disk). Every checkpoint gets a crid, a unique increasing id.

The target must be single-threaded, without children, and use only regular
files, directories, character devices, and a terminal or pipes on fds 0-2.
Anything else is refused before the target is touched (exit code 5).
If crbpf fails or is interrupted (SIGINT/SIGTERM) after stopping the target,
the target is put back exactly as it was and keeps running.`,
		Example: `  crbpf checkpoint 1234
  crbpf checkpoint -o /tmp/img --kill 1234
  crbpf checkpoint --json 1234 | jq .crid`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return usageErr("PID must be a positive number, got %q", args[0])
			}
			counter, err := g.counter()
			if err != nil {
				return err
			}
			tr := ptrace.NewTracer()
			defer tr.Close()
			res, err := checkpoint.Run(cmd.Context(), tr, checkpoint.Options{
				PID: pid, Dir: out, Kill: kill, Version: crbpfVersion(), Log: g.logger(),
				NewCRID: counter.Next,
			})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				g.progress("warning: %s", w)
			}
			abs, _ := filepath.Abs(res.Image)
			o := checkpointOutput{CRID: res.CRID, Image: abs, PID: res.PID, FreezeSeconds: res.Freeze.Seconds(),
				TotalSeconds: res.Total.Seconds(), PagesWritten: res.Pages, BytesWritten: res.Bytes,
				Killed: res.Killed, Warnings: res.Warnings}
			if asJSON {
				return g.printJSON(o)
			}
			state := "resumed"
			if res.Killed {
				state = "killed"
			}
			fmt.Fprintf(g.stdout, "crid %d: pid %d checkpointed to %s (%s; frozen %.1f ms; %d pages, %d bytes)\n",
				o.CRID, o.PID, abs, state, o.FreezeSeconds*1e3, o.PagesWritten, o.BytesWritten)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image directory to create (default ./crbpf-<crid>)")
	cmd.Flags().BoolVar(&kill, "kill", false, "end the process once the image is complete")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}
