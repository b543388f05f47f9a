package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/crbpf/crbpf/api"
	"github.com/crbpf/crbpf/chain"
	"github.com/crbpf/crbpf/checkpoint"
	"github.com/crbpf/crbpf/metrics"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/restore"
	"golang.org/x/sys/unix"
)

// ResultOf classifies a checkpoint's outcome for the metrics.
func ResultOf(err error) string {
	switch {
	case err == nil:
		return metrics.ResultOK
	case errors.Is(err, context.Canceled):
		return metrics.ResultInterrupted
	case errors.Is(err, checkpoint.ErrUnsupportedState), errors.Is(err, checkpoint.ErrPermission):
		return metrics.ResultRefused
	}
	return metrics.ResultError
}

// CheckpointMetrics is what a checkpoint (res is nil when err is not)
// tells the metrics; took is its wall time when it failed.
func CheckpointMetrics(res *checkpoint.Result, err error, took time.Duration) metrics.Checkpoint {
	m := metrics.Checkpoint{Result: ResultOf(err), Duration: took}
	if res == nil {
		return m
	}
	m.Mode, m.Duration, m.Freeze = res.Mode, res.Total, res.Freeze
	m.PagesWritten, m.BytesWritten = res.Pages, res.Bytes
	for _, r := range res.Rounds {
		m.Rounds = append(m.Rounds, metrics.Round{DirtyPages: r.DirtyPages, Bytes: r.Bytes, Duration: r.Duration})
	}
	return m
}

// codeOf is the protocol code of a checkpoint or restart failure.
func codeOf(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return api.CodeShutdown
	case errors.Is(err, checkpoint.ErrUnsupportedState):
		return api.CodeRefused
	case errors.Is(err, checkpoint.ErrTargetGone):
		return api.CodeGone
	}
	return api.CodeFailed
}

// ownedDir checks that a non-root client may create path: its parent is a
// directory (not a symlink) of the client's.
func ownedDir(path string, uid uint32) error {
	parent := filepath.Dir(path)
	var st unix.Stat_t
	if err := unix.Lstat(parent, &st); err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != uid {
		return fmt.Errorf("%s is not a directory of yours (uid %d): the daemon writes images only where you could", parent, uid)
	}
	return nil
}

// chownTree gives dir and the files in it to uid:gid.
func chownTree(dir string, uid, gid uint32) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Lchown(filepath.Join(dir, e.Name()), int(uid), int(gid)); err != nil {
			return err
		}
	}
	return os.Lchown(dir, int(uid), int(gid))
}

func (d *Daemon) checkpoint(ctx context.Context, c *client, req *api.Request) error {
	uid := c.cred.Uid
	pid := req.PID
	if req.Self {
		if req.PID != 0 && req.PID != int(c.cred.Pid) {
			return c.fail(api.CodeBadRequest, fmt.Errorf("self checkpoint of pid %d, but you are pid %d", req.PID, c.cred.Pid))
		}
		pid = int(c.cred.Pid)
	}
	switch {
	case pid <= 0:
		return c.fail(api.CodeBadRequest, errors.New("checkpoint: which pid?"))
	case req.InMemory == (req.Dir != ""):
		return c.fail(api.CodeBadRequest, errors.New("checkpoint: give either in_memory or dir"))
	case req.Dir != "" && !filepath.IsAbs(req.Dir):
		return c.fail(api.CodeBadRequest, fmt.Errorf("checkpoint: dir %q is not an absolute path", req.Dir))
	}
	if req.Precopy != "" && req.Precopy != "auto" {
		if n, err := strconv.Atoi(req.Precopy); err != nil || n < 0 {
			return c.fail(api.CodeBadRequest, fmt.Errorf("precopy wants a number of rounds or auto, got %q", req.Precopy))
		}
	}
	if req.MaxDowntime != "" {
		if v, err := time.ParseDuration(req.MaxDowntime); err != nil || v <= 0 {
			return c.fail(api.CodeBadRequest, fmt.Errorf("max_downtime %q is not a positive duration", req.MaxDowntime))
		}
	}
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return c.fail(api.CodeGone, fmt.Errorf("pid %d: %w", pid, err))
	}
	if !c.root() && !req.Self && (uint32(st.Uid[0]) != uid || uint32(st.Uid[1]) != uid) {
		return c.fail(api.CodeForbidden, fmt.Errorf("pid %d runs as uid %d; you (uid %d) may checkpoint only your own processes", pid, st.Uid[1], uid))
	}
	if req.Dir != "" && !c.root() {
		if err := ownedDir(req.Dir, uid); err != nil {
			return c.fail(api.CodeForbidden, err)
		}
	}
	if req.Every != "" {
		return d.continuous(ctx, c, req, pid, st)
	}
	var parent *checkpoint.Parent
	if req.Parent != "" {
		var code string
		var err error
		if parent, code, err = d.parent(c, req); err != nil {
			return c.fail(code, err)
		}
	}
	out, code, err := d.once(ctx, c, req, pid, st, parent, !d.cfg.NoKeepTracking)
	if err != nil {
		return c.fail(code, err)
	}
	crid := out.CRID
	return c.send(api.Response{OK: true, CRID: &crid, Checkpoint: out})
}

