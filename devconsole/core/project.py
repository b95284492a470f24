"""Which Django project the console works on, and how to start its manage.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


class ProjectError(Exception):
    """The project cannot be located; the message is one line for the user."""


@dataclass(frozen=True)
class Project:
    """A Django project: its ``manage.py`` plus the options that runserver
    would take for it (``--settings``, ``--pythonpath``)."""

    manage_py: Path
    settings: str | None = None
    pythonpath: str | None = None
    python: str = field(default=sys.executable)
    #: Extra environment for every child process (the demo uses it for its database path).
    env: tuple[tuple[str, str], ...] = ()
    #: Options for the project's runserver beyond devconsole's own
    #: (``--nostatic``, ``--insecure``, an override's own): the server child
    #: parses them with the runserver command that wins.
    runserver_args: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        return self.manage_py.parent

    def child_env(self) -> dict[str, str]:
        """Environment for a child process running this project's code."""
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        # The child's output is read through a pipe: keep it UTF-8 whatever the locale.
        env.setdefault("PYTHONIOENCODING", "utf-8")
        return env

    def child_argv(self, module: str, *args: str) -> list[str]:
        """The argv that runs ``python -m module`` for this project, with
        :meth:`bootstrap_args` first."""
        return [self.python, "-c", _CHILD_BOOT, _PACKAGE_PARENT, module, *self.bootstrap_args(), *args]

    def spawn(self, module: str, *args: str, stdin: int = subprocess.DEVNULL, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        """Start ``python -m module`` for this project (:meth:`child_argv`) in
        its directory and environment, stdout and stderr piped, in a session
        of its own (Ctrl+C in the terminal is the console's, not the child's).
        Raises ``OSError`` when the interpreter cannot be started."""
        return subprocess.Popen(
            self.child_argv(module, *args),
            cwd=self.root,
            env=self.child_env(),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=True,
        )

    def bootstrap_args(self) -> list[str]:
        """Arguments that tell a devconsole child process how to reach the project."""
        args = ["--manage", str(self.manage_py)]
        if self.settings:
            args += ["--settings", self.settings]
        if self.pythonpath:
            args += ["--pythonpath", self.pythonpath]
        return args


#: Runs a devconsole module in a child interpreter whether or not devconsole
#: is installed there: this copy's parent directory is put on ``sys.path`` just
#: long enough to import the package, so the project's own modules still win.
_CHILD_BOOT = (
    "import sys, runpy\n"
    "_p = sys.argv.pop(1)\n"
    "sys.path.insert(0, _p)\n"
    "import devconsole.core\n"
    "sys.path.remove(_p)\n"
    "_m = sys.argv.pop(1)\n"
    "runpy.run_module(_m, run_name='__main__', alter_sys=True)\n"
)
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def find_manage_py(start: Path) -> Path | None:
    """The nearest ``manage.py`` in ``start`` or its parents."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / "manage.py"
        if candidate.is_file():
            return candidate
    return None


def locate_project(
    project_dir: str | None,
    *,
    cwd: Path | None = None,
    settings: str | None = None,
    pythonpath: str | None = None,
) -> Project:
    """Resolve ``--project DIR`` (or the current directory) to a :class:`Project`."""
    if project_dir is not None:
        directory = Path(project_dir).expanduser()
        if not directory.is_dir():
            raise ProjectError(f"--project {project_dir}: no such directory")
        manage_py = directory / "manage.py"
        if not manage_py.is_file():
            raise ProjectError(
                f"--project {project_dir}: no manage.py in {directory.resolve()}"
            )
        return Project(manage_py.resolve(), settings=settings, pythonpath=pythonpath)
    here = cwd or Path.cwd()
    found = find_manage_py(here)
    if found is None:
        raise ProjectError(
            f"no manage.py found in {here.resolve()} or its parents; "
            "use --project DIR to point at a Django project, or --demo to try the embedded one"
        )
    return Project(found, settings=settings, pythonpath=pythonpath)
