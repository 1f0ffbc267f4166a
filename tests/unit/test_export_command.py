"""Tests of the ``export`` click command: files written, warnings on stderr, errors raised.

The command raises ``ConfigInvalid`` and ``MpsvError`` for ``cli.main()`` to report; click's
test runner hands the exception back, so each test checks its type and exit code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from mpsv3.errors import EXIT_FAILURE, EXIT_USAGE, ConfigInvalid, MpsvError
from mpsv3.export import export
from mpsv3.export.cli import WARNING_PREFIX, export_command, parse_images, write_files

CONFIG = """\
version: 1
name: shop
env:
  PORT: "${PORT:-8000}"
services:
  - id: db
    cmd: ["/bin/sh", "-c", "exec sleep 1000"]
    readiness: {tcp: {port: 5432}}
  - id: web
    cmd: ["/bin/sh", "-c", "exec sleep 1000"]
    requires: [db]
    ports: [8000]
    readiness: {http_get: {url: "http://127.0.0.1:${PORT}/ping"}}
    watch: {paths: ["*.py"]}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(CONFIG)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(export_command, list(args))


def test_systemd_files_are_written_and_listed(config_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "units"
    result = run("systemd", "-c", str(config_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    names = ["shop-db.service", "shop-web.service", "shop.target"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert sorted(Path(line).name for line in result.stdout.splitlines()) == names


def test_warnings_go_to_stderr_one_per_line(config_path: Path, tmp_path: Path) -> None:
    result = run("systemd", "-c", str(config_path), "-o", str(tmp_path / "out"))
    lines = result.stderr.splitlines()
    assert f'{WARNING_PREFIX}service "web": watch has no equivalent in systemd; dropped' in lines
    assert all(line.startswith(WARNING_PREFIX) for line in lines)
    assert not any(WARNING_PREFIX in line for line in result.stdout.splitlines())


def test_the_output_matches_the_pure_exporter(config_path: Path, tmp_path: Path) -> None:
    from mpsv3.config.loader import load_config

    out = tmp_path / "k8s"
    result = run("kubernetes", "-c", str(config_path), "-o", str(out), "--image", "shop:1")
    assert result.exit_code == 0, result.output
    expected = export("kubernetes", load_config(config_path), default_image="shop:1")
    assert {p.name: p.read_text() for p in out.iterdir()} == expected.files
    expected_stderr = [WARNING_PREFIX + line for line in expected.warnings]
    assert result.stderr.splitlines() == expected_stderr


def test_the_default_folder_is_named_after_the_target(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("compose", "--image", "db=postgres:16", "--image", "shop/web:2")
    assert result.exit_code == 0, result.output
    services = yaml.safe_load((tmp_path / "export-compose" / "compose.yaml").read_text())[
        "services"
    ]
    assert services["db"]["image"] == "postgres:16"
    assert services["web"]["image"] == "shop/web:2"


def test_set_overrides_reach_the_export(config_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    result = run(
        "compose", "-c", str(config_path), "-o", str(out), "--image", "x", "--set", "PORT=9001"
    )
    assert result.exit_code == 0, result.output
    services = yaml.safe_load((out / "compose.yaml").read_text())["services"]
    assert services["web"]["environment"]["PORT"] == "9001"
    assert "http://127.0.0.1:9001/ping" in services["web"]["healthcheck"]["test"][1]


def test_an_invalid_config_raises_config_invalid(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("version: 1\nservices:\n  - id: a\n    cmd: x\n    requires: [nope]\n")
    result = run("systemd", "-c", str(path), "-o", str(tmp_path / "out"))
    assert isinstance(result.exception, ConfigInvalid)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["compose", "kubernetes"])
def test_a_missing_image_is_a_usage_error(config_path: Path, tmp_path: Path, target: str) -> None:
    result = run(target, "-c", str(config_path), "-o", str(tmp_path / "out"))
    assert isinstance(result.exception, MpsvError)
    assert result.exception.exit_code == EXIT_USAGE
    assert "--image" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_an_image_for_systemd_is_a_usage_error(config_path: Path, tmp_path: Path) -> None:
    result = run("systemd", "-c", str(config_path), "-o", str(tmp_path / "o"), "--image", "x")
    assert isinstance(result.exception, MpsvError)
    assert result.exception.exit_code == EXIT_USAGE


def test_an_unknown_target_is_refused_by_click(config_path: Path) -> None:
    result = run("nomad", "-c", str(config_path))
    assert result.exit_code == 2
    assert "nomad" in result.output


@pytest.mark.parametrize(
    ("values", "images", "default"),
    [
        ([], {}, None),
        (["app:1"], {}, "app:1"),
        (
            ["db=postgres:16", "web=reg.local:5000/web@sha256:abc"],
            {"db": "postgres:16", "web": "reg.local:5000/web@sha256:abc"},
            None,
        ),
        (["db=postgres:16", "base:2"], {"db": "postgres:16"}, "base:2"),
    ],
)
def test_parse_images(values: list[str], images: dict[str, str], default: str | None) -> None:
    assert parse_images(values) == (images, default)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["a:1", "b:2"], "a default image was already given"),
        (["db=x", "db=y"], "given twice"),
        (["db="], "expected ID=IMAGE or IMAGE"),
        (["=x"], "expected ID=IMAGE or IMAGE"),
        ([""], "expected ID=IMAGE or IMAGE"),
    ],
)
def test_bad_images_are_usage_errors(values: list[str], message: str) -> None:
    with pytest.raises(MpsvError) as caught:
        parse_images(values)
    assert caught.value.exit_code == EXIT_USAGE
    assert message in str(caught.value)


def test_write_files_keeps_other_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    written = write_files(tmp_path, {"a.service": "A\n", "b.target": "B\n"})
    assert written == [tmp_path / "a.service", tmp_path / "b.target"]
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert (tmp_path / "a.service").read_text() == "A\n"


def test_an_unwritable_folder_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MpsvError) as caught:
        write_files(blocker / "sub", {"a": "b"})
    assert caught.value.exit_code == EXIT_FAILURE
    assert str(blocker / "sub") in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["systemd"], 0),
        (["compose"], EXIT_USAGE),
        (["kubernetes", "--image", "nope=x:1", "--image", "x:1"], EXIT_USAGE),
    ],
)
def test_the_mpsv3_entry_point_turns_errors_into_exit_codes(
    config_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    code: int,
) -> None:
    from mpsv3.cli.main import main

    argv = ["export", *extra, "-c", str(config_path), "-o", str(tmp_path / "out")]
    if code == 0:
        main(argv)  # returns: only failures exit through sys.exit
        assert (tmp_path / "out" / "shop.target").exists()
        return
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == code
    assert capsys.readouterr().err.startswith("mpsv3: ")


def test_the_mpsv3_entry_point_reports_an_invalid_config_with_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mpsv3.cli.main import main

    path = tmp_path / "services.yaml"
    path.write_text("version: 1\nservices:\n  - id: a\n    cmd: x\n    requires: [nope]\n")
    with pytest.raises(SystemExit) as exited:
        main(["export", "systemd", "-c", str(path)])
    assert exited.value.code == 78
    assert f"{path}:5:" in capsys.readouterr().err
