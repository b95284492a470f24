"""The watcher on real files, and the reload decision on real paths."""

from __future__ import annotations

import importlib.abc
import os
import queue
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devconsole.child.watchlist import (
    RealPaths,
    imported_modules,
    library_module_names,
    project_module_files,
    roots_for,
)
from devconsole.console import watcher as watcher_module
from devconsole.console.reloader import RestartLevel, decide, glob_matches
from devconsole.console.watcher import Watcher, default_roots, is_ignored, settled_paths
from devconsole.wire.watchrules import collapse

from .conftest import inotify_watches, wait_for


@pytest.mark.parametrize(
    "path",
    [
        "/p/shop/__pycache__/views.cpython-311.pyc",
        "/p/shop/.views.py.swp",
        "/p/shop/views.py~",
        "/p/shop/.#views.py",
        "/p/shop/4913",
        "/p/.git/index",
        "/p/node_modules/x/index.js",
        "/p/.venv/lib/python3.11/site-packages/django/urls.py",
        "/p/db.sqlite3",
        "/p/db.sqlite3-journal",
        "/p/media/upload.png",
    ],
)
def test_noise_is_ignored(path: str) -> None:
    assert is_ignored(path, ["/p/media"])


@pytest.mark.parametrize(
    "path", ["/p/shop/views.py", "/p/shop/templates/shop/index.html", "/p/locale/fr/LC_MESSAGES/django.mo"]
)
def test_project_files_are_not_ignored(path: str) -> None:
    assert not is_ignored(path, ["/p/media"])


def test_roots_are_top_level_packages_and_single_files(tmp_path: Path) -> None:
    for package in ("shop", "shop/sub", "site"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "shop/sub/deep.py").write_text("")
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "__init__.py").write_text("")  # the project dir itself is a package
    files = [str(tmp_path / "shop/sub/deep.py"), str(tmp_path / "site/__init__.py"), str(tmp_path / "manage.py")]
    # Packages stop below the import root: the project directory (which may
    # hold a virtualenv) is never watched as a whole.
    assert roots_for(files, [str(tmp_path)]) == sorted(
        [str(tmp_path / "manage.py"), str(tmp_path / "shop"), str(tmp_path / "site")]
    )
    assert collapse(["/a/b", "/a", "/ab"]) == ["/a", "/ab"]
    assert str(tmp_path / "shop") in default_roots(tmp_path)


def test_module_paths_resolve_as_realpath_does_through_linked_directories_and_files(tmp_path: Path) -> None:
    real = tmp_path / "real" / "pkg"
    (real / "sub").mkdir(parents=True)
    for name in ("a.py", "sub/b.py", "target.py"):
        (real / name).write_text("")
    (tmp_path / "linkdir").symlink_to(tmp_path / "real")
    (real / "linked.py").symlink_to(real / "target.py")
    (tmp_path / "plain").mkdir()
    paths = [
        str(tmp_path / "linkdir" / "pkg" / "a.py"),
        str(tmp_path / "linkdir" / "pkg" / "sub" / "b.py"),
        str(tmp_path / "linkdir" / "pkg" / "linked.py"),
        str(tmp_path / "real" / "pkg" / "linked.py"),
        str(tmp_path / "linkdir" / "pkg" / "sub" / ".." / "a.py"),
        str(tmp_path / "plain" / "missing.py"),
        "relative/x.py",
    ]
    resolve = RealPaths()
    for path in paths + paths:  # the second time from what the first cached
        assert resolve(path) == os.path.realpath(path), path
    assert resolve(paths[2]) == str((real / "target.py").resolve())
    # A link changed after a listing: the next listing's resolver follows it.
    (tmp_path / "linkdir").unlink()
    (tmp_path / "linkdir").symlink_to(tmp_path / "plain")
    assert RealPaths()(paths[0]) == str(tmp_path / "plain" / "pkg" / "a.py") == os.path.realpath(paths[0])


