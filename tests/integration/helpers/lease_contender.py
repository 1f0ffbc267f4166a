"""Lease contender for the lease tests: try once, say what happened, hold it for a while.

Usage: lease_contender.py NAME HOLD_SECONDS [--spawn-child]
Prints ``ACQUIRED <pid>`` (then sleeps, holding the lease) or ``HELD <holder pid>`` and
exits 3. With ``--spawn-child`` the holder also starts ``sleep`` without closing its fds
and prints ``CHILD <pid>``: the lease must not pass to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mpsv3.platform import SingletonLease


def main() -> int:
    name, hold = sys.argv[1], float(sys.argv[2])
    lease = SingletonLease(name)
    if not lease.acquire():
        print(f"HELD {lease.holder_pid()}", flush=True)
        return 3
    print(f"ACQUIRED {os.getpid()}", flush=True)
    if "--spawn-child" in sys.argv:
        child = subprocess.Popen(["sleep", "1000"], close_fds=False)
        print(f"CHILD {child.pid}", flush=True)
    time.sleep(hold)
    lease.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