// once takes one checkpoint of pid (status st) as req says, on parent if
// not nil. With keep, write tracking stays armed on the process afterwards
// (d.tracking), so that a next checkpoint on this one copies only what was
// written since. It returns the result, or an error with its protocol code.
func (d *Daemon) once(ctx context.Context, c *client, req *api.Request, pid int, st *procfs.Status,
	parent *checkpoint.Parent, keep bool) (*api.CheckpointResult, string, error) {
	uid := c.cred.Uid
	rounds := checkpoint.Auto
	if req.Precopy != "" && req.Precopy != "auto" {
		rounds, _ = strconv.Atoi(req.Precopy) // checked by the caller
	}
	var maxDowntime time.Duration
	if req.MaxDowntime != "" {
		maxDowntime, _ = time.ParseDuration(req.MaxDowntime)
	}
	var parentCRID uint64
	if parent != nil {
		parentCRID = parent.Chain.Tip().Image.Header.CRID
	}
	var evicted []uint64
	dir := req.Dir
	if req.InMemory {
		need := st.RssAnon + st.RssShmem
		ev, err := d.store.reserve(need)
		evicted = ev
		d.updateInMemory()
		if err != nil {
			return nil, api.CodeMemoryLimit, err
		}
		defer d.store.unreserve(need)
		dir = d.store.tmpDir()
	}

	d.ckptMu.Lock()
	defer d.ckptMu.Unlock()
	// A tracking kept from an earlier checkpoint is reused when this one
	// builds on it, and replaced otherwise (checkpoint.Run decides); without
	// keep it is removed here.
	var tracking *checkpoint.Tracking
	if keep {
		tracking = d.keptTracking(pid)
	} else if t := d.tracking[pid]; t != nil {
		t.Close() // one userfaultfd per process: this checkpoint arms its own
		delete(d.tracking, pid)
	}
	defer d.settleTracking(pid)
	tr := ptrace.NewTracer()
	defer tr.Close()
	var issued uint64
	start := time.Now()
	res, err := checkpoint.Run(ctx, tr, checkpoint.Options{
		PID: pid, Dir: dir, Kill: req.Kill, Version: d.cfg.Version, Log: d.log,
		NewCRID: func() (uint64, error) {
			id, err := d.counter.Next()
			if err == nil {
				issued = id
			}
			return id, err
		},
		Precopy: rounds, MaxDowntime: maxDowntime, Telemetry: d.telemetry, Parent: parent, Tracking: tracking,
		SelfConn: req.Self, SelfConnFD: req.SelfFD,
		Progress: func(r checkpoint.Round) {
			if req.Self || req.Every != "" {
				return // the client reads only its answer
			}
			c.send(api.Response{Event: "round", OK: true, Round: &api.Round{Round: r.Index, DirtyPages: r.DirtyPages,
				NewPages: r.NewPages, Bytes: r.Bytes, Seconds: r.Duration.Seconds()}})
		},
	})
	if issued != 0 {
		d.metrics.CRIDIssued(issued)
	}
	d.metrics.ObserveCheckpoint(CheckpointMetrics(res, err, time.Since(start)))
	if err != nil && errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errShutdown) {
		// A checkpoint cut short rolls its target back.
		err = fmt.Errorf("the daemon is shutting down: checkpoint of pid %d abandoned, the process runs on as before (%w)", pid, err)
	}
	if err != nil {
		return nil, codeOf(err), err
	}
	out := &api.CheckpointResult{CRID: res.CRID, PID: pid, InMemory: req.InMemory, FreezeSeconds: res.Freeze.Seconds(),
		TotalSeconds: res.Total.Seconds(), PagesWritten: res.Pages, BytesWritten: res.Bytes, Mode: res.Mode,
		StopReason: res.StopReason, Rounds: len(res.Rounds), Killed: res.Killed, Evicted: evicted,
		ParentCRID: res.ParentCRID, Incremental: res.Incremental, InheritedPages: res.InheritedPages}
	if req.InMemory {
		e := &entry{crid: res.CRID, owner: int(uid), pid: pid, comm: st.Name, created: time.Now(), parent: parentCRID}
		if err := d.store.add(res.Image, e); err != nil {
			os.RemoveAll(res.Image)
			return nil, api.CodeFailed, err
		}
		d.updateInMemory()
	} else {
		out.Image = res.Image
		if !c.root() {
			if err := chownTree(res.Image, uid, c.cred.Gid); err != nil {
				return nil, api.CodeFailed, fmt.Errorf("give image %s to uid %d: %w", res.Image, uid, err)
			}
		}
	}
	return out, "", nil
}

