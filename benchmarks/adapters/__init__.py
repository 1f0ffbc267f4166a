"""The peers the benchmark knows, and how to build each one's launch factory.

Each adapter module translates the neutral ``Service`` list for one supervisor; this module
only wires an adapter class to the installed executable it needs. Owned by the entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmarks.adapters.base import Adapter, Service
from benchmarks.adapters.circus import CircusAdapter
from benchmarks.adapters.honcho import HonchoAdapter
from benchmarks.adapters.mpsv3 import Mpsv3Adapter
from benchmarks.adapters.pm2 import Pm2Adapter
from benchmarks.adapters.supervisord import SupervisordAdapter
from benchmarks.peers import PeerTools

__all__ = ["ALL_PEERS", "Adapter", "Peer", "Service", "build_peers"]

ALL_PEERS = ("mpsv3", "supervisord", "circus", "honcho", "pm2")
PYTHON_PEERS = ("supervisord", "circus", "honcho")

AdapterFactory = Callable[[Path, str, str], Adapter]


@dataclass(frozen=True)
class Peer:
    """One supervisor to measure: its adapter class (for capabilities) and a launch factory."""

    name: str
    adapter: type[Adapter]
    make: AdapterFactory
    version: str


def build_peers(
    selected: list[str],
    tools: PeerTools,
    mpsv3_launcher: list[str],
    mpsv3_version: str,
    profiler: list[str] | None = None,
) -> tuple[dict[str, Peer], dict[str, str]]:
    """Peers ready to launch, and a reason for each selected peer that is not installed.

    Args:
        selected: peer names, in report order.
        tools: what ``peers.install_peers`` found.
        mpsv3_launcher: argv prefix that runs the mpsv3 CLI.
        mpsv3_version: the version reported for mpsv3.
        profiler: argv prefix (before ``--``) that wraps ``mpsv3 up`` in a profiler.
    """
    peers: dict[str, Peer] = {}
    missing: dict[str, str] = {}
    python_tools: dict[str, tuple[type[Adapter], str, str]] = {
        "supervisord": (SupervisordAdapter, "supervisord", "supervisor"),
        "circus": (CircusAdapter, "circusd", "circus"),
        "honcho": (HonchoAdapter, "honcho", "honcho"),
    }
    for name in selected:
        if name == "mpsv3":
            make: AdapterFactory = partial(Mpsv3Adapter, launcher=mpsv3_launcher, profiler=profiler)
            peers[name] = Peer(name, Mpsv3Adapter, make, mpsv3_version)
        elif name in python_tools:
            cls, executable, package = python_tools[name]
            if tools.venv_bin is None:
                missing[name] = tools.problems.get("python", "peers venv is not installed")
                continue
            make = partial(cls, executable=tools.venv_bin / executable)  # type: ignore[call-arg]
            peers[name] = Peer(name, cls, make, tools.versions.get(package, "?"))
        elif name == "pm2":
            if tools.pm2_bin is None:
                missing[name] = tools.problems.get("pm2", "pm2 is not installed")
                continue
            make = partial(Pm2Adapter, executable=tools.pm2_bin)
            peers[name] = Peer(name, Pm2Adapter, make, tools.versions.get("pm2", "?"))
        else:
            missing[name] = f"unknown peer {name!r} (known: {', '.join(ALL_PEERS)})"
    return peers, missing
