"""The control socket with real Unix sockets: permissions, framing, garbage, peers, fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mpsv3.control.client import request
from mpsv3.control.protocol import (
    NotRunning,
    RequestError,
    client_path,
    encode,
    parse_request,
    socket_path,
)
from mpsv3.control.server import ControlServer
from mpsv3.errors import EXIT_NOT_RUNNING, MpsvError
from mpsv3.platform import POINTER_NAME, PrivatePathError
from support import config, run_cli, service

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


@dataclass(frozen=True)
class Instance:
    name: str
    state_dir: Path
    path: Path


class Recorder:
    """A handler that answers every checked request and remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(message)
        if message["cmd"] == "restart" and message["id"] == "boom":
            raise RuntimeError("handler bug")
        if message["cmd"] == "stop" and message["id"] == "nope":
            raise MpsvError("unknown service 'nope': valid ids are api, db")
        return {"ok": True, "result": {"echo": message}}


def make_instance(tmp_path: Path, name: str = "demo") -> Instance:
    return Instance(name, tmp_path / ".mpsv3", tmp_path / "services.yaml")


async def raw_exchange(path: Path, payload: bytes, *, close_write: bool = True) -> bytes:
    """Send raw bytes, optionally half-close, and read whatever comes back until EOF."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(payload)
        await writer.drain()
        if close_write and writer.can_write_eof():
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        writer.close()


def test_socket_mode_dir_mode_and_round_trip(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)
    handler = Recorder()

    async def scenario() -> None:
        path = socket_path(instance)
        assert path == instance.state_dir / "run" / "control.sock"
        server = ControlServer(path, handler)
        await server.start()
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
            reply = await request(instance, {"cmd": "restart", "id": "api"})
            assert reply == {"ok": True, "result": {"echo": {"cmd": "restart", "id": "api"}}}
            reply = await request(instance, {"cmd": "stop", "id": "nope"})
            assert reply == {"ok": False, "error": "unknown service 'nope': valid ids are api, db"}
            reply = await request(instance, {"cmd": "restart", "id": "boom"})
            assert (
                reply["ok"] is False
                and "internal error: RuntimeError: handler bug" in reply["error"]
            )
        finally:
            await server.close()
        assert not path.exists()

    asyncio.run(scenario())
    assert [m["cmd"] for m in handler.seen] == ["restart", "stop", "restart"]


def garbage_payloads() -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    cases: list[tuple[str, bytes]] = [
        ("empty line", b"\n"),
        ("nothing at all", b""),
        ("half a line then close", b'{"cmd": "sta'),
        ("partial json", b'{"cmd": "status"\n'),
        ("json list", b'["status"]\n'),
        ("json string", b'"status"\n'),
        ("json null", b"null\n"),
        ("missing cmd", b'{"id": "api"}\n'),
        ("cmd not a string", b'{"cmd": 7}\n'),
        ("unknown cmd", b'{"cmd": "explode"}\n'),
        ("restart without id", b'{"cmd": "restart"}\n'),
        ("restart with numeric id", b'{"cmd": "restart", "id": 3}\n'),
        ("invalid utf-8", b'{"cmd": "\xff\xfe"}\n'),
        ("nul bytes", b"\x00" * 100 + b"\n"),
        ("deep nesting", b"[" * 50000 + b"\n"),
        ("one megabyte line", b'{"cmd": "status", "pad": "' + b"x" * (1 << 20) + b'"}\n'),
        ("one megabyte without newline", b"y" * (1 << 20)),
        ("http request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    while len(cases) < 50:
        size = rng.randint(1, 4096)
        blob = bytes(rng.randrange(256) for _ in range(size))
        cases.append((f"random {size} bytes", blob.replace(b"\n", b"") + b"\n"))
    return cases


def test_fifty_garbage_requests_leave_the_server_answering(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)
    handler = Recorder()
    cases = garbage_payloads()
    assert len(cases) == 50

    async def scenario() -> None:
        server = ControlServer(socket_path(instance), handler, read_timeout_s=5.0)
        await server.start()
        try:
            for label, payload in cases:
                data = await raw_exchange(server.path, payload)
                if data:  # a closed connection is acceptable, a reply must be an error
                    reply = json.loads(data)
                    assert reply["ok"] is False, label
                    assert reply["error"], label
            reply = await request(instance, {"cmd": "status"})
            assert reply["ok"] is True
        finally:
            await server.close()

    asyncio.run(scenario())
    assert handler.seen == [{"cmd": "status"}]


def test_garbage_gets_explicit_errors(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)

    async def scenario() -> dict[str, str]:
        server = ControlServer(socket_path(instance), Recorder(), max_request_bytes=1024)
        await server.start()
        try:
            errors = {}
            for label, payload in [
                ("big", b"z" * 100_000 + b"\n"),
                ("half", b'{"cmd":'),
                ("list", b"[1]\n"),
                ("unknown", b'{"cmd": "explode"}\n'),
            ]:
                errors[label] = json.loads(await raw_exchange(server.path, payload))["error"]
            return errors
        finally:
            await server.close()

    errors = asyncio.run(scenario())
    assert errors["big"] == "bad request: longer than 1024 bytes"
    assert "closed before the end of the line" in errors["half"]
    assert errors["list"] == "bad request: expected a JSON object, got an array"
    assert errors["unknown"].startswith("unknown command 'explode': expected one of status, ")


def test_slow_client_is_answered_and_does_not_block_others(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)

    async def scenario() -> None:
        server = ControlServer(socket_path(instance), Recorder(), read_timeout_s=0.5)
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(server.path))
            writer.write(b'{"cmd": "stat')  # and then nothing
            await writer.drain()
            good = await request(instance, {"cmd": "status"})  # served meanwhile
            assert good["ok"] is True
            reply = json.loads(await asyncio.wait_for(reader.read(), 10))
            assert reply == {"ok": False, "error": "bad request: no complete line within 0.5s"}
            writer.close()
        finally:
            await server.close()

    asyncio.run(scenario())


def test_handler_with_a_bad_reply_is_an_error_reply(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)

    async def sloppy(message: dict[str, Any]) -> dict[str, Any]:
        return {"result": "no ok key"}

    async def scenario() -> dict[str, Any]:
        server = ControlServer(socket_path(instance), sloppy)
        await server.start()
        try:
            return await request(instance, {"cmd": "status"})
        finally:
            await server.close()

    assert asyncio.run(scenario()) == {
        "ok": False,
        "error": "internal error: the supervisor gave no reply",
    }


def test_peer_of_another_uid_is_refused_by_peercred(tmp_path: Path) -> None:
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("SO_PEERCRED is Linux only")
    instance = make_instance(tmp_path)
    handler = Recorder()

    async def scenario() -> dict[str, Any]:
        # Pretend the supervisor runs as another uid: this process is then the stranger.
        server = ControlServer(socket_path(instance), handler, allowed_uid=os.geteuid() + 1)
        await server.start()
        try:
            return await request(instance, {"cmd": "down"})
        finally:
            await server.close()

    reply = asyncio.run(scenario())
    assert reply == {
        "ok": False,
        "error": f"permission denied: uid {os.geteuid()} is not the supervisor's uid {os.geteuid() + 1}",
    }
    assert handler.seen == []


STRANGER = """
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    sock.connect(sys.argv[1])
except PermissionError:
    print("EACCES")
    sys.exit(0)