// parent loads the chain of a checkpoint's parent: an in-memory image by
// crid, or an image directory. An image on disk cannot build on one in the
// daemon's memory, which is gone when the daemon exits.
func (d *Daemon) parent(c *client, req *api.Request) (*checkpoint.Parent, string, error) {
	ref := &api.Request{Path: req.Parent}
	if crid, err := strconv.ParseUint(req.Parent, 10, 64); err == nil {
		ref = &api.Request{CRID: crid}
	}
	dir, code, err := d.image(c, ref)
	if err != nil {
		return nil, code, fmt.Errorf("parent: %w", err)
	}
	ch, err := chain.Load(dir, chain.OnDisk)
	if err != nil {
		return nil, api.CodeFailed, fmt.Errorf("parent: %w", err)
	}
	p := &checkpoint.Parent{Chain: ch}
	inStore := func(dir string) bool { return filepath.Dir(dir) == d.store.dir }
	for _, l := range ch.Links {
		if !req.InMemory && inStore(l.Dir) {
			return nil, api.CodeBadRequest, fmt.Errorf("parent: crid %d is kept in the daemon's memory; an image on disk cannot build on it (save it first with crbpf images save %d DIR, or checkpoint --in-memory)",
				l.Image.Header.CRID, l.Image.Header.CRID)
		}
	}
	if req.InMemory && !inStore(dir) {
		p.Hint = dir // absolute: the store is elsewhere
	}
	return p, "", nil
}

func (d *Daemon) updateInMemory() {
	n, b := d.store.usage()
	d.metrics.SetInMemory(n, b)
}

// image resolves a request's image (crid or path) for the client.
func (d *Daemon) image(c *client, req *api.Request) (dir string, code string, err error) {
	uid := c.cred.Uid
	switch {
	case req.CRID != 0 && req.Path != "":
		return "", api.CodeBadRequest, errors.New("give either crid or path")
	case req.CRID != 0:
		e, ok := d.store.get(req.CRID)
		if !ok {
			return "", api.CodeNotFound, fmt.Errorf("no in-memory image with crid %d", req.CRID)
		}
		if !c.root() && e.owner != int(uid) {
			return "", api.CodeForbidden, fmt.Errorf("image %d belongs to uid %d; you (uid %d) may use only images you made", req.CRID, e.owner, uid)
		}
		return e.dir, "", nil
	case req.Path != "":
		if !filepath.IsAbs(req.Path) {
			return "", api.CodeBadRequest, fmt.Errorf("path %q is not absolute", req.Path)
		}
		if !c.root() {
			var st unix.Stat_t
			if err := unix.Lstat(req.Path, &st); err != nil {
				return "", api.CodeNotFound, err
			}
			if st.Uid != uid {
				return "", api.CodeForbidden, fmt.Errorf("%s belongs to uid %d; you (uid %d) may use only images you own", req.Path, st.Uid, uid)
			}
		}
		return req.Path, "", nil
	}
	return "", api.CodeBadRequest, errors.New("which image? give crid or path")
}

