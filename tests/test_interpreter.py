"""The project's interpreter: devconsole installed in an environment of its
own (pipx, ``uv tool``) runs a project whose dependencies live only in the
project's ``.venv``.

The module builds exactly that once: this test run's interpreter plays
devconsole's own environment (Django, Textual, watchfiles — but not the
project's dependency), and the project gets a ``.venv`` with Django and a
tiny local package ``projdep`` only (no Textual, no watchfiles, no rich: the
server child, the fork servers and the catalogue child must do without).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import django
import pytest

from devconsole.commands.runner import CommandRunner
from devconsole.console.interpreter import Interpreter, InterpreterError, Origin, choose_interpreter, django_supported
from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import ProjectError, locate_project, project_for
from devconsole.console.session import Session

from .conftest import wait_for

PROJDEP_VALUE = "projdep-only-in-the-project-venv"


def _wheel(directory: Path) -> Path:
    """A wheel of the one-module package ``projdep``, written by hand (a
    wheel is a zip with metadata): installing it needs no build backend."""
    name = "projdep-1.0-py3-none-any.whl"
    files = {
        "projdep.py": f"VALUE = {PROJDEP_VALUE!r}\n",
        "projdep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: projdep\nVersion: 1.0\n",
        "projdep-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: devconsole-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content.encode())}")
    record.append("projdep-1.0.dist-info/RECORD,,")
    files["projdep-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / name
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return wheel


def _write_project(root: Path) -> None:
    """A project whose view and command import ``projdep``; settings print a marker."""
    (root / "projapp" / "management" / "commands").mkdir(parents=True)
    for package in ("projapp", "projapp/management", "projapp/management/commands"):
        (root / package / "__init__.py").write_text("")
    (root / "manage.py").write_text(
        textwrap.dedent("""\
        import os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "projsettings")
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
        """)
    )
    (root / "projsettings.py").write_text(
        textwrap.dedent("""\
        SECRET_KEY = "test"
        DEBUG = True
        ALLOWED_HOSTS = ["*"]
        ROOT_URLCONF = "projurls"
        INSTALLED_APPS = ["projapp"]
        DATABASES = {}
        """)
    )
    (root / "projurls.py").write_text(
        textwrap.dedent("""\
        import sys
        import projdep
        from django.http import HttpResponse
        from django.urls import path

        def page(request):
            return HttpResponse(f"{sys.executable}|{projdep.VALUE}")

        urlpatterns = [path("", page)]
        """)
    )
    (root / "projapp" / "management" / "commands" / "projcmd.py").write_text(
        textwrap.dedent("""\
        import sys
        import projdep
        from django.core.management.base import BaseCommand

        class Command(BaseCommand):
            help = "Says which interpreter runs it."

            def handle(self, *args, **options):
                self.stdout.write(f"projcmd {sys.executable} {projdep.VALUE}")
        """)
    )


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with its ``.venv`` (Django and projdep, nothing else)."""
    root = tmp_path_factory.mktemp("proj")
    _write_project(root)
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = _wheel(tmp_path_factory.mktemp("wheel"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--disable-pip-version-check",
            f"django=={django.get_version()}",
            str(wheel),
        ],
        check=True,
    )
    return root


