"""Autoreload on a copy of the demo project: real files, real processes,
real requests on a loopback socket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devconsole.console import reloader as reloader_module
from devconsole.console import supervisor as supervisor_module
from devconsole.console.project import Project
from devconsole.model.state import CRASH_PHASE
from devconsole.wire import forkserver as forkserver_wire

from .conftest import (
    Events,
    LiveConsole,
    alive,
    demo_copy,
    http_get,
    inotify_watches,
    live_console,
    new_supervisor,
    wait_for,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs POSIX")


@dataclass
class Console(LiveConsole):
    def reloads(self) -> list[dict]:
        return self.events.of("reload")


def get(port: int, path: str = "/ping/") -> tuple[int, bytes]:
    return http_get(port, path, timeout=10)


def served(port: int, path: str, needle: bytes, timeout: float = 20.0) -> tuple[int, bytes]:
    """Poll until the response body contains ``needle``."""
    return wait_for(lambda: (lambda r: r if needle in r[1] else None)(get(port, path)), timeout=timeout)


@pytest.fixture
def console(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """A console with autoreload on a private copy of the demo project (the
    apps level held, as in a large project: the demo's is too short to keep)."""
    monkeypatch.setenv("DEVCONSOLE_APPS_LEVEL", "1")
    yield from _console(tmp_path, demo_db)


@pytest.fixture
def held_console(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The same, with level 1 holding the libraries (off by default)."""
    monkeypatch.setenv("DEVCONSOLE_HOLD_LIBRARIES", "1")
    yield from _console(tmp_path, demo_db)


def _console(tmp_path: Path, demo_db: Path) -> Iterator[Console]:
    with live_console(tmp_path, demo_db, console_class=Console) as console:
        assert get(console.port)[1] == b"pong"
        # Watching the project's roots (reported by the child) before editing.
        wait_for(lambda: console.events.of("watch"))
        reloader = console.reloader
        wait_for(lambda: reloader.watcher is not None and str(console.root / "shop") in reloader.watcher.roots)
        # The kernel reports changes under every root from now on.
        wait_for(lambda: inotify_watches(reloader.watcher.roots))
        yield console


def test_a_views_edit_is_served_by_a_forked_server(console: Console) -> None:
    first = console.events.of("hello")[0]
    console.edit("shop/views.py", 'b"pong"', 'b"pong, edited"')
    console.edit("shop/views.py", '"4"', '"12"')
    assert served(console.port, "/ping/", b"pong, edited") == (200, b"pong, edited")
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "restarted" and reload["error"] is None
    assert reload["files"] == [str((console.root / "shop/views.py").resolve())]
    assert reload["level"] == "fork"  # level 1 had django.setup() done; views are not part of it
    assert set(reload["phases"]) == {"detect", "stop", "start", "ready"}
    assert all(ms >= 0 for ms in reload["phases"].values())
    assert reload["new_generation"] == 2 and reload["duration_ms"] > 0
    hello = wait_for(lambda: [h for h in console.events.of("hello") if h["generation"] == 2])[0]
    assert hello["pid"] != first["pid"]
    assert [p["name"] for p in hello["phases"]][:2] == ["fork", 'fetch_command("runserver")']
    # The apps runserver wins over, found by level 1 once, said by each generation.
    assert hello["runserver"]["shadows"] == first["runserver"]["shadows"] == ["django.core"]
    # Where the time went: the decision, then the new generation's own phases
    # after the change (a spare's preparation, done before it, is not among them).
    steps = [step["name"] for step in reload["steps"]]
    assert steps[0] == "change noticed" and "URLconf import" in steps
    assert all(step["ms"] >= 0 for step in reload["steps"])
    after = [p["name"] for p in hello["phases"]][hello["ahead"] :]
    assert steps[1:] == after
    if reload["spare"]:
        assert hello["ahead"] >= 3 and "WSGI handler" not in steps
    else:
        assert hello["ahead"] == 0
    # The old generation finished and said so.
    wait_for(lambda: [e for e in console.events.of("exit") if e["generation"] == 1 and e["returncode"] == 0])
    assert console.events.state.reloads[-1].decision == "restarted"


def test_requests_sent_through_five_reloads_all_succeed(console: Console) -> None:
    failures: list[str] = []
    answers: list[bytes] = []
    #: What each client saw, in its own order: across clients, a request the
    #: old generation drains can finish after the other's was served by the new.
    per_client: list[list[bytes]] = [[], []]
    stop = threading.Event()

    def hammer(mine: list[bytes]) -> None:
        while not stop.is_set():
            try:
                status, body = get(console.port)
            except OSError as exc:  # refused, reset, timed out
                failures.append(repr(exc))
                continue
            if status != 200 or not body:
                failures.append(f"status {status}: {body[:500]!r}")
            mine.append(body)
            answers.append(body)

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in per_client]
    for thread in threads:
        thread.start()
    wait_for(lambda: answers)  # generation 1 answers before the first edit (connections move at a reload)
    try:
        views = console.root / "shop" / "views.py"
        for n in range(1, 6):
            # One save each (the first also makes Content-Length 5): two
            # saves in a row are two reloads, as they are for a user.
            text = views.read_text().replace(f'b"pong{n - 1}"' if n > 1 else 'b"pong"', f'b"pong{n}"', 1)
            views.write_text(text.replace('"4"', '"5"', 1) if n == 1 else text)
            expected = f"pong{n}".encode()
            # Several answers of each version: requests kept flowing through it.
            wait_for(lambda expected=expected: answers.count(expected) >= 3, timeout=20)
            # This reload is over (the old generation stopped) before the next edit.
            wait_for(lambda n=n: len(console.reloads()) >= n, timeout=20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    # Each of the six generations answered some of them.
    assert {n for n in range(6)} <= {
        order_index
        for order_index in range(6)
        if (b"pong" if order_index == 0 else f"pong{order_index}".encode()) in answers
    }
    reloads = wait_for(lambda: len(console.reloads()) >= 5 and console.reloads())
    assert [r["decision"] for r in reloads] == ["restarted"] * 5
    # Every answer is one of the versions, and no client sees versions go backwards.
    order = [b"pong", *(f"pong{n}".encode() for n in range(1, 6))]
    for mine in per_client:
        seen = [order.index(a) for a in mine]
        assert seen == sorted(seen)


def test_a_syntax_error_serves_the_error_then_the_fix_recovers(console: Console) -> None:
    console.edit("shop/views.py", "def ping(request):", "def ping(request)")
    status, body = served(console.port, "/ping/", b"SyntaxError")
    assert status == 500
    failed = wait_for(lambda: [r for r in console.reloads() if r["decision"] == "failed"])[0]
    assert "SyntaxError" in failed["error"]
    assert console.supervisor.child is not None and console.supervisor.child.alive
    console.edit("shop/views.py", "def ping(request)", "def ping(request):")
    console.edit("shop/views.py", 'b"pong"', 'b"fixed"')
    console.edit("shop/views.py", '"4"', '"5"')
    assert served(console.port, "/ping/", b"fixed") == (200, b"fixed")
    assert wait_for(lambda: console.reloads()[-1]["decision"] == "restarted" and console.reloads())


def test_a_broken_settings_module_serves_an_error_page_then_recovers(console: Console) -> None:
    console.edit("demosite/settings.py", "DEBUG = True", "DEBUG = True\nraise ValueError('settings broke [/bar]')")
    status, body = served(console.port, "/ping/", b"settings broke")
    assert status == 500 and b"settings.py" in body
    failed = wait_for(lambda: [r for r in console.reloads() if r["decision"] == "failed"])[0]
    assert failed["error"] == "ValueError: settings broke [/bar]"
    assert failed["level"] == "setup"  # settings are part of level 1: it was rebuilt
    console.edit("demosite/settings.py", "\nraise ValueError('settings broke [/bar]')", "")
    assert served(console.port, "/ping/", b"pong") == (200, b"pong")
    assert wait_for(lambda: console.reloads()[-1]["decision"] == "restarted")


def test_a_template_change_is_handled_without_a_restart(console: Console) -> None:
    status, body = get(console.port, "/")
    assert status == 200
    assert b"template edited" not in body
    template = console.root / "shop/templates/shop/index.html"
    console.edit("shop/templates/shop/index.html", "<h1>Products</h1>", "<h1>Products, template edited</h1>")
    served(console.port, "/", b"template edited")
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "handled"
    assert reload["files"] == [str(template.resolve())]
    assert reload["new_generation"] is None
    assert [h["generation"] for h in console.events.of("hello")] == [1]


def test_a_models_change_rebuilds_the_zygote_and_is_served(console: Console) -> None:
    level1, apps = console.reloader.level1, console.reloader.apps
    assert apps is not None
    assert level1 is not None and level1.ready and level1.ready["op"] == "ready"
    models = str((console.root / "shop/models.py").resolve())
    # The level-1 zygote imported the models while setting Django up.
    assert models in level1.files
    # The length first: "none" is 4 bytes too, so the body's edit must come
    # last for its answer to say both edits are served.
    console.edit("shop/views.py", '"4"', "str(len(response.content))")
    console.edit("shop/views.py", 'b"pong"', 'getattr(__import__("shop.models").models, "MARK", "none").encode()')
    assert served(console.port, "/ping/", b"none") == (200, b"none")
    console.edit("shop/models.py", "class Product", 'MARK = "models edited"\n\n\nclass Product')
    assert served(console.port, "/ping/", b"models edited") == (200, b"models edited")
    # The view edits before it made one reload or two: the models edit's is the one of its file.
    reload = wait_for(lambda: [r for r in console.reloads() if models in r["files"]])[-1]
    assert reload["decision"] == "restarted" and reload["level"] == "setup"
    assert reload["files"] == [models]
    # The row says which step took the time: the rebuilt level 1's setup is
    # among them, from the apps level (the settings and the libraries' models
    # are not imported again: that level holds them).
    steps = {step["name"]: step["ms"] for step in reload["steps"]}
    assert {"change noticed", "the project's models and ready()", "level 1 fork", "URLconf import"} <= set(steps)
    assert not {"settings import", "the libraries' models"} & set(steps)
    assert steps["the project's models and ready()"] > 0
    row = wait_for(lambda: [r for r in console.events.state.reloads if r.generation == reload["new_generation"]])[0]
    assert row.slowest is not None and row.slowest.ms == max(steps.values())
    assert console.reloader.level1 is not level1 and console.reloader.level1.pid != level1.pid
    assert console.reloader.apps is apps and models not in apps.files
    # The old level 1's exit is told to the apps level, which keeps no trace of it.
    wait_for(lambda: apps.levels == {console.reloader.level1.pid})
    assert apps._early_exits == {}


def test_a_settings_edit_rebuilds_the_apps_level_and_is_served(console: Console) -> None:
    apps = console.reloader.apps
    assert apps is not None and apps.setup_ok and apps.ready is not None and apps.ready["forkable"]
    settings = str((console.root / "demosite/settings.py").resolve())
    # It holds the settings and the libraries' models (Django's own apps
    # here), and not the project's: level 1, forked from it, imports those.
    assert settings in apps.files and str((console.root / "shop/models.py").resolve()) not in apps.files
    console.edit(
        "shop/views.py", 'b"pong"', 'getattr(__import__("django.conf").conf.settings, "MARK", "nope").encode()'
    )
    assert served(console.port, "/ping/", b"nope") == (200, b"nope")
    (console.root / "demosite/settings.py").write_text(
        (console.root / "demosite/settings.py").read_text() + '\nMARK = "abcd"\n'
    )
    assert served(console.port, "/ping/", b"abcd") == (200, b"abcd")
    reload = wait_for(lambda: [r for r in console.reloads() if settings in r["files"]])[-1]
    assert reload["decision"] == "restarted" and reload["level"] == "setup"
    steps = [step["name"] for step in reload["steps"]]
    assert steps.index("settings import") < steps.index("the libraries' models") < steps.index("apps level fork")
    assert steps.index("apps level fork") < steps.index("the project's models and ready()")
    assert console.reloader.apps is not None and console.reloader.apps.pid != apps.pid
    wait_for(lambda: apps.dead.is_set())  # the old one retired once its level 1 is gone


def test_a_library_whose_models_need_the_projects_first_is_set_up_whole(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library listed after a project app whose models module reads that
    app's model when imported: the apps level (libraries' models first)
    cannot hold the setup, so level 1 is set up whole from level 0, for the
    session, and says why once."""
    # It reads the registry as it stands (``get_model(...,
    # require_ready=False)`` would import the project's models itself: the
    # apps level would then hold them, and say so in its files).
    _installed_library(
        tmp_path,
        monkeypatch,
        "needs_shop",
        "from django.apps import apps\n\nPRODUCT = apps.all_models['shop']['product']\n",
    )
    monkeypatch.setenv("DEVCONSOLE_APPS_LEVEL", "1")  # tried at the first start

    with live_console(tmp_path, demo_db, prepare=_with_app("needs_shop"), console_class=Console) as console:
        assert get(console.port) == (200, b"pong")
        reloader = console.reloader
        assert reloader.apps is None and reloader.use_apps is False
        assert reloader.level1 is not None and reloader.level1.setup_ok
        lines = [e["text"] for e in console.events.of("log") if "cannot be held" in e.get("text", "")]
        assert len(lines) == 1 and "KeyError: 'product'" in lines[0], lines
        wait_for(lambda: reloader.watcher is not None and str(console.root / "shop") in reloader.watcher.roots)
        wait_for(lambda: inotify_watches(reloader.watcher.roots))
        console.edit("shop/views.py", 'b"pong"', 'getattr(__import__("shop.models").models, "MARK", "none").encode()')
        assert served(console.port, "/ping/", b"none") == (200, b"none")
        console.edit("shop/models.py", "class Product", 'MARK = "edit"\n\n\nclass Product')
        assert served(console.port, "/ping/", b"edit") == (200, b"edit")
        models = str((console.root / "shop/models.py").resolve())
        reload = wait_for(lambda: [r for r in console.reloads() if models in r["files"]])[-1]
        # Set up whole, and the apps level not tried again.
        steps = [step["name"] for step in reload["steps"]]
        assert "django.setup()" in steps and not any("apps level" in step for step in steps)
        assert reloader.apps is None and not reloader.use_apps


def _installed_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, models: str) -> None:
    """An installed library app ``name`` whose models module is ``models``:
    in a site-packages directory of its own (the user's, which devconsole
    counts among the libraries' places), on the path of every process."""
    base = tmp_path / "userbase"
    packages = base / f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    (packages / name).mkdir(parents=True)
    (packages / name / "__init__.py").write_text("")
    (packages / name / "models.py").write_text(models)
    monkeypatch.setenv("PYTHONUSERBASE", str(base))
    monkeypatch.setenv("PYTHONPATH", str(packages))


def _with_app(name: str) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        settings = root / "demosite/settings.py"
        settings.write_text(settings.read_text().replace('    "blog",\n', f'    "blog",\n    "{name}",\n'))

    return prepare


def test_a_project_module_a_librarys_models_imported_is_held_by_the_apps_level_and_never_stale(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library's models that ask for a project's model import that app's
    models in the apps level: they are among its files, an edit to them
    rebuilds it, and the new code is served. Every fork server ends with the console."""
    _installed_library(
        tmp_path,
        monkeypatch,
        "uses_shop",
        "from django.apps import apps\n\nPRODUCT = apps.get_model('shop', 'Product', require_ready=False)\n",
    )
    monkeypatch.setenv("DEVCONSOLE_APPS_LEVEL", "1")
    with live_console(tmp_path, demo_db, prepare=_with_app("uses_shop"), console_class=Console) as console:
        reloader = console.reloader
        apps = reloader.apps
        models = str((console.root / "shop/models.py").resolve())
        assert apps is not None and apps.setup_ok and models in apps.files
        wait_for(lambda: reloader.watcher is not None and str(console.root / "shop") in reloader.watcher.roots)
        wait_for(lambda: inotify_watches(reloader.watcher.roots))
        console.edit("shop/views.py", 'b"pong"', 'getattr(__import__("shop.models").models, "MARK", "none").encode()')
        assert served(console.port, "/ping/", b"none") == (200, b"none")
        steps = _models_edit(console, "held")
        assert reloader.apps is not None and reloader.apps.pid != apps.pid
        assert "the libraries' models" in steps and "apps level fork" in steps
        pids = [handle.pid for handle in (reloader.level0, reloader.apps, reloader.level1) if handle is not None]
        assert len(pids) == 3 and all(isinstance(pid, int) and alive(pid) for pid in pids)
    wait_for(lambda: not any(alive(pid) for pid in pids))


def test_a_models_error_in_a_level_1_from_the_apps_level_is_the_setups_then_fixed(console: Console) -> None:
    assert console.reloader.apps is not None
    console.edit("shop/models.py", "class Product(models.Model):", "class Product(models.Model)")
    status, body = served(console.port, "/ping/", b"SyntaxError")
    assert status == 500
    error = wait_for(lambda: [e for e in console.events.of("error") if "SyntaxError" in e.get("message", "")])[-1]
    assert error["phase"] == "django.setup()"
    console.edit("shop/models.py", "class Product(models.Model)", "class Product(models.Model):")
    assert served(console.port, "/ping/", b"pong") == (200, b"pong")
    assert console.reloader.apps is not None and console.reloader.use_apps


def test_a_manage_py_that_sets_django_up_itself_names_the_apps_level_steps_right(console: Console) -> None:
    # Its own django.setup() before Django's command line: a level 1 resumed
    # from the apps level finishes the project's models within manage.py.
    console.edit(
        "manage.py",
        "    from django.core.management import execute_from_command_line\n",
        "    from django.core.management import execute_from_command_line\n\n    import django\n\n    django.setup()\n",
    )
    manage = str((console.root / "manage.py").resolve())
    wait_for(lambda: [r for r in console.reloads() if manage in r["files"]])
    assert get(console.port) == (200, b"pong")
    console.edit("shop/views.py", 'b"pong"', 'getattr(__import__("shop.models").models, "MARK", "none").encode()')
    assert served(console.port, "/ping/", b"none") == (200, b"none")
    steps = _models_edit(console, "wxyz")
    assert "manage.py" not in steps and steps.count("the project's models and ready()") == 1
    reload = [r for r in console.reloads() if "shop/models.py" in " ".join(r["files"])][-1]
    ms = {step["name"]: step["ms"] for step in reload["steps"]}
    assert ms["the project's models and ready()"] > ms["django.setup()"]


#: A library that is no installed app: it writes a line each time it is
#: imported, and (only where the models are not ready: the apps level)
#: imports a project module and reads its value.
EXTLIB = """
import os

from django.apps import apps

HELPER = None
if not apps.models_ready:
    from shop import helper

    HELPER = helper.VALUE
with open(os.environ["EXTLIB_LOG"], "a") as log:
    log.write(f"extlib {os.getpid()}\\n")
"""


def test_the_apps_level_imports_ahead_the_libraries_a_ready_imported_but_no_apps_own(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project app's ready() imports ``extlib`` (no installed app's) and
    ``libapp.extra`` (an installed library app's own module). Once the
    serving generation answered its first request, the apps level imports
    extlib: the next models edit's level 1 does not import it again, and
    imports libapp.extra itself (never imported ahead). A project module
    that extlib imported in the apps level alone, saved, sends the next
    models edit to a new apps level, whose level 1 serves the saved value."""
    _installed_library(tmp_path, monkeypatch, "libapp", "")
    packages = Path(os.environ["PYTHONPATH"])
    (packages / "libapp" / "extra.py").write_text(
        'import os\nwith open(os.environ["EXTLIB_LOG"], "a") as log:\n    log.write(f"libapp.extra {os.getpid()}\\n")\n'
    )
    (packages / "extlib").mkdir()
    (packages / "extlib" / "__init__.py").write_text(EXTLIB)
    log = tmp_path / "imports.log"
    monkeypatch.setenv("EXTLIB_LOG", str(log))
    monkeypatch.setenv("DEVCONSOLE_APPS_LEVEL", "1")

    def prepare(root: Path) -> None:
        _with_app("libapp")(root)
        (root / "shop" / "helper.py").write_text('VALUE = "h1"\n')
        apps_py = root / "shop" / "apps.py"
        apps_py.write_text(
            apps_py.read_text()
            + "\n    def ready(self):\n        import extlib  # noqa\n        import libapp.extra  # noqa\n"
        )
        views = root / "shop" / "views.py"
        views.write_text(
            views.read_text()
            .replace('    response["Content-Length"] = "4"\n', "")
            .replace(
                'HttpResponse(b"pong"',
                "HttpResponse(f\"{getattr(__import__('shop.models').models, 'MARK', 'none')}"
                ":{__import__('extlib').HELPER}\".encode()",
            )
        )

    def imported(name: str) -> list[int]:
        return [int(line.split()[1]) for line in log.read_text().splitlines() if line.split()[0] == name]

    with live_console(tmp_path, demo_db, prepare=prepare, console_class=Console) as console:
        reloader = console.reloader
        assert get(console.port) == (200, b"none:None")
        apps, level1 = reloader.apps, reloader.level1
        assert apps is not None and level1 is not None and level1.setup_ok
        assert imported("extlib") == [level1.pid] and imported("libapp.extra") == [level1.pid]
        # After the first request: extlib imported ahead in the apps level, libapp.extra not.
        wait_for(lambda: apps.preloads_done >= 1 and not apps.preloading)
        assert imported("extlib") == [level1.pid, apps.pid] and imported("libapp.extra") == [level1.pid]
        helper = str((console.root / "shop/helper.py").resolve())
        assert helper in apps.files and helper not in level1.files
        wait_for(lambda: reloader.watcher is not None and str(console.root / "shop") in reloader.watcher.roots)
        wait_for(lambda: inotify_watches(reloader.watcher.roots))
        # A models edit: level 1 from the same apps level, extlib inherited.
        console.edit("shop/models.py", "class Product", 'MARK = "m1"\n\n\nclass Product')
        served(console.port, "/ping/", b"m1:h1")
        second = reloader.level1
        assert reloader.apps is apps and second is not None and second.pid != level1.pid
        assert imported("extlib") == [level1.pid, apps.pid]
        assert imported("libapp.extra") == [level1.pid, second.pid]
        # That level 1 inherited helper.py: saved, it rebuilds level 1 from a
        # new apps level, whose level 1 imports extlib itself.
        console.edit("shop/helper.py", '"h1"', '"h2"')
        assert served(console.port, "/ping/", b"m1:None") == (200, b"m1:None")
        fresh, third = reloader.apps, reloader.level1
        assert fresh is not None and fresh.pid != apps.pid and third is not None
        assert imported("extlib")[2:] == [third.pid]
        # Imported ahead there once the first request was answered: now
        # helper.py is held by the apps level alone. Saved, it restarts
        # nothing, but the next models edit comes from a new apps level
        # (this one would serve the old "h2").
        wait_for(lambda: fresh.preloads_done >= 1 and not fresh.preloading)
        assert imported("extlib")[3:] == [fresh.pid] and helper in fresh.files and helper not in third.files
        console.edit("shop/helper.py", '"h2"', '"h3"')
        assert wait_for(lambda: [r for r in console.reloads() if helper in r["files"]][1:])[0]["decision"] == "ignored"
        console.edit("shop/models.py", 'MARK = "m1"', 'MARK = "m2"')
        assert served(console.port, "/ping/", b"m2:") == (200, b"m2:None")
        assert reloader.apps is not None and reloader.apps.pid not in (apps.pid, fresh.pid)
        pids = [handle.pid for handle in (reloader.level0, reloader.apps, reloader.level1) if handle is not None]
    wait_for(lambda: not any(alive(pid) for pid in pids))


def _models_edit(console: Console, mark: str) -> list[str]:
    """Save a models.py edit that the view then shows; the steps of its
    (first) reload."""
    models = str((console.root / "shop/models.py").resolve())
    before = len([r for r in console.reloads() if models in r["files"]])
    console.edit("shop/models.py", "class Product", f'MARK = "{mark}"\n\n\nclass Product')
    assert served(console.port, "/ping/", mark.encode()) == (200, mark.encode())
    reload = wait_for(lambda: [r for r in console.reloads() if models in r["files"]][before:])[0]
    return [step["name"] for step in reload["steps"]]


@pytest.mark.parametrize("worth", [True, False])
def test_the_apps_level_is_made_at_a_models_edit_and_held_only_when_worth_it(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch, worth: bool
) -> None:
    """Not at the first start (it would make it no faster); at the first
    rebuild of level 1 after a long enough setup (here: any), held when what
    it spares is long enough (here: any, or never), else given up for the
    session without a word."""
    monkeypatch.delenv("DEVCONSOLE_APPS_LEVEL", raising=False)
    monkeypatch.setattr(reloader_module, "APPS_LEVEL_TRY_MS", 0.0)
    monkeypatch.setattr(reloader_module, "APPS_LEVEL_WORTH_MS", 0.0 if worth else 1e9)
    with live_console(tmp_path, demo_db, console_class=Console) as console:
        reloader = console.reloader
        assert reloader.apps is None and reloader.level1 is not None and reloader.level1.setup_ok
        wait_for(lambda: reloader.watcher is not None and str(console.root / "shop") in reloader.watcher.roots)
        wait_for(lambda: inotify_watches(reloader.watcher.roots))
        console.edit("shop/views.py", 'b"pong"', 'getattr(__import__("shop.models").models, "MARK", "none").encode()')
        assert served(console.port, "/ping/", b"none") == (200, b"none")
        first = _models_edit(console, "abcd")
        second = _models_edit(console, "efgh")
        if worth:
            assert reloader.apps is not None and reloader.apps.setup_ok and reloader.use_apps
            assert first.index("the libraries' models") < first.index("the project's models and ready()")
            assert "settings import" not in second and "the project's models and ready()" in second
        else:
            assert reloader.apps is None and not reloader.use_apps
            assert "the apps level, not worth holding" in first and "django.setup()" in first
            assert not any("apps level" in step or "libraries' models" in step for step in second)
            assert "django.setup()" in second
        assert not [e for e in console.events.of("log") if "cannot be held" in e.get("text", "")]


def test_a_restart_says_when_it_begins_and_when_its_server_answered(console: Console) -> None:
    """The app holds its redraws between the two (see DevConsoleApp.hold_refresh)."""
    calls: list[tuple[str, bool]] = []
    console.reloader.on_restart = lambda: calls.append(("restart", console.supervisor.generation == 1))
    console.reloader.on_restarted = lambda: calls.append(
        ("restarted", console.supervisor.child is not None and console.supervisor.child.hello.is_set())
    )
    console.edit("shop/views.py", 'b"pong"', 'b"PONG"')
    assert served(console.port, "/ping/", b"PONG") == (200, b"PONG")
    wait_for(lambda: len(calls) == 2)
    # Before the old generation was replaced; after the new one said hello.
    assert calls == [("restart", True), ("restarted", True)]


def test_restart_by_hand_is_an_autoreload_event(console: Console) -> None:
    old = console.reloader.level0, console.reloader.apps, console.reloader.level1
    assert all(old)
    console.reloader.restart()
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "restarted" and reload["files"] == []
    assert reload["new_generation"] == 2
    assert get(console.port) == (200, b"pong")
    # Every fork server was made anew; each old one exited on its own once
    # the fork servers it forked had (it reaped them: none left to init).
    level0, apps, level1 = old
    assert level0.process is not None and console.reloader.level0 is not level0
    # Its control channel read to the end: every exit it told is counted.
    wait_for(lambda: level0.dead.is_set() and apps.dead.is_set() and level1.dead.is_set())
    assert level0.process.wait(10) == 0
    assert level0.levels == set() and apps.levels == set()
    assert level0._early_exits == {} and apps._early_exits == {}


def test_an_ignored_file_changes_nothing(console: Console) -> None:
    (console.root / "notes.txt").write_text("not code\n")
    (console.root / "shop/notes.txt").write_text("not code, in a watched package\n")
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "ignored"
    # A static file is asked about (open pages follow it: live reload), and restarts nothing either.
    (console.root / "shop/static/shop/extra.css").write_text("body{}\n")
    static = wait_for(lambda: [r for r in console.reloads() if r["decision"] == "handled"])[0]
    assert static["files"] == [str((console.root / "shop/static/shop/extra.css").resolve())]
    assert [h["generation"] for h in console.events.of("hello")] == [1]


def test_the_old_generation_finishes_its_request_while_the_new_one_serves(console: Console) -> None:
    done: list[tuple[int, bytes, float]] = []

    def slow() -> None:
        status, body = get(console.port, "/slow/?sleep=1.5")
        done.append((status, body, time.monotonic()))

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for(lambda: [c for c in console.events.state.connections() if c.state == "handling"])
    console.edit("shop/views.py", 'b"pong"', 'b"gen2"')
    served(console.port, "/ping/", b"gen2")
    new_code_at = time.monotonic()
    thread.join(10)
    # The request that was in progress on the old code finished normally,
    # after the new generation had already answered.
    assert done and done[0][:2] == (200, b"slept 1.5 s\n")
    assert done[0][2] > new_code_at
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "restarted"
    assert reload["phases"]["stop"] > reload["phases"]["ready"]


def test_an_exception_in_appconfig_ready_is_served_then_fixed(console: Console) -> None:
    console.edit(
        "blog/apps.py",
        "class BlogConfig(AppConfig):",
        "class BlogConfig(AppConfig):\n    def ready(self):\n        raise RuntimeError('ready failed')\n",
    )
    status, body = served(console.port, "/ping/", b"ready failed")
    assert status == 500
    failed = wait_for(lambda: [r for r in console.reloads() if r["decision"] == "failed"])[0]
    assert failed["error"] == "RuntimeError: ready failed"
    console.edit("blog/apps.py", "    def ready(self):\n        raise RuntimeError('ready failed')\n", "")
    assert served(console.port, "/ping/", b"pong") == (200, b"pong")


def test_threads_started_during_setup_make_the_fork_come_from_level_0(console: Console) -> None:
    # A thread alive in level 1 makes forking it unsafe (a lock held by that
    # thread would stay locked forever in the child): the fork then comes
    # from level 0, and the child runs the whole setup itself.
    console.edit(
        "blog/apps.py",
        "class BlogConfig(AppConfig):",
        "import threading, time\n\n\nclass BlogConfig(AppConfig):\n"
        "    def ready(self):\n        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n",
    )
    reload = wait_for(lambda: console.reloads() and console.reloads()[-1])
    assert reload["decision"] == "restarted" and reload["level"] == "setup"
    assert reload["via"] == "level 0"
    assert console.reloader.level1 is not None and console.reloader.level1.ready["forkable"] is False
    console.edit("shop/views.py", 'b"pong"', 'b"safe"')
    assert served(console.port, "/ping/", b"safe") == (200, b"safe")
    reload = wait_for(lambda: len(console.reloads()) >= 2 and console.reloads()[-1])
    assert reload["via"] == "level 0" and reload["decision"] == "restarted"


def test_a_killed_zygote_is_replaced_and_the_edit_still_served(console: Console) -> None:
    import signal

    level1 = console.reloader.level1
    assert level1 is not None and level1.pid
    os.kill(level1.pid, signal.SIGKILL)
    wait_for(level1.dead.is_set)
    console.edit("shop/views.py", 'b"pong"', 'b"back"')
    assert served(console.port, "/ping/", b"back") == (200, b"back")
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "restarted"
    assert console.reloader.level1 is not level1


def test_a_spare_prepared_ahead_serves_the_next_edit_unless_it_imported_the_change(console: Console) -> None:
    console.edit("shop/views.py", 'b"pong"', 'b"one!"')
    served(console.port, "/ping/", b"one!")
    # After a reload, the next generation is forked and prepared ahead of
    # time; then it imports ahead the project modules that neither the last
    # save changed nor import one it did (blog's, not the URLconf).
    wait_for(lambda: console.reloader.spare is not None and console.reloader.spare.ahead_files is not None)
    spare = console.reloader.spare
    wsgi = str((console.root / "demosite/wsgi.py").resolve())
    assert wsgi in spare.spare_files  # building the handler imported it
    held = {Path(path).relative_to(console.root.resolve()).as_posix() for path in spare.ahead_files}
    assert {"blog/views.py", "blog/urls.py"} <= held
    assert "shop/views.py" not in held and "demosite/urls.py" not in held
    console.edit("shop/views.py", 'b"one!"', 'b"two!"')
    served(console.port, "/ping/", b"two!")
    second = wait_for(lambda: len(console.reloads()) >= 2 and console.reloads()[1])
    assert second["spare"] is True and second["twin"] is False and second["decision"] == "restarted"
    hello = [h for h in console.events.of("hello") if h["generation"] == second["new_generation"]][0]
    assert hello["pid"] == spare.pid
    # Its preparation (the fork, the handler) happened before the save: the
    # reload's steps are the decision and what came after the promotion.
    assert hello["ahead"] >= 3
    assert [p["name"] for p in hello["phases"]][: hello["ahead"]][:1] == ["fork"]
    steps = [step["name"] for step in second["steps"]]
    assert steps[0] == "change noticed" and steps[1] == "URLconf import"
    assert "fork" not in steps and "WSGI handler" not in steps
    # A change to a file the spare imported: it is not used, a fresh fork is.
    wait_for(lambda: console.reloader.spare is not None and console.reloader.spare.spare_files is not None)
    console.edit(
        "demosite/wsgi.py", "application = get_wsgi_application()", "application = get_wsgi_application()  # edited"
    )
    third = wait_for(lambda: len(console.reloads()) >= 3 and console.reloads()[2])
    assert third["spare"] is False and third["decision"] == "restarted"
    assert get(console.port) == (200, b"two!")


def test_the_url_patterns_a_page_reversed_are_normalized_ahead_and_an_edited_one_afresh(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index page reverses a dozen URLs: its generation names the URL
    patterns its reverse tables normalized, the next spare computes their
    forms ahead (and says how many), and the generation after a URLconf
    edit links to the new path (a pattern's forms come from the memo only
    for the same text). The spare's fallback timer fires at once here, so a
    spare is always forked before the generation's first request reported
    what it used: it is replaced by one forked with that report."""
    monkeypatch.setattr(reloader_module, "SPARE_FALLBACK", 0.0)
    console.edit("shop/views.py", 'b"pong"', 'b"pong!"')
    wait_for(lambda: any(h["generation"] == 2 for h in console.events.of("hello")))
    assert get(console.port, "/")[0] == 200  # generation 2's first request
    child = console.supervisor.child
    assert child is not None and child.generation == 2
    named = wait_for(lambda: child.normalized and json.loads(child.normalized))
    assert any(text.startswith("^ping/") for text in named), named
    spare = wait_for(
        lambda: (
            spare
            if (spare := console.reloader.spare) is not None and spare.hints_of == 2 and spare.spare_files is not None
            else None
        )
    )
    assert spare.spare_normalized == len(set(named))  # every one computed before the save
    console.edit("demosite/urls.py", 'path("ping/", shop_views.ping', 'path("ping-renamed/", shop_views.ping')
    status, body = served(console.port, "/", b'href="/ping-renamed/"')
    assert status == 200 and b'href="/ping/"' not in body
    assert wait_for(lambda: len(console.reloads()) >= 2 and console.reloads()[1])["spare"] is True


def _spare_holding_blog_ahead(console: Console) -> tuple[Any, str]:
    """After a save of shop's views (so the next spare imports neither them
    nor the URLconf ahead): the spare that imported blog's views ahead."""
    console.edit("shop/views.py", 'b"pong"', 'b"one!"')
    served(console.port, "/ping/", b"one!")
    blog = str((console.root / "blog/views.py").resolve())
    spare = wait_for(
        lambda: (
            spare
            if (spare := console.reloader.spare) is not None
            and spare.ahead_files is not None
            and blog in spare.ahead_files
            else None
        )
    )
    return spare, blog


BLOG_VIEWS_TWIN = """from django.http import HttpResponse


def post_list(request):
    return HttpResponse(b"twin")
"""


def test_a_save_of_a_module_the_spare_imported_ahead_is_served_by_its_twin(console: Console) -> None:
    """The spare imported blog's modules ahead; a save of one has its twin
    (forked before those imports) serve the new code, the spare standing in
    for it: killed, the twin's death is the generation's, restarted as any
    crash."""
    spare, blog = _spare_holding_blog_ahead(console)
    assert blog not in spare.spare_files and spare.spare_twin
    (console.root / "blog/views.py").write_text(BLOG_VIEWS_TWIN)
    assert served(console.port, "/blog/", b"twin") == (200, b"twin")
    second = wait_for(lambda: [r for r in console.reloads() if r["files"] == [blog] and r["decision"] == "restarted"])[
        -1
    ]
    assert second["spare"] is True and second["twin"] is True
    hello = [h for h in console.events.of("hello") if h["generation"] == second["new_generation"]][0]
    twin_pid = hello["pid"]
    assert twin_pid != spare.pid and os.getppid() != twin_pid
    assert _parent_of(twin_pid) == spare.pid  # the spare stands in for it
    # The twin dies: so does the generation, and a new one serves the same code.
    os.kill(twin_pid, signal.SIGKILL)
    crashes = wait_for(
        lambda: [
            e
            for e in console.events.of("error")
            if e.get("phase") == CRASH_PHASE and e.get("generation") == second["new_generation"]
        ],
        timeout=30,
    )
    assert "killed by SIGKILL" in crashes[0]["message"]  # the twin's death, as the spare ended with it
    wait_for(lambda: console.supervisor.generation > second["new_generation"], timeout=30)
    assert served(console.port, "/blog/", b"twin") == (200, b"twin")
    wait_for(lambda: not _alive(spare.pid), timeout=30)


BLOG_VIEWS_DATA = """import json
from pathlib import Path

from django.http import HttpResponse

DATA = json.loads((Path(__file__).parent / "data.json").read_text())  # read when imported


def post_list(request):
    return HttpResponse(DATA["word"].encode())
"""


def _blog_reads_data(root: Path) -> None:
    (root / "blog/data.json").write_text('{"word": "old"}')
    (root / "blog/views.py").write_text(BLOG_VIEWS_DATA)


@pytest.fixture
def data_console(tmp_path: Path, demo_db: Path) -> Iterator[Console]:
    with live_console(tmp_path, demo_db, console_class=Console, prepare=_blog_reads_data) as console:
        wait_for(lambda: console.events.of("watch"))
        reloader = console.reloader
        wait_for(lambda: reloader.watcher is not None and inotify_watches(reloader.watcher.roots))
        yield console


def test_a_file_a_module_imported_ahead_read_is_read_again_after_it_changed(data_console: Console) -> None:
    """blog's views read a JSON file when imported, and the spare imported
    them ahead: once that file changes, the next save is not served with
    what the spare read before (its twin serves it), as runserver, which
    imports everything again, would not serve it."""
    console = data_console
    assert get(console.port, "/blog/") == (200, b"old")
    spare, _blog = _spare_holding_blog_ahead(console)
    count = len(console.reloads())
    (console.root / "blog/data.json").write_text('{"word": "new"}')  # no restart: no module of it
    wait_for(lambda: spare.ahead_stale)
    console.edit("shop/views.py", 'b"one!"', 'b"two!"')
    served(console.port, "/ping/", b"two!")
    assert get(console.port, "/blog/") == (200, b"new")
    reload = wait_for(lambda: [r for r in console.reloads()[count:] if r["decision"] == "restarted"])[0]
    assert reload["twin"] is True or reload["spare"] is False


def _assert_spare_served(console: Console, reload: dict, spare_pid: int) -> None:
    """The generation ``reload`` started is the spare's: the spare itself, or
    (the save changed a module it had imported ahead) its twin."""
    [pid] = [h["pid"] for h in console.events.of("hello") if h["generation"] == reload["new_generation"]]
    if reload["twin"]:
        assert _parent_of(pid) == spare_pid
    else:
        assert pid == spare_pid


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_spare_that_is_ready_before_the_fork_server_answered_is_still_used(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine a spare can say ``spare_ready`` before the handle
    that forked it has been made the reloader's spare: it is ready all the same."""
    serve = supervisor_module.ForkServerHandle.serve
    early: list[int] = []

    def serve_then_let_it_say_ready(self: Any, generation: int, **kwargs: Any) -> Any:
        handle = serve(self, generation, **kwargs)
        if kwargs.get("spare"):
            # Its readers run: its spare_ready is read before the reloader holds it.
            wait_for(lambda: handle.spare_files is not None or handle.spare_failed or not handle.alive)
            early.append(handle.pid)
        return handle

    monkeypatch.setattr(supervisor_module.ForkServerHandle, "serve", serve_then_let_it_say_ready)
    console.edit("shop/views.py", 'b"pong"', 'b"one!"')
    served(console.port, "/ping/", b"one!")
    spare = wait_for(lambda: console.reloader.spare if console.reloader.spare and early else None)
    assert spare.pid in early and spare.spare_files is not None and not spare.spare_failed
    wait_for(lambda: spare.ahead_files is not None)  # then it serves, not its twin
    console.edit("shop/views.py", 'b"one!"', 'b"two!"')
    served(console.port, "/ping/", b"two!")
    second = wait_for(lambda: [r for r in console.reloads() if r["new_generation"] == 3])[0]
    assert second["spare"] is True
    assert [h["pid"] for h in console.events.of("hello") if h["generation"] == 3] == [spare.pid]


def test_a_level_0_that_preloaded_the_libraries_still_builds_a_working_level_1(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every message the console reads from a fork server, as it reads it.
    answers: list[dict] = []
    receive = forkserver_wire.receive

    def tapped(sock: socket.socket) -> tuple[dict | None, list[int], bool]:
        message, fds, gone = receive(sock)
        if message is not None:
            answers.append(dict(message))
        return message, fds, gone

    monkeypatch.setattr(forkserver_wire, "receive", tapped)
    console.reloader.preload_enabled = True
    console.reloader.restart()  # a full rebuild, after which level 0 preloads
    wait_for(lambda: console.reloads())
    level0 = console.reloader.level0
    assert level0 is not None
    # The preload happens in the background, a few modules at a time; level 0
    # answers "preloaded" once it is done, and a level-1 rebuild then forks from it.
    preloaded = wait_for(lambda: [m for m in answers if m.get("op") == "preloaded"], timeout=60)[0]
    assert preloaded["loaded"] > 0, preloaded  # it did import libraries ahead
    assert preloaded["forkable"] is True
    console.edit("shop/models.py", "class Product", 'MARK = "preloaded"\n\n\nclass Product')
    console.edit("shop/views.py", 'b"pong"', 'getattr(__import__("shop.models").models, "MARK", "none").encode()')
    console.edit("shop/views.py", '"4"', "str(len(response.content))")
    assert served(console.port, "/ping/", b"preloaded") == (200, b"preloaded")
    assert console.reloader.level0 is level0 and console.reloader.preload_enabled
    # Nothing of the project was imported into level 0 by the preload.
    assert not [f for f in preloaded["files"] if f.startswith(str(console.root.resolve()))]
    assert not [f for f in level0.files if f.startswith(str(console.root.resolve()))]


#: A console (a real Session) in its own process, so that its file descriptor
#: limit can be lowered without touching the test's. Every free descriptor
#: number up to the highest one open is taken first: what the console opens
#: after that (its socket, pipes, the watch) is numbered above ``limit``, and
#: with the limit lowered to it nothing new can be opened while everything
#: open keeps working. Driven by one-word commands on stdin, answering a JSON
#: line each.
LIMITED_CONSOLE = """
import json, os, resource, sys
from pathlib import Path
from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.session import Session

open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")}
fillers = []
while True:
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd > max(open_fds):
        os.close(fd)
        break
    fillers.append(fd)
limit = max(open_fds) + 1
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

manage_py, database = sys.argv[1:3]
project = Project(Path(manage_py), env=(("DEVCONSOLE_DEMO_DB", database), ("DJANGO_SETTINGS_MODULE", "demosite.settings")))
sock = bind(ListenAddress("127.0.0.1", 0))
port = sock.getsockname()[1]
session = Session(project, ListenAddress("127.0.0.1", port), sock)
session.start()

def say(**answer):
    print(json.dumps(answer), flush=True)

say(port=port)
for line in sys.stdin:
    command = line.strip()
    if command == "roots":
        say(roots=session.reloader.watcher.roots, watch=session.state.watch is not None)
    elif command == "lower":
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        say(limit=limit)
    elif command == "raise":
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        say(limit=soft)
    elif command == "log":
        say(log=[[line.stream, line.text] for line in session.state.log])
    elif command.startswith("watch "):
        # A root more, as when a new generation imports from a new place: a new watch.
        watcher = session.reloader.watcher
        say(changed=watcher.set_roots([*watcher.roots, command[6:]], watcher.ignore))
    elif command == "quit":
        break
session.close()
say(closed=True)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="reads descriptors from /proc (Linux)")
def test_a_watch_that_fails_is_a_log_line_and_comes_back(tmp_path: Path, demo_db: Path) -> None:
    """The watch renewed for new roots fails (no file descriptor left: the
    new inotify instance cannot be created, as when the user's inotify
    instances are used up): the console's log says so, and the watch comes
    back once it can. (With watchfiles a save of a watched single file renews
    the watch too.)"""
    root, _project = demo_copy(tmp_path, demo_db)
    database = tmp_path / "demo.sqlite3"
    (root / "notes.py").write_text("NOTES = 1\n")  # a watched root of its own; nothing imports it
    proc = subprocess.Popen(
        [sys.executable, "-c", LIMITED_CONSOLE, str(root / "manage.py"), str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def ask(command: str) -> dict:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        assert answer, f"the console exited ({proc.wait()})"
        return json.loads(answer)

    def failures() -> list[list[str]]:
        return [line for line in ask("log")["log"] if "watching files for autoreload failed" in line[1]]

    def watched_roots() -> list[str] | None:
        """The watcher's roots, once the child's report has reached them."""
        answer = ask("roots")
        return answer["roots"] if answer["watch"] and str(root / "shop") in answer["roots"] else None

    try:
        port = json.loads(proc.stdout.readline())["port"]
        assert get(port)[1] == b"pong"
        # The roots the child reported are watched, notes.py among them.
        roots = wait_for(watched_roots)
        assert str(root / "notes.py") in roots
        wait_for(lambda: inotify_watches(roots, pid=proc.pid))
        ask("lower")
        (root / "notes.py").write_text("NOTES = 2\n")  # with watchfiles: renews the watch on it
        (root / "extra").mkdir()
        assert ask(f"watch {root / 'extra'}") == {"changed": True}  # a new watch: that fails
        [(stream, text)] = wait_for(failures)
        assert stream == "stderr"
        assert text.startswith("devconsole: watching files for autoreload failed (")
        assert "Too many open files" in text and text.endswith("; retrying")
        ask("raise")
        # Retried every second: the watch is back, and an edit is served again.
        wait_for(lambda: inotify_watches(roots, pid=proc.pid))
        views = root / "shop" / "views.py"
        views.write_text(views.read_text().replace('b"pong"', 'b"pong, again"', 1).replace('"4"', '"11"', 1))
        assert served(port, "/ping/", b"pong, again") == (200, b"pong, again")
        assert len(failures()) == 1
        assert ask("quit") == {"closed": True}
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_save_before_the_child_listed_its_imports_restarts(console: Console) -> None:
    """The child lists what it imported only after its first request: a save
    that comes before the list (a busy machine) must not be ignored."""
    # As it is between a generation's start and its watch event.
    console.reloader.server_files = frozenset()
    console.reloader.server_files_generation = 0
    console.edit("shop/views.py", 'b"pong"', 'b"pong, early"')
    console.edit("shop/views.py", '"4"', '"11"')  # its Content-Length
    reload = wait_for(console.reloads)[0]
    assert reload["decision"] == "restarted", reload
    assert served(console.port, "/ping/", b"pong, early") == (200, b"pong, early")


@contextlib.contextmanager
def _fork_servers(project: Project) -> Iterator[tuple[Any, Events, Any]]:
    """Real fork servers (level 0, then level 1, both ready) of ``project``:
    ``(its supervisor, the events, level 1)``; all closed on the way out."""
    from devconsole.console.supervisor import ForkServerHandle

    events = Events()
    supervisor = new_supervisor(project, events)
    level0 = ForkServerHandle.spawn(supervisor)
    level1 = None
    try:
        assert level0.wait_ready().get("forkable")
        level1 = level0.fork_level1()
        assert level1.wait_ready().get("forkable")
        yield supervisor, events, level1
    finally:
        supervisor.close()
        for forkserver in (level1, level0):
            if forkserver is not None:
                forkserver.close()


def test_a_gated_generation_accepts_only_once_let_in(tmp_path: Path, demo_db: Path) -> None:
    """A reload starts the next generation gated (its URLconf imported, its
    server built while the old one stops): until the console lets it in, a
    connection waits in the backlog; then it is served by the new code."""
    root, project = demo_copy(tmp_path, demo_db)
    with _fork_servers(project) as (supervisor, _events, level1):
        child = level1.serve(supervisor.next_generation(), gated=True)
        supervisor.adopt(child)
        client = socket.create_connection(("127.0.0.1", supervisor.address.port), timeout=10)
        client.sendall(b"GET /ping/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        # Ready but held: nothing answers while the gate is shut (a window
        # long enough for the URLconf import and the server to be built).
        client.settimeout(1.5)
        with pytest.raises(TimeoutError):
            client.recv(1)
        assert not child.hello.is_set()
        child.accept()
        client.settimeout(10)
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"pong")
        hello = wait_for(lambda: child.hello_event)
        names = [p["name"] for p in hello["phases"]]
        assert names.index("URLconf import") < names.index("wait for the old generation") < names.index("serve_forever")
        # Built, then held at the gate through the window above (not merely slow to start).
        assert next(p["ms"] for p in hello["phases"] if p["name"] == "wait for the old generation") >= 1000
        client.close()


MARKING_TAGS = """
from pathlib import Path

from django import template

register = template.Library()


@register.tag
def mark(parser, token):
    # At the template's compilation, not its rendering: the warm-up loaded it.
    (Path(__file__).resolve().parents[2] / "COMPILED").touch()
    return template.defaulttags.CommentNode()
"""


def _held_start(supervisor: Any, level1: Any) -> tuple[Any, Any, int]:
    """A serving generation, and the next one started gated with the read
    end of a gate whose write end is returned (the caller's)."""
    old = level1.serve(supervisor.next_generation())
    supervisor.adopt(old)
    assert old.hello.wait(60)
    new = level1.serve(supervisor.next_generation(), gated=True)
    gate_r, gate_w = os.pipe()
    new.gate(gate_r)
    os.close(gate_r)
    return old, new, gate_w


def test_the_old_generation_lets_the_next_one_in_through_its_gate(tmp_path: Path, demo_db: Path) -> None:
    """The old generation writes to the next one's gate where it says
    ``stopping``: the next one serves without the console's ``accept``,
    whose templates, coming after, still join its warm-up."""
    root, project = demo_copy(tmp_path, demo_db)
    (root / "shop" / "templatetags").mkdir()
    (root / "shop" / "templatetags" / "__init__.py").write_text("")
    (root / "shop" / "templatetags" / "marking.py").write_text(MARKING_TAGS)
    (root / "shop" / "templates" / "shop" / "marked.html").write_text("{% load marking %}{% mark %}marked")
    with _fork_servers(project) as (supervisor, _events, level1):
        old, new, gate_w = _held_start(supervisor, level1)
        # Held while the old one serves (a window long enough for the new
        # one's URLconf import and server to be built): the old one answers.
        assert not new.hello.wait(1.5)
        assert get(supervisor.address.port) == (200, b"pong")
        supervisor.retire(old, wait_stopping=False, gate=gate_w)
        os.close(gate_w)
        supervisor.adopt(new)
        assert new.hello.wait(60)  # no accept was sent
        names = [p["name"] for p in new.hello_event["phases"]]
        assert names.index("URLconf import") < names.index("wait for the old generation") < names.index("serve_forever")
        wait_for(lambda: not old.alive)
        assert get(supervisor.address.port) == (200, b"pong")
        assert not (root / "COMPILED").exists()
        new.accept(json.dumps(["shop/marked.html"]))  # what the old one compiled, late
        wait_for(lambda: (root / "COMPILED").exists())
        assert get(supervisor.address.port) == (200, b"pong")


def test_an_old_generation_that_ends_without_a_word_lets_the_next_one_in(tmp_path: Path, demo_db: Path) -> None:
    """Its end closes the gate's write end: nothing reaches its code any more."""
    root, project = demo_copy(tmp_path, demo_db)
    with _fork_servers(project) as (supervisor, _events, level1):
        old, new, gate_w = _held_start(supervisor, level1)
        assert not new.hello.wait(1.5)
        supervisor.retire(old, wait_stopping=False, gate=gate_w)
        os.close(gate_w)
        os.kill(old.pid, signal.SIGKILL)
        supervisor.adopt(new)
        assert new.hello.wait(60)
        assert get(supervisor.address.port) == (200, b"pong")


def test_a_generation_told_to_stop_as_its_gate_opens_never_serves(tmp_path: Path, demo_db: Path) -> None:
    """A later save replaced it before it served: its ``stop`` wins over the
    byte on its gate that arrives with it."""
    root, project = demo_copy(tmp_path, demo_db)
    with _fork_servers(project) as (supervisor, events, level1):
        new = level1.serve(supervisor.next_generation(), gated=True)
        gate_r, gate_w = os.pipe()
        new.gate(gate_r)
        os.close(gate_r)
        new.send("stop")  # both wait while it imports the URLconf
        os.write(gate_w, b"x")
        os.close(gate_w)
        wait_for(lambda: not new.alive)
        assert new.hello_event is None
        assert not [e for e in events.of("hello") if e.get("generation") == new.generation]


BROKEN_MIDDLEWARE = """
from pathlib import Path

class Broken:
    def __init__(self, get_response):
        if (Path(__file__).resolve().parent.parent / "BROKEN").exists():
            raise RuntimeError("middleware broken on purpose")
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
"""


def test_a_gated_generation_that_fails_after_accept_serves_its_error_page(tmp_path: Path, demo_db: Path) -> None:
    """A gated start whose server fails to build (a middleware raising in
    ``__init__``) serves its error page once let in: the ``accept`` it got
    is the only one that comes."""
    root, project = demo_copy(tmp_path, demo_db)
    (root / "shop" / "brokenmw.py").write_text(BROKEN_MIDDLEWARE)
    settings = root / "demosite" / "settings.py"
    settings.write_text(settings.read_text() + '\nMIDDLEWARE = [*MIDDLEWARE, "shop.brokenmw.Broken"]\n')
    with _fork_servers(project) as (supervisor, events, level1):
        (root / "BROKEN").touch()
        child = level1.serve(supervisor.next_generation(), gated=True)
        supervisor.adopt(child)
        child.accept()
        error = wait_for(lambda: [e for e in events.of("error") if e.get("generation") == child.generation])[0]
        assert "middleware broken on purpose" in error["traceback"]
        status, body = get(supervisor.address.port)
        assert status == 500 and b"middleware broken on purpose" in body


def test_level_1_holds_the_libraries_so_a_view_edit_imports_none_again(held_console: Console) -> None:
    console = held_console
    reports = console.reloader.modules_reports
    level1 = console.reloader.level1
    assert level1 is not None
    get(console.port)
    first = wait_for(lambda: [names for generation, names in reports if generation == 1])[0]
    # The admin's views and template tags: imported by the URLconf and the page, not by the setup.
    assert "django.contrib.admin.views.main" in first
    wait_for(lambda: level1.preloads_done >= 1 and not level1.preloading)
    wait_for(
        lambda: (
            (spare := console.reloader.spare) is not None
            and spare.preloads == level1.preloads_done
            and spare.spare_files is not None
        )
    )
    console.edit("shop/views.py", 'b"pong"', 'b"held"')  # 4 bytes: the view sets Content-Length
    assert served(console.port, "/ping/", b"held")[0] == 200
    get(console.port)
    reload = wait_for(console.reloads)[-1]
    assert reload["level"] == "fork" and reload["spare"] is True
    # The next generation imported no library module level 1 did not hold.
    assert wait_for(lambda: [names for generation, names in reports if generation == 2])[0] == []


def _user_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]) -> Path:
    """A library ``fakelib`` (``modules``: name → source) in a user
    site-packages of its own (the children's user site: a library directory)."""
    userbase = tmp_path / "userbase"
    monkeypatch.setenv("PYTHONUSERBASE", str(userbase))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    lib = userbase / "lib" / version / "site-packages" / "fakelib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    for name, source in modules.items():
        (lib / f"{name}.py").write_text(source)
    return lib


def _add_hidden_module(root: Path, lib: Path) -> str:
    """``shop/hidden.py`` (VERSION h1) in the demo copy at ``root``, whose
    settings put ``lib``'s site-packages on ``sys.path``: hidden.py's path."""
    (root / "shop" / "hidden.py").write_text('VERSION = "h1"\n')
    settings = root / "demosite" / "settings.py"
    settings.write_text(settings.read_text() + f"\nimport sys\nsys.path.insert(0, {str(lib.parent)!r})\n")
    return str((root / "shop" / "hidden.py").resolve())


@contextlib.contextmanager
def _console_with_library(tmp_path: Path, demo_db: Path, lib: Path) -> Iterator[tuple[Console, str]]:
    """A console on a demo copy with ``shop/hidden.py`` whose URLconf
    includes ``fakelib.urls`` at ``/hidden/`` (``lib``: see :func:`_user_library`),
    watching its files: ``(console, hidden.py's path)``."""

    def prepare(root: Path) -> None:
        _add_hidden_module(root, lib)
        urls = root / "demosite" / "urls.py"
        urls.write_text(
            urls.read_text().replace(
                "urlpatterns = [", 'urlpatterns = [\n    path("hidden/", include("fakelib.urls")),', 1
            )
        )

    with live_console(tmp_path, demo_db, prepare=prepare, console_class=Console) as console:
        reloader = console.reloader
        wait_for(lambda: console.events.of("watch"))
        wait_for(lambda: reloader.watcher is not None and inotify_watches(reloader.watcher.roots))
        yield console, str((console.root / "shop" / "hidden.py").resolve())


#: A fake library's import that waits (as a slow import does): it says it
#: started (file ``STARTED{tag}``), then waits for ``RELEASE{tag}``.
HOLD_IMPORT = """
open(os.path.join(LIB, "STARTED{tag}"), "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(os.path.join(LIB, "RELEASE{tag}")) and time.monotonic() < deadline:
    time.sleep(0.01)
"""

LIBRARY = """
import os, threading, time
from django.http import HttpResponse
from django.urls import path
from shop import hidden  # a project module imported by a library

def version(request):
    return HttpResponse(hidden.VERSION)

urlpatterns = [path("", version)]

# In a fork server's preload (one thread) while armed: wait, as a slow import does.
LIB = os.path.dirname(__file__)
if os.path.exists(os.path.join(LIB, "ARMED")) and threading.active_count() == 1:
""" + textwrap.indent(HOLD_IMPORT.format(tag=""), "    ")


def test_a_project_module_a_held_library_imported_is_never_served_stale(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library (installed: in a user site-packages of its own) held by
    level 1 after the first generation imports a project module: one saved
    while level 1 imports it rebuilds level 1, so no later generation
    inherits the old one; one saved later rebuilds it too."""
    monkeypatch.setenv("DEVCONSOLE_HOLD_LIBRARIES", "1")
    lib = _user_library(tmp_path, monkeypatch, {"urls": LIBRARY})
    (lib / "ARMED").touch()

    with _console_with_library(tmp_path, demo_db, lib) as (console, hidden):
        reloader = console.reloader
        assert get(console.port, "/hidden/") == (200, b"h1")  # then the library list goes to level 1
        level1 = reloader.level1
        assert level1 is not None
        wait_for(lambda: (lib / "STARTED").exists())  # level 1 imported hidden (h1) and is still importing
        (lib / "ARMED").unlink()
        assert level1.preloading
        console.edit("shop/hidden.py", '"h1"', '"h2"')
        assert served(console.port, "/hidden/", b"h2")[1] == b"h2"
        reload = wait_for(console.reloads)[-1]
        assert reload["level"] == "setup", reload  # level 1 may hold the old hidden: rebuilt
        (lib / "RELEASE").touch()
        # A view edit later forks from the level 1 that holds the library: the new hidden with it.
        new_level1 = reloader.level1
        assert new_level1 is not level1 and new_level1 is not None
        get(console.port, "/hidden/")
        wait_for(lambda: new_level1.preloads_done >= 1 and hidden in new_level1.files)
        console.edit("shop/views.py", 'b"pong"', 'b"late"')
        assert served(console.port, "/ping/", b"late")[0] == 200
        assert get(console.port, "/hidden/") == (200, b"h2")
        # And the held project module itself, saved now: level 1 rebuilt again, never stale.
        console.edit("shop/hidden.py", '"h2"', '"h3"')
        assert served(console.port, "/hidden/", b"h3")[1] == b"h3"
        assert wait_for(lambda: len(console.reloads()) >= 3 and console.reloads())[-1]["level"] == "setup"


PLAIN_LIBRARY = """
from django.http import HttpResponse
from django.urls import path
from shop import hidden  # a project module imported by a library

def version(request):
    return HttpResponse(hidden.VERSION)

urlpatterns = [path("", version)]
"""


def test_a_spare_holds_the_libraries_the_server_used_and_never_their_project_modules_stale(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spare imports, before the save, the library modules the serving
    generation imported (here an installed library the URLconf includes,
    which imports a project module): the project files that ran are among
    those it reports, so a view edit is served by it, and an edit of that
    project module forks afresh and serves the new code."""
    lib = _user_library(tmp_path, monkeypatch, {"urls": PLAIN_LIBRARY})

    with _console_with_library(tmp_path, demo_db, lib) as (console, hidden):
        reloader = console.reloader
        assert get(console.port, "/hidden/") == (200, b"h1")

        def spare_holding_hidden() -> Any:
            spare = reloader.spare
            return (
                spare if spare is not None and spare.spare_files is not None and hidden in spare.spare_files else None
            )

        # Only the library's import (the spare imports no URLconf) ran hidden.py there.
        spare = wait_for(spare_holding_hidden)
        console.edit("shop/views.py", 'b"pong"', 'b"held"')
        assert served(console.port, "/ping/", b"held")[0] == 200
        first = wait_for(console.reloads)[-1]
        assert first["spare"] is True and first["new_generation"] == 2
        _assert_spare_served(console, first, spare.pid)
        assert get(console.port, "/hidden/") == (200, b"h1")
        wait_for(spare_holding_hidden)
        console.edit("shop/hidden.py", '"h1"', '"h2"')
        assert served(console.port, "/hidden/", b"h2")[1] == b"h2"
        second = wait_for(lambda: [r for r in console.reloads() if r["new_generation"] == 3])[0]
        assert second["spare"] is False and second["decision"] == "restarted"


ENGINE_LIBRARY = """
from django.http import HttpResponse
from django.template import engines
from django.urls import path

ENGINE = engines["django"]  # built when imported, and kept

def page(request):
    return HttpResponse(ENGINE.from_string("{{ 1|add:1 }}").render())

urlpatterns = [path("", page)]
"""


def test_a_library_that_builds_template_engines_when_imported_is_not_imported_ahead(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine a library builds and keeps before the save would miss a tag
    library created after it: the spare that imported such a library is not
    used, the console says so once, and the next spares import no library ahead."""
    lib = _user_library(tmp_path, monkeypatch, {"urls": ENGINE_LIBRARY})
    with _console_with_library(tmp_path, demo_db, lib) as (console, _hidden):
        reloader = console.reloader
        assert get(console.port, "/hidden/") == (200, b"2")
        said = "a library builds template engines when it is imported"
        wait_for(lambda: any(said in event["text"] for event in console.events.of("log")))
        assert reloader.preload_spares is False
        spare = wait_for(
            lambda: (
                reloader.spare
                if reloader.spare is not None
                and reloader.spare.spare_files is not None
                and not reloader.spare.spare_failed
                else None
            )
        )
        console.edit("shop/views.py", 'b"pong"', 'b"next"')
        assert served(console.port, "/ping/", b"next")[0] == 200
        reload = wait_for(lambda: [r for r in console.reloads() if r["new_generation"] == 2])[0]
        assert reload["spare"] is True
        _assert_spare_served(console, reload, spare.pid)
        assert get(console.port, "/hidden/") == (200, b"2")
        assert [event["text"] for event in console.events.of("log") if said in event["text"]] == [
            f"devconsole: {said}; the spare imports no library ahead this session"
        ]


FAILING_LIBRARY = """
from shop import hidden  # a project module, then the import fails

raise ImportError("fakelib.failing needs something that is not there")
"""


@contextlib.contextmanager
def _level1_with_library(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]
) -> Iterator[tuple[Path, str, Any]]:
    """Real fork servers (level 0, level 1) of a demo copy with ``shop/hidden.py``
    and a library ``fakelib`` (``modules``: name → source) in a user
    site-packages of its own: ``(the library's directory, hidden.py's path, level 1)``."""
    lib = _user_library(tmp_path, monkeypatch, modules)
    root, project = demo_copy(tmp_path, demo_db)
    hidden = _add_hidden_module(root, lib)
    with _fork_servers(project) as (_supervisor, _events, level1):
        yield lib, hidden, level1


def test_a_failed_preload_import_still_lists_the_project_modules_it_ran(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library import in level 1's preload that runs a project module and
    then fails leaves that module's effects in level 1 though it is dropped
    from ``sys.modules``: the ``preloaded`` answer still lists its file (an
    edit to it rebuilds level 1)."""
    with _level1_with_library(tmp_path, demo_db, monkeypatch, {"failing": FAILING_LIBRARY}) as (lib, hidden, level1):
        assert hidden not in level1.files
        level1.preload_async(["fakelib.failing"])
        wait_for(lambda: level1.preloads_done >= 1 and not level1.preloading)
        assert hidden in level1.files


SLOW_LIBRARY = """
import os, time
{imports}
LIB = os.path.dirname(__file__)
""" + HOLD_IMPORT.replace("{tag}", "-{name}")


def test_an_answer_to_an_earlier_preload_does_not_end_a_later_one(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two preloads cross: the answer to the first (its files read) comes
    while the second still imports, so level 1 is still ``preloading`` (what
    it holds is not known yet) until the answer that covers the second."""
    modules = {
        "first": SLOW_LIBRARY.format(imports="from shop import hidden", name="first"),
        "second": SLOW_LIBRARY.format(imports="", name="second"),
    }
    with _level1_with_library(tmp_path, demo_db, monkeypatch, modules) as (lib, hidden, level1):
        level1.preload_async(["fakelib.first"])
        wait_for(lambda: (lib / "STARTED-first").exists())
        level1.preload_async(["fakelib.second"])  # waits in the socket meanwhile
        (lib / "RELEASE-first").touch()
        # The first answer (hidden among its files) is read, then the second import starts.
        wait_for(lambda: (lib / "STARTED-second").exists() and hidden in level1.files)
        assert level1.preloading and not level1.preload_answered.is_set()
        (lib / "RELEASE-second").touch()
        wait_for(lambda: not level1.preloading)
        assert level1.preload_answered.is_set() and hidden in level1.files