func (d *Daemon) restart(ctx context.Context, c *client, req *api.Request, fds []int) error {
	files := make([]*os.File, 0, 3)
	for i, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), "fd"+strconv.Itoa(i)))
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if req.Stdio != (len(files) == 3) || (!req.Stdio && len(files) != 0) {
		return c.fail(api.CodeBadRequest, fmt.Errorf("restart: %d file descriptors; stdio wants exactly 3", len(files)))
	}
	dir, code, err := d.image(c, req)
	if err != nil {
		return c.fail(code, err)
	}
	ch, err := chain.Load(dir, chain.OnDisk)
	if err != nil {
		return c.fail(api.CodeFailed, err)
	}
	img, err := ch.Resolve()
	if err != nil {
		return c.fail(api.CodeFailed, err)
	}
	if !c.root() {
		if cr := img.Task.Creds; cr == nil || cr.UID[0] != c.cred.Uid || cr.UID[1] != c.cred.Uid {
			return c.fail(api.CodeForbidden, fmt.Errorf("the image is of a process of another user; you (uid %d) may restart only your own", c.cred.Uid))
		}
	}
	var stdio [3]*os.File
	if req.Stdio {
		copy(stdio[:], files)
	} else {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return c.fail(api.CodeFailed, err)
		}
		defer null.Close()
		stdio = [3]*os.File{null, null, null}
	}
	tr := ptrace.NewTracer()
	defer tr.Close()
	start := time.Now()
	res, err := restore.Run(ctx, tr, restore.Options{Dir: dir, Image: img, Chain: ch, Log: d.log, Verify: true, Stdio: stdio})
	r := metrics.Restart{Result: metrics.ResultOK, Duration: time.Since(start)}
	if err != nil {
		r.Result = metrics.ResultError
	} else {
		r.Duration = res.Duration
	}
	d.metrics.ObserveRestart(r)
	if err != nil {
		return c.fail(codeOf(err), err)
	}
	exited := d.reap(res.PID)
	if err := c.send(api.Response{OK: true, Restart: &api.RestartResult{PID: res.PID, CRID: img.Header.CRID,
		SamePID: res.SamePID, RestoreSeconds: res.Duration.Seconds()}}); err != nil || !req.Wait {
		return err
	}
	select {
	case code := <-exited:
		return c.send(api.Response{Event: "exit", OK: true, ExitCode: &code})
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reap waits for a restored process (a child of the daemon) and reports
// its exit status as a shell shows it.
func (d *Daemon) reap(pid int) <-chan int {
	ch := make(chan int, 1)
	d.reapers.Add(1)
	go func() {
		defer d.reapers.Done()
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				ch <- -1
				return
			}
			break
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		d.log.Debug("restored process exited", "pid", pid, "status", code)
		ch <- code
	}()
	return ch
}

func (d *Daemon) list(c *client) error {
	owner := int(c.cred.Uid)
	if c.root() {
		owner = -1
	}
	var out []api.Image
	for _, e := range d.store.list(owner) {
		out = append(out, api.Image{CRID: e.crid, PID: e.pid, Comm: e.comm, Bytes: e.bytes,
			Created: e.created.UTC().Format(time.RFC3339), Owner: e.owner, Parent: e.parent})
	}
	if out == nil {
		out = []api.Image{}
	}
	return c.send(api.Response{OK: true, Images: out})
}

func (d *Daemon) drop(c *client, req *api.Request) error {
	if req.CRID == 0 {
		return c.fail(api.CodeBadRequest, errors.New("drop: which crid?"))
	}
	if _, code, err := d.image(c, &api.Request{CRID: req.CRID}); err != nil {
		return c.fail(code, err)
	}
	if err := d.store.drop(req.CRID); err != nil {
		return c.fail(api.CodeRefused, err)
	}
	d.updateInMemory()
	return c.send(api.Response{OK: true})
}

// save copies an in-memory image to a directory.
func (d *Daemon) save(c *client, req *api.Request) error {
	src, code, err := d.image(c, &api.Request{CRID: req.CRID})
	if req.CRID == 0 {
		code, err = api.CodeBadRequest, errors.New("save: which crid?")
	}
	if err != nil {
		return c.fail(code, err)
	}
	if !filepath.IsAbs(req.Dir) {
		return c.fail(api.CodeBadRequest, fmt.Errorf("save: dir %q is not an absolute path", req.Dir))
	}
	if !c.root() {
		if err := ownedDir(req.Dir, c.cred.Uid); err != nil {
			return c.fail(api.CodeForbidden, err)
		}
	}
	// Saved images stand alone: the chain of an incremental image is
	// squashed into it (pages verified on the way).
	ch, err := chain.Load(src, chain.OnDisk)
	if err != nil {
		return c.fail(api.CodeFailed, err)
	}
	if _, err := chain.Squash(ch, req.Dir); err != nil {
		return c.fail(api.CodeFailed, fmt.Errorf("save image: %w", err))
	}
	if !c.root() {
		if err := chownTree(req.Dir, c.cred.Uid, c.cred.Gid); err != nil {
			return c.fail(api.CodeFailed, err)
		}
	}
	crid := req.CRID
	return c.send(api.Response{OK: true, CRID: &crid, Checkpoint: &api.CheckpointResult{CRID: crid, Image: req.Dir}})
}
