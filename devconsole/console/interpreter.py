"""Which Python runs the project, why, and whether it can.

devconsole is often installed in an environment of its own (``pipx``,
``uv tool``), while the project's dependencies live in the project's
virtualenv. The children (server, fork servers, catalogue, command runs)
must run with the project's interpreter, so :func:`choose_interpreter`
picks, in order:

1. ``--python PATH`` (a file, a virtualenv directory, or a command on PATH);
2. ``$VIRTUAL_ENV``'s python (an activated virtualenv);
3. a ``.venv`` or ``venv`` directory beside ``manage.py`` or in one of its
   parents;
4. devconsole's own ``sys.executable``.

The choice records its :class:`Origin`, so the console can say which
interpreter runs the project and why. :func:`start_probe` checks the chosen
one in a short subprocess (its Python and Django versions) while the caller
does something else; an interpreter without Django, or with a Django
devconsole does not support, becomes one line for the user.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

#: Django series devconsole supports: 4.2 LTS up to 6.x.
SUPPORTED_DJANGO = ((4, 2), (7, 0))
SUPPORTED_TEXT = "4.2 to 6.x"
#: Virtualenv directory names looked for beside manage.py and above.
VENV_NAMES = (".venv", "venv")
#: Seconds the probe may take (a cold disk, a big site-packages).
PROBE_TIMEOUT = 30.0


class InterpreterError(Exception):
    """The chosen interpreter cannot run the project; one line for the user."""


class Origin(Enum):
    """Why an interpreter was chosen."""

    OPTION = "--python"
    VIRTUAL_ENV = "$VIRTUAL_ENV"
    VENV_BESIDE = "beside manage.py"
    VENV_ABOVE = "above manage.py"
    OWN = "devconsole's own"
    MANAGE_PY = "the python running manage.py devconsole"
    #: Set by code (tests, scripts) constructing a Project with ``python=``.
    GIVEN = "given"


@dataclass(frozen=True)
class Interpreter:
    """An interpreter for the project's children and the reason it was chosen."""

    path: str
    origin: Origin = Origin.OWN

    @property
    def venv(self) -> Path | None:
        """The virtualenv directory the interpreter belongs to, for a found one."""
        if self.origin in (Origin.VENV_BESIDE, Origin.VENV_ABOVE, Origin.VIRTUAL_ENV):
            return Path(self.path).parent.parent
        return None

    @property
    def why(self) -> str:
        """``"--python"``, ``"the .venv beside manage.py"``, ``"devconsole's own"``…"""
        venv = self.venv
        if self.origin is Origin.VENV_BESIDE and venv is not None:
            return f"the {venv.name} beside manage.py"
        if self.origin is Origin.VENV_ABOVE and venv is not None:
            return f"the {venv.name} in {venv.parent} (above manage.py)"
        return self.origin.value

    def describe(self) -> str:
        """``/p/.venv/bin/python (the .venv beside manage.py)``."""
        return f"{self.path} ({self.why})"


@dataclass(frozen=True)
class ProbeResult:
    """What the probe found in the interpreter."""

    python: str
    django: str


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":  # pragma: no cover - POSIX is what is tested
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _same_env(prefix: str, own_prefix: str) -> bool:
    try:
        return os.path.samefile(prefix, own_prefix)
    except OSError:
        return os.path.normpath(prefix) == os.path.normpath(own_prefix)