def test_one_listing_tells_the_projects_modules_from_the_libraries(tmp_path: Path, monkeypatch: Any) -> None:
    """Each imported module's path is resolved once for both listings: a
    project module reached through a linked folder is the project's, by its
    real path; the standard library's are libraries, by name; and a listing
    of some names resolves those alone."""
    project = tmp_path / "proj"
    (project / "realpkg").mkdir(parents=True)
    (project / "realpkg" / "__init__.py").write_text("")
    (project / "realpkg" / "mod.py").write_text("VALUE = 1\n")
    (tmp_path / "linked").symlink_to(project / "realpkg")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import linked.mod  # noqa: F401 - imported through the link, from outside the project root

        files, libraries = imported_modules(project)
        real = str((project / "realpkg" / "mod.py").resolve())
        assert real in files and str((project / "realpkg" / "__init__.py").resolve()) in files
        assert files == project_module_files(project)
        assert "json" in libraries and "linked.mod" not in libraries and "__main__" not in libraries
        assert libraries == library_module_names(project)
        assert library_module_names(project, ["json", "linked.mod", "no.such.module"]) == ["json"]
    finally:
        for name in [n for n in sys.modules if n == "linked" or n.startswith("linked.")]:
            del sys.modules[name]


def test_decision_uses_the_files_each_level_imported() -> None:
    common = dict(
        level0_files=frozenset({"/p/lib0.py"}),
        level1_files=frozenset({"/p/shop/models.py", "/p/site/settings.py"}),
        server_files=frozenset({"/p/shop/models.py", "/p/site/settings.py", "/p/shop/views.py"}),
        dir_globs=[("/p/shop/templates", "**/*"), ("/p/locale", "**/*.mo")],
        broken=False,
    )
    assert decide({"/p/shop/views.py"}, **common).level == RestartLevel.FORK
    assert decide({"/p/shop/views.py", "/p/shop/models.py"}, **common).level == RestartLevel.REBUILD1
    assert decide({"/p/lib0.py"}, **common).level == RestartLevel.REBUILD0
    unused = decide({"/p/shop/tests.py"}, **common)
    assert unused.level is None and unused.ignored == ["/p/shop/tests.py"]
    template = decide({"/p/shop/templates/shop/x.html", "/p/locale/fr/LC_MESSAGES/django.mo"}, **common)
    assert template.level is None and len(template.ask) == 2
    assert decide({"/p/locale/fr/LC_MESSAGES/django.po"}, **common).ask == []
    # A server that failed to import its views restarts on any Python save.
    assert decide({"/p/shop/tests.py"}, **{**common, "broken": True}).level == RestartLevel.FORK
    # Imports not listed yet by the serving generation: not known to be unused.
    assert decide({"/p/shop/tests.py"}, **{**common, "server_files": None}).level == RestartLevel.FORK
    # Without a healthy level 1 (broken settings), any Python save rebuilds it.
    assert decide({"/p/shop/views.py"}, **{**common, "level1_files": None}).level == RestartLevel.REBUILD1
    assert glob_matches("/p/t/a/b.html", "/p/t", "**/*") and not glob_matches("/p/tt/b.html", "/p/t", "**/*")


BACKENDS = ["inotify", "watchfiles"] if sys.platform.startswith("linux") else ["watchfiles"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_watcher_reports_a_save_and_not_the_noise(tmp_path: Path, backend: str) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put(paths), backend=backend)
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        wait_for(lambda: inotify_watches([package]))  # the inotify watch is in place
        (package / ".views.py.swp").write_text("swap")
        (package / "__pycache__").mkdir()
        (package / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"x")
        (package / "views.py").write_text("X = 1\n")
        paths = batches.get(timeout=30)
        assert paths == {os.path.realpath(package / "views.py")}
        # New roots take effect without a restart of the console.
        other = tmp_path / "other"
        other.mkdir()
        assert watcher.set_roots([str(package), str(other)])
        assert not watcher.set_roots([str(other), str(package)])
        wait_for(lambda: inotify_watches([package, other]))  # the renewed watch is in place
        (other / "x.html").write_text("x")
        assert batches.get(timeout=30) == {os.path.realpath(other / "x.html")}
    finally:
        watcher.stop()
    assert watcher._thread is not None and not watcher._thread.is_alive()


