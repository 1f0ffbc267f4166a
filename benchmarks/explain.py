"""The prose of docs/benchmarks.md: how things are measured, and why each number is what it is.

The causes are facts about each program, read in its source (a polling tick, a serial stop
loop, a helper process per service); the numbers are filled in from the run being reported, and
the "mpsv3 is not the fastest" sentences are produced by comparing them, so the page stays true
when the numbers move. Pure functions of the results dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import summary
from benchmarks.fmt import fmt_cpu, fmt_mib, fmt_s, stop_cell
from benchmarks.stats import LineFit

METHOD = """\
- One ruler for every peer: the benchmark never asks a supervisor for its status. Each
  supervised child carries `MPSV3_BENCH_SVC=<launch>/<service>` in its environment (passed
  through each peer's own env setting) and the benchmark finds children by reading `/proc`,
  with its own monotonic clock. "All children exist" means every marked process has exec'd;
  "none left" means no marked process is alive (zombies count as gone).
- Children are trivial: `sleep 3600` for cold start, respawn and idle; a 30-line Python script
  (`benchmarks/children/ready.py`) that records its start time for the gate and reload
  workloads; `benchmarks/children/flood.py` that prints numbered lines and times itself;
  `benchmarks/children/talk.sh` (100 lines, then `sleep`) for the client commands.
- Cold start: launch -> the first marked child exists (first spawn) and -> all exist, `/proc`
  polled every 2 ms. mpsv3 keeps a compiled plan per config file, so it is started on one
  config again and again: a first launch fills the cache (not counted), then each repetition
  is a warm start (file unchanged: the usual case, and what the targets use) and a start
  right after the file changed (a comment appended: the cache misses). Whether a warm start
  really reused the plan is read from the cache entry (rewritten or not).
- Client commands: against a running stack of 10 `talk.sh` services, the wall time from
  starting the client process to its exit, for `status`, `logs ID -n 5` and `restart ID`
  (supervisorctl `status`/`tail`/`restart`, circusctl `status`/`restart`, `pm2 jlist`/`logs
  ID --lines 5 --nostream`/`restart`); after a restart the next command waits for the
  replacement. Floors: `python -c pass` with mpsv3's interpreter, `node -e 0`.
- Settings: every peer at its defaults except its smallest restart delay (supervisord
  `startsecs=0`; PM2 `restart_delay: 0`, `watch_delay: 0`; mpsv3 `backoff.base_ms: 0`,
  `debounce_ms: 0`) and retry limits high enough that fifty kills never give up. circus keeps
  its 5 s `check_delay` tick: it has no restart delay, and a shorter tick trades idle CPU for
  respawn latency.
- Respawn: a SIGKILL from outside, then the time until a new marked process of that service
  exists. For circus, whose reaping is purely periodic, kills are spread at random over one tick
  (ten services per round) so that samples cover every phase of the tick; every other peer is
  killed one service at a time after a short random pause.
- Dependency gate: a chain of services, each requiring the previous one, each ready when it
  prints `ready`; the sample is the dependency's `ready` event to the dependent's `spawned`
  event in mpsv3's `events.jsonl` (millisecond timestamps).
- Hot reload: the watched file is rewritten; "ready" is the new child's own start time.
- Respawn floor: the benchmark starts a marked `sleep` itself and times it the same way
  (`Popen` -> seen in `/proc`): what no supervisor's respawn can go below on this ruler.
- Idle: all peers idle side by side for the same window (their launches are sequential, so no
  start overlaps the window); CPU is the supervisor processes' own user+system time (children
  excluded), wake-ups are the context switches of all their threads, memory is RSS and PSS
  summed over the supervisor's processes (mpsv3: the keeper and the supervisor; PM2: its
  daemon; honcho: its main process plus one helper per service).
- Logs: the child waits for a "go" file, so the supervisor's CPU time is read just before the
  flood; its own runtime runs from its first line to its final flush, against the same
  command with stdout on /dev/null (the floor); then every line of the log file is checked,
  after the peer's own prefix is stripped (mpsv3's 25-byte stamp, honcho's time and name), to
  be exactly one whole numbered record, each number exactly once.
- mpsv3's breakdown (never in the comparison): warm starts timed at each hand-over
  (`mpsv3.engine` exists, first child, all children); one launch, and each client command,
  under `PYTHONPROFILEIMPORTTIME=1` (self time summed per package); `/proc/PID/smaps` of its
  processes at idle; the gaps between its own events for a respawn and a stop.
