"""rngstate.py: interpreter state that a copy must continue identically.

Usage: python3 rngstate.py DATAFILE [selfcheck]
  DATAFILE holds fixed-size records "rec NNNNN\\n" (10 bytes each).

At start it seeds a random.Random and the module-level generator from
os.urandom (so only a copy of the process can predict them), builds a dict of
100 000 entries, starts a generator and advances it a random number of
steps, and opens DATAFILE unbuffered, positioned at a random record.

Then it reads commands from stdin, one per line:
  next   prints one line
           NEXT rnd=<3 x getrandbits(32)>,<random.random()> gen=<next value>
             rec=<next record of DATAFILE> pos=<file offset after it>
             dict=<len>,<0|1: every entry checks out> step=<n>
         and adds one entry to the dict (so its size tracks the steps)
EOF ends it (exit 0).
Output: "READY dict=100000" once set up; any inconsistency is reported as
"BAD <what>" and ends the process with status 1.
With "selfcheck" it runs two "next" steps on its own, checks that a fresh
Random with the same state repeats them, prints "SELFCHECK OK" and exits 0.
"""

import os
import random
import sys

N = 100_000
REC = 10


def value(i):
    return f"v{(i * 2654435761) % 1000003}"


def walk(x):
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield x


class State:
    def __init__(self, path):
        self.rng = random.Random(os.urandom(32))
        random.seed(os.urandom(32))
        self.table = {i: value(i) for i in range(N)}
        self.gen = walk(int.from_bytes(os.urandom(8), "little"))
        for _ in range(self.rng.randrange(1, 1000)):
            next(self.gen)
        self.f = open(path, "rb", buffering=0)
        self.f.seek(REC * self.rng.randrange(0, 100))
        self.step = 0

    def dict_ok(self):
        if len(self.table) != N + self.step:
            return False
        return all(self.table.get(i) == value(i) for i in range(0, N + self.step, 997)) and \
            self.table[N + self.step - 1] == value(N + self.step - 1)

    def next_line(self):
        rnd = [self.rng.getrandbits(32) for _ in range(3)]
        r = random.random()
        g = next(self.gen)
        rec = self.f.read(REC).decode().strip().replace(" ", "_")
        pos = self.f.tell()
        self.table[N + self.step] = value(N + self.step)
        self.step += 1
        ok = self.dict_ok()
        line = (f"NEXT rnd={rnd[0]},{rnd[1]},{rnd[2]},{r!r} gen={g} rec={rec} pos={pos} "
                f"dict={len(self.table)},{int(ok)} step={self.step}")
        return line, ok


def main():
    path = sys.argv[1]
    selfcheck = len(sys.argv) > 2 and sys.argv[2] == "selfcheck"
    st = State(path)
    if len(st.table) != N:
        print(f"BAD dict has {len(st.table)} entries", flush=True)
        return 1
    print(f"READY dict={N}", flush=True)

    if selfcheck:
        saved = st.rng.getstate(), random.getstate()
        a = [st.next_line() for _ in range(2)]
        st.rng.setstate(saved[0])
        random.setstate(saved[1])
        again = [st.rng.getrandbits(32) for _ in range(3)], random.random()
        first = a[0][0].split()[1]
        want = f"rnd={again[0][0]},{again[0][1]},{again[0][2]},{again[1]!r}"
        if not all(ok for _, ok in a) or first != want:
            print(f"SELFCHECK BAD {a} {want}", flush=True)
            return 1
        for line, _ in a:
            print(line, flush=True)
        print("SELFCHECK OK", flush=True)
        return 0

    for cmd in sys.stdin:
        if cmd.strip() != "next":
            print(f"BAD command {cmd!r}", flush=True)
            return 1
        line, ok = st.next_line()
        print(line, flush=True)
        if not ok:
            print("BAD dict", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
