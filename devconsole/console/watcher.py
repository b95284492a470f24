"""The console's file watcher: the roots the server child reported (see
:mod:`devconsole.child.watchlist`), each batch of changed paths handed to a
callback.

On Linux it reads inotify itself (:class:`Inotify`): the thread sleeps in
``select`` until the kernel has an event, so an idle console is never woken
by its watcher, and a save is seen as it happens. Elsewhere (or where inotify
cannot be used) watchfiles watches, which steps every :data:`STEP_MS`.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from devconsole.wire import linux
from devconsole.wire.linux import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
)
from devconsole.wire.watchrules import IGNORED_DIRS, IGNORED_NAMES, collapse

#: How long watchfiles waits for a batch to settle (ms), where watchfiles is
#: used. Editors write a save as several events within a few ms: 10 ms groups
#: them (a batch is delivered 1-2 steps after the save). Idle cost: a wake-up
#: per step in Rust, about 0.2 % of one CPU.
STEP_MS = 10
#: With inotify: a batch is delivered once no event came for this long (ms)
#: after the last one (the editors' few events of one save come within a
#: millisecond or two of each other)...
QUIET_MS = 5
#: ...or for this long when the last event finished a file (closed after
#: writing, or renamed into place) and no more than :data:`SETTLE_FILES`
#: files changed: a save is complete, only another file of the same save
#: (written right after) is waited for...
SETTLE_MS = 1
SETTLE_FILES = 4
#: ...and no file written in it is still open for writing (a save paused
#: between its truncation, or a new file's creation, and its write on a
#: loaded machine is not two batches, the first of them an empty file)...
#: or once it has been
#: gathering for this long (ms), however busy.
MAX_BATCH_MS = 200
#: The backend :class:`Watcher` uses unless told otherwise.
DEFAULT_BACKEND = "inotify" if sys.platform.startswith("linux") else "watchfiles"

_CHANGED = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE
_ADDED = IN_CREATE | IN_MOVED_TO
_REMOVED = IN_DELETE | IN_MOVED_FROM
_DIR_MASK = _CHANGED | _ADDED | _REMOVED | IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK
_FILE_MASK = _CHANGED | IN_DELETE_SELF | IN_MOVE_SELF
# watchfiles.Change's values, which settled_paths reads.
ADDED, MODIFIED, DELETED = 1, 2, 3


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


class Inotify:
    """One inotify instance watching a set of roots: directories recursively
    (new subdirectories as they appear, ignored ones never), single files by
    their inode and by name in their directory (an editor's rename-save
    replaces the inode). :meth:`changes` turns what the kernel says into
    ``(change, path)`` pairs, as watchfiles does."""

    def __init__(self, roots: Iterable[str], ignore: Iterable[str] = ()) -> None:
        self.ignore = list(ignore)
        fd = linux.inotify_init()
        self.fd = fd
        #: wd → directory watched whole (recursively).
        self.dirs: dict[int, str] = {}
        #: wd → (directory, names in it that are roots).
        self.parents: dict[int, tuple[str, set[str]]] = {}
        #: wd → a single file root, watched by its inode.
        self.files: dict[int, str] = {}
        self.roots = list(roots)
        self.overflowed = False
        #: Files modified in the current batch and not yet closed: a writer
        #: is still at work (ignored names, a swap file or a database held
        #: open, never make a batch wait).
        self.writing: set[str] = set()
        #: The watched (not ignored) paths changed in the current batch, and
        #: whether the last event on one finished a file: closed after
        #: writing, renamed into place, or removed.
        self.batch: set[str] = set()
        self.finished = False
        #: When the events were last read whole (see :meth:`_since_overflow`).
        self.since = time.time()
        #: Directory watches (re-)registered during the current read.
        self._fresh: set[int] = set()
        try:
            for root in roots:
                if os.path.isdir(root):
                    for path in self._walk(root):
                        self._add_dir(path, strict=path == root)
                else:
                    self._add_file(root, strict=True)
                    parent, name = os.path.split(root)
                    wd = self._add(parent, IN_ONLYDIR | _DIR_MASK, strict=True)
                    if wd is not None:
                        self.parents.setdefault(wd, (parent, set()))[1].add(name)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _add(self, path: str, mask: int, *, strict: bool) -> int | None:
        try:
            return linux.add_watch(self.fd, path, mask)
        except OSError as error:
            number = error.errno or 0
        # A directory or file gone (or replaced) before its watch began is
        # no failure below the roots: its parent reports what became of it.
        if not strict and number in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM):
            return None
        if number == errno.ENOSPC:
            raise OSError(number, f"the inotify watch limit is reached (fs.inotify.max_user_watches) at {path}")
        raise OSError(number, f"cannot watch {path}: {os.strerror(number)}")

    def _add_dir(self, path: str, *, strict: bool = False) -> None:
        wd = self._add(path, IN_ONLYDIR | _DIR_MASK, strict=strict)
        if wd is not None:
            self.dirs[wd] = path
            self._fresh.add(wd)

    def _add_file(self, path: str, *, strict: bool = False) -> None:
        wd = self._add(path, IN_DONT_FOLLOW | _FILE_MASK, strict=strict)
        if wd is not None:
            self.files[wd] = path

    def _walk(self, root: str) -> Iterator[str]:
        """``root`` and the directories under it a reload may follow."""
        seen: set[tuple[int, int]] = set()
        stack = [root]
        while stack:
            path = stack.pop()
            try:
                info = os.stat(path)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen or not stat.S_ISDIR(info.st_mode):
                continue
            seen.add((info.st_dev, info.st_ino))
            yield path
            try:
                entries = list(os.scandir(path))
            except OSError:
                continue
            for entry in entries:
                if entry.name in IGNORED_DIRS or entry.path in self.ignore:
                    continue
                try:
                    if entry.is_dir():  # follows symbolic links, as runserver's reloader does
                        stack.append(entry.path)
                except OSError:
                    continue

    def _forget(self, directory: str) -> None:
        prefix = directory.rstrip(os.sep) + os.sep
        for wd, path in list(self.dirs.items()):
            if path == directory or path.startswith(prefix):
                del self.dirs[wd]
                linux.rm_watch(self.fd, wd)

    def _since_overflow(self) -> list[str]:
        """The files under the roots changed since the events were last
        read whole (a second's slack for coarse file times)."""
        since = self.since - 1.0
        found: list[str] = []
        for root in self.roots:
            if not os.path.isdir(root):
                candidates = [root]
            else:
                candidates = []
                for directory in self._walk(root):
                    try:
                        candidates += [e.path for e in os.scandir(directory) if not e.is_dir()]
                    except OSError:
                        continue
            for path in candidates:
                try:
                    if os.stat(path).st_mtime >= since:
                        found.append(path)
                except OSError:
                    continue
        return found

    def changes(self) -> list[tuple[int, str]]:
        """Everything the kernel has queued now, as ``(change, path)``."""
        out: list[tuple[int, str]] = []
        self._fresh.clear()
        for wd, mask, name in linux.read_events(self.fd):
            self._one(wd, mask, os.fsdecode(name), out)
        return out

    def _one(self, wd: int, mask: int, name: str, out: list[tuple[int, str]]) -> None:
        if mask & IN_Q_OVERFLOW:
            # The kernel dropped events: what they said is found again from
            # the files' times, so no save is lost (the watch is then renewed).
            self.overflowed = True
            out += [(MODIFIED, path) for path in self._since_overflow()]
            return
        before = len(out)
        self._translate(wd, mask, name, out)
        # A file is being written from its first change until it is closed; a
        # file just created is too (its write may come after a pause).
        writes = mask & IN_MODIFY or (mask & IN_CREATE and not mask & IN_ISDIR)
        finishes = bool(mask & (IN_CLOSE_WRITE | IN_MOVED_TO | _REMOVED))
        for _kind, path in out[before:]:
            watched = not is_ignored(path, self.ignore)
            if watched:
                self.batch.add(path)
                self.finished = finishes
            if writes:
                if watched:
                    self.writing.add(path)
            elif mask & (IN_CLOSE_WRITE | _REMOVED | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                self.writing.discard(path)

    def _translate(self, wd: int, mask: int, name: str, out: list[tuple[int, str]]) -> None:
        kind = ADDED if mask & _ADDED else DELETED if mask & _REMOVED else MODIFIED
        if wd in self.files:
            path = self.files[wd]
            if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                if mask & IN_IGNORED:
                    del self.files[wd]
                out.append((DELETED, path))
            elif mask & _CHANGED:
                out.append((MODIFIED, path))
            return
        parent = self.parents.get(wd)
        if parent is not None and name in parent[1]:
            path = os.path.join(parent[0], name)
            out.append((kind, path))
            if kind == ADDED:
                self._add_file(path)  # the new inode of a rename-save
        directory = self.dirs.get(wd)
        if directory is None:
            return
        if mask & IN_IGNORED:
            del self.dirs[wd]
            return
        if mask & IN_MOVE_SELF and wd not in self._fresh:
            # Moved out of the roots (a move within them re-registered it
            # under its new path): no longer watched, nor what is under it.
            self._forget(directory)
            return
        if not name:
            return  # the directory itself moved or went: its parent says so
        path = os.path.join(directory, name)
        if mask & IN_ISDIR:
            if kind == ADDED and name not in IGNORED_DIRS and path not in self.ignore:
                # What was created in it before its watch began is reported too.
                for sub in self._walk(path):
                    self._add_dir(sub)
                    out.append((ADDED, sub))
                    try:
                        files = [e.path for e in os.scandir(sub) if not e.is_dir()]
                    except OSError:
                        files = []
                    out += [(ADDED, f) for f in files]
            elif kind == DELETED:
                out.append((DELETED, path))
            return
        out.append((kind, path))


Batch = Callable[[set[str], float], None]
ErrorSink = Callable[[str], None]


class Watcher:
    """Watches roots in one thread; calls ``on_batch(paths, ts)`` with the
    changed paths (resolved, filtered) and the time the batch was delivered.

    ``set_roots`` restarts the watch only when the set of roots changes. With
    watchfiles, a watched single file replaced by an editor's rename-save
    loses its inotify watch, so the watch is renewed after any batch that
    touched a root (the inotify backend follows the new file itself).

    When the watch fails (the inotify watch limit reached, a root removed
    before the watch began) it is retried every second; ``on_error(text)``
    is called once per distinct failure, so the console can show it.
    """

    def __init__(
        self,
        on_batch: Batch,
        *,
        on_error: ErrorSink | None = None,
        step_ms: int = STEP_MS,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        if backend not in ("inotify", "watchfiles"):
            raise ValueError(f"unknown watcher backend {backend!r}")
        self.on_batch = on_batch
        self.on_error = on_error
        self.step_ms = step_ms
        self.backend = backend
        self.roots: list[str] = []
        self.ignore: list[str] = []
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renew = threading.Event()
        self._changed = threading.Event()
        # Written to wake the inotify loop from select (new roots, stop).
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
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
        self._poke()
        return True

    def start(self) -> None:
        target = self._run_inotify if self.backend == "inotify" else self._run
        self._thread = threading.Thread(target=target, name="devconsole-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._renew.set()
        self._changed.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self._thread is None or not self._thread.is_alive():
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._wake_r = self._wake_w = -1

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full (the loop is awake anyway) or closed (stopped)

    def _deliver(self, changes: Iterable[tuple[Any, str]], roots: list[str]) -> bool:
        """Hand a batch over; True if it touched a root."""
        delivered = time.time()
        with self._lock:
            ignore = list(self.ignore)
        paths = {os.path.realpath(p) for p in settled_paths(changes)}
        paths = {p for p in paths if not is_ignored(p, ignore)}
        if paths:
            try:
                self.on_batch(paths, delivered)
            except Exception as exc:  # reported; the watch goes on
                self._report(f"the reload of a change failed: {type(exc).__name__}: {exc}")
        return any(p in roots for p in paths)

    def _report(self, error: str) -> None:
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                pass

    def _failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self.error:
            self._report(error)
        self.error = error
        self._stop.wait(1.0)

    def _run_inotify(self) -> None:
        watch: Inotify | None = None
        try:
            while not self._stop.is_set():
                with self._lock:
                    roots, ignore = list(self.roots), list(self.ignore)
                self._renew.clear()
                self._drain_wake()
                if not roots:
                    self._changed.wait()
                    self._changed.clear()
                    continue
                try:
                    fresh = Inotify(roots, ignore)
                except Exception as exc:
                    self._failed(exc)
                    continue
                try:
                    if watch is not None:
                        # The old watch is closed only once the new one is in
                        # place, and what it saw meanwhile is delivered: a save
                        # while the roots change is never lost.
                        old, watch = watch, None
                        leftover = old.changes()
                        old.close()
                        if leftover:
                            self._deliver(leftover, roots)
                except Exception as exc:
                    fresh.close()
                    self._failed(exc)
                    continue
                watch = fresh
                try:
                    self.error = None
                    self._watch(watch, roots)
                except Exception as exc:
                    watch.close()
                    watch = None
                    self._failed(exc)
        finally:
            if watch is not None:
                watch.close()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError:
            pass

    def _watch(self, watch: Inotify, roots: list[str]) -> None:
        """Deliver batches until the roots change or the watcher stops."""
        # poll, not select: the console may hold more than 1,024 descriptors.
        both = select.poll()
        both.register(watch.fd, select.POLLIN)
        both.register(self._wake_r, select.POLLIN)
        events = select.poll()
        events.register(watch.fd, select.POLLIN)
        while not self._renew.is_set():
            readable = {fd for fd, _ in both.poll()}
            if self._renew.is_set():
                return
            if watch.fd not in readable:
                self._drain_wake()
                continue
            # A batch: everything until the events pause for QUIET_MS (or
            # SETTLE_MS once a save finished its file) with no file written
            # in it left half-written.
            watch.writing.clear()
            watch.batch.clear()
            watch.finished = False
            changes = watch.changes()
            started = time.monotonic()
            while time.monotonic() - started < MAX_BATCH_MS / 1000:
                settled = watch.finished and not watch.writing and len(watch.batch) <= SETTLE_FILES
                if events.poll(SETTLE_MS if settled else QUIET_MS):
                    changes += watch.changes()
                elif not watch.writing:
                    break
            watch.since = time.time()
            self._deliver(changes, roots)
            if watch.overflowed:
                return  # the kernel dropped events: watch again from a fresh walk

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
                    if self._deliver(changes, roots):
                        break  # renew the watch on replaced single files
                self.error = None
            except Exception as exc:
                self._failed(exc)