- Stops that take longer than {cap:.0f} s are cut there and reported as `> {cap:.0f} s (K left)`."""


def method(results: dict[str, Any]) -> str:
    """The "How it is measured" section, with this run's stop cap."""
    return METHOD.format(cap=float(results["settings"]["stop_cap_s"]))


def _cold(results: dict[str, Any], peer: str, size: int) -> float | None:
    entry = summary.cold_start(results, peer).get(size)
    return None if entry is None else entry.get("start_s")


def _p50(results: dict[str, Any], workload: str, peer: str, key: str) -> float | None:
    spread = summary.spread(summary.values(summary.samples(results, workload, peer), key))
    return None if spread is None else spread["p50"]


def _named(numbers: dict[str, float | None]) -> str:
    """``supervisord 2.31 s, circus 1.26 s`` for the peers that have a number."""
    return ", ".join(
        f"{peer} {fmt_s(value)}" for peer, value in numbers.items() if value is not None
    )


def _verdict(
    numbers: dict[str, float | None],
    what: str,
    cause: str,
    show: Callable[[float | None], str] = fmt_s,
    lean: bool = False,
) -> str:
    """A sentence saying whether mpsv3 is the best for ``what``, and why not if it is not.

    Args:
        numbers: peer -> value, lower is better; ``inf`` stands for a measurement cut at
            its cap (worse than any number).
        what: the thing compared, for the sentence.
        cause: why mpsv3 is where it is, appended when it is not the best.
        show: how a value is written.
        lean: compare resources ("the leanest", "uses") rather than times.
    """
    known = {peer: value for peer, value in numbers.items() if value is not None}
    if "mpsv3" not in known or len(known) < 2:
        return ""
    best = min(known, key=lambda peer: known[peer])
    word, verb = ("the leanest", "uses") if lean else ("the fastest", "takes")
    if known[best] == known["mpsv3"]:
        return f"mpsv3 is {word} (or tied) for {what}."
    mine = "longer than the cap" if known["mpsv3"] == float("inf") else show(known["mpsv3"])
    return (
        f"mpsv3 is not {word} for {what}: {best} {verb} {show(known[best])} where mpsv3 "
        f"{verb} {mine}. {cause}"
    )


MPSV3_CAUSES = {
    "stop": (
        "mpsv3 stops services in reverse dependency order and, for each one, waits until every "
        "process of its group is gone before it counts the service as stopped; when it "
        "signalled and saw each service stop is measured from its events under \"mpsv3 "
        "against its targets\"."
    ),
    "cold_start": (
        "A start of mpsv3 crosses two Python interpreters: `mpsv3 up` (its imports, the config "
        "or the cached plan, the lease), then the supervisor `python -m mpsv3.engine` (its "
        "imports, the plan from a pipe) before the first spawn; the phases and what each "
        "imports are measured under \"mpsv3 against its targets\". Per service, it forks the "
        "child in its own session and cgroup, registers the output pipe and the child's pidfd "
        "on the event loop, starts the runner task and records the `spawned` event: the slope "
        "of its line."
    ),
    "respawn": (
        "After a child dies, mpsv3 reaps it, makes sure nothing of its process group survives, "
        "records the exit and the backoff decision as events, and only then spawns again; "
        "those steps run on the event loop in sequence (the split is measured under \"mpsv3 "
        "against its targets\")."
    ),
    "reload": (
        "mpsv3's watcher thread gets file events from watchfiles' Rust notifier, which hands "
        "raw events over in batches (`src/mpsv3/engine/watcher.py`), so a save reaches mpsv3 "
        "later than chokidar's inotify callback reaches PM2; the restart itself is the same "
        "stop-then-spawn as a respawn."
    ),
    "idle": (
        "An idle mpsv3 wakes only for its timers (a reset timer per ready service, probes when "
        "configured) and for file events when a service watches files."
    ),
    "memory": (
        "mpsv3's supervisor side is two Python processes, the keeper (standard library only) "
        "and the supervisor; each pays for an interpreter, and which process and which "
        "mapping hold the memory is measured under \"mpsv3 against its targets\"."
    ),
    "logs": (
        "mpsv3 reads the pipe in large chunks on its event loop, stamps each line and writes "
        "only whole lines to the log file (a partial line waits for its newline), and also "
        "hands every line, prefixed with the service id, to its console thread through a "
        "bounded queue; supervisord and circus only copy raw chunks to the file."
    ),
    "client": (
        "An mpsv3 client command is a Python program that imports its command-line layer "
        "before it asks the supervisor over its socket; what it imports is measured under "
        "\"mpsv3 against its targets\"."
    ),
}


