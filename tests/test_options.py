"""Options reach everything: ``--settings`` / ``--pythonpath`` /
``DJANGO_SETTINGS_MODULE`` apply to the server, the catalogue and every
command run; runserver's own options (and an override's) pass through; what
the project prints while starting is in the log on the first start."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from devconsole.cli import server_parser, split_passthrough
from devconsole.commands.catalogue import load_catalogue
from devconsole.commands.runner import CommandRunner
from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project, locate_project
from devconsole.console.session import Session

from .conftest import Events, new_supervisor, serving, wait_for

DEV_MARKER = "DEV-SETTINGS-LOADED"


@pytest.fixture(scope="module")
def settings_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``proj.settings.{base,dev,prod}``; manage.py defaults to prod; a view
    and a command (whose parser takes no ``--settings``) say which one ran;
    the library the view imports lives in a directory reached only by
    ``--pythonpath``."""
    root = tmp_path_factory.mktemp("settingsproj")
    for package in ("proj", "proj/settings", "proj/management", "proj/management/commands"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "manage.py").write_text(
        textwrap.dedent("""\
        import os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings.prod")
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
        """)
    )
    (root / "proj" / "settings" / "base.py").write_text(
        textwrap.dedent("""\
        SECRET_KEY = "test"
        DEBUG = True
        ALLOWED_HOSTS = ["*"]
        ROOT_URLCONF = "proj.urls"
        INSTALLED_APPS = ["proj"]
        DATABASES = {}
        """)
    )
    (root / "proj" / "settings" / "dev.py").write_text(
        f"from .base import *\nFLAVOUR = 'dev'\nprint({DEV_MARKER!r}, flush=True)\n"
    )
    (root / "proj" / "settings" / "prod.py").write_text("from .base import *\nFLAVOUR = 'prod'\n")
    (root / "proj" / "urls.py").write_text(
        textwrap.dedent("""\
        from django.conf import settings
        from django.http import HttpResponse
        from django.urls import path

        def page(request):
            import extralib
            return HttpResponse(f"{settings.FLAVOUR} {extralib.NAME}")

        urlpatterns = [path("", page)]
        """)
    )
    # A command that replaces the parser: it does not accept --settings.
    (root / "proj" / "management" / "commands" / "flavour.py").write_text(
        textwrap.dedent("""\
        import argparse
        from django.conf import settings
        from django.core.management.base import BaseCommand

        class Command(BaseCommand):
            def create_parser(self, prog_name, subcommand, **kwargs):
                return argparse.ArgumentParser(prog=subcommand)

            def run_from_argv(self, argv):
                self.create_parser(argv[0], argv[1]).parse_args(argv[2:])
                import extralib
                print("flavour", settings.FLAVOUR, extralib.NAME, flush=True)
        """)
    )
    lib = root.parent / f"{root.name}-lib"
    lib.mkdir()
    (lib / "extralib.py").write_text("NAME = 'extralib'\n")
    return root


def _get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def _lib(root: Path) -> str:
    return str(root.parent / f"{root.name}-lib")


