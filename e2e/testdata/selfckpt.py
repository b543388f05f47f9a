"""selfckpt.py SOCKET CLIENTDIR: checkpoints itself through the crbpf daemon
with client/python/crbpf_self.py and says which side of the fork()-like call
it is on: "ORIGINAL crid=N" or "RESTORED from=N", then TICK n every 100 ms."""

import sys
import time

sys.path.insert(0, sys.argv[2])
import crbpf_self  # noqa: E402

state = {"answer": 12345}  # must survive the restore
print("BEFORE", flush=True)
crid, restored_from = crbpf_self.checkpoint(socket=sys.argv[1])
if crid > 0:
    print("ORIGINAL crid=%d state=%d" % (crid, state["answer"]), flush=True)
else:
    print("RESTORED from=%d state=%d" % (restored_from, state["answer"]), flush=True)
n = 0
while True:
    time.sleep(0.1)
    n += 1
    print("TICK %d" % n, flush=True)
