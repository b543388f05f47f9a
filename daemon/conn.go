package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/crbpf/crbpf/api"
	"golang.org/x/sys/unix"
)

// maxLine bounds a request line.
const maxLine = 64 << 10

// client is one connection and who is on the other end.
type client struct {
	conn *net.UnixConn
	cred *unix.Ucred
	buf  []byte // bytes read past the last line
	fds  []int  // fds received and not yet claimed by a request
}

// root reports whether the client is root (uid 0), who may do anything.
func (c *client) root() bool { return c.cred.Uid == 0 }

// send writes one response line.
func (c *client) send(r api.Response) error {
	r.V = api.Version
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = c.conn.Write(append(b, '\n'))
	return err
}

// fail sends a failed final response.
func (c *client) fail(code string, err error) error {
	return c.send(api.Response{Code: code, Error: err.Error()})
}

// readLine reads the next request line and the fds that came with it.
func (c *client) readLine() ([]byte, []int, error) {
	oob := make([]byte, unix.CmsgSpace(4*16))
	for {
		if i := bytes.IndexByte(c.buf, '\n'); i >= 0 {
			line := c.buf[:i]
			c.buf = c.buf[i+1:]
			fds := c.fds
			c.fds = nil
			return line, fds, nil
		}
		if len(c.buf) > maxLine {
			return nil, nil, fmt.Errorf("request line longer than %d bytes", maxLine)
		}
		p := make([]byte, 4096)
		n, oobn, _, _, err := c.conn.ReadMsgUnix(p, oob)
		if oobn > 0 {
			fds, perr := parseRights(oob[:oobn])
			c.fds = append(c.fds, fds...)
			if perr != nil {
				return nil, nil, perr
			}
		}
		c.buf = append(c.buf, p[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) && len(c.buf) > 0 {
				return nil, nil, io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, nil, io.EOF
		}
	}
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		for _, fd := range f {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, f...)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// serveConn answers the requests of one connection until it closes.
func (d *Daemon) serveConn(ctx context.Context, conn *net.UnixConn) {
	cred, err := peerCred(conn)
	if err != nil {
		d.log.Warn("connection without peer credentials", "err", err)
		return
	}
	c := &client{conn: conn, cred: cred}
	for {
		line, fds, err := c.readLine()
		if err != nil {
			closeFDs(fds)
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				c.fail(api.CodeBadRequest, err)
			}
			return
		}
		var req api.Request
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			closeFDs(fds)
			c.fail(api.CodeBadRequest, fmt.Errorf("request is not a protocol line: %w", err))
			continue
		}
		if req.V != api.Version {
			closeFDs(fds)
			c.fail(api.CodeVersion, fmt.Errorf("protocol version %d: this daemon speaks %d", req.V, api.Version))
			continue
		}
		if ctx.Err() != nil {
			closeFDs(fds)
			c.fail(api.CodeShutdown, errShutdown)
			return
		}
		d.log.Debug("request", "op", req.Op, "uid", cred.Uid, "pid", cred.Pid)
		if err := d.handle(ctx, c, &req, fds); err != nil {
			d.log.Debug("connection ends", "err", err)
			return
		}
	}
}

// handle runs one request; it owns fds. An error ends the connection.
func (d *Daemon) handle(ctx context.Context, c *client, req *api.Request, fds []int) error {
	if req.Op != api.OpRestart {
		if len(fds) > 0 {
			closeFDs(fds)
			return c.fail(api.CodeBadRequest, fmt.Errorf("%s takes no file descriptors", req.Op))
		}
	}
	switch req.Op {
	case api.OpStatus:
		return c.send(api.Response{OK: true, Status: d.status()})
	case api.OpCheckpoint:
		return d.checkpoint(ctx, c, req)
	case api.OpRestart:
		return d.restart(ctx, c, req, fds)
	case api.OpList:
		return d.list(c)
	case api.OpDrop:
		return d.drop(c, req)
	case api.OpSave:
		return d.save(c, req)
	}
	return c.fail(api.CodeBadRequest, fmt.Errorf("unknown operation %q", req.Op))
}

func (d *Daemon) status() *api.Status {
	n, b := d.store.usage()
	return &api.Status{Version: d.cfg.Version, PID: os.Getpid(), UptimeSeconds: time.Since(d.started).Seconds(),
		Images: n, Bytes: b, MemoryLimit: d.cfg.MemoryLimit, MemoryPolicy: d.cfg.MemoryPolicy,
		Telemetry: d.telemetryState}
}