def why(results: dict[str, Any]) -> str:
    """Two or three sentences per workload, with this run's numbers."""
    peers = list(results["peers"])
    settings = results["settings"]
    paragraphs = []
    if "cold_start" in results["workloads"]:
        size = max(settings["cold_sizes"])
        starts = {peer: _cold(results, peer, size) for peer in peers}
        paragraphs.append(
            f"**Cold start (N={size}: {_named(starts)}).** supervisord waits one pass of its 1 s "
            "main loop before the first spawn, then spawns every program in that pass; circus "
            "starts watcher after watcher; honcho forks one Python helper process per service, "
            "each of which runs the command through `/bin/sh`; PM2 pays for a Node CLI that "
            "starts its daemon and hands it the apps over RPC, one at a time. "
            + _verdict(starts, f"cold start at N={size}", MPSV3_CAUSES["cold_start"])
        )
        entries = {peer: summary.cold_start(results, peer).get(size) for peer in peers}
        cells = ", ".join(f"{peer} {stop_cell(entry)}" for peer, entry in entries.items() if entry)
        stops: dict[str, float | None] = {}
        for peer, entry in entries.items():
            if entry is None:
                stops[peer] = None
            elif entry["stop_timeouts"]:
                stops[peer] = float("inf")
            else:
                stops[peer] = entry["stop_s"]
        paragraphs.append(
            f"**Stop-all (N={size}: {cells}).** supervisord stops one program group per pass of "
            "its main loop (each `[program]` is its own group) and a pass ends on an event on one "
            "of its pipes or after its 1 s poll timeout, so its stop time is erratic: it depends "
            "on how often closing pipes happen to wake it (see the stop rows for every N). PM2's "
            "graceful exit deletes its apps one at a time; circus and honcho signal every child "
            "at once and wait for the exits. "
            + _verdict(stops, f"stop-all at N={size}", MPSV3_CAUSES["stop"])
        )
    if "respawn" in results["workloads"]:
        respawns = {peer: _p50(results, "respawn", peer, "respawn_s") for peer in peers}
        paragraphs.append(
            f"**Respawn (p50: {_named(respawns)}).** circus notices a dead child only on its "
            "`check_delay` tick (5 s by default), so a respawn waits half a tick on average; "
            "supervisord is woken by the child's closing pipe but spawns the replacement on its "
            "next loop pass, one 1 s poll timeout later; PM2 and mpsv3 react to the exit itself. "
            "honcho does not restart at all: one exit stops the whole stack. "
            + _verdict(respawns, "respawn", MPSV3_CAUSES["respawn"])
        )
    if "gate" in results["workloads"]:
        gate = _p50(results, "gate", "mpsv3", "gate_s")
        elsewhere = "; ".join(
            f"{name}: {why}" for name, why in results.get("gate_elsewhere", {}).items()
        )
        paragraphs.append(
            f"**Dependency gate (mpsv3 p50 {fmt_s(gate)}).** Only mpsv3 gates a dependent on its "
            "dependency's readiness among these peers; the number is the time from the "
            "dependency's `ready` event to the dependent's `spawned` event, at the millisecond "
            "resolution of the event timestamps. Not measured: " + (elsewhere or "-") + "."
        )
    if "reload" in results["workloads"]:
        reloads = {peer: _p50(results, "reload", peer, "ready_s") for peer in peers}
        paragraphs.append(
            f"**Hot reload (p50: {_named(reloads)}).** Both include stopping the old process and "
            "starting a Python child (about 20 ms of interpreter start-up); PM2 restarts from "
            "chokidar's inotify callback, mpsv3 from its single watchfiles watcher with "
            "`debounce_ms: 0`. " + _verdict(reloads, "hot reload", MPSV3_CAUSES["reload"])
        )
    if "idle" in results["workloads"]:
        size = summary.idle_size(results)
        cpu: dict[str, float | None] = {}
        pss: dict[str, float | None] = {}
        memory = []
        for peer in peers:
            sample = summary.idle(results, peer).get(size)
            cpu[peer] = None if sample is None else sample["cpu_s_per_min"]
            pss[peer] = None if sample is None else sample["pss_bytes"]
            if sample is not None:
                memory.append(
                    f"{peer} {fmt_mib(sample['rss_bytes'])} RSS / {fmt_mib(sample['pss_bytes'])} PSS"
                )
        cpu_text = ", ".join(f"{p} {fmt_cpu(v)}" for p, v in cpu.items() if v is not None)
        paragraphs.append(
            f"**Idle (N={size}, CPU per 60 s: {cpu_text}; memory: {', '.join(memory)}).** "
            "supervisord wakes once a second; circus every 5 s plus its ZeroMQ sockets; honcho "
            "is one Python process per service, so its memory is counted as PSS (RSS would count "
            "shared pages once per helper); PM2's daemon runs Node timers for its process "
            "metrics. "
            + _verdict(cpu, f"idle CPU at N={size}", MPSV3_CAUSES["idle"], fmt_cpu, lean=True)
            + " "
            + _verdict(pss, f"memory (PSS) at N={size}", MPSV3_CAUSES["memory"], fmt_mib, True)
        )
    if "logs" in results["workloads"]:
        flood = {peer: (summary.logs(results, peer) or {}).get("runtime_s") for peer in peers}
        floor = (summary.logs(results, "floor") or {}).get("runtime_s")
        paragraphs.append(
            f"**Log flood (child runtime, floor {fmt_s(floor)}: {_named(flood)}).** A child can "
            "only write as fast as its supervisor empties the pipe: honcho moves every line "
            "through a multiprocessing queue to its main process, PM2 turns each chunk into a "
            "JavaScript string and emits it on its bus before writing it, supervisord and "
            "circus copy raw chunks to the file. "
            + _verdict(flood, "the log flood", MPSV3_CAUSES["logs"])
        )
    if "cold_start" in results["workloads"]:
        paragraphs.append(_first_spawn_text(results))
    if "client" in results["workloads"]:
        paragraphs.append(_client_text(results))
    paragraphs.append(_scale_text(results))
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _first_spawn_text(results: dict[str, Any]) -> str:
    """Launch -> the first child, at the smallest N: the fixed cost before any work."""
    size = min(results["settings"]["cold_sizes"])
    firsts: dict[str, float | None] = {
        peer: summary.cold_start(results, peer).get(size, {}).get("first_s")
        for peer in results["peers"]
    }
    if not any(value is not None for value in firsts.values()):
        return ""
    return (
        f"**First spawn (N={size}: {_named(firsts)}).** The time from launch to the first "
        "child is the fixed cost of a supervisor before it does any work: its interpreter "
        "and imports, reading its config, and whatever it sets up before its first spawn. "
        + _verdict(firsts, f"first spawn at N={size}", MPSV3_CAUSES["cold_start"])
    )


