package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/procfs"
	"golang.org/x/sys/unix"
)

// errConnDone ends a connection whose continuous checkpoints are over:
// the connection was their lifetime.
var errConnDone = errors.New("continuous checkpoints ended")

// DefaultKeep is how many continuous checkpoints are kept when the request
// does not say.
const DefaultKeep = 10

// continuous takes in-memory checkpoints of pid every req.Every, each
// incremental on the one before, with write tracking kept armed between
// them, and keeps at most req.Keep by merging the oldest into the next. It
// ends when the process exits, the client closes the connection, the daemon
// stops, or a checkpoint fails; then protection is removed from the target.
func (d *Daemon) continuous(ctx context.Context, c *client, req *api.Request, pid int, st *procfs.Status) error {
	every, err := time.ParseDuration(req.Every)
	switch {
	case err != nil || every <= 0:
		return c.fail(api.CodeBadRequest, fmt.Errorf("every %q is not a positive duration", req.Every))
	case !req.InMemory:
		return c.fail(api.CodeBadRequest, errors.New("continuous checkpoints are kept in memory (in_memory, no dir)"))
	case req.Kill || req.Self:
		return c.fail(api.CodeBadRequest, errors.New("continuous checkpoints take neither kill nor self"))
	case req.Keep < 0 || req.Keep == 1:
		return c.fail(api.CodeBadRequest, fmt.Errorf("keep %d: keep at least 2 (a base and one increment)", req.Keep))
	}
	keep := req.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	var parent *checkpoint.Parent
	if req.Parent != "" {
		var code string
		if parent, code, err = d.parent(c, req); err != nil {
			return c.fail(code, err)
		}
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return c.fail(api.CodeGone, fmt.Errorf("pid %d: %w", pid, os.NewSyscallError("pidfd_open", err)))
	}
	defer unix.Close(pidfd)

	// The connection is the job's lifetime: the client sends nothing more,
	// so a read returning means it is gone.
	dctx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var b [1]byte
		c.conn.Read(b[:])
		cancel()
	}()

	// The tracking is the daemon's for this pid: a process has one
	// userfaultfd tracking it. Continuous checkpoints remove it when they
	// end, whatever the daemon keeps otherwise.
	defer func() {
		d.ckptMu.Lock()
		defer d.ckptMu.Unlock()
		if t := d.tracking[pid]; t != nil {
			t0 := time.Now()
			t.Close()
			delete(d.tracking, pid)
			d.log.Debug("continuous checkpoints: write protection removed", "pid", pid, "duration", time.Since(t0))
		}
	}()
	// Once the reader above runs, the connection cannot carry another
	// request: every way out ends it.
	fail := func(code string, err error) error {
		c.fail(code, err)
		return errConnDone
	}
	var kept []uint64 // this job's chain in memory, oldest first
	end := func(reason string, n int) error {
		d.log.Info("continuous checkpoints ended", "pid", pid, "checkpoints", n, "reason", reason)
		c.send(api.Response{OK: true, Continuous: &api.ContinuousEnd{Checkpoints: n, Kept: kept, Reason: reason}})
		return errConnDone
	}
	next := time.Now()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return end(stopReason(dctx), n)
		case <-exited(ctx, pidfd, time.Until(next)):
			if ctx.Err() != nil {
				return end(stopReason(dctx), n)
			}
			return end(fmt.Sprintf("pid %d exited", pid), n)
		case <-time.After(time.Until(next)):
		}
		next = time.Now().Add(every)
		if n > 0 {
			dir, ok := d.store.get(kept[len(kept)-1])
			if !ok {
				return fail(api.CodeFailed, fmt.Errorf("continuous checkpoints: crid %d was dropped; they need it as the next parent", kept[len(kept)-1]))
			}
			ch, err := chain.Load(dir.dir, chain.OnDisk)
			if err != nil {
				return fail(api.CodeFailed, err)
			}
			parent = &checkpoint.Parent{Chain: ch}
		}
		if st, err = procfs.ReadStatus(pid); err != nil {
			return end(fmt.Sprintf("pid %d exited", pid), n)
		}
		out, code, err := d.once(ctx, c, req, pid, st, parent, true)
		if err != nil {
			if code == api.CodeGone || !alive(pidfd) {
				return end(fmt.Sprintf("pid %d exited", pid), n)
			}
			if ctx.Err() != nil {
				return end(stopReason(dctx), n)
			}
			return fail(code, fmt.Errorf("continuous checkpoint %d of pid %d: %w", n+1, pid, err))
		}
		kept = append(kept, out.CRID)
		for len(kept) > keep {
			if err := d.merge(kept[0], kept[1]); err != nil {
				return fail(api.CodeFailed, fmt.Errorf("continuous checkpoints: merge crid %d into %d: %w", kept[0], kept[1], err))
			}
			out.Merged = append(out.Merged, kept[0])
			kept = kept[1:]
		}
		crid := out.CRID
		if err := c.send(api.Response{Event: "checkpoint", OK: true, CRID: &crid, Checkpoint: out}); err != nil {
			return errors.Join(errConnDone, err)
		}
	}
}

