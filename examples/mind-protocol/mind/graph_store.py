"""The stack's graph: every record the services keep is a FalkorDB node or edge, written in Cypher.

Why one module: the shape of the graph (labels, properties, relationships) is a contract
between the services, so every Cypher statement lives here, next to the others. The programs
call the named helpers (``save_engine_counters``, ``record_trace``...) and never build queries
themselves. Each program owns one ``GraphStore`` in its event loop; it is not shared between
threads. The graph::

    (:Engine {name, ticks, energy, updated_at})
    (:Stimulus {id, intensity, source, at})-[:TRIGGERED]->(:Engine)
    (:Conversation {file, lines, updated_at})-[:HAS_TRACE]->(:Trace {file, lines, new_lines, at})
    (:Signal {id, kind, name, value, source, at})-[:OBSERVED {ticks}]->(:Engine)
    (:Decision {id, action, engine, reason, at})-[:BASED_ON]->(:Signal)

Times (``at``) are UNIX seconds (floats), so "the latest" and "within N seconds" are plain
comparisons in Cypher.

When the server is a plain redis-server without the FalkorDB module (an opt-in fallback of the
launcher on systems where the module cannot load), ``GRAPH.QUERY`` does not exist: the store
says so once and skips graph writes, and reads return nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from falkordb.asyncio import FalkorDB  # type: ignore[import-untyped]
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mind.runtime import env_float, env_port, env_str, log, peer_host, unless_stopped


class GraphUnavailable(Exception):
    """The graph server cannot be reached right now (down, restarting, or too slow)."""


class GraphStore:
    """Async Cypher access to one graph of the stack's FalkorDB server.

    Args:
        host: the server's address (loopback in this stack).
        port: the server's port (``FALKORDB_PORT``).
        graph: the graph's name (``MIND_GRAPH``); a second copy of the stack on its own server
            may use the same name.
    """

    def __init__(self, host: str, port: int, graph: str) -> None:
        self.host = host
        self.port = port
        self.graph_name = graph
        self.graph_module = True
        self._db: Any = None  # falkordb.asyncio.FalkorDB, once connected
        self._graph: Any = None  # its AsyncGraph
        self._said_plain = False

    @classmethod
    def from_env(cls) -> GraphStore:
        """The store named by ``FALKORDB_HOST``, ``FALKORDB_PORT`` and ``MIND_GRAPH``."""
        return cls(peer_host("falkordb"), env_port("FALKORDB_PORT", 6379), env_graph())

    async def connect(self, timeout_s: float = 30.0) -> None:
        """Wait until the server answers, and learn whether it has the graph module.

        The client's constructor asks the server (synchronously) whether it is a cluster, so
        it runs in a worker thread, retried until the server is up.

        Args:
            timeout_s: how long to keep trying (the server may still be loading).

        Raises:
            GraphUnavailable: not reachable within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        while True:
            try:
                if self._db is None:
                    self._db = await asyncio.to_thread(self._open)
                    self._graph = self._db.select_graph(self.graph_name)
                await self._graph.query("RETURN 1")
            except ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                self.graph_module = False
                self._say_plain()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    raise GraphUnavailable(
                        f"graph server {self.host}:{self.port} unreachable: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            else:
                return

    def _open(self) -> Any:
        return FalkorDB(host=self.host, port=self.port, socket_timeout=5, socket_connect_timeout=2)

    async def close(self) -> None:
        """Close the connection pool."""
        if self._db is not None:
            await self._db.aclose()
            self._db = self._graph = None

    async def query(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[list[Any]]:
        """Run one Cypher statement; return its rows.

        Raises:
            GraphUnavailable: the server is unreachable.
            redis.exceptions.ResponseError: the statement is wrong (a bug in this module).
        """
        if not self.graph_module:
            return []
        if self._graph is None:
            raise GraphUnavailable(f"graph server {self.host}:{self.port}: not connected")
        try:
            result = await self._graph.query(cypher, dict(params) if params else None)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise GraphUnavailable(f"graph server {self.host}:{self.port}: {exc}") from exc
        rows: list[list[Any]] = result.result_set
        return rows

    def _say_plain(self) -> None:
        if not self._said_plain:
            self._said_plain = True
            log(
                f"graph store: {self.host}:{self.port} is a plain redis-server without the "
                "FalkorDB module: graph records are skipped"
            )

    # ---------------------------------------------------------------------------- engines

    async def load_engine_counters(self) -> dict[str, int]:
        """The persisted tick count of every engine (so a restarted API resumes counting)."""
        rows = await self.query("MATCH (e:Engine) RETURN e.name, e.ticks")
        return {str(name): int(ticks or 0) for name, ticks in rows}

    async def save_engine_counters(self, engines: Sequence[Mapping[str, Any]]) -> None:
        """Persist every engine's counters in one statement.

        Args:
            engines: rows ``{"name", "ticks", "energy"}``.
        """
        await self.query(
            "UNWIND $rows AS r MERGE (e:Engine {name: r.name}) "
            "SET e.ticks = r.ticks, e.energy = r.energy, e.updated_at = $at",
            {"rows": [dict(row) for row in engines], "at": time.time()},
        )

    async def record_stimulus(self, engine: str, intensity: float, source: str) -> str:
        """Record ``(:Stimulus)-[:TRIGGERED]->(:Engine)``; return the stimulus id."""
        stimulus_id = uuid.uuid4().hex
        await self.query(
            "MERGE (e:Engine {name: $engine}) "
            "CREATE (s:Stimulus {id: $id, intensity: $intensity, source: $source, at: $at})"
            "-[:TRIGGERED]->(e)",
            {
                "engine": engine,
                "id": stimulus_id,
                "intensity": intensity,
                "source": source,
                "at": time.time(),
            },
        )
        return stimulus_id

    async def stimulus_stats(self, source: str) -> tuple[int, float | None]:
        """How many stimuli ``source`` injected, and when the last one was (UNIX seconds)."""
        rows = await self.query(
            "MATCH (s:Stimulus {source: $source}) RETURN count(s), max(s.at)", {"source": source}
        )
        if not rows:
            return 0, None
        count, last = rows[0]
        return int(count), (float(last) if last is not None else None)

    async def stimuli_per_engine(self, since: float) -> dict[str, int]:
        """How many stimuli every engine received since ``since`` (UNIX seconds)."""
        rows = await self.query(
            "MATCH (e:Engine) OPTIONAL MATCH (s:Stimulus)-[:TRIGGERED]->(e) "
            "WHERE s.at >= $since RETURN e.name, count(s)",
            {"since": since},
        )
        return {str(name): int(count) for name, count in rows}

    # ---------------------------------------------------------------------- conversations

    async def conversation_lines(self) -> dict[str, int]:
        """The line count last captured for every conversation file."""
        rows = await self.query("MATCH (c:Conversation) RETURN c.file, c.lines")
        return {str(file): int(lines or 0) for file, lines in rows}

    async def record_trace(self, file: str, lines: int, new_lines: int) -> None:
        """Record a TRACE of a conversation file: ``(:Conversation)-[:HAS_TRACE]->(:Trace)``."""
        await self.query(
            "MERGE (c:Conversation {file: $file}) SET c.lines = $lines, c.updated_at = $at "
            "CREATE (c)-[:HAS_TRACE]->"
            "(:Trace {file: $file, lines: $lines, new_lines: $new_lines, at: $at})",
            {"file": file, "lines": lines, "new_lines": new_lines, "at": time.time()},
        )

    # ---------------------------------------------------------------- signals, decisions

    async def record_signal(
        self,
        kind: str,
        name: str,
        value: float,
        source: str,
        observed: Mapping[str, int] | None = None,
    ) -> str:
        """Record a ``(:Signal)``, linked ``-[:OBSERVED {ticks}]->`` to the engines it saw.

        Args:
            kind: ``telemetry`` (a snapshot of the API's counters) or ``external`` (posted).
            name: what was measured.
            value: the measurement.
            source: who sent it.
            observed: engine name -> tick count, for a telemetry snapshot.

        Returns:
            The signal's id.
        """
        signal_id = uuid.uuid4().hex
        await self.query(
            "CREATE (s:Signal {id: $id, kind: $kind, name: $name, value: $value, "
            "source: $source, at: $at}) "
            "WITH s UNWIND $observed AS o MERGE (e:Engine {name: o.name}) "
            "CREATE (s)-[:OBSERVED {ticks: o.ticks}]->(e)",
            {
                "id": signal_id,
                "kind": kind,
                "name": name,
                "value": value,
                "source": source,
                "at": time.time(),
                "observed": [{"name": k, "ticks": v} for k, v in (observed or {}).items()],
            },
        )
        return signal_id

    async def latest_signal(self) -> dict[str, Any] | None:
        """The most recent signal, as a plain dict, or None when there is none yet."""
        rows = await self.query(
            "MATCH (s:Signal) RETURN s.id, s.kind, s.name, s.value, s.source, s.at "
            "ORDER BY s.at DESC LIMIT 1"
        )
        if not rows:
            return None
        keys = ("id", "kind", "name", "value", "source", "at")
        return dict(zip(keys, rows[0], strict=True))

    async def record_decision(self, signal_id: str, action: str, engine: str, reason: str) -> str:
        """Record ``(:Decision)-[:BASED_ON]->(:Signal)``; return the decision's id."""
        decision_id = uuid.uuid4().hex
        await self.query(
            "MATCH (s:Signal {id: $signal}) "
            "CREATE (:Decision {id: $id, action: $action, engine: $engine, reason: $reason, "
            "at: $at})-[:BASED_ON]->(s)",
            {
                "signal": signal_id,
                "id": decision_id,
                "action": action,
                "engine": engine,
                "reason": reason,
                "at": time.time(),
            },
        )
        return decision_id

    async def count(self, label: str) -> int:
        """How many nodes carry ``label`` (one of the labels documented above)."""
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}")
        rows = await self.query(f"MATCH (n:{label}) RETURN count(n)")
        return int(rows[0][0]) if rows else 0


#: Node labels of the stack's graph.
LABELS = ("Engine", "Stimulus", "Conversation", "Trace", "Signal", "Decision")


def env_graph() -> str:
    """The graph's name: ``MIND_GRAPH``, default ``mind``."""
    return env_str("MIND_GRAPH", "mind")


async def wait_for_graph(stop: asyncio.Event, who: str) -> int | None:
    """Hold a program's start until the graph answers (``GRAPH_CONNECT_TIMEOUT_S``, default 30).

    Args:
        stop: set by a stop signal; waiting ends at once.
        who: the program's name, for the failure line.

    Returns:
        None when the graph answers; otherwise the exit code to leave with: 0 when stopped
        while waiting, 1 when the graph stayed unreachable.
    """
    store = GraphStore.from_env()

    async def reachable() -> bool:
        await store.connect(env_float("GRAPH_CONNECT_TIMEOUT_S", 30.0))
        return True

    try:
        answered = await unless_stopped(stop, reachable())
    except GraphUnavailable as exc:
        log(f"{who}: {exc}")
        return 1
    finally:
        await store.close()
    return None if answered else 0