sock.sendall(b'{"cmd": "down"}\\n')
data = b""
while chunk := sock.recv(65536):
    data += chunk
print(data.decode())
"""


NOBODY = 65534


def interpreter_for_nobody() -> str | None:
    """A Python that uid 65534 may run (the venv's may sit under root's 0700 home)."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not candidate:
            continue
        try:
            subprocess.run([candidate, "-I", "-c", "pass"], user=NOBODY, check=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    return None


def test_another_uid_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client under another uid")
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("SO_PEERCRED is Linux only")
    python = interpreter_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter that uid 65534 may execute")
    # pytest's tmp_path sits in a 0700 directory: use a folder the stranger may traverse.
    base = Path(tempfile.mkdtemp(prefix="mpsv3-peer-"))
    base.chmod(0o755)
    instance = make_instance(base)
    handler = Recorder()

    def stranger(path: Path) -> str:
        done = subprocess.run(
            [python, "-I", "-c", STRANGER, str(path)],
            user=NOBODY,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout.strip()

    async def scenario() -> tuple[str, str]:
        server = ControlServer(socket_path(instance), handler)
        await server.start()
        try:
            instance.state_dir.chmod(0o755)
            server.path.parent.chmod(0o711)  # let the stranger reach the socket itself
            by_mode = await asyncio.to_thread(stranger, server.path)
            server.path.chmod(0o666)  # now only SO_PEERCRED stands in the way
            by_uid = await asyncio.to_thread(stranger, server.path)
            return by_mode, by_uid
        finally:
            await server.close()

    try:
        by_mode, by_uid = asyncio.run(scenario())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert by_mode == "EACCES"
    assert json.loads(by_uid) == {
        "ok": False,
        "error": "permission denied: uid 65534 is not the supervisor's uid 0",
    }
    assert handler.seen == []


def test_long_state_dir_uses_the_short_fallback_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    instance = make_instance(deep, name="long")
    handler = Recorder()

    async def scenario() -> Path:
        path = socket_path(instance)
        server = ControlServer(path, handler)
        await server.start()
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
            reply = await request(instance, {"cmd": "status"})
            assert reply["ok"] is True
        finally:
            await server.close()
        return path

    path = asyncio.run(scenario())
    assert len(os.fsencode(str(path))) <= 100
    assert path.name.startswith("long-") and path.suffix == ".sock"
    assert not str(path).startswith(str(deep))
    pointer = instance.state_dir / "run" / POINTER_NAME
    assert pointer.read_text().strip() == str(path)
    assert client_path(instance) == path


def test_request_without_a_server_is_not_running(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)
    with pytest.raises(NotRunning) as caught:
        asyncio.run(request(instance, {"cmd": "status"}))
    assert caught.value.exit_code == EXIT_NOT_RUNNING == 3
    assert str(caught.value) == (
        f"no supervisor is running for instance 'demo' (config {instance.path})"
    )


def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)
    path = socket_path(instance)
    path.parent.mkdir(parents=True, exist_ok=True)  # socket_path made it private already
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a crashed supervisor's leftover

    async def scenario() -> None:
        with pytest.raises(NotRunning):
            await request(instance, {"cmd": "status"})
        first = ControlServer(path, Recorder())
        await first.start()
        try:
            second = ControlServer(path, Recorder())
            with pytest.raises(MpsvError, match="another control server answers"):
                await second.start()
            assert (await request(instance, {"cmd": "status"}))["ok"] is True
        finally:
            await first.close()

    asyncio.run(scenario())


def test_a_regular_file_in_the_way_is_not_removed(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)
    path = socket_path(instance)
    path.parent.mkdir(parents=True, exist_ok=True)  # socket_path made it private already
    path.write_text("precious")
    with pytest.raises(MpsvError, match="not a socket"):
        asyncio.run(ControlServer(path, Recorder()).start())
    assert path.read_text() == "precious"


def test_close_cuts_a_connection_that_never_finishes(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)

    async def scenario() -> None:
        gate = asyncio.Event()  # never set: the handler hangs

        async def stuck(message: dict[str, Any]) -> dict[str, Any]:
            await gate.wait()
            return {"ok": True, "result": None}

        server = ControlServer(socket_path(instance), stuck)
        await server.start()
        pending = asyncio.ensure_future(request(instance, {"cmd": "down"}, timeout_s=20))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(server.close(), 10)
        with pytest.raises(MpsvError, match=r"without a reply|dropped the connection"):
            await pending

    asyncio.run(scenario())


def test_a_symlinked_socket_folder_is_refused(tmp_path: Path) -> None:
    instance = make_instance(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    instance.state_dir.mkdir()
    (instance.state_dir / "run").symlink_to(elsewhere)
    with pytest.raises(PrivatePathError, match="it is a symlink"):
        asyncio.run(ControlServer(socket_path(instance), Recorder()).start())
    assert list(elsewhere.iterdir()) == []


def test_a_reply_json_cannot_hold_becomes_an_error() -> None:
    cyclic: dict[str, Any] = {"ok": True}
    cyclic["result"] = cyclic
    reply = json.loads(encode(cyclic))
    assert reply["ok"] is False and reply["error"].startswith(
        "internal error: the reply is not JSON"
    )
    assert json.loads(encode({"ok": True, "result": Path("/x")})) == {"ok": True, "result": "/x"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"cmd": "status"}\n', {"cmd": "status"}),
        (b'  {"cmd": "release", "id": "db"}  \r\n', {"cmd": "release", "id": "db"}),
        (b'{"cmd": "reload", "extra": 1}\n', {"cmd": "reload", "extra": 1}),
    ],
)
def test_parse_request_accepts_commands(line: bytes, message: dict[str, Any]) -> None:
    assert parse_request(line) == message


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"\n", "empty line"),
        (b"{\n", "not JSON"),
        (b"\xff\n", "not UTF-8"),
        (b"3\n", "got a number"),
        (b'{"cmd": null}\n', 'no "cmd"'),
        (b'{"cmd": "start", "id": ""}\n', 'needs an "id"'),
    ],
)
def test_parse_request_refuses_garbage(line: bytes, error: str) -> None:
    with pytest.raises(RequestError, match=error):
        parse_request(line)


