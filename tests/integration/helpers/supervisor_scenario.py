"""Run platform scenarios in a process of their own (they change process-wide state).

Usage: supervisor_scenario.py SCENARIO
Scenarios:
  orphans   prepare_supervisor, then a leader that leaves an orphan and exits 0; prints
            JSON with the leader's status, whether the orphan came to us, and the zombies
            among our children once it has exited.
  escape    prepare_supervisor, then double_fork.py whose leader exits at once; the
            daemon must be adopted by us and be gone after terminate().
  pdeath    spawn ``sleep 1000``, print ``LEADER <pid>`` and wait to be killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import psutil

from mpsv3 import platform
from mpsv3.platform import linux

HELPERS = Path(__file__).resolve().parent


def zombie_children() -> list[int]:
    return [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


async def orphans() -> dict[str, object]:
    before = linux.is_child_subreaper()
    platform.prepare_supervisor(asyncio.get_running_loop())
    subreaper = not before and linux.is_child_subreaper()
    env = dict(os.environ, **platform.process_markers("scenario", "orphans"))
    tree = await platform.spawn(["sh", "-c", "sleep 0.5 & echo ORPHAN $!; exit 0"], Path.cwd(), env)
    line = (await tree.output.readline()).decode()
    orphan = int(line.split()[1])
    status = await tree.wait()
    await asyncio.sleep(0.2)
    adopted = psutil.Process(orphan).ppid() == os.getpid()
    gone = await tree.wait_gone(10)
    await asyncio.sleep(0.3)
    return {
        "leader": status.describe(),
        "subreaper": subreaper,
        "adopted": adopted,
        "gone": gone,
        "zombies": zombie_children(),
        "orphan_exists": psutil.pid_exists(orphan),
    }


async def escape() -> dict[str, object]:
    platform.prepare_supervisor(asyncio.get_running_loop())
    env = dict(os.environ, **platform.process_markers("scenario", "escape"))
    tree = await platform.spawn(
        [sys.executable, str(HELPERS / "double_fork.py"), "0"], Path.cwd(), env
    )
    daemon = int((await tree.output.readline()).decode().split()[1])
    await tree.wait()
    await asyncio.sleep(0.2)
    adopted = psutil.Process(daemon).ppid() == os.getpid()
    member = daemon in tree.alive_members()
    status = await platform.terminate(tree, "SIGTERM", 5)
    await asyncio.sleep(0.3)
    return {
        "leader": status.describe(),
        "adopted": adopted,
        "member": member,
        "daemon_exists": psutil.pid_exists(daemon),
        "zombies": zombie_children(),
    }


async def pdeath() -> None:
    env = dict(os.environ)
    tree = await platform.spawn(["sleep", "1000"], Path.cwd(), env)
    print(f"LEADER {tree.pid}", flush=True)
    await tree.wait()


def main() -> int:
    scenario = sys.argv[1]
    if scenario == "pdeath":
        asyncio.run(pdeath())
        return 0
    run = {"orphans": orphans, "escape": escape}[scenario]
    print(json.dumps(asyncio.run(run())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
