package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/crbpf/crbpf/api"
	"golang.org/x/sys/unix"
)

// fakeDaemon answers one connection: it checks the request, reports the
// fds that came with it, and writes the given lines.
func fakeDaemon(t *testing.T, check func(api.Request, []int), lines ...string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(4*8))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				f, _ := unix.ParseUnixRights(&m)
				fds = append(fds, f...)
			}
		}
		var req api.Request
		line, _ := bufio.NewReader(bytes.NewReader(buf[:n])).ReadBytes('\n')
		json.Unmarshal(line, &req)
		check(req, fds)
		for _, fd := range fds {
			unix.Close(fd)
		}
		for _, l := range lines {
			c.Write([]byte(l + "\n"))
		}
	}()
	return sock
}

func TestCheckpointProgressAndResult(t *testing.T) {
	var got api.Request
	sock := fakeDaemon(t, func(r api.Request, fds []int) { got = r },
		`{"v":1,"event":"round","ok":true,"round":{"round":0,"dirty_pages":0,"new_pages":10,"bytes":40960,"seconds":0.1}}`,
		`{"v":1,"ok":true,"crid":7,"checkpoint":{"crid":7,"pid":42,"in_memory":true,"freeze_seconds":0.003,"total_seconds":1,"pages_written":10,"bytes_written":40960,"mode":"precopy","rounds":1,"killed":false}}`)
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rounds []api.Round
	r, err := c.Checkpoint(api.Request{PID: 42, InMemory: true}, func(r api.Round) { rounds = append(rounds, r) })
	if err != nil {
		t.Fatal(err)
	}
	if got.V != api.Version || got.Op != api.OpCheckpoint || got.PID != 42 || !got.InMemory {
		t.Errorf("daemon got %+v", got)
	}
	if len(rounds) != 1 || rounds[0].NewPages != 10 {
		t.Errorf("progress %+v, want one round of 10 new pages", rounds)
	}
	if r.CRID != 7 || r.PID != 42 || r.Mode != "precopy" {
		t.Errorf("result %+v", r)
	}
}

func TestRefusalIsAPIError(t *testing.T) {
	sock := fakeDaemon(t, func(api.Request, []int) {}, `{"v":1,"ok":false,"code":"forbidden","error":"pid 1 runs as uid 0"}`)
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Checkpoint(api.Request{PID: 1, InMemory: true}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeForbidden || ae.Message != "pid 1 runs as uid 0" {
		t.Fatalf("error %v, want the daemon's forbidden refusal", err)
	}
}

func TestRestartPassesStdio(t *testing.T) {
	var got api.Request
	var nfds int
	sock := fakeDaemon(t, func(r api.Request, fds []int) { got, nfds = r, len(fds) },
		`{"v":1,"ok":true,"restart":{"pid":99,"crid":7,"same_pid":false,"restore_seconds":0.2}}`,
		`{"v":1,"event":"exit","ok":true,"exit_code":3}`)
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Restart(api.Request{CRID: 7, Wait: true}, []*os.File{os.Stdin, os.Stdout, os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Stdio || got.CRID != 7 || nfds != 3 || r.PID != 99 {
		t.Errorf("request %+v with %d fds, result %+v", got, nfds, r)
	}
	code, err := c.WaitExit()
	if err != nil || code != 3 {
		t.Errorf("WaitExit: %d, %v; want 3", code, err)
	}
	if _, err := c.Restart(api.Request{CRID: 7}, []*os.File{os.Stdin}); err == nil {
		t.Errorf("a restart with 1 stdio file was sent")
	}
}

func TestRestoredReply(t *testing.T) {
	var r api.Response
	if err := json.Unmarshal(api.RestoredReply(42), &r); err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.CRID == nil || *r.CRID != 0 || r.RestoredFrom != 42 || r.Event != "" {
		t.Errorf("restored reply %+v", r)
	}
}