// stopReason says why a job whose context ended stopped; daemon is the
// daemon's context.
func stopReason(daemon context.Context) string {
	if daemon.Err() != nil {
		return "the daemon is stopping"
	}
	return "the client closed the connection"
}

// exited returns a channel closed when the process behind pidfd exits
// within d (or ctx ends); nil waits forever.
func exited(ctx context.Context, pidfd int, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		deadline := time.Now().Add(d)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			wait := min(time.Until(deadline), 200*time.Millisecond)
			if n, _ := unix.Poll(fds, int(wait.Milliseconds())+1); n > 0 {
				close(ch)
				return
			}
		}
	}()
	return ch
}

// keptTracking returns the tracking kept for pid, making an empty one.
// Precondition: d.ckptMu held.
func (d *Daemon) keptTracking(pid int) *checkpoint.Tracking {
	t := d.tracking[pid]
	if t == nil {
		t = &checkpoint.Tracking{}
		d.tracking[pid] = t
	}
	return t
}

// settleTracking forgets pid's tracking if the checkpoint did not keep it,
// and otherwise makes sure it is removed when the process exits.
// Precondition: d.ckptMu held.
func (d *Daemon) settleTracking(pid int) {
	t := d.tracking[pid]
	if t == nil {
		return
	}
	if !t.Active() {
		delete(d.tracking, pid)
		return
	}
	if t.Watched {
		return
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil { // gone already
		t.Close()
		delete(d.tracking, pid)
		return
	}
	t.Watched = true
	d.reapers.Add(1)
	go func() {
		defer d.reapers.Done()
		defer unix.Close(pidfd)
		for {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, 500); n > 0 || (err != nil && err != unix.EINTR) {
				break
			}
			d.ckptMu.Lock()
			still := d.tracking[pid] == t
			d.ckptMu.Unlock()
			if !still {
				return
			}
		}
		d.ckptMu.Lock()
		defer d.ckptMu.Unlock()
		if d.tracking[pid] == t {
			t.Close()
			delete(d.tracking, pid)
			d.log.Debug("process exited: its write tracking is closed", "pid", pid)
		}
	}()
}

// alive reports whether the process behind pidfd has not exited.
func alive(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n == 0
}

// merge makes the in-memory image next (whose parent is oldest)
// self-contained and drops oldest: the chain gets one link shorter and
// every image that builds on next stays valid (same crid and id). It folds
// next onto oldest's pages file (copying only next's pages) and squashes
// (copying all) when that would keep too much dead data.
func (d *Daemon) merge(oldest, next uint64) error {
	e, ok := d.store.get(next)
	if !ok {
		return fmt.Errorf("crid %d is gone", next)
	}
	ch, err := chain.Load(e.dir, chain.OnDisk)
	if err != nil {
		return err
	}
	// Folding copies only next's own pages (the parent's pages file is
	// reused); squashing copies everything, once dead data piles up.
	tmp := d.store.tmpDir()
	t0 := time.Now()
	how := "folded"
	if _, err := chain.Fold(ch, tmp); err != nil {
		os.RemoveAll(tmp)
		d.log.Debug("continuous checkpoints: squash instead of fold", "crid", next, "why", err)
		how = "squashed"
		if _, err := chain.Squash(ch, tmp); err != nil {
			return err
		}
	}
	d.log.Debug("continuous checkpoints: merged", "crid", oldest, "into", next, "how", how, "duration", time.Since(t0))
	if err := d.store.replace(next, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := d.store.drop(oldest); err != nil {
		return err
	}
	d.updateInMemory()
	return nil
}

// replace puts the complete image directory from in place of the image
// crid (atomically: renameat2 RENAME_EXCHANGE), which then has no parent.
func (s *store) replace(crid uint64, from string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[crid]
	if !ok {
		return fmt.Errorf("no in-memory image with crid %d", crid)
	}
	fi, err := os.Stat(filepath.Join(from, "pages.crbpf"))
	if err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, e.dir, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("replace image %d: %w", crid, os.NewSyscallError("renameat2", err))
	}
	os.RemoveAll(from) // the old image, now at from
	s.bytes += uint64(fi.Size())
	s.bytes -= min(e.bytes, s.bytes)
	e.bytes, e.parent = uint64(fi.Size()), 0
	return nil
}
