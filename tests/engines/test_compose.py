"""``mpsv3 export compose`` of the demo, run for real with podman-compose on podman 4.3.

What it shows, in order, on one running stack (a private copy of the demo, free host ports,
its own compose project name):

1. the base image is built offline (``podman_engine``), the project image from the generated
   ``Containerfile``, and ``podman-compose up -d`` runs all 7 containers;
2. the dashboard answers on its published host port, and its feed (relayed from ws_api by
   name) shows every one of the 8 engines' tick counts rising;
3. each container's healthcheck passes when run (``podman healthcheck run``): podman 4.3 runs
   health checks on a schedule only through systemd timers, which this machine does not have,
   and ignores ``condition: service_healthy`` (podman-compose says so), so the dependents'
   wait is not shown; the programs wait for their peers themselves;
4. ws_api's main process killed (SIGKILL, as a crash or the OOM killer would) -> podman
   restarts the container (``restart: on-failure:9``). ``podman kill`` itself is a stop by the
   user for podman (libpod's ``Container.Kill`` sets ``StoppedByUser``, like Docker's manual
   stop), and podman never restarts such a container: the test shows that too;
5. a stimulus written into the graph by ws_api lives in FalkorDB's named volume and is still
   there after ``podman-compose down`` and ``up -d``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import podman_engine
import pytest
from podman_engine import engine_env, podman, wait_until
from stackcopy import ExportedStack, export_demo
from websockets.sync.client import connect as ws_connect

from support import MIND_SERVICES as SERVICES

pytestmark = [
    pytest.mark.engines,
    pytest.mark.skipif(sys.platform != "linux", reason="podman runs on Linux here"),
]

ENGINES = 8
UP_TIMEOUT_S = 900  # the first build installs the demo's requirements from PyPI


def podman_compose() -> str | None:
    found = Path(sys.executable).with_name("podman-compose")
    return str(found) if found.exists() else shutil.which("podman-compose")


class ComposeStack:
    """One compose project of the exported demo; ``down`` removes it with its volume."""

    def __init__(self, exported: ExportedStack, tool: str) -> None:
        self.exported = exported
        self.project = f"mpsv3eng{uuid.uuid4().hex[:8]}"
        self.tool = tool

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [self.tool, "-p", self.project, "-f", str(self.exported.output / "compose.yaml")]
        proc = subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=timeout, env=engine_env()
        )
        assert proc.returncode == 0, f"podman-compose {' '.join(args)}:\n{proc.stderr[-3000:]}"
        return proc

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def inspect(self, service: str) -> dict[str, object]:
        data: list[dict[str, object]] = json.loads(
            podman("inspect", self.container(service)).stdout
        )
        return data[0]

    def states(self) -> dict[str, str]:
        listed = podman(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
            "--format", "json",
        )  # fmt: skip
        return {c["Names"][0]: c["State"] for c in json.loads(listed.stdout or "[]")}

    def url(self, port: str, path: str) -> str:
        return f"http://127.0.0.1:{self.exported.ports[port]}{path}"

    def graph(self, cypher: str) -> str:
        port = str(self.exported.ports["FALKORDB_PORT"])
        argv = ["exec", self.container("falkordb"), "redis-cli", "-p", port]
        return podman(*argv, "GRAPH.QUERY", "mind", cypher).stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    reason = podman_engine.missing_tools()
    tool = podman_compose()
    if reason is None and tool is None:
        reason = "podman-compose is not installed (.ci/install-engines puts it in the venv)"
    if reason is not None:
        pytest.skip(reason)
    assert tool is not None
    base = podman_engine.ensure_base_image()
    exported = export_demo(tmp_path_factory.mktemp("compose"), "compose", base)
    running = ComposeStack(exported, tool)
    try:
        running.compose("up", "-d", timeout=UP_TIMEOUT_S)
        yield running
    finally:
        subprocess.run(
            [tool, "-p", running.project, "-f", str(exported.output / "compose.yaml"),
             "down", "-v", "-t", "5"],
            capture_output=True, timeout=300, env=engine_env(),
        )  # fmt: skip
        left = running.states()
        podman("volume", "rm", "-f", f"{running.project}_falkordb-data", check=False)
        assert left == {}, f"containers left after down: {left}"


def test_the_export_builds_from_the_project_folder_without_host_paths(stack: ComposeStack) -> None:
    compose_text = (stack.exported.output / "compose.yaml").read_text()
    assert str(stack.exported.root) not in compose_text
    assert sys.prefix not in compose_text
    assert (stack.exported.root / "Containerfile").is_file()
    assert (stack.exported.root / ".containerignore").is_file()
    assert "build:\n      context: ..\n      dockerfile: Containerfile" in compose_text


def test_all_seven_containers_run(stack: ComposeStack) -> None:
    expected = {stack.container(service): "running" for service in SERVICES}
    wait_until(lambda: stack.states() == expected, 60, "all 7 containers running", every=1)


def test_the_dashboard_on_its_published_port_shows_every_engine_ticking(
    stack: ComposeStack,
) -> None:
    page = wait_until(
        lambda: httpx.get(stack.url("DASHBOARD_PORT", "/"), timeout=5), 60, "the dashboard page"
    )
    assert page.status_code == 200 and 'id="engine-rows"' in page.text
    feed_url = stack.url("DASHBOARD_PORT", "/ws").replace("http", "ws", 1)

    def ticking() -> set[str]:
        with ws_connect(feed_url, open_timeout=5) as feed:
            snapshot = json.loads(feed.recv(timeout=5))
            assert snapshot["type"] == "snapshot"
            first = {name: state["ticks"] for name, state in snapshot["engines"].items()}
            assert len(first) == ENGINES
            risen: set[str] = set()
            deadline = time.monotonic() + 15
            while risen != set(first) and time.monotonic() < deadline:
                tick = json.loads(feed.recv(timeout=5))
                if tick["type"] == "tick" and tick["ticks"] > first[tick["engine"]]:
                    risen.add(tick["engine"])
            return risen if risen == set(first) else set()

    assert len(wait_until(ticking, 90, "every engine's ticks rising through the dashboard")) == 8


def test_every_healthcheck_passes_when_run(stack: ComposeStack) -> None:
    checked = [s for s in SERVICES if stack.inspect(s)["Config"].get("Healthcheck")]  # type: ignore[union-attr]
    assert set(checked) == {
        "falkordb", "ws_api", "dashboard", "stimulus_injection", "signals_collector",
    }  # fmt: skip

    def healthy(service: str) -> bool:
        run = podman("healthcheck", "run", stack.container(service), check=False, timeout=60)
        return run.returncode == 0

    for service in checked:
        wait_until(lambda s=service: healthy(s), 60, f"{service}'s healthcheck", every=2)


def test_a_crashed_ws_api_is_restarted_by_the_engine(stack: ComposeStack) -> None:
    before = stack.inspect("ws_api")
    podman("kill", stack.container("ws_api"))
    time.sleep(5)  # podman would restart within ~0.1 s if it were going to
    stopped = stack.inspect("ws_api")
    assert stopped["State"]["Status"] == "exited"  # type: ignore[index]
    assert stopped["RestartCount"] == before["RestartCount"]  # stopped by the user: not restarted

    podman("start", stack.container("ws_api"))
    pid = wait_until(lambda: stack.inspect("ws_api")["State"]["Pid"], 30, "ws_api running")  # type: ignore[index]
    restarts = stack.inspect("ws_api")["RestartCount"]
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    wait_until(
        lambda: stack.inspect("ws_api")["RestartCount"] == restarts + 1,  # type: ignore[operator]
        30,
        "podman to restart the crashed ws_api",
    )
    ping = wait_until(
        lambda: httpx.get(stack.url("WS_PORT", "/api/ping"), timeout=5).json(), 60, "ws_api again"
    )
    assert ping["pong"] is True


def test_the_graph_lives_in_the_volume_and_survives_down_and_up(stack: ComposeStack) -> None:
    source = f"engines-{uuid.uuid4().hex[:8]}"
    posted = wait_until(
        lambda: httpx.post(
            stack.url("WS_PORT", "/api/stimulus"), json={"engine": "memory", "source": source},
            timeout=5,
        ),
        60,
        "ws_api to take a stimulus",
    )  # fmt: skip
    stimulus_id = posted.json()["id"]
    query = f"MATCH (s:Stimulus {{id: '{stimulus_id}'}})-[:TRIGGERED]->(e:Engine) RETURN e.name"
    assert "memory" in stack.graph(query)
    volume = f"{stack.project}_falkordb-data"
    mounts = stack.inspect("falkordb")["Mounts"]
    assert [(m["Name"], m["Destination"]) for m in mounts] == [(volume, "/data")]  # type: ignore[union-attr, index]

    stack.compose("down", "-t", "20")  # SIGTERM: FalkorDB saves its snapshot into /data
    assert stack.states() == {}
    mountpoint = Path(podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}").stdout.strip())
    assert (mountpoint / "dump.rdb").is_file()

    stack.compose("up", "-d", timeout=UP_TIMEOUT_S)
    found = wait_until(lambda: "memory" in stack.graph(query), 60, "the stimulus after down/up")
    assert found