def test_a_file_created_and_removed_within_a_batch_is_dropped(tmp_path: Path) -> None:
    from watchfiles import Change

    kept = tmp_path / "index.html"
    kept.write_text("x")
    deleted_for_good = str(tmp_path / "old.html")  # deleted: a real change
    transient = str(tmp_path / "sedAb12Cd")  # sed -i's temporary file
    changes = {
        (Change.added, transient),
        (Change.deleted, transient),
        (Change.modified, str(kept)),
        (Change.deleted, deleted_for_good),
    }
    assert settled_paths(changes) == {str(kept), deleted_for_good}


class UnloadableWatchfiles(importlib.abc.MetaPathFinder):
    """``import watchfiles`` fails, as with a broken install or no file
    descriptor left to open it; counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "watchfiles":
            self.attempts += 1
            raise ImportError("watchfiles cannot be loaded (test)")
        return None


def test_a_watcher_that_cannot_load_watchfiles_says_so_once_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    broken = UnloadableWatchfiles()
    monkeypatch.delitem(sys.modules, "watchfiles", raising=False)
    monkeypatch.setattr(sys, "meta_path", [broken, *sys.meta_path])
    errors: queue.Queue[str] = queue.Queue()
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put(paths), on_error=errors.put, backend="watchfiles")
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        assert errors.get(timeout=30) == "ImportError: watchfiles cannot be loaded (test)"
        # Retried every second; the same failure is not reported again (a
        # third attempt means the second one's failure has been handled).
        wait_for(lambda: broken.attempts >= 3)
        assert errors.empty()
        monkeypatch.undo()  # it loads again: the next attempt watches
        wait_for(lambda: inotify_watches([package]))
        (package / "views.py").write_text("X = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(package / "views.py")}
        assert errors.empty()
    finally:
        watcher.stop()
    assert watcher._thread is not None and not watcher._thread.is_alive()


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inotify backend is Linux's")


def _switches(thread: threading.Thread) -> int:
    """The context switches of ``thread`` so far: each is a wake-up."""
    lines = Path(f"/proc/self/task/{thread.native_id}/status").read_text().splitlines()
    return sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)


@linux_only
def test_an_idle_inotify_watcher_is_never_woken_and_a_save_wakes_it(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    batches: queue.Queue[tuple[set[str], float]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put((paths, ts)))
    assert watcher.backend == "inotify"
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        wait_for(lambda: inotify_watches([package]))
        assert watcher._thread is not None
        before = _switches(watcher._thread)
        # Half a second of nothing: watchfiles' 10 ms step would wake it ~50 times.
        assert batches.empty() and not watcher._stop.wait(0.5)
        assert _switches(watcher._thread) - before <= 1
        saved = time.time()
        (package / "views.py").write_text("X = 1\n")
        paths, delivered = batches.get(timeout=30)
        assert paths == {os.path.realpath(package / "views.py")}
        assert delivered >= saved
    finally:
        watcher.stop()
    assert watcher._thread is not None and not watcher._thread.is_alive()


@linux_only
def test_inotify_follows_a_rename_save_of_a_single_file_and_new_directories(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    manage = tmp_path / "manage.py"
    manage.write_text("one\n")
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put(paths))
    watcher.set_roots([str(package), str(manage)])
    watcher.start()
    try:
        wait_for(lambda: inotify_watches([package, manage]))
        for text in ("two\n", "three\n"):  # twice: the new inode is watched too
            temporary = tmp_path / "manage.py.tmp"
            temporary.write_text(text)
            os.replace(temporary, manage)
            assert batches.get(timeout=30) == {os.path.realpath(manage)}
            wait_for(lambda: inotify_watches([package, manage]))
        # A package created with a module in it at once: both seen, and
        # the new directory is watched from now on.
        (package / "sub").mkdir()
        (package / "sub" / "models.py").write_text("M = 1\n")
        seen: set[str] = set()

        def module_seen() -> bool:
            while not batches.empty():
                seen.update(batches.get())
            return os.path.realpath(package / "sub" / "models.py") in seen

        wait_for(module_seen)
        wait_for(lambda: inotify_watches([package / "sub"]))
        (package / "sub" / "models.py").write_text("M = 2\n")
        assert os.path.realpath(package / "sub" / "models.py") in batches.get(timeout=30)
    finally:
        watcher.stop()


@linux_only
def test_an_inotify_watch_that_fails_says_so_once_and_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from devconsole.console import watcher as watcher_module

    package = tmp_path / "shop"
    package.mkdir()
    real_add = watcher_module.Inotify._add
    attempts = []

    def full(self: watcher_module.Inotify, path: str, mask: int, *, strict: bool) -> int | None:
        attempts.append(path)
        if len(attempts) <= 3:
            raise OSError(errno.ENOSPC, "the inotify watch limit is reached (test)")
        return real_add(self, path, mask, strict=strict)

    monkeypatch.setattr(watcher_module.Inotify, "_add", full)
    errors: queue.Queue[str] = queue.Queue()
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put(paths), on_error=errors.put)
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        assert errors.get(timeout=30) == "OSError: [Errno 28] the inotify watch limit is reached (test)"
        wait_for(lambda: inotify_watches([package]), timeout=10)
        assert len(attempts) >= 4 and errors.empty()  # said once, retried until it worked
        (package / "views.py").write_text("X = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(package / "views.py")}
    finally:
        watcher.stop()


@linux_only
def test_a_save_paused_halfway_is_one_batch_delivered_once_the_file_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer descheduled between truncating a file and writing it (a busy
    machine) must not make a reload of the empty file: the batch waits for
    the file's close, not only for a pause in the events."""
    # Only the close may end the batch, however long a loaded machine takes
    # between the open and the close (not MAX_BATCH_MS).
    monkeypatch.setattr(watcher_module, "MAX_BATCH_MS", 60_000)
    package = tmp_path / "shop"
    package.mkdir()
    views = package / "views.py"
    views.write_text("X = 0\n")
    batches: queue.Queue[tuple[set[str], float]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put((paths, ts)))
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        wait_for(lambda: inotify_watches([package]))
        with open(views, "w") as handle:
            handle.write("X = ")
            handle.flush()
            # Longer than the quiet window (the pause being simulated).
            assert batches.empty() and not watcher._stop.wait(watcher_module.QUIET_MS * 10 / 1000)
            handle.write("1\n")
            handle.flush()
            assert batches.empty()
        closed = time.time()
        paths, delivered = batches.get(timeout=30)
        assert paths == {os.path.realpath(views)} and delivered >= closed
        assert views.read_text() == "X = 1\n"
        assert batches.empty()
    finally:
        watcher.stop()


