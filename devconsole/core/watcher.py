"""What to watch for changes, and the watching itself.

Two halves that meet through the ``watch`` event:

* :func:`watch_event` runs in the server child (it imports Django). It lists
  the project's own module files (outside the interpreter and site-packages),
  the directories they live in, and the directories and globs that apps
  register through Django's ``autoreload_started`` signal (template
  directories with ``**/*``, locale directories with ``**/*.mo``), plus the
  places never worth a restart (media, static root, the SQLite database).
* :class:`Watcher` runs in the console. It watches those roots with
  watchfiles (inotify on Linux: nothing is polled by stat) and hands each
  batch of changed paths to a callback. watchfiles is imported lazily so
  that the child never needs it.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: Module files reported in one ``watch`` event; a project with more still has
#: them all watched (through their directories), just not listed one by one.
MAX_REPORTED_FILES = 20000
#: How long watchfiles waits for a batch to settle (ms). Editors write a save
#: as several events within a few ms; 10 ms groups them and keeps detection
#: fast (a batch is delivered 1-2 steps after the save). watchfiles' default
#: (50 ms) would be most of the reload budget. Idle cost: a wake-up per step
#: in Rust, about 0.2 % of one CPU.
STEP_MS = 10
#: Directories never watched into (beyond watchfiles' own defaults).
IGNORED_DIRS = frozenset(
    {
        "__pycache__", ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv",
        ".idea", ".vscode", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache",
        ".hypothesis", "site-packages", "dist-packages", "htmlcov", ".cache",
    }
)
#: File names never worth a reload: editors' swap, backup and lock files,
#: compiled Python, SQLite databases and their journals.
IGNORED_NAMES = re.compile(
    r"(\.py[cod]$|\.sw[a-p]$|\.swx$|~$|^\.#|^#.*#$|^4913$|\.bak$|\.orig$|\.tmp$|^\.DS_Store$"
    r"|___jb_(old|tmp)___$|^flycheck_|\.sqlite3?(-journal|-wal|-shm)?$|\.db(-journal|-wal|-shm)?$)"
)


# --------------------------------------------------------------- child side
def _library_dirs() -> list[str]:
    """Where the interpreter and installed packages live: never the project's."""
    dirs: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(path)
    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        dirs.add(path)
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - old virtualenv's site.py
        pass
    user = getattr(site, "getusersitepackages", lambda: "")()
    if user:
        dirs.add(user)
    return sorted(os.path.realpath(d) + os.sep for d in dirs if d)


def is_project_file(path: str, project_root: str, library_dirs: list[str]) -> bool:
    """True for files that belong to the project rather than to a library.

    devconsole's own package counts as a library unless the project lives
    inside it (the embedded demo does).
    """
    if not path.startswith(project_root + os.sep):
        if any(path.startswith(d) for d in library_dirs):
            return False
        if path.startswith(_DEVCONSOLE_DIR):
            return False
    parts = Path(path).parts
    return not any(part in IGNORED_DIRS for part in parts)


_DEVCONSOLE_DIR = os.path.realpath(Path(__file__).resolve().parents[1]) + os.sep


def project_module_files(project_root: Path) -> list[str]:
    """Files of the modules imported so far that belong to the project."""
    root = os.path.realpath(project_root)
    libs = _library_dirs()
    found: set[str] = set()
    for name, module in list(sys.modules.items()):
        if name in ("__main__", "__mp_main__"):
            filename = getattr(module, "__file__", None)
        else:
            spec = getattr(module, "__spec__", None)
            filename = spec.origin if spec is not None and spec.has_location else None
        if not filename or not isinstance(filename, str):
            continue
        real = os.path.realpath(filename)
        if is_project_file(real, root, libs):
            found.add(real)
    return sorted(found)


def library_module_names(project_root: Path) -> list[str]:
    """Names of imported modules that come from the interpreter or site-packages
    (what a level-0 zygote can import ahead of time)."""
    root = os.path.realpath(project_root)
    libs = _library_dirs()
    names = []
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is None or not spec.has_location or not isinstance(spec.origin, str):
            continue
        if not is_project_file(os.path.realpath(spec.origin), root, libs):
            names.append(name)
    return sorted(names)


def roots_for(files: Iterable[str], import_roots: Iterable[str] = ()) -> list[str]:
    """Directories (watched recursively) and single files covering ``files``.

    A module inside a package is covered by its top-level package directory
    (the one right below an ``import_roots`` entry, i.e. ``sys.path``); a
    top-level module (``manage.py``) by the file itself, so the project
    directory, which may hold a virtualenv or node_modules, is never walked.
    """
    stops = {os.path.realpath(p) for p in import_roots}
    roots: set[str] = set()
    for filename in files:
        directory = os.path.dirname(filename)
        if directory in stops or not os.path.exists(os.path.join(directory, "__init__.py")):
            roots.add(filename)
            continue
        while True:
            parent = os.path.dirname(directory)
            if parent in stops or parent == directory or not os.path.exists(os.path.join(parent, "__init__.py")):
                break
            directory = parent
        roots.add(directory)
    return collapse(roots)


