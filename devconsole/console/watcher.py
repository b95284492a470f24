"""The console's file watcher: the roots the server child reported (see
:mod:`devconsole.child.watchlist`), watched with watchfiles (inotify on Linux:
nothing is polled by stat), each batch of changed paths handed to a callback.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from devconsole.wire.watchrules import IGNORED_DIRS, IGNORED_NAMES, collapse

#: How long watchfiles waits for a batch to settle (ms). Editors write a save
#: as several events within a few ms; 10 ms groups them and keeps detection
#: fast (a batch is delivered 1-2 steps after the save). watchfiles' default
#: (50 ms) would be most of the reload budget. Idle cost: a wake-up per step
#: in Rust, about 0.2 % of one CPU.
STEP_MS = 10


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
ErrorSink = Callable[[str], None]


class Watcher:
    """Watches roots with watchfiles in one thread; calls ``on_batch(paths,
    ts)`` with the changed paths (resolved, filtered) and the time the batch
    was delivered.

    ``set_roots`` restarts the watch only when the set of roots changes. A
    watched single file replaced by an editor's rename-save loses its inotify
    watch, so the watch is renewed after any batch that touched a root.

    When the watch fails (the inotify watch limit reached, a root removed
    before the watch began) it is retried every second; ``on_error(text)``
    is called once per distinct failure, so the console can show it.
    """

    def __init__(self, on_batch: Batch, *, on_error: ErrorSink | None = None, step_ms: int = STEP_MS) -> None:
        self.on_batch = on_batch
        self.on_error = on_error
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
        while not self._stop.is_set():
            with self._lock:
                roots = list(self.roots)
            self._renew.clear()
            if not roots:
                self._changed.wait()
                self._changed.clear()
                continue
            try:
                # Imported here: a failed import (out of file descriptors, a
                # broken install) is reported and retried like any failure,
                # not the thread's silent end.
                from watchfiles import watch

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
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != self.error and self.on_error is not None:
                    self.on_error(error)
                self.error = error
                self._stop.wait(1.0)