def expand_home(value: str, option: str) -> Path:
    """``value`` with a leading ``~`` or ``~user`` expanded; an unknown user
    is the user's mistake, one line (:class:`InterpreterError`)."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        raise InterpreterError(f"{option} {value}: cannot expand ~ (no such user or home directory)") from None


def _resolve_option(value: str, cwd: Path) -> str:
    """``--python``: a file, a virtualenv directory or a command on PATH."""
    path = expand_home(value, "--python")
    if not path.is_absolute() and (os.sep in value or (cwd / path).exists()):
        path = cwd / path
    if path.is_dir():
        candidate = _venv_python(path)
        if not candidate.exists():
            raise InterpreterError(f"--python {value}: {path} is a directory without {candidate.relative_to(path)}")
        return str(candidate)
    if path.is_absolute():
        if not path.exists():
            raise InterpreterError(f"--python {value}: no such file")
        return str(path)
    found = shutil.which(value)
    if found is None:
        raise InterpreterError(f"--python {value}: no such file, nor a command on PATH")
    return found


def choose_interpreter(
    manage_py: Path,
    option: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    own: str = sys.executable,
    own_prefix: str = sys.prefix,
) -> Interpreter:
    """The interpreter for the project of ``manage_py`` (see the module doc).

    Raises :class:`InterpreterError` for a ``--python`` or ``$VIRTUAL_ENV``
    that names nothing usable (the user asked for it: no silent fallback).
    """
    environ = os.environ if environ is None else environ
    if option:
        return Interpreter(_resolve_option(option, cwd or Path.cwd()), Origin.OPTION)
    virtual_env = environ.get("VIRTUAL_ENV")
    if virtual_env:
        if _same_env(virtual_env, own_prefix):
            # devconsole lives in the activated env: the same interpreter.
            return Interpreter(own, Origin.VIRTUAL_ENV)
        candidate = _venv_python(Path(virtual_env))
        if not candidate.exists():
            raise InterpreterError(
                f"$VIRTUAL_ENV is {virtual_env}, which has no {candidate.relative_to(virtual_env)}: "
                "activate another virtualenv, deactivate it, or pass --python"
            )
        return Interpreter(str(candidate), Origin.VIRTUAL_ENV)
    root = manage_py.resolve().parent
    for directory in (root, *root.parents):
        for name in VENV_NAMES:
            candidate = _venv_python(directory / name)
            if candidate.exists():
                return Interpreter(str(candidate), Origin.VENV_BESIDE if directory == root else Origin.VENV_ABOVE)
    return Interpreter(own, Origin.OWN)


#: Printed by the probe: the interpreter's Python and Django versions. The
#: Django import is the real test (its dependencies must import too); it is
#: the same import every child starts with, so it costs little that the
#: child will not pay anyway.
_PROBE = (
    "import json, platform, sys\n"
    "try:\n"
    "    import django\n"
    "    v = django.get_version()\n"
    "except ImportError as e:\n"
    "    v = None\n"
    "    err = f'{type(e).__name__}: {e}'\n"
    "else:\n"
    "    err = None\n"
    "sys.stdout.write(json.dumps({'python': platform.python_version(), 'django': v, 'error': err}))\n"
)


class Probe:
    """A running probe of an interpreter; :meth:`result` waits for it."""

    def __init__(self, interpreter: Interpreter, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.interpreter = interpreter
        self._error: InterpreterError | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._own: dict[str, str | None] | None = None
        if interpreter.path == sys.executable:
            # devconsole's own interpreter: ask this process (no start-up cost).
            self._own = {"python": platform.python_version(), "django": _installed_django()}
            return
        try:
            self._proc = subprocess.Popen(
                [interpreter.path, "-c", _PROBE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        except OSError as exc:
            self._error = InterpreterError(f"{interpreter.describe()} cannot be started: {exc.strerror or exc}")

    def result(self, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
        """The versions found; raises :class:`InterpreterError` (one line)."""
        if self._error is not None:
            raise self._error
        name = self.interpreter.describe()
        if self._own is not None:
            return self._check(name, self._own)
        assert self._proc is not None
        try:
            out, err = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            raise InterpreterError(f"{name} did not answer in {timeout:g} s") from None
        try:
            data = json.loads(out.decode("utf-8", "replace"))
        except ValueError:
            data = None
        if self._proc.returncode != 0 or not isinstance(data, dict):
            lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
            reason = lines[-1].strip() if lines else f"exit status {self._proc.returncode}"
            raise InterpreterError(f"{name} does not run: {reason}")
        return self._check(name, data)

    @property
    def failed(self) -> bool:
        """The interpreter could not even be started (known at once)."""
        return self._error is not None

    @staticmethod
    def _check(name: str, data: Mapping[str, object]) -> ProbeResult:
        python = str(data.get("python") or "?")
        django = data.get("django")
        if not django:
            raise InterpreterError(f"{name} has no Django: install it there, or pass --python")
        if not django_supported(str(django)):
            raise InterpreterError(
                f"{name} has Django {django}; devconsole supports Django {SUPPORTED_TEXT}: "
                "install a supported Django there, or pass --python"
            )
        return ProbeResult(python=python, django=str(django))


def _installed_django() -> str | None:
    """This interpreter's Django version, from its metadata (no import)."""
    from importlib import metadata

    try:
        return metadata.version("django")
    except metadata.PackageNotFoundError:
        return None


def django_supported(version: str) -> bool:
    """Is ``version`` (``"5.2.19"``, ``"6.1a1"``) in :data:`SUPPORTED_DJANGO`?"""
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            return False
        parts.append(int(digits))
    if len(parts) < 2:
        return False
    low, high = SUPPORTED_DJANGO
    return low <= (parts[0], parts[1]) < high
