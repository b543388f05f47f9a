"""crbpf_self: a python3 program asks the crbpf daemon to checkpoint it,
with fork()-like results.

    crid, restored_from = crbpf_self.checkpoint()
    if crid > 0:   # the original: checkpoint `crid` exists
        ...
    else:          # the restored copy, restarted from `restored_from`
        ...

The interpreter must be single-threaded (crbpf does not checkpoint threads
yet). socket: the daemon's socket (default $CRBPF_SOCKET or
/run/crbpf/crbpf.sock); dir: an absolute image directory to write (default:
the daemon keeps the image in memory; `crbpf restart CRID` restarts it).
Raises CheckpointError when the daemon refuses. Protocol: docs/daemon.md.
"""

import json
import os
import socket as _socket


class CheckpointError(Exception):
    """The daemon refused or failed the checkpoint."""

    def __init__(self, message, code=""):
        super().__init__(message)
        self.code = code


def checkpoint(socket=None, dir=None):
    path = socket or os.environ.get("CRBPF_SOCKET") or "/run/crbpf/crbpf.sock"
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
        req = {"v": 1, "op": "checkpoint", "self": True, "self_fd": s.fileno()}
        if dir:
            req["dir"] = dir
        else:
            req["in_memory"] = True
        s.sendall((json.dumps(req) + "\n").encode())
        # The checkpoint happens while this waits; in a restored copy the
        # answer comes from the socket restart put in place of this one.
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                raise CheckpointError("the crbpf daemon closed the connection")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                ans = json.loads(line)
                if ans.get("event"):
                    continue  # progress
                if not ans.get("ok"):
                    raise CheckpointError(ans.get("error", "checkpoint failed"), ans.get("code", ""))
                return ans["crid"], ans.get("restored_from", 0)
    finally:
        s.close()
