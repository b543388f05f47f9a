// Command crbpf checkpoints Linux processes to images and restarts them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/crid"
	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/restore"
	"github.com/spf13/cobra"
)

// Exit codes, documented in the root command's help.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitTargetGone  = 3
	exitPrivilege   = 4
	exitUnsupported = 5
	exitBadImage    = 7
)

const exitCodesHelp = `Exit codes:
  0  success
  1  failure (details on stderr)
  2  usage error (bad flags or arguments)
  3  target gone: no such process, or it exited during the operation
  4  missing privilege or kernel feature (the message names it)
  5  unsupported target state: crbpf refused and left the target untouched
  7  bad image: not an image, truncated, corrupt, or from another kernel
  restart in the foreground exits with the restored process's status
  (128+N when it was killed by signal N).`

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func crbpfVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

type globals struct {
	stateDir        string
	verbose         bool
	metricsTextfile string
	socket          string
	stdout          io.Writer
	stderr          io.Writer
}

// daemonLogger logs at info level (debug with -v) to stderr.
func (g *globals) daemonLogger() *slog.Logger {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

func (g *globals) counter() (*crid.Counter, error) {
	return crid.Open(g.stateDir)
}

func (g *globals) printJSON(v any) error {
	// One line: with restart --detach the restored process may write to
	// the same stdout right after it.
	return json.NewEncoder(g.stdout).Encode(v)
}

func (g *globals) progress(format string, args ...any) {
	fmt.Fprintf(g.stderr, format+"\n", args...)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "crbpf",
		Short: "Checkpoint and restart Linux processes",
		Long: `crbpf checkpoints a running Linux process to an image directory and later
restarts it from that image, in a new process, where it left off.

` + exitCodesHelp,
		Example: `  crbpf checkpoint 1234            # image in ./crbpf-<crid>, process keeps running
  crbpf checkpoint --kill -o img 1234
  crbpf restart img                 # runs it in the foreground
  crbpf images show img
  crbpf check`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       crbpfVersion(),
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", crid.StateDirFromEnv(),
		"directory holding the crid counter (env CRBPF_STATE_DIR)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log each step to stderr")
	root.PersistentFlags().StringVar(&g.metricsTextfile, "metrics-textfile", "",
		"add this run's figures (checkpoints, restarts, crids, durations) to a node_exporter textfile-collector `FILE`")
	root.PersistentFlags().StringVar(&g.socket, "socket", "",
		"the crbpf daemon's socket (env CRBPF_SOCKET; default "+api.DefaultSocket+", used when a daemon answers there)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w\n%s", err, c.UsageString())}
	})
	root.AddCommand(newCheckpointCmd(g), newRestartCmd(g), newImagesCmd(g), newCheckCmd(g), newDemoCmd(g), newDaemonCmd(g))
	return root
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"):
		return exitUsage
	case errors.Is(err, checkpoint.ErrTargetGone):
		return exitTargetGone
	case errors.Is(err, checkpoint.ErrPermission):
		return exitPrivilege
	case errors.Is(err, checkpoint.ErrUnsupportedState):
		return exitUnsupported
	case errors.Is(err, restore.ErrIncompatible), isImageError(err):
		return exitBadImage
	}
	return exitFailure
}

func isImageError(err error) bool {
	for _, e := range []error{image.ErrNotImage, image.ErrVersion, image.ErrCorrupt, image.ErrTruncated, image.ErrInvalid, chain.ErrBroken} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with the usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageErr("%v\nusage: %s", err, cmd.UseLine())
		}
		return nil
	}
}

// usageErr marks an argument error.
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	g := &globals{stdout: os.Stdout, stderr: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := newRoot(g)
	err := root.ExecuteContext(ctx)
	var ee *exitError
	if err != nil && !(errors.As(err, &ee) && ee.err == nil) {
		fmt.Fprintf(os.Stderr, "crbpf: %v\n", err)
	}
	stop()
	os.Exit(exitCode(err))
}