def _watching(package: Path, on_batch: Any, **kwargs: Any) -> Watcher:
    watcher = Watcher(on_batch, **kwargs)
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        wait_for(lambda: inotify_watches([package]))
    except BaseException:
        watcher.stop()
        raise
    return watcher


def _watched_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, queue.Queue[set[str]], Any]:
    """A package with ``views.py`` under a watch whose batches go to a queue;
    MAX_BATCH_MS made long, so only the files a batch waits for can end it."""
    monkeypatch.setattr(watcher_module, "MAX_BATCH_MS", 60_000)
    package = tmp_path / "shop"
    package.mkdir()
    views = package / "views.py"
    views.write_text("X = 0\n")
    batches: queue.Queue[set[str]] = queue.Queue()
    return package, views, batches, _watching(package, lambda paths, ts: batches.put(paths))


@linux_only
def test_a_new_file_written_after_a_pause_is_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new file's writer descheduled between creating it and writing it:
    one batch once it is closed, not an empty file first and the save again."""
    monkeypatch.setattr(watcher_module, "MAX_BATCH_MS", 60_000)
    package = tmp_path / "shop"
    package.mkdir()
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = _watching(package, lambda paths, ts: batches.put(paths))
    try:
        views = package / "views.py"
        with open(views, "w") as handle:
            # Longer than the quiet window (the pause being simulated).
            assert not watcher._stop.wait(watcher_module.QUIET_MS * 10 / 1000)
            assert batches.empty()
            handle.write("X = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(views)}
        # The next batch is the next file's: the new file came once.
        (package / "urls.py").write_text("U = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(package / "urls.py")}
    finally:
        watcher.stop()


@linux_only
def test_a_finished_save_is_delivered_without_the_quiet_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save whose file is closed (or renamed into place) is complete: it is
    delivered after SETTLE_MS, not after QUIET_MS (made a minute here, as is
    MAX_BATCH_MS, so only the settled save can end the batch)."""
    monkeypatch.setattr(watcher_module, "QUIET_MS", 60_000)
    package, views, batches, watcher = _watched_views(tmp_path, monkeypatch)
    try:
        views.write_text("X = 1\n")  # truncate, write, close
        assert batches.get(timeout=30) == {os.path.realpath(views)}
        fresh = package / ".views.py.tmp"
        fresh.write_text("X = 2\n")
        os.replace(fresh, views)  # an editor's rename-save
        assert batches.get(timeout=30) == {os.path.realpath(views)}
        assert views.read_text() == "X = 2\n"
    finally:
        watcher.stop()