def _client_text(results: dict[str, Any]) -> str:
    """The client commands, against the bare interpreters they run on."""
    floors = summary.client(results, "floor")
    floor = ", ".join(f"{name} {fmt_s(spread['p50'])}" for name, spread in floors.items())
    parts = []
    for command in ("status", "logs", "restart"):
        numbers = {
            peer: summary.client(results, peer).get(command, {}).get("p50")
            for peer in results["peers"]
        }
        if any(value is not None for value in numbers.values()):
            parts.append(
                f"{command}: {_named(numbers)}. "
                + _verdict(numbers, f"`{command}`", MPSV3_CAUSES["client"])
            )
    if not parts:
        return ""
    return (
        f"**Client commands (p50; bare interpreters: {floor or '-'}).** Each is a fresh "
        "process that finds the supervisor, asks, prints and exits: supervisorctl and "
        "circusctl are Python programs like mpsv3's, PM2's is a Node program that talks to its "
        "daemon over RPC. " + " ".join(parts)
    )


def _shape(fit: LineFit) -> str:
    """``linear, R² 0.99``, ``not a clean line, R² 0.55`` or ``2 sizes only``."""
    if fit.points < 3:
        return f"{fit.points} sizes only"
    return f"{'linear' if fit.is_linear() else 'not a clean line'}, R² {fit.r2:.2f}"


def _scale_text(results: dict[str, Any]) -> str:
    """Workload 7: how cold start and idle cost grow with N, stated as lines."""
    lines = []
    for peer in results["peers"]:
        fits = summary.scale(results, peer)
        start, cpu, pss = fits["start_s"], fits["cpu_s_per_min"], fits["pss_bytes"]
        parts = []
        if start is not None:
            fixed = f", over a fixed {fmt_s(start.intercept)}" if start.intercept >= 0.01 else ""
            parts.append(
                f"cold start {start.slope * 1000:+.2f} ms per service{fixed} ({_shape(start)})"
            )
        if cpu is not None:
            parts.append(
                f"idle CPU {cpu.slope * 1000:+.3f} ms per service per minute ({_shape(cpu)})"
            )
        if pss is not None:
            parts.append(f"memory {pss.slope / 1024:+.0f} KiB per service ({_shape(pss)})")
        if parts:
            lines.append(f"- {peer}: " + "; ".join(parts) + ".")
    if not lines:
        return ""
    return "**Scale (10 to 500 services, least-squares lines).**\n\n" + "\n".join(lines)
