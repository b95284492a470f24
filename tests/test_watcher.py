"""The watcher on real files, and the reload decision on real paths."""

from __future__ import annotations

import importlib.abc
import os
import queue
import sys
from pathlib import Path

import pytest

from devconsole.child.watchlist import roots_for
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


def test_watcher_reports_a_save_and_not_the_noise(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    batches: queue.Queue[set[str]] = queue.Queue()
    watcher = Watcher(lambda paths, ts: batches.put(paths))
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        wait_for(lambda: inotify_watches([package]))  # the inotify watch is in place
        (package / ".views.py.swp").write_text("swap")
        (package / "__pycache__").mkdir()
        (package / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"x")
        (package / "views.py").write_text("X = 1\n")
        paths = batches.get(timeout=5)
        assert paths == {os.path.realpath(package / "views.py")}
        # New roots take effect without a restart of the console.
        other = tmp_path / "other"
        other.mkdir()
        assert watcher.set_roots([str(package), str(other)])
        assert not watcher.set_roots([str(other), str(package)])
        wait_for(lambda: inotify_watches([package, other]))  # the renewed watch is in place
        (other / "x.html").write_text("x")
        assert batches.get(timeout=5) == {os.path.realpath(other / "x.html")}
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
    watcher = Watcher(lambda paths, ts: batches.put(paths), on_error=errors.put)
    watcher.set_roots([str(package)])
    watcher.start()
    try:
        assert errors.get(timeout=5) == "ImportError: watchfiles cannot be loaded (test)"
        # Retried every second; the same failure is not reported again (a
        # third attempt means the second one's failure has been handled).
        wait_for(lambda: broken.attempts >= 3)
        assert errors.empty()
        monkeypatch.undo()  # it loads again: the next attempt watches
        wait_for(lambda: inotify_watches([package]))
        (package / "views.py").write_text("X = 1\n")
        assert batches.get(timeout=5) == {os.path.realpath(package / "views.py")}
        assert errors.empty()
    finally:
        watcher.stop()
    assert watcher._thread is not None and not watcher._thread.is_alive()