@linux_only
def test_a_swap_file_held_open_never_makes_a_save_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vim keeps ``.views.py.swp`` open and written: a save of views.py is
    delivered as soon as its own events pause, not when the swap file closes
    (MAX_BATCH_MS made long, so only the files waited for can end the batch)."""
    package, views, batches, watcher = _watched_views(tmp_path, monkeypatch)
    try:
        with open(package / ".views.py.swp", "w") as swap:
            swap.write("b0VIM")
            swap.flush()
            # The swap file's own batch (nothing in it is delivered) ends too.
            views.write_text("X = 1\n")
            assert batches.get(timeout=30) == {os.path.realpath(views)}
            # A later save, the swap file still open and written again.
            swap.write("more")
            swap.flush()
            views.write_text("X = 2\n")
            assert batches.get(timeout=30) == {os.path.realpath(views)}
    finally:
        watcher.stop()


@linux_only
def test_a_failing_batch_callback_is_reported_and_the_watch_goes_on(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    batches: queue.Queue[set[str]] = queue.Queue()
    errors: queue.Queue[str] = queue.Queue()

    def on_batch(paths: set[str], ts: float) -> None:
        batches.put(paths)
        if len(paths) == 1 and next(iter(paths)).endswith("bad.py"):
            raise RuntimeError("reload broke")

    watcher = _watching(package, on_batch, on_error=errors.put)
    try:
        (package / "bad.py").write_text("X = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(package / "bad.py")}
        assert "RuntimeError: reload broke" in errors.get(timeout=30)
        (package / "views.py").write_text("X = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(package / "views.py")}
        assert watcher._thread is not None and watcher._thread.is_alive()
    finally:
        watcher.stop()


@linux_only
def test_a_queue_overflow_delivers_the_files_changed_since_the_last_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's queue overflowing (a git checkout burst) drops events:
    the files they were about are found again, not lost."""
    package = tmp_path / "shop"
    package.mkdir()
    old = package / "old.py"
    old.write_text("X = 0\n")
    os.utime(old, (1_000_000, 1_000_000))  # untouched since long ago
    real_one = watcher_module.Inotify._one

    def one(self: watcher_module.Inotify, wd: int, mask: int, name: str, out: list[tuple[int, str]]) -> None:
        if name == "models.py":
            return  # dropped by the kernel...
        if name == "trigger":
            # ...which says so with an overflow.
            real_one(self, -1, watcher_module.IN_Q_OVERFLOW, "", out)
            return
        real_one(self, wd, mask, name, out)

    monkeypatch.setattr(watcher_module.Inotify, "_one", one)
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = _watching(package, lambda paths, ts: batches.put(paths))
    try:
        (package / "models.py").write_text("M = 1\n")
        (package / "trigger").write_text("")
        seen = batches.get(timeout=30)
        assert os.path.realpath(package / "models.py") in seen
        assert os.path.realpath(old) not in seen
        # The watch is renewed after an overflow and goes on.
        wait_for(lambda: inotify_watches([package]))
        (package / "views.py").write_text("X = 1\n")
        wait_for(lambda: os.path.realpath(package / "views.py") in batches.get(timeout=30))
    finally:
        watcher.stop()


