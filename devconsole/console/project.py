"""Which Django project the console works on, and how to start its manage.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devconsole.console.interpreter import (
    Interpreter,
    InterpreterError,
    Origin,
    Probe,
    choose_interpreter,
    expand_home,
)


class ProjectError(Exception):
    """The project cannot be located; the message is one line for the user."""


@dataclass(frozen=True)
class Project:
    """A Django project: its ``manage.py``, the options that runserver
    would take for it (``--settings``, ``--pythonpath``), and the interpreter
    its children run with (and why that one: :class:`~.interpreter.Origin`)."""

    manage_py: Path
    settings: str | None = None
    pythonpath: str | None = None
    python: str = field(default=sys.executable)
    #: Why :attr:`python` was chosen (see :func:`~.interpreter.choose_interpreter`).
    python_origin: Origin = Origin.OWN
    #: Extra environment for every child process (the demo uses it for its database path).
    env: tuple[tuple[str, str], ...] = ()
    #: Options for the project's runserver beyond devconsole's own
    #: (``--nostatic``, ``--insecure``, an override's own): the server child
    #: parses them with the runserver command that wins.
    runserver_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.python_origin is Origin.OWN and self.python != sys.executable:
            object.__setattr__(self, "python_origin", Origin.GIVEN)

    @property
    def root(self) -> Path:
        return self.manage_py.parent

    @property
    def interpreter(self) -> Interpreter:
        """The children's interpreter and why it was chosen."""
        return Interpreter(self.python, self.python_origin)

    def probe(self) -> Probe:
        """Start checking the interpreter (Python and Django versions) in a
        short subprocess; ``.result()`` waits for it and raises
        :class:`~.interpreter.InterpreterError` with one line for the user."""
        return Probe(self.interpreter, self.child_env(), self.root)

    def option_env(self) -> dict[str, str]:
        """``--settings`` / ``--pythonpath`` as the environment Django honours
        for every command: ``DJANGO_SETTINGS_MODULE`` (which manage.py's
        ``setdefault`` leaves alone) and ``PYTHONPATH``. Through the
        environment rather than as manage.py options, because a command whose
        parser does not take ``--settings`` must still run."""
        env: dict[str, str] = {}
        if self.settings:
            env["DJANGO_SETTINGS_MODULE"] = self.settings
        if self.pythonpath:
            path = os.path.abspath(os.path.expanduser(self.pythonpath))
            inherited = dict(self.env).get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (path, inherited) if p)
        return env

    def child_env(self) -> dict[str, str]:
        """Environment for a child process running this project's code."""
        env = dict(os.environ)
        env.update(self.env)
        env.update(self.option_env())
        env["PYTHONUNBUFFERED"] = "1"
        # The child's output is read through a pipe: keep it UTF-8 whatever the locale.
        env.setdefault("PYTHONIOENCODING", "utf-8")
        return env

    def child_argv(self, module: str, *args: str) -> list[str]:
        """The argv that runs ``python -m module`` for this project, with
        :meth:`bootstrap_args` first."""
        return [self.python, "-c", _CHILD_BOOT, _PACKAGE_PARENT, module, *self.bootstrap_args(), *args]

    def spawn(
        self, module: str, *args: str, stdin: int = subprocess.DEVNULL, pass_fds: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
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
    "import devconsole.child\n"
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


#: Directories never searched for a ``manage.py`` one level down.
_NOT_PROJECTS = frozenset({"node_modules", "site-packages", "venv", "env", "__pycache__"})


def find_manage_py_below(start: Path) -> list[Path]:
    """``manage.py`` files one level down from ``start`` (a repository root
    holding ``src/manage.py`` or ``backend/manage.py``); ``src/`` first."""
    start = start.resolve()
    try:
        children = sorted(p for p in start.iterdir() if p.is_dir())
    except OSError:
        return []
    found = [
        child / "manage.py"
        for child in children
        if not child.name.startswith(".") and child.name not in _NOT_PROJECTS and (child / "manage.py").is_file()
    ]
    found.sort(key=lambda p: p.parent.name != "src")
    return found


def locate_project(
    project_dir: str | None,
    *,
    cwd: Path | None = None,
    settings: str | None = None,
    pythonpath: str | None = None,
    python: str | None = None,
    environ: dict[str, str] | None = None,
) -> Project:
    """Resolve ``--project DIR`` (or the current directory) to a :class:`Project`
    whose interpreter is chosen by :func:`~.interpreter.choose_interpreter`
    (``python`` is ``--python``). Raises :class:`ProjectError` with one line."""
    here = cwd or Path.cwd()
    if project_dir is not None:
        try:
            directory = expand_home(project_dir, "--project")
        except InterpreterError as exc:
            raise ProjectError(str(exc)) from None
        if not directory.is_absolute():
            directory = here / directory
        if not directory.is_dir():
            raise ProjectError(f"--project {project_dir}: no such directory")
        manage_py = directory / "manage.py"
        if not manage_py.is_file():
            raise ProjectError(f"--project {project_dir}: no manage.py in {directory.resolve()}")
        found: Path | None = manage_py.resolve()
    else:
        found = find_manage_py(here)
        if found is None:
            below = find_manage_py_below(here)
            if len(below) == 1 or (below and below[0].parent.name == "src"):
                found = below[0]
            elif below:
                names = ", ".join(str(p.relative_to(here.resolve())) for p in below)
                raise ProjectError(
                    f"no manage.py in {here.resolve()} or its parents, and several one level down "
                    f"({names}); use --project DIR to choose one"
                )
    if found is None:
        raise ProjectError(
            f"no manage.py found in {here.resolve()} or its parents, nor one level down; "
            "use --project DIR to point at a Django project, or --demo to try the embedded one"
        )
    return project_for(found, settings=settings, pythonpath=pythonpath, python=python, environ=environ, cwd=here)


def project_for(
    manage_py: Path,
    *,
    settings: str | None = None,
    pythonpath: str | None = None,
    python: str | None = None,
    environ: dict[str, str] | None = None,
    cwd: Path | None = None,
    env: tuple[tuple[str, str], ...] = (),
    search: bool = True,
) -> Project:
    """A :class:`Project` for ``manage_py`` with its interpreter chosen.

    ``--pythonpath`` is made absolute against ``cwd`` (where the user typed
    it), since every child runs in the project's directory. ``search=False``
    keeps devconsole's own interpreter unless ``python`` is given (the demo).
    """
    here = cwd or Path.cwd()
    try:
        if pythonpath:
            pythonpath = str(here / expand_home(pythonpath, "--pythonpath"))
        if python or search:
            interpreter = choose_interpreter(manage_py, python, environ=environ, cwd=here)
        else:
            interpreter = Interpreter(sys.executable, Origin.OWN)
    except InterpreterError as exc:
        raise ProjectError(str(exc)) from None
    return Project(
        manage_py,
        settings=settings,
        pythonpath=pythonpath,
        python=interpreter.path,
        python_origin=interpreter.origin,
        env=env,
    )
