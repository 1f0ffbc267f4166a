"""A child that prints N numbered lines as fast as it can, then reports its own runtime.

Run under each supervisor (and once with stdout on /dev/null: the floor). The runtime is
measured by the child itself, from its first line of code to the return of the final flush, so
it shows only how fast the supervisor drains the pipe, not how fast it spawns. The result goes
to a JSON file named on the command line; each line is ``L<index> <payload>`` so that the log
check can tell a whole line from a cut or interleaved one. With a third argument, the child
first waits for that file to exist (the benchmark's "go"), so that the supervisor's CPU time
can be read just before the flood begins.
"""

from __future__ import annotations

import json
import os
import sys
import time

PAYLOAD = "abcdefghijklmnopqrstuvwxyz0123"


def main() -> None:
    count = int(sys.argv[1])
    result_path = sys.argv[2]
    if len(sys.argv) > 3:
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.001)
    started = time.monotonic()
    write = sys.stdout.write
    for index in range(count):
        write(f"L{index:06d} {PAYLOAD}\n")
    sys.stdout.flush()
    finished = time.monotonic()
    temp = result_path + ".tmp"
    with open(temp, "w") as handle:
        json.dump({"lines": count, "runtime_s": finished - started, "pid": os.getpid()}, handle)
    os.replace(temp, result_path)


if __name__ == "__main__":
    main()
