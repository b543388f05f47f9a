// Package client talks to a crbpf daemon (see package api for the
// protocol). A Client is one connection; it is not safe for concurrent
// use. Go programs are multi-threaded, which crbpf cannot checkpoint yet,
// so a Go program uses this to checkpoint and restart others; a
// single-threaded C or Python program checkpoints itself with the C helper
// or the Python example under client/.
package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/crbpf/crbpf/api"
	"golang.org/x/sys/unix"
)

// Client is a connection to a daemon.
type Client struct {
	conn *net.UnixConn
	r    *bufio.Reader
}

// Dial connects to the daemon at socket (api.DefaultSocket if empty).
func Dial(socket string) (*Client, error) {
	if socket == "" {
		socket = api.DefaultSocket
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to the crbpf daemon: %w", err)
	}
	return &Client{conn: c, r: bufio.NewReader(c)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Send writes req, with files (for a restart's stdio) as SCM_RIGHTS.
func (c *Client) Send(req api.Request, files ...*os.File) error {
	req.V = api.Version
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	n, _, err := c.conn.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return fmt.Errorf("send to the crbpf daemon: %w", err)
	}
	if n < len(b) {
		_, err = c.conn.Write(b[n:])
	}
	return err
}

// Recv reads the next response line.
func (c *Client) Recv() (api.Response, error) {
	var r api.Response
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		if len(line) == 0 {
			return r, fmt.Errorf("read from the crbpf daemon: %w", err)
		}
		return r, fmt.Errorf("read from the crbpf daemon: truncated answer: %w", err)
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("crbpf daemon answered %q: %w", line, err)
	}
	return r, nil
}

// Do sends req and returns the final response, passing progress lines to
// progress (if not nil). A failed request is returned as an *api.Error.
func (c *Client) Do(req api.Request, progress func(api.Response), files ...*os.File) (api.Response, error) {
	if err := c.Send(req, files...); err != nil {
		return api.Response{}, err
	}
	for {
		r, err := c.Recv()
		if err != nil {
			return r, err
		}
		if r.Event != "" {
			if progress != nil {
				progress(r)
			}
			continue
		}
		return r, r.Err()
	}
}

// Status asks the daemon how it is.
func (c *Client) Status() (*api.Status, error) {
	r, err := c.Do(api.Request{Op: api.OpStatus}, nil)
	if err != nil {
		return nil, err
	}
	if r.Status == nil {
		return nil, errors.New("crbpf daemon: status answer without status")
	}
	return r.Status, nil
}

// Checkpoint takes a checkpoint as req describes (Op is set for you).
func (c *Client) Checkpoint(req api.Request, progress func(api.Round)) (*api.CheckpointResult, error) {
	req.Op = api.OpCheckpoint
	r, err := c.Do(req, func(r api.Response) {
		if progress != nil && r.Round != nil {
			progress(*r.Round)
		}
	})
	if err != nil {
		return nil, err
	}
	if r.Checkpoint == nil {
		return nil, errors.New("crbpf daemon: checkpoint answer without result")
	}
	return r.Checkpoint, nil
}

// Continuous takes checkpoints every req.Every until the process exits or
// the connection is closed (Close), calling each with every checkpoint.
func (c *Client) Continuous(req api.Request, each func(api.CheckpointResult)) (*api.ContinuousEnd, error) {
	req.Op = api.OpCheckpoint
	r, err := c.Do(req, func(r api.Response) {
		if each != nil && r.Checkpoint != nil {
			each(*r.Checkpoint)
		}
	})
	if err != nil {
		return nil, err
	}
	if r.Continuous == nil {
		return nil, errors.New("crbpf daemon: continuous checkpoint answer without result")
	}
	return r.Continuous, nil
}

// Restart restores an image (req.CRID or req.Path); stdio, if not nil,
// become the process's fds 0-2.
func (c *Client) Restart(req api.Request, stdio []*os.File) (*api.RestartResult, error) {
	req.Op = api.OpRestart
	req.Stdio = len(stdio) > 0
	if req.Stdio && len(stdio) != 3 {
		return nil, fmt.Errorf("restart: %d stdio files, want 3", len(stdio))
	}
	r, err := c.Do(req, nil, stdio...)
	if err != nil {
		return nil, err
	}
	if r.Restart == nil {
		return nil, errors.New("crbpf daemon: restart answer without result")
	}
	return r.Restart, nil
}

// WaitExit waits for the "exit" event of a restart sent with Wait.
func (c *Client) WaitExit() (int, error) {
	for {
		r, err := c.Recv()
		if err != nil {
			return 0, err
		}
		if r.Event == "exit" && r.ExitCode != nil {
			return *r.ExitCode, nil
		}
	}
}

// List returns the in-memory images the client may see.
func (c *Client) List() ([]api.Image, error) {
	r, err := c.Do(api.Request{Op: api.OpList}, nil)
	return r.Images, err
}

// Drop removes an in-memory image.
func (c *Client) Drop(crid uint64) error {
	_, err := c.Do(api.Request{Op: api.OpDrop, CRID: crid}, nil)
	return err
}

// Save writes an in-memory image to dir (absolute, must not exist).
func (c *Client) Save(crid uint64, dir string) error {
	_, err := c.Do(api.Request{Op: api.OpSave, CRID: crid, Dir: dir}, nil)
	return err
}