@linux_only
def test_the_watch_works_with_descriptors_above_1024(tmp_path: Path) -> None:
    """The console may hold more than 1,024 descriptors (handover sockets,
    pipes): select.select cannot wait on those, poll can."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("the descriptor limit is below 1,200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open(os.devnull, os.O_RDONLY))
        package = tmp_path / "shop"
        package.mkdir()
        batches: queue.Queue[set[str]] = queue.Queue()
        watcher = _watching(package, lambda paths, ts: batches.put(paths))
        try:
            assert watcher._wake_r > 1024
            (package / "views.py").write_text("X = 1\n")
            assert batches.get(timeout=30) == {os.path.realpath(package / "views.py")}
        finally:
            watcher.stop()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@linux_only
def test_a_folder_moved_out_of_the_roots_is_no_longer_watched(tmp_path: Path) -> None:
    from .conftest import inotify_watched_inodes

    package = tmp_path / "shop"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "deep").mkdir()
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = _watching(package, lambda paths, ts: batches.put(paths))
    try:
        wait_for(lambda: inotify_watches([package / "sub" / "deep"]))
        inode = os.stat(package / "sub").st_ino
        deep = os.stat(package / "sub" / "deep").st_ino
        outside = tmp_path / "elsewhere"
        os.rename(package / "sub", outside)
        assert os.path.realpath(package / "sub") in batches.get(timeout=30)

        def unwatched() -> bool:
            instances = inotify_watched_inodes("self") or []
            return not any((ino in {i for _dev, i in w}) for w in instances for ino in (inode, deep))

        wait_for(unwatched)
        (outside / "deep" / "models.py").write_text("M = 1\n")
        (package / "views.py").write_text("X = 1\n")
        assert batches.get(timeout=30) == {os.path.realpath(package / "views.py")}
    finally:
        watcher.stop()


@linux_only
@pytest.mark.skipif(shutil.which("vim") is None, reason="vim is not installed")
def test_saves_from_a_real_vim_are_not_held_by_its_swap_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real vim, its swap file open and written beside views.py: each ``:w``
    is delivered without waiting for the swap file (MAX_BATCH_MS made long,
    so only a batch that waits for no open file ends)."""
    import pexpect

    package, views, batches, watcher = _watched_views(tmp_path, monkeypatch)
    env = dict(os.environ, TERM="xterm", HOME=str(tmp_path))
    vim = pexpect.spawn("vim", ["-u", "NONE", "-i", "NONE", "views.py"], cwd=str(package), env=env, timeout=10)
    try:
        wait_for(lambda: (package / ".views.py.swp").exists())
        for value in (1, 2):
            vim.send(f"ggdGiX = {value}\x1b")
            vim.send(":w\r")
            wait_for(lambda expected=f"X = {value}\n": views.read_text() == expected)
            seen: set[str] = set()
            while os.path.realpath(views) not in seen:
                seen |= batches.get(timeout=30)
            assert (package / ".views.py.swp").exists()  # still open in vim
    finally:
        vim.send("\x1b:qa!\r")
        vim.expect(pexpect.EOF)
        vim.close()
        watcher.stop()
