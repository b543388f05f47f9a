package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/crid"
	"github.com/crbpf/crbpf/loader"
	"github.com/crbpf/crbpf/metrics"
	"golang.org/x/sys/unix"
)

// Config is what a daemon needs.
type Config struct {
	Socket      string // unix socket to serve the protocol on
	MetricsAddr string // HTTP address for /metrics and /healthz; empty: none
	ReadyFile   string // written once the socket listens and eBPF is attached; empty: none
	StateDir    string // the crid counter's directory
	// ImageDir is where in-memory images live: a directory on tmpfs.
	// Empty: a private directory under /dev/shm, removed at exit.
	ImageDir     string
	MemoryLimit  uint64 // bytes of in-memory images; 0: no limit
	MemoryPolicy string // PolicyRefuse (default) or PolicyEvict
	// NoKeepTracking removes write protection from a process at the end of
	// each checkpoint instead of keeping it armed for the next one.
	NoKeepTracking bool
	Version        string
	Revision       string
	Log            *slog.Logger
}

// Daemon serves checkpoints and restarts to clients. See the package doc.
type Daemon struct {
	cfg            Config
	log            *slog.Logger
	counter        *crid.Counter
	store          *store
	metrics        *metrics.Set
	telemetry      *loader.Tracker // nil when eBPF is unavailable
	telemetryState string
	started        time.Time

	ckptMu sync.Mutex // one checkpoint at a time: they share the eBPF counters
	// tracking is the write tracking kept armed per pid between
	// checkpoints; guarded by ckptMu.
	tracking map[int]*checkpoint.Tracking

	ops     sync.WaitGroup // requests in flight
	conns   sync.Map       // net.Conn -> struct{}: open connections, closed at shutdown
	reapers sync.WaitGroup // goroutines waiting for restored processes
}

// New checks cfg and prepares a daemon; Run serves.
func New(cfg Config) (*Daemon, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Socket == "" {
		return nil, errors.New("daemon: no socket path")
	}
	switch cfg.MemoryPolicy {
	case "":
		cfg.MemoryPolicy = PolicyRefuse
	case PolicyRefuse, PolicyEvict:
	default:
		return nil, fmt.Errorf("daemon: memory policy %q: want %s or %s", cfg.MemoryPolicy, PolicyRefuse, PolicyEvict)
	}
	counter, err := crid.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, log: cfg.Log, counter: counter, tracking: map[int]*checkpoint.Tracking{}}, nil
}

// Run serves until ctx is done, then shuts down cleanly: it stops
// accepting, cancels the requests in flight (a checkpoint rolls its target
// back: nothing is left stopped or write-protected), waits for them,
// drops the in-memory images and removes the socket and ready file.
func (d *Daemon) Run(ctx context.Context) (err error) {
	d.started = time.Now()
	imgDir := d.cfg.ImageDir
	if imgDir == "" {
		if imgDir, err = os.MkdirTemp("/dev/shm", "crbpf-daemon-"); err != nil {
			return fmt.Errorf("daemon: in-memory image directory: %w", err)
		}
		defer os.RemoveAll(imgDir)
	} else if err := os.MkdirAll(imgDir, 0o700); err != nil {
		return fmt.Errorf("daemon: in-memory image directory: %w", err)
	}
	if err := os.Chmod(imgDir, 0o700); err != nil {
		return fmt.Errorf("daemon: in-memory image directory: %w", err)
	}
	d.store = newStore(imgDir, d.cfg.MemoryLimit, d.cfg.MemoryPolicy)

	lt, lerr := loader.Load(loader.Options{Logger: d.log})
	if lerr != nil {
		d.telemetryState = "reduced: " + lerr.Error()
		d.log.Warn("eBPF telemetry unavailable; write tracking works without it", "err", lerr)
	} else {
		d.telemetry = lt
		d.telemetryState = "ebpf"
		defer lt.Close()
	}
	var src metrics.EBPFSource
	if d.telemetry != nil {
		src = func() (metrics.EBPFCounters, error) {
			n, err := d.telemetry.Counters()
			return metrics.EBPFCounters{Seen: n.Seen, Emitted: n.Emitted, Dropped: n.Dropped,
				WriteFaults: n.WriteFaultsUser + n.WriteFaultsKernel, ASChanges: n.ASChanges}, err
		}
	}
	d.metrics = metrics.New(metrics.BuildInfo{Version: d.cfg.Version, Revision: d.cfg.Revision}, src)
	if last, err := d.counter.Last(); err == nil && last > 0 {
		d.metrics.SetLastCRID(last)
	}

	ln, err := listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(d.cfg.Socket)

	var httpSrv *http.Server
	if d.cfg.MetricsAddr != "" {
		hl, err := net.Listen("tcp", d.cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("daemon: metrics address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.metrics.Handler())
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		})
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go httpSrv.Serve(hl)
		d.log.Info("metrics", "addr", hl.Addr().String())
	}
	if d.cfg.ReadyFile != "" {
		if err := writeReady(d.cfg.ReadyFile, d.cfg.Socket); err != nil {
			ln.Close()
			return err
		}
		defer os.Remove(d.cfg.ReadyFile)
	}
	d.log.Info("serving", "socket", d.cfg.Socket, "images", imgDir, "telemetry", d.telemetryState)

	opCtx, cancelOps := context.WithCancelCause(context.Background())
	defer cancelOps(errShutdown)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			uc := c.(*net.UnixConn)
			d.conns.Store(uc, struct{}{})
			d.ops.Add(1)
			go func() {
				defer d.ops.Done()
				defer d.conns.Delete(uc)
				defer uc.Close()
				d.serveConn(opCtx, uc)
			}()
		}
	}()

	<-ctx.Done()
	d.log.Info("shutting down")
	ln.Close()
	<-acceptDone
	cancelOps(errShutdown)
	d.conns.Range(func(k, _ any) bool {
		// Unblock reads of idle connections; requests in flight see the
		// cancellation and answer before their connection goes.
		k.(*net.UnixConn).CloseRead()
		return true
	})
	d.ops.Wait()
	d.ckptMu.Lock()
	for pid, t := range d.tracking {
		t.Close()
		delete(d.tracking, pid)
	}
	d.ckptMu.Unlock()
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		httpSrv.Shutdown(sctx)
		cancel()
	}
	return nil
}

// errShutdown is why the requests in flight are cancelled when the daemon
// stops.
var errShutdown = errors.New("the daemon is shutting down")

// listen binds the socket, replacing a stale one (no daemon answers on it)
// and refusing to take over a live one. The socket is open to every user:
// who may do what is decided per request from SO_PEERCRED.
func listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("daemon: socket directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("daemon: another daemon is serving %s", path)
	} else if _, serr := os.Lstat(path); serr == nil {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("daemon: remove stale socket: %w", err)
		}
	}
	old := unix.Umask(0o111)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// writeReady writes the ready file atomically.
func writeReady(path, socket string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(socket+"\n"), 0o644); err != nil {
		return fmt.Errorf("daemon: ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("daemon: ready file: %w", err)
	}
	return nil
}
