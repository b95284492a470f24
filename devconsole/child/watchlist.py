"""What the server child reports for the console to watch (the ``watch``
event), and which modules it imported from the project and from libraries.

:func:`watch_event` lists the project's own module files (outside the
interpreter and site-packages), the directories they live in, and the
directories and globs that apps register through Django's
``autoreload_started`` signal (template directories with ``**/*``, locale
directories with ``**/*.mo``) and the static files directories (``**/*``:
a save there is asked about, for live reload), plus the places never worth a restart (media,
static root, the SQLite database). The console watches them with
:class:`devconsole.console.watcher.Watcher`.
"""

from __future__ import annotations

import json
import os
import site
import sys
import sysconfig
import time
import types
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from devconsole.wire.watchrules import IGNORED_DIRS, collapse

#: Module files reported in one ``watch`` event; a project with more still has
#: them all watched (through their directories), just not listed one by one.
MAX_REPORTED_FILES = 20000


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
    return not any(part in IGNORED_DIRS for part in path.split(os.sep))


class RealPaths:
    """``os.path.realpath`` for many module files at once: each directory is
    resolved once, from its parent's resolution (a realpath walks every
    component of a path with a system call each: ~70 µs a module in
    site-packages, and a large project imports thousands), the file itself
    only when it is a link.

    Made for one listing and dropped: a link changed later is resolved anew."""

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def _dir(self, directory: str) -> str:
        real = self._dirs.get(directory)
        if real is None:
            parent, name = os.path.split(directory)
            if not name or name in (".", "..") or parent == directory or os.path.islink(directory):
                real = os.path.realpath(directory)
            else:
                real = os.path.join(self._dir(parent), name)
            self._dirs[directory] = real
        return real

    def __call__(self, filename: str) -> str:
        directory, base = os.path.split(filename)
        if not os.path.isabs(filename) or base in ("", ".", "..") or os.path.islink(filename):
            return os.path.realpath(filename)
        return os.path.join(self._dir(directory), base)


_DEVCONSOLE_DIR = os.path.realpath(Path(__file__).resolve().parents[1]) + os.sep


class ProjectFiles:
    """Tells the project's files from the libraries' (see
    :func:`is_project_file`), with the project's root and the library
    directories worked out once and the paths resolved by one
    :class:`RealPaths`."""

    def __init__(self, project_root: Path | str) -> None:
        self.root = os.path.realpath(project_root)
        self.libs = _library_dirs()
        self.realpath = RealPaths()

    def real(self, filename: str) -> str | None:
        """``filename``'s real path if it is the project's, else None."""
        real = self.realpath(filename)
        return real if is_project_file(real, self.root, self.libs) else None


def _module_file(name: str, module: Any) -> str | None:
    """The file a module was imported from (``__main__``: the script run), or None."""
    if name in ("__main__", "__mp_main__"):
        filename = getattr(module, "__file__", None)
    else:
        spec = getattr(module, "__spec__", None)
        filename = spec.origin if spec is not None and spec.has_location else None
    return filename if filename and isinstance(filename, str) else None


def project_modules(project_root: Path | str, names: Iterable[str] | None = None) -> Iterator[tuple[str, str, Any]]:
    """The imported modules (all, or those of ``names``) whose file belongs
    to the project: ``(name, real path, module)``."""
    ours = ProjectFiles(project_root)
    pairs = list(sys.modules.items()) if names is None else [(name, sys.modules.get(name)) for name in names]
    for name, module in pairs:
        filename = _module_file(name, module)
        if filename is not None and (real := ours.real(filename)) is not None:
            yield name, real, module


def project_app_labels(project_root: Path | str, app_configs: Iterable[Any]) -> set[str]:
    """The labels of the apps whose package belongs to the project (one
    whose path is not known counts as the project's)."""
    ours = ProjectFiles(project_root)
    labels = set()
    for app_config in app_configs:
        path = getattr(app_config, "path", None)
        if not isinstance(path, str) or ours.real(os.path.join(os.path.abspath(path), "__init__.py")) is not None:
            labels.add(app_config.label)
    return labels