def _clean_environ() -> dict[str, str]:
    """The environment of a shell where no virtualenv is activated."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def test_the_project_venv_has_only_django_and_projdep(project_dir: Path) -> None:
    python = project_dir / ".venv" / "bin" / "python"
    for module in ("textual", "watchfiles", "rich"):
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is importable in the project venv: the test would prove nothing"
    with pytest.raises(ImportError):
        __import__("projdep")  # and devconsole's own environment lacks the project's dependency


def test_server_catalogue_and_runs_use_the_project_venv(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    venv_python = str(project_dir / ".venv" / "bin" / "python")
    project = locate_project(None, cwd=project_dir / "projapp")
    assert project.python == venv_python
    assert project.interpreter.why == "the .venv beside manage.py"
    assert project.probe().result().django == django.get_version()

    # The server (with the fork servers: reload on) serves the view that imports projdep.
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    session = Session(project, ListenAddress("127.0.0.1", port), sock)
    try:
        session.start()
        wait_for(lambda: session.state.hello or session.state.errors, timeout=60)
        assert session.state.hello, (
            f"the server failed: {list(session.state.errors)} {[line.text for line in session.state.log]}"
        )
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
    finally:
        session.close()
    assert response.status == 200, body
    assert body == f"{venv_python}|{PROJDEP_VALUE}"

    # A command run from the Commands view uses it too.
    runner = CommandRunner(project)
    run = runner.start("projcmd", [], color=False)
    assert runner.wait(run, 60)
    assert run.returncode == 0, run.output_text()
    assert f"projcmd {venv_python} {PROJDEP_VALUE}" in run.output_text()
    assert run.argv[0] == venv_python


def test_the_catalogue_from_the_command_line_uses_the_project_venv(project_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devconsole", "commands", "--json"],
        cwd=project_dir,
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    catalogue = json.loads(result.stdout)
    assert catalogue["python_executable"] == str(project_dir / ".venv" / "bin" / "python")
    names = {command["name"] for command in catalogue["commands"]}
    assert {"projcmd", "migrate", "runserver"} <= names


def test_a_venv_without_django_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True)
    for verb in ([], ["commands"]):
        result = subprocess.run(
            [sys.executable, "-m", "devconsole", *verb],
            cwd=tmp_path,
            env=_clean_environ(),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, result
        assert result.stderr.splitlines() == [
            f"devconsole: error: {tmp_path / '.venv' / 'bin' / 'python'} (the .venv beside manage.py) "
            "has no Django: install it there, or pass --python"
        ]


def test_python_option_that_names_nothing_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "devconsole", "--python", str(tmp_path / "nope")],
        cwd=tmp_path,
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"devconsole: error: --python {tmp_path / 'nope'}: no such file"]


def _fake_venv(directory: Path) -> Path:
    python = directory / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    return python


def test_the_order_of_choice(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    manage_py = repo / "src" / "manage.py"
    manage_py.parent.mkdir(parents=True)
    manage_py.write_text("")
    own = "/own/bin/python"

    def choose(option: str | None = None, **environ: str) -> Interpreter:
        return choose_interpreter(manage_py, option, environ=environ, cwd=tmp_path, own=own, own_prefix="/own")

    assert choose() == Interpreter(own, Origin.OWN)
    above = _fake_venv(repo / "venv")
    assert choose() == Interpreter(str(above), Origin.VENV_ABOVE)
    assert choose().why == f"the venv in {repo} (above manage.py)"
    beside = _fake_venv(repo / "src" / ".venv")
    assert choose().describe() == f"{beside} (the .venv beside manage.py)"
    active = _fake_venv(tmp_path / "active")
    assert choose(VIRTUAL_ENV=str(tmp_path / "active")) == Interpreter(str(active), Origin.VIRTUAL_ENV)
    # devconsole's own env activated: simply devconsole's interpreter.
    assert choose(VIRTUAL_ENV="/own") == Interpreter(own, Origin.VIRTUAL_ENV)
    # --python wins over everything: a file, a virtualenv directory, a command.
    assert choose(str(active), VIRTUAL_ENV=str(tmp_path / "active")).origin is Origin.OPTION
    assert choose(str(tmp_path / "active")).path == str(active)
    assert choose("sh").path.endswith("/sh")
    with pytest.raises(InterpreterError, match="no such file"):
        choose(str(tmp_path / "missing"))
    with pytest.raises(InterpreterError, match=r"^\$VIRTUAL_ENV is .* pass --python$"):
        choose(VIRTUAL_ENV=str(tmp_path / "gone"))


def test_the_demo_keeps_devconsoles_interpreter(tmp_path: Path) -> None:
    manage_py = tmp_path / "manage.py"
    manage_py.write_text("")
    _fake_venv(tmp_path / ".venv")
    demo = project_for(manage_py, search=False)
    assert demo.interpreter == Interpreter(sys.executable, Origin.OWN)
    assert project_for(manage_py, python=sys.executable, search=False).python_origin is Origin.OPTION
    with pytest.raises(ProjectError):
        project_for(manage_py, python=str(tmp_path / "nope"), search=False)


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("4.2.20", True),
        ("5.2.19", True),
        ("6.1.3", True),
        ("6.0a1", True),
        ("4.1.13", False),
        ("3.2", False),
        ("7.0", False),
        ("x", False),
    ],
)
def test_supported_django_versions(version: str, supported: bool) -> None:
    assert django_supported(version) is supported


async def test_status_line_and_anatomy_say_which_interpreter_and_why(tmp_path: Path) -> None:
    from textual.widgets import Static

    from devconsole.console.project import Project
    from devconsole.ui.app import DevConsoleApp
    from devconsole.ui.screens.anatomy import AnatomyView
    from devconsole.ui.widgets.statusline import StatusLine

    # A hostile directory name: markup stays text, the escape is made visible.
    python = tmp_path / "[bold]x\x1b[31m" / ".venv" / "bin" / "python"
    project = Project(tmp_path / "manage.py", python=str(python), python_origin=Origin.VENV_BESIDE)
    app = DevConsoleApp(project=project)
    async with app.run_test(size=(200, 40)) as pilot:
        status = app.screen.query_one(StatusLine)
        status.refresh_from_state(app.state)
        await pilot.pause()
        shown = str(status.render())
        assert "[bold]x\\x1b[31m/.venv/bin/python (the .venv beside manage.py)" in shown
        assert "\x1b" not in shown
        await pilot.press("a")
        await pilot.pause()
        app.screen.refresh_from_state(app.state)  # type: ignore[attr-defined]
        await pilot.pause()
        anatomy = str(app.screen.query_one(AnatomyView, Static).render())
        assert "Interpreter: " in anatomy and "(the .venv beside manage.py)" in anatomy and "\x1b" not in anatomy