def test_settings_and_pythonpath_reach_server_catalogue_and_runs(
    settings_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    project = locate_project(str(settings_project), settings="proj.settings.dev", pythonpath=_lib(settings_project))
    project = replace(project, python=sys.executable)

    # The server, on the first start (fork servers on): dev, and its print is in the log.
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    session = Session(project, ListenAddress("127.0.0.1", port), sock)
    try:
        session.start()
        wait_for(lambda: session.state.hello or session.state.errors, timeout=60)
        assert session.state.hello, [line.text for line in session.state.log]
        assert _get(port, "/") == (200, "dev extralib")
        assert session.state.hello.settings == "proj.settings.dev"
        # Printed on its output, read beside the events: it may come after the hello.
        wait_for(
            lambda: any(line.text == DEV_MARKER for line in list(session.state.log)),
            describe=lambda: repr([line.text for line in list(session.state.log)]),
        )
    finally:
        session.close()

    assert load_catalogue(project).settings_module == "proj.settings.dev"

    runner = CommandRunner(project)
    run = runner.start("flavour", [], color=False)
    assert runner.wait(run, 60)
    assert run.returncode == 0, run.output_text()
    assert "flavour dev extralib" in run.output_text()
    # Pasted in a shell in the project directory, the command line does the same.
    assert run.command_line.startswith("DJANGO_SETTINGS_MODULE=proj.settings.dev PYTHONPATH=")
    pasted = subprocess.run(
        run.command_line, shell=True, cwd=settings_project, capture_output=True, text=True, timeout=60
    )
    assert "flavour dev extralib" in pasted.stdout, pasted.stderr


def test_django_settings_module_from_the_environment_reaches_runs(
    settings_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings.dev")
    monkeypatch.setenv("PYTHONPATH", _lib(settings_project))
    project = Project(settings_project / "manage.py")
    runner = CommandRunner(project)
    run = runner.start("flavour", [], color=False)
    assert runner.wait(run, 60)
    assert "flavour dev extralib" in run.output_text(), run.output_text()
    assert load_catalogue(project).settings_module == "proj.settings.dev"


def test_without_settings_the_default_of_manage_py_applies(
    settings_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.setenv("PYTHONPATH", _lib(settings_project))
    runner = CommandRunner(Project(settings_project / "manage.py"))
    run = runner.start("flavour", [], color=False)
    assert runner.wait(run, 60)
    assert "flavour prod extralib" in run.output_text(), run.output_text()


def test_the_commands_verb_takes_settings(settings_project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    result = subprocess.run(
        [sys.executable, "-m", "devconsole", "--settings", "proj.settings.dev", "commands", "--json"],
        cwd=settings_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["settings_module"] == "proj.settings.dev"


# -- runserver parity ------------------------------------------------------


def test_nostatic_and_insecure_reach_staticfiles_runserver(demo_project: Project) -> None:
    for args, expected in (((), 200), (("--nostatic",), 404), (("--insecure",), 200)):
        events = Events()
        with serving(replace(demo_project, runserver_args=args), events) as supervisor:
            port = supervisor.socket.getsockname()[1]
            status, _ = _get(port, "/static/shop/site.css")
        assert status == expected, (args, status)


def test_an_option_no_runserver_knows_is_shown_as_an_error(demo_project: Project) -> None:
    """The winning runserver's parser rejects it: the console shows the error
    and the socket serves an error page naming it (never a refused connection)."""
    events = Events()
    supervisor = new_supervisor(replace(demo_project, runserver_args=("--no-such-option",)), events)
    try:
        supervisor.start()
        error = wait_for(lambda: events.of("error"), timeout=30)
        status, body = _get(supervisor.socket.getsockname()[1], "/")
    finally:
        supervisor.close()
    assert not events.of("hello")
    assert error[-1]["phase"] == "runserver options"
    assert error[-1]["message"] == (
        "django.contrib.staticfiles.management.commands.runserver.Command: unrecognized arguments: --no-such-option"
    )
    assert "Traceback" not in error[-1]["traceback"]
    assert status == 500 and "unrecognized arguments: --no-such-option" in body


def test_cli_splits_runserver_options_from_its_own() -> None:
    parser = server_parser()
    assert split_passthrough(parser, ["--noasgi", "8001"]) == (["8001"], ["--noasgi"])
    assert split_passthrough(parser, ["8001", "--timeout", "30", "--demo"]) == (["8001", "--demo"], ["--timeout", "30"])
    assert split_passthrough(parser, ["--timeout=30", "--settings", "x.y", "9000"]) == (
        ["--settings", "x.y", "9000"],
        ["--timeout=30"],
    )
    args = parser.parse_args(["--nostatic", "--insecure", "--skip-checks", "--python", "/p"])
    assert (args.nostatic, args.insecure, args.skip_checks, args.python) == (True, True, True, "/p")


def test_manage_py_devconsole_takes_the_same_options(settings_project: Path, tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text(
        (settings_project / "manage.py").read_text().replace("proj.settings.prod", "dcsettings")
    )
    (tmp_path / "dcsettings.py").write_text("SECRET_KEY = 'x'\nINSTALLED_APPS = ['devconsole']\nDATABASES = {}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    result = subprocess.run(
        [sys.executable, "manage.py", "devconsole", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    cli_help = server_parser().format_help()
    for flag in ("--nostatic", "--insecure", "--skip-checks", "--python", "--noreload", "--record"):
        assert flag in result.stdout and flag in cli_help
    assert "are passed to it" in " ".join(result.stdout.split())

    from devconsole.management.commands.devconsole import Command, console_argv

    command = Command()
    parser = command.create_parser("manage.py", "devconsole")
    known, passthrough = split_passthrough(parser, ["8001", "--nostatic", "--noasgi", "--python=/p"])
    options = vars(parser.parse_args(known))
    options["runserver_passthrough"] = passthrough
    assert console_argv(options, str(tmp_path / "manage.py")) == [
        "8001",
        "--nostatic",
        "--python=/p",
        "--project",
        str(tmp_path),
        "--noasgi",
    ]
