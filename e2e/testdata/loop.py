"""loop.py: a python3 target that checks its own heap state.

Prints "PY n" (n = 1, 2, ...) every 20 ms. Every step appends to a list and
a dict and extends a bytearray, and before each line the whole state is
checked against n (lengths, contents and a running checksum), so a restore
that loses or corrupts interpreter memory prints "PY BAD <what>" and exits 1.

On SIGINT (KeyboardInterrupt) it prints "PY SIGINT <n>" and exits 42.
Usage: python3 loop.py [selfcheck]   (selfcheck: PY 1..5, "SELFCHECK OK", exit 0)
"""

import signal
import sys
import time
import zlib


def expected_item(i):
    return (i * 7919) % 10007


def main():
    selfcheck = len(sys.argv) > 1 and sys.argv[1] == "selfcheck"
    # Python leaves SIGINT alone when it starts ignored (background jobs of
    # a non-interactive shell): install the KeyboardInterrupt handler anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    items = []
    squares = {}
    blob = bytearray()
    crc = 0
    n = 0
    try:
        while True:
            n += 1
            items.append(expected_item(n))
            squares[n] = str(n * n)
            chunk = n.to_bytes(4, "little") * 4
            blob += chunk
            crc = zlib.crc32(chunk, crc)

            if len(items) != n or len(squares) != n or len(blob) != 16 * n:
                print(f"PY BAD lengths n={n} items={len(items)} squares={len(squares)} blob={len(blob)}", flush=True)
                return 1
            for i in (1, n // 2 or 1, n):
                if items[i - 1] != expected_item(i) or squares.get(i) != str(i * i):
                    print(f"PY BAD entry {i} of {n}", flush=True)
                    return 1
            if zlib.crc32(bytes(blob)) != crc:
                print(f"PY BAD checksum at {n}", flush=True)
                return 1

            print(f"PY {n}", flush=True)
            if selfcheck and n == 5:
                print("SELFCHECK OK", flush=True)
                return 0
            time.sleep(0.02)
    except KeyboardInterrupt:
        print(f"PY SIGINT {n}", flush=True)
        return 42


if __name__ == "__main__":
    sys.exit(main())