def collapse(paths: Iterable[str]) -> list[str]:
    """``paths`` without those inside another of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(path)
    return kept


class _Collector:
    """Stands in for Django's reloader when ``autoreload_started`` is sent:
    receivers call ``watch_dir`` (or add to ``extra_files``)."""

    def __init__(self) -> None:
        self.extra_files: set[Any] = set()
        self.directory_globs: dict[Path, set[str]] = defaultdict(set)

    def watch_dir(self, path: Any, glob: str) -> None:
        try:
            self.directory_globs[Path(path).absolute()].add(glob)
        except (OSError, ValueError):
            pass

    def watch_file(self, path: Any) -> None:  # older third-party receivers
        self.extra_files.add(path)


def watch_event(manage_py: Path) -> dict[str, Any]:
    """The ``watch`` event of this (fully set up) process."""
    from django.conf import settings
    from django.utils.autoreload import autoreload_started

    project_root = manage_py.resolve().parent
    collector = _Collector()
    autoreload_started.send(sender=collector)
    files = project_module_files(project_root)
    extra = [os.path.realpath(str(f)) for f in collector.extra_files]
    dir_globs = sorted(
        [str(directory), glob]
        for directory, globs in collector.directory_globs.items()
        for glob in globs
        if directory.is_dir()
    )
    import_roots = [p or os.getcwd() for p in sys.path if isinstance(p, str)]
    roots = collapse([*roots_for(files, import_roots), *extra, *(d for d, _ in dir_globs)])
    ignore = []
    for name in ("MEDIA_ROOT", "STATIC_ROOT"):
        value = getattr(settings, name, None)
        if value:
            ignore.append(os.path.realpath(str(value)))
    for database in getattr(settings, "DATABASES", {}).values():
        if "sqlite" in str(database.get("ENGINE", "")) and database.get("NAME"):
            ignore.append(os.path.realpath(str(database["NAME"])))
    return {
        "type": "watch",
        "roots": roots,
        "globs": [os.path.join(d, g) for d, g in dir_globs],
        "dir_globs": dir_globs,
        "files": files[:MAX_REPORTED_FILES] + extra,
        "files_total": len(files) + len(extra),
        "ignore": ignore,
        "ts": time.time(),
    }


# ------------------------------------------------------------- console side
def default_roots(project_root: Path) -> list[str]:
    """What to watch before a child has said anything (or when it never can,
    because the settings are broken): ``manage.py`` and the packages next to it."""
    roots = [str(project_root / "manage.py")]
    try:
        entries = list(os.scandir(project_root))
    except OSError:
        return roots
    for entry in entries:
        if entry.is_dir() and entry.name not in IGNORED_DIRS and (Path(entry.path) / "__init__.py").exists():
            roots.append(os.path.realpath(entry.path))
        elif entry.is_file() and entry.name.endswith(".py"):
            roots.append(os.path.realpath(entry.path))
    return collapse(roots)


def is_ignored(path: str, ignore: Iterable[str] = ()) -> bool:
    """True for paths no reload should ever follow."""
    name = os.path.basename(path)
    if IGNORED_NAMES.search(name):
        return True
    if any(part in IGNORED_DIRS for part in Path(path).parts):
        return True
    return any(path == i or path.startswith(i.rstrip(os.sep) + os.sep) for i in ignore)


def settled_paths(changes: Iterable[tuple[Any, str]]) -> set[str]:
    """The paths of a watchfiles batch, without the transient ones: a file
    created and gone again within the batch (``sed -i``'s and many editors'
    temporary files) changed nothing."""
    added: set[str] = set()
    paths: set[str] = set()
    for change, path in changes:
        paths.add(path)
        if int(change) == 1:  # watchfiles.Change.added
            added.add(path)
    return {p for p in paths if p not in added or os.path.lexists(p)}


Batch = Callable[[set[str], float], None]


class Watcher:
    """Watches roots with watchfiles in one thread; calls ``on_batch(paths,
    ts)`` with the changed paths (resolved, filtered) and the time the batch
    was delivered.

    ``set_roots`` restarts the watch only when the set of roots changes. A
    watched single file replaced by an editor's rename-save loses its inotify
    watch, so the watch is renewed after any batch that touched a root.
    """

    def __init__(self, on_batch: Batch, *, step_ms: int = STEP_MS) -> None:
        self.on_batch = on_batch
        self.step_ms = step_ms
        self.roots: list[str] = []
        self.ignore: list[str] = []
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renew = threading.Event()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    def set_roots(self, roots: Iterable[str], ignore: Iterable[str] = ()) -> bool:
        """Watch ``roots`` (existing ones only) from now on; True if they changed."""
        new = [r for r in collapse(roots) if os.path.exists(r)]
        with self._lock:
            self.ignore = sorted(set(ignore))
            if new == self.roots:
                return False
            self.roots = new
        self._renew.set()
        self._changed.set()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="devconsole-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._renew.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _run(self) -> None:
        from watchfiles import watch

        while not self._stop.is_set():
            with self._lock:
                roots = list(self.roots)
            self._renew.clear()
            if not roots:
                self._changed.wait()
                self._changed.clear()
                continue
            try:
                # rust_timeout lets the loop notice _renew (new roots) without
                # a change; watchfiles sleeps in Rust, no Python polling.
                for changes in watch(
                    *roots,
                    watch_filter=None,
                    step=self.step_ms,
                    stop_event=self._renew,
                    rust_timeout=0,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                    ignore_permission_denied=True,
                ):
                    delivered = time.time()
                    with self._lock:
                        ignore = list(self.ignore)
                    paths = {os.path.realpath(p) for p in settled_paths(changes)}
                    paths = {p for p in paths if not is_ignored(p, ignore)}
                    if paths:
                        self.on_batch(paths, delivered)
                    if any(p in roots for p in paths):
                        break  # renew the watch on replaced single files
                self.error = None
            except Exception as exc:  # noqa: BLE001 - a root vanished, too many watches...
                self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(1.0)
