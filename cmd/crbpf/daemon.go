package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/client"
	"github.com/crbpf/crbpf/daemon"
	"github.com/spf13/cobra"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var cfg daemon.Config
	var limit string
	cmd := &cobra.Command{
		Use:   "daemon [flags]",
		Short: "Serve checkpoints and restarts, keep images in memory, export metrics",
		Long: `crbpf daemon takes checkpoints and restarts processes for clients on a unix
socket, keeps images in memory by crid, and serves Prometheus metrics on
/metrics (and /healthz) over HTTP.

The CLI uses a running daemon for checkpoint, for restart CRID and for images
ls/save/drop: through --socket, or the default socket when a daemon answers
there. The protocol (one line of JSON per request) is in docs/daemon.md.

Any user may connect. Root may do everything; another user may checkpoint
only its own processes (and itself), write images only into its own
directories, and restart, save or drop only images it made.

After a checkpoint the daemon keeps write tracking (userfaultfd write-protect)
armed on the process, until its next checkpoint or its exit: a checkpoint
with --parent on the previous one then copies only the pages written since,
without reading or comparing the rest. The cost to the process is one minor
fault on the first write to each page after a checkpoint. --no-keep-tracking
removes the protection at the end of each checkpoint instead.

SIGTERM or SIGINT stop it cleanly: checkpoints in flight are rolled back
(their targets keep running, untouched), in-memory images are dropped,
restored processes keep running.`,
		Example: `  crbpf daemon
  crbpf daemon --memory-limit 8GiB --memory-policy evict-oldest
  crbpf daemon --socket /tmp/crbpf.sock --metrics-addr 127.0.0.1:9464 --ready-file /tmp/ready`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit != "" {
				n, err := parseSize(limit)
				if err != nil {
					return usageErr("--memory-limit: %v", err)
				}
				cfg.MemoryLimit = n
			}
			cfg.Socket = g.socketPath()
			cfg.StateDir = g.stateDir
			cfg.Version, cfg.Revision = crbpfVersion(), revision()
			cfg.Log = g.daemonLogger()
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "HTTP address for /metrics and /healthz (empty: none)")
	cmd.Flags().StringVar(&cfg.ReadyFile, "ready-file", "", "write this file once the socket listens and eBPF is attached")
	cmd.Flags().StringVar(&cfg.ImageDir, "image-dir", "", "tmpfs directory for in-memory images (default: a private one under /dev/shm)")
	cmd.Flags().StringVar(&limit, "memory-limit", "", "budget for in-memory images, e.g. 4GiB (default: none)")
	cmd.Flags().BoolVar(&cfg.NoKeepTracking, "no-keep-tracking", false, "remove write tracking from a process after each checkpoint instead of keeping it for the next")
	cmd.Flags().StringVar(&cfg.MemoryPolicy, "memory-policy", daemon.PolicyRefuse, "when a checkpoint does not fit: refuse it, or evict-oldest images")
	return cmd
}

// parseSize reads a byte count: a number with an optional K, M, G, T
// suffix (powers of 1024; KiB, MiB... and KB, MB... say the same).
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	u := strings.ToUpper(t)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
		{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(u, suf.s) {
			mult, t = suf.m, strings.TrimSpace(t[:len(t)-len(suf.s)])
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size like 512MiB or 4GiB", s)
	}
	if n > ^uint64(0)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// socketPath is --socket, CRBPF_SOCKET or the default.
func (g *globals) socketPath() string {
	if g.socket != "" {
		return g.socket
	}
	if s := os.Getenv("CRBPF_SOCKET"); s != "" {
		return s
	}
	return api.DefaultSocket
}

// daemonClient connects to the daemon. With required false it returns nil
// (and no error) when no daemon answers on the default socket; a socket
// given with --socket or CRBPF_SOCKET must answer.
func (g *globals) daemonClient(required bool) (*client.Client, error) {
	explicit := g.socket != "" || os.Getenv("CRBPF_SOCKET") != ""
	c, err := client.Dial(g.socketPath())
	if err != nil {
		if !required && !explicit {
			return nil, nil
		}
		return nil, fmt.Errorf("%w (is `crbpf daemon` running? --socket says where)", err)
	}
	return c, nil
}