def project_module_files(project_root: Path) -> list[str]:
    """Files of the modules imported so far that belong to the project."""
    return sorted({real for _name, real, _module in project_modules(project_root)})


def project_imports(project_root: Path, held: Collection[str], limit: int) -> str:
    """The project modules imported here beyond ``held`` (what the fork
    server had), in the order their imports ended (a module after those it
    imported), each with the modules
    among them it refers to: a module, class or function in its namespace
    from one of them (``from . import views``, ``from .views import Item``),
    or its package. As JSON, ``[[name, file, [indexes]], ...]``, within
    ``limit`` characters (the last modules left out; one referring to a
    module left out refers to an index past the end). What a module
    imports without keeping a name of it is missed: the spare that imports
    it ahead then holds that module too, and says so (see
    :meth:`devconsole.child.forkserver.ForkServer._import_ahead`)."""
    # The held names left out first: no path of theirs is resolved.
    names = [name for name in list(sys.modules) if name not in held and name not in ("__main__", "__mp_main__")]
    found = list(project_modules(project_root, names))
    index = {name: number for number, (name, _file, _module) in enumerate(found)}
    entries = []
    for name, real, module in found:
        refers: set[int] = set()
        package = name.rpartition(".")[0]
        if package in index:
            refers.add(index[package])
        try:
            values = list(vars(module).values())
        except TypeError:
            values = []
        for value in values:
            # Read from the objects' own dictionaries: no attribute lookup
            # that could run a project's code (a lazy object's).
            if isinstance(value, types.ModuleType):
                source = vars(value).get("__name__")
            elif isinstance(value, type):
                source = vars(value).get("__module__")
            elif isinstance(value, types.FunctionType):
                source = value.__module__
            else:
                source = vars(type(value)).get("__module__")
            number = index.get(source) if isinstance(source, str) else None
            if number is not None and source != name:
                refers.add(number)
        entries.append([name, real, sorted(refers)])
    text = json.dumps(entries)
    while entries and len(text) > limit:
        entries = entries[: len(entries) * 3 // 4]
        text = json.dumps(entries)
    return text


def library_module_names(project_root: Path, names: Collection[str] | None = None) -> list[str]:
    """Names of imported modules (all, or those of ``names``) that come from
    the interpreter or site-packages (what a level-0 fork server can import
    ahead of time)."""
    return _listing(project_root, names)[1]


def imported_modules(project_root: Path) -> tuple[list[str], list[str]]:
    """What this process imported, each module's path resolved once: the
    files of the project's modules (:func:`project_module_files`) and the
    names of the libraries' (:func:`library_module_names`)."""
    return _listing(project_root)


def _listing(project_root: Path, names: Collection[str] | None = None) -> tuple[list[str], list[str]]:
    ours = ProjectFiles(project_root)
    files: set[str] = set()
    libraries = []
    pairs = list(sys.modules.items()) if names is None else [(n, sys.modules.get(n)) for n in names]
    for name, module in pairs:
        filename = _module_file(name, module)
        if filename is None:
            continue
        real = ours.realpath(filename)
        if is_project_file(real, ours.root, ours.libs):
            files.add(real)
        elif name not in ("__main__", "__mp_main__"):
            libraries.append(name)
    return sorted(files), sorted(libraries)


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
    # Static files: the console asks this child about them (file_changed)
    # instead of ignoring them, and the open pages follow (live reload).
    from devconsole.child.livereload import static_dirs

    root, libs = os.path.realpath(project_root), _library_dirs()
    dir_globs += sorted(
        [d, "**/*"] for d in static_dirs() if [d, "**/*"] not in dir_globs and is_project_file(d, root, libs)
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
