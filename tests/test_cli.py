"""The command line: project discovery and every bad input, through the real
``devconsole`` entry point in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devconsole import __version__
from devconsole.console.listen import AddressError, parse_addrport
from devconsole.console.project import ProjectError, find_manage_py, locate_project


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devconsole", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("devconsole: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_no_manage_py_suggests_project_and_demo(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert_one_line_error(result, "no manage.py found", str(tmp_path), "--project DIR", "--demo")


def test_project_directory_without_manage_py(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("--project", str(tmp_path)), "no manage.py in", str(tmp_path))


def test_project_directory_that_does_not_exist(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("--project", str(tmp_path / "nope")), "no such directory")


@pytest.mark.parametrize(
    ("addrport", "needle"),
    [
        ("abc:xyz", "not a valid port number or address:port pair"),
        ("8000x", "not a valid port number"),
        ("70000", "out of range"),
        ("300.1.1.1:8000", "not a valid IPv4 address"),
    ],
)
def test_invalid_addrport(addrport: str, needle: str) -> None:
    assert_one_line_error(run_cli("--demo", addrport), addrport, needle)


def test_port_in_use_names_the_address_and_suggests_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_one_line_error(
            run_cli("--demo", f"127.0.0.1:{port}"), f"127.0.0.1:{port} is already in use", "try another port"
        )
    suggested = line.rsplit("devconsole ", 1)[1]
    assert suggested.startswith("127.0.0.1:") and suggested != f"127.0.0.1:{port}"


def test_a_busy_port_leaves_an_old_recording_as_it_was(tmp_path: Path) -> None:
    old = tmp_path / "session.jsonl"
    old.write_text('{"type": "recording"}\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(run_cli("--demo", f"127.0.0.1:{port}", "--record", str(old)), "already in use")
    assert old.read_text() == '{"type": "recording"}\n'


@pytest.mark.parametrize("option", ["--project", "--python", "--pythonpath"])
def test_a_home_of_no_such_user_is_one_line(option: str) -> None:
    project = () if option == "--project" else ("--demo",)
    result = run_cli(*project, option, "~no-such-user-here/x")
    assert_one_line_error(result, f"{option} ~no-such-user-here/x", "cannot expand ~")


def test_surplus_positional_is_one_line() -> None:
    # Unknown options go to the project's runserver; a word nothing takes does not.
    assert_one_line_error(run_cli("--demo", "8001", "9000"), "unrecognized arguments: 9000")


def test_demo_and_project_together() -> None:
    assert_one_line_error(run_cli("--demo", "--project", "."), "--demo and --project")


def test_record_into_missing_directory(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("--demo", "--record", str(tmp_path / "no" / "file.jsonl")), "does not exist")


def test_replay_of_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text("hello\n")
    assert_one_line_error(run_cli("replay", str(bogus)), "not a devconsole event line")
    assert_one_line_error(run_cli("replay", str(tmp_path / "missing.jsonl")), "no such file")


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"devconsole {__version__}"


def test_discovery_walks_up_to_the_nearest_manage_py(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    nested = tmp_path / "app" / "templates"
    nested.mkdir(parents=True)
    assert find_manage_py(nested) == (tmp_path / "manage.py").resolve()
    project = locate_project(None, cwd=nested, settings="x.settings", pythonpath="/p")
    assert project.manage_py == (tmp_path / "manage.py").resolve()
    assert project.bootstrap_args() == [
        "--manage",
        str(project.manage_py),
        "--settings",
        "x.settings",
        "--pythonpath",
        "/p",
    ]
    with pytest.raises(ProjectError):
        locate_project(str(tmp_path / "app"))


def test_addrport_grammar_matches_runserver() -> None:
    assert parse_addrport(None).display == "127.0.0.1:8000"
    assert parse_addrport("8001").display == "127.0.0.1:8001"
    assert parse_addrport("0:8000").display == "0.0.0.0:8000"
    assert parse_addrport("[::1]:9000").display == "[::1]:9000"
    assert parse_addrport(None, ipv6=True).display == "[::1]:8000"
    assert parse_addrport("localhost:8002").host == "localhost"
    with pytest.raises(AddressError):
        parse_addrport("1.2.3.4:8000", ipv6=True)


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")}


def test_options_before_or_after_the_verb(demo_db: Path) -> None:
    import json

    for argv in (("--demo", "commands", "--json"), ("commands", "--demo", "--json"), ("--demo", "--json", "commands")):
        result = run_cli(*argv, timeout=120)
        assert result.returncode == 0, (argv, result.stderr)
        assert "migrate" in {c["name"] for c in json.loads(result.stdout)["commands"]}, argv


def test_replay_takes_its_options_before_the_verb_too(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jsonl")
    assert_one_line_error(run_cli("--speed", "2", "replay", missing), "no such file")
    assert_one_line_error(run_cli("replay", "--speed", "2", missing), "no such file")


def _manage_py(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manage.py").write_text("")
    return (directory / "manage.py").resolve()


def test_a_manage_py_one_level_down_is_found_from_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    backend = _manage_py(repo / "backend")
    _manage_py(repo / "node_modules" / "x")  # never a project
    assert locate_project(None, cwd=repo).manage_py == backend
    # Several: src/ is the convention and wins; otherwise the error names them.
    _manage_py(repo / "docs")
    with pytest.raises(ProjectError, match=r"several one level down \(backend/manage.py, docs/manage.py\)"):
        locate_project(None, cwd=repo)
    src = _manage_py(repo / "src")
    assert locate_project(None, cwd=repo).manage_py == src
    # One in the current directory or a parent still comes first.
    assert locate_project(None, cwd=repo / "docs").manage_py == (repo / "docs" / "manage.py").resolve()


def test_the_cli_finds_src_manage_py_and_names_where_it_looked(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert_one_line_error(run_cli("commands", cwd=repo), f"no manage.py found in {repo}", "nor one level down")
    src = repo / "src"
    src.mkdir()
    (src / "manage.py").write_text("import sys\nsys.stderr.write('src manage.py ran\\n')\nsys.exit(3)\n")
    result = subprocess.run(
        [sys.executable, "-m", "devconsole", "commands"],
        cwd=repo,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    # The catalogue child ran src/manage.py (which stops it): the project was found.
    assert result.returncode == 1, result
    assert f"running {(src / 'manage.py').resolve()} failed: SystemExit: 3" in result.stderr, result


@pytest.mark.parametrize("value", ["1", "x", "-3"])
def test_n_plus_one_takes_a_whole_number_of_two_or_more(value: str) -> None:
    assert_one_line_error(run_cli("--demo", f"--n-plus-one={value}", "127.0.0.1:65000"), "--n-plus-one", repr(value))


def test_no_browser_reload_is_a_server_option_manage_py_devconsole_passes_on() -> None:
    import argparse

    from devconsole.cli import add_server_options, server_options_argv

    parser = argparse.ArgumentParser()
    add_server_options(parser)  # the definitions manage.py devconsole adds too
    options = vars(parser.parse_args(["8001", "--no-browser-reload"]))
    assert options["no_browser_reload"] is True
    assert server_options_argv(options) == ["8001", "--no-browser-reload"]
    assert vars(parser.parse_args([]))["no_browser_reload"] is False