# ------------------------------------------------------- the CLI client against a server

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "status.schema.json").read_text()
)

CONFIG = config(*(service(sid, ["python", "-c", "pass"]) for sid in ("api", "db")), name="clitest")


#: The fields the production-stack contract added to every status entry.
FIGURES = {"cpu_percent": 1.5, "cpu_seconds": 12.25, "rss_bytes": 10485760}
KEEPER = {"engine_pid": 4243, "containment": ["cgroup", "keeper"], "keeper_pid": 4242, "reclaimed": []}
SERVICE_FIELDS = {"kind": "service", "replica": None, "enabled": True}


class FakeSupervisor:
    """The lead's handler, in miniature: answers like the real one, for the client's sake."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: list[dict[str, Any]] = []
        self.on_down: Any = None
        self.reload_errors: list[str] = []

    def status(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "pid": self.pid,
                "name": "clitest",
                "config": "/x/services.yaml",
                "started_at": "2026-11-24T17:08:00.123Z",
                "version": "0.1.0",
                **FIGURES,
                **KEEPER,
            },
            "services": [
                {
                    "id": "api",
                    "state": "backoff",
                    "pid": None,
                    "pgid": None,
                    "restarts": 2,
                    "failures": 2,
                    "last_exit": {
                        "code": None,
                        "signal": "SIGKILL",
                        "at": "2026-11-24T17:09:00.000Z",
                    },
                    "next_restart_in_s": 1.5,
                    "ready_since": None,
                    "reason": "killed by SIGKILL",
                    **SERVICE_FIELDS,
                    "cpu_percent": None,
                    "cpu_seconds": None,
                    "rss_bytes": None,
                },
                {
                    "id": "db",
                    "state": "ready",
                    "pid": self.pid,
                    "pgid": self.pid,
                    "restarts": 0,
                    "failures": 0,
                    "last_exit": None,
                    "next_restart_in_s": None,
                    "ready_since": "2026-11-24T17:08:01.000Z",
                    "reason": None,
                    **SERVICE_FIELDS,
                    **FIGURES,
                },
            ],
        }

    async def __call__(self, message: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(message)
        cmd = message["cmd"]
        if cmd == "status":
            return {"ok": True, "result": self.status()}
        if cmd in ("restart", "stop", "start", "release"):
            if message["id"] not in ("api", "db"):
                return {"ok": False, "error": f"unknown service {message['id']!r} (valid: api, db)"}
            return {"ok": True, "result": {"message": f"{cmd} {message['id']} done"}}
        if cmd == "reload":
            if self.reload_errors:
                text = "the new config is invalid; nothing was changed:\n" + "\n".join(
                    self.reload_errors
                )
                return {"ok": False, "error": text}
            return {
                "ok": True,
                "result": {"added": ["cache"], "removed": [], "changed": ["api", "db"]},
            }
        if cmd == "down" and self.on_down is not None:
            self.on_down()
        return {"ok": True, "result": {"message": "stopping", "pid": self.pid}}


@contextlib.contextmanager
def serving(config_file: Path, handler: Any) -> Iterator[None]:
    """A control server on its own loop thread, as a running ``up`` would have."""
    from mpsv3.config.loader import load_config

    loop = asyncio.new_event_loop()
    server = ControlServer(socket_path(load_config(config_file)), handler)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(CONFIG)
    return path


def test_cli_status_json_is_the_result_and_validates(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSupervisor(os.getpid())
    with serving(config_file, fake):
        code, out, err = run_cli(capsys, "status", "--json", "-c", str(config_file))
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed == fake.status()
    jsonschema.Draft202012Validator(SCHEMA).validate(printed)


def test_cli_status_table(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serving(config_file, FakeSupervisor(os.getpid())):
        code, out, _err = run_cli(capsys, "status", "-c", str(config_file))
    assert code == 0
    header = out.splitlines()[0]
    assert header.startswith("clitest") and f"pid {os.getpid()}" in header
    assert "backoff" in out and "killed by" in out and "ready" in out


def test_cli_service_verbs(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSupervisor(os.getpid())
    with serving(config_file, fake):
        for verb in ("restart", "stop", "start", "release"):
            code, out, err = run_cli(capsys, verb, "api", "-c", str(config_file))
            assert (code, out, err) == (0, f"{verb} api done\n", "")
        code, out, err = run_cli(capsys, "restart", "nope", "-c", str(config_file))
    assert (code, out) == (1, "")
    assert err == "mpsv3: unknown service 'nope' (valid: api, db)\n"
    assert [m.get("id") for m in fake.seen] == ["api", "api", "api", "api", "nope"]


def test_cli_reload(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSupervisor(os.getpid())
    with serving(config_file, fake):
        code, out, _err = run_cli(capsys, "reload", "-c", str(config_file))
        assert (code, out) == (0, "added: cache\nchanged: api, db\n")
        fake.reload_errors = ["services.yaml:4: unknown key 'cmdd'", "services.yaml:9: bad URL"]
        code, out, err = run_cli(capsys, "reload", "-c", str(config_file))
    assert (code, out) == (78, "")
    assert "services.yaml:4: unknown key 'cmdd'\nservices.yaml:9: bad URL" in err


def test_cli_down_waits_until_the_supervisor_exits(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    fake = FakeSupervisor(stand_in.pid)

    def exit_later() -> None:
        def work() -> None:
            time.sleep(0.5)
            stand_in.terminate()
            stand_in.wait()

        threading.Thread(target=work, daemon=True).start()

    fake.on_down = exit_later
    try:
        with serving(config_file, fake):
            code, out, err = run_cli(capsys, "down", "-c", str(config_file))
    finally:
        stand_in.kill()
        stand_in.wait()
    assert (code, out) == (0, "stopped\n")
    assert f"PID {stand_in.pid}" in err
    assert [m["cmd"] for m in fake.seen] == ["status", "down"]


def test_cli_without_a_supervisor_exits_3(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["status"], ["status", "--json"], ["restart", "api"], ["reload"], ["down"]):
        code, out, err = run_cli(capsys, *argv, "-c", str(config_file))
        assert (code, out) == (3, ""), argv
        assert err == (
            f"mpsv3: no supervisor is running for instance 'clitest' (config {config_file})\n"
        )


def test_cli_finds_the_instance_of_a_config_being_edited(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(config_file, FakeSupervisor(os.getpid())):
        config_file.write_text(CONFIG + "bogus: 1\n")
        code, out, err = run_cli(capsys, "stop", "db", "-c", str(config_file))
    assert (code, out) == (0, "stop db done\n")
    assert "warning" in err and "bogus" in err and "instance 'clitest'" in err


def test_cli_config_that_names_no_instance_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "services.yaml"
    broken.write_text("version: 1\nname: ${NOPE}\nservices: []\n")
    code, out, err = run_cli(capsys, "status", "-c", str(broken))
    assert (code, out) == (78, "")
    assert "services.yaml:2" in err
