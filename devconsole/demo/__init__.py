"""The demo Django project shipped with devconsole (``devconsole --demo``).

``manage.py`` in this directory is a normal Django project entry point: run
with this directory as ``sys.path[0]``, its packages ``demosite`` (settings,
URLs, WSGI), ``shop`` and ``blog`` are imported as top-level modules. This
module only locates the project and prepares its database; it never imports
Django or the demo's code (the console never imports project code), so it is
cheap to import.

The SQLite database lives in a user-writable cache directory, never inside the
installed package: ``$DEVCONSOLE_DEMO_DB`` when set, otherwise
``$XDG_CACHE_HOME/devconsole/demo-<django major.minor>.sqlite3`` (with
``~/.cache`` as the default cache directory). ``demosite/settings.py`` keeps a
small copy of that logic for when ``manage.py`` is run by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

__all__ = [
    "DEMO_DIR",
    "DEMO_MANAGE_PY",
    "DemoError",
    "demo_database_path",
    "demo_env",
    "demo_stamp_path",
    "ensure_demo_database",
]

#: The directory holding the demo's ``manage.py`` (its project root).
DEMO_DIR: Path = Path(__file__).resolve().parent
#: The demo's ``manage.py``.
DEMO_MANAGE_PY: Path = DEMO_DIR / "manage.py"

#: The settings module of the demo (set explicitly: an inherited
#: ``DJANGO_SETTINGS_MODULE`` from the user's shell must not hijack it).
DEMO_SETTINGS = "demosite.settings"
#: The demo's apps that have migrations (their files make up the stamp).
_DEMO_APPS = ("shop", "blog")
#: Bump when the stamp's meaning changes.
_STAMP_FORMAT = "devconsole-demo-stamp 1"
#: Seconds ``manage.py migrate`` may take before it is given up on.
MIGRATE_TIMEOUT = 300.0
#: Characters of the migrate output kept on a DemoError.
_OUTPUT_TAIL = 4000


class DemoError(Exception):
    """The demo database could not be prepared.

    ``str(error)`` is one line for the user; ``output`` holds the tail of what
    ``manage.py migrate`` printed (stdout and stderr interleaved), and
    ``returncode`` its exit status (``None`` when it did not run to the end).
    """

    def __init__(self, message: str, output: str = "", returncode: int | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.returncode = returncode


def _django_series() -> str | None:
    """``"5.2"`` for the installed Django, read from its metadata (no import)."""
    try:
        version = metadata.version("django")
    except metadata.PackageNotFoundError:
        return None
    match = re.match(r"(\d+)\.(\d+)", version)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _cache_home() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative paths are invalid and must be ignored.
    if cache and os.path.isabs(cache):
        return Path(cache)
    return Path.home() / ".cache"


def demo_database_path() -> Path:
    """The demo's SQLite file, as an absolute path outside the package."""
    override = os.environ.get("DEVCONSOLE_DEMO_DB", "")
    if override:
        # Absolute: the children run with cwd = DEMO_DIR, where a relative
        # path would put the database inside the package.
        return Path(os.path.abspath(os.path.expanduser(override)))
    series = _django_series()
    name = f"demo-{series}.sqlite3" if series else "demo.sqlite3"
    return _cache_home() / "devconsole" / name


def demo_stamp_path() -> Path:
    """The stamp next to the database that records a completed ``migrate``."""
    database = demo_database_path()
    return database.with_name(database.name + ".stamp")


def demo_env() -> dict[str, str]:
    """Environment additions for every child process of the demo."""
    return {
        "DEVCONSOLE_DEMO_DB": str(demo_database_path()),
        "DJANGO_SETTINGS_MODULE": DEMO_SETTINGS,
    }


def _migrations_digest() -> str:
    """A hash of what ``migrate`` depends on: the demo's migration files
    (names and contents) and the installed Django version."""
    digest = hashlib.sha256(_STAMP_FORMAT.encode())
    try:
        digest.update(metadata.version("django").encode())
    except metadata.PackageNotFoundError:
        digest.update(b"django ?")
    for app in _DEMO_APPS:
        for path in sorted((DEMO_DIR / app / "migrations").glob("*.py")):
            digest.update(f"\0{app}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _is_prepared(database: Path, stamp: Path, expected: str) -> bool:
    try:
        return database.is_file() and stamp.read_text(encoding="utf-8").strip() == expected
    except OSError:
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize preparation between consoles started at the same time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str) -> str:
    return text[-_OUTPUT_TAIL:]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def ensure_demo_database(python: str = sys.executable) -> None:
    """Create and migrate the demo database unless it already is.

    Cheap when nothing changed: the database exists and its stamp matches the
    hash of the migration files, so no process is started. Otherwise runs
    ``python manage.py migrate --noinput`` in DEMO_DIR and writes the stamp.
    Raises DemoError with a one-line message when that fails.
    """
    database = demo_database_path()
    stamp = demo_stamp_path()
    expected = _migrations_digest()
    if _is_prepared(database, stamp, expected):
        return
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create the demo database directory {database.parent}: {exc.strerror or exc}") from exc

    with _locked(database.with_name(database.name + ".lock")):
        if _is_prepared(database, stamp, expected):  # another console did it meanwhile
            return
        try:
            stamp.unlink()
        except FileNotFoundError:
            pass
        env = dict(os.environ)
        env.update(demo_env())
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONUNBUFFERED"] = "1"
        command = [python, str(DEMO_MANAGE_PY), "migrate", "--noinput", "--no-color"]
        try:
            result = subprocess.run(
                command,
                cwd=DEMO_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=MIGRATE_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode("utf-8", "replace")
            raise DemoError(
                f"preparing the demo database {database} timed out: "
                f"manage.py migrate ran for more than {MIGRATE_TIMEOUT:g} s",
                _tail(output),
            ) from exc
        except OSError as exc:
            raise DemoError(f"cannot run {python} to prepare the demo database: {exc.strerror or exc}") from exc
        output = result.stdout.decode("utf-8", "replace")
        if result.returncode != 0:
            raise DemoError(
                f"preparing the demo database {database} failed: manage.py migrate exited "
                f"with status {result.returncode} ({_last_line(output)}); "
                f"deleting that file starts it afresh",
                _tail(output),
                result.returncode,
            )
        partial = stamp.with_name(stamp.name + f".{os.getpid()}.tmp")
        partial.write_text(expected + "\n", encoding="utf-8")
        os.replace(partial, stamp)
