"""The embedded demo project: its database preparation, its checks, its views
and its custom management command, all through real ``manage.py`` processes."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import devconsole
from devconsole.demo import (
    DEMO_DIR,
    DEMO_MANAGE_PY,
    DemoError,
    demo_database_path,
    demo_env,
    demo_stamp_path,
    ensure_demo_database,
)

REPO_ROOT = Path(devconsole.__file__).resolve().parent.parent
PACKAGE_DIR = Path(devconsole.__file__).resolve().parent
TIMEOUT = 60

posix_only = pytest.mark.skipif(os.name != "posix", reason="uses a shell script as the interpreter")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def counting_python(directory: Path) -> tuple[str, Path]:
    """An interpreter wrapper that logs each invocation, then runs the real one:
    the log shows honestly whether ensure_demo_database started a process."""
    log = directory / "python-invocations.log"
    script = directory / "python"
    script.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\nexec {shlex.quote(sys.executable)} "$@"\n')
    script.chmod(0o755)
    return str(script), log


def invocations(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def child_env(**overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(demo_env())
    env["PYTHONIOENCODING"] = "utf-8"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def start(args: list[str], env: dict[str, str] | None = None, cwd: Path = DEMO_DIR) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env or child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def finish(process: subprocess.Popen) -> Run:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return Run(process.returncode, stdout, stderr)


def manage(*args: str, **env_overrides: str | None) -> Run:
    return finish(start([str(DEMO_MANAGE_PY), *args], child_env(**env_overrides)))


# ---------------------------------------------------------------------------
# The shared, prepared database


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A demo database in a temporary directory, prepared once for the module
    through an interpreter wrapper that counts its invocations."""
    directory = tmp_path_factory.mktemp("demo-db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEVCONSOLE_DEMO_DB", str(directory / "demo.sqlite3"))
        if os.name == "posix":
            python, log = counting_python(directory)
        else:  # pragma: no cover
            python, log = sys.executable, directory / "unused.log"
        ensure_demo_database(python)
        yield python, log


VIEWS_SCRIPT = r"""
import json
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
executor = MigrationExecutor(connection)
unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
client = Client(raise_request_exception=False)
result = {}
for path in ["/", "/slow/?sleep=0.01", "/slow/?sleep=abc", "/slow/?sleep=-1", "/slow/?sleep=nan",
             "/boom/", "/ping/", "/api/products/", "/blog/", "/admin/", "/products/notebook/",
             "/products/nothing/"]:
    response = client.get(path)
    result[path] = {
        "status": response.status_code,
        "content_type": response.get("Content-Type", ""),
        "content_length": response.get("Content-Length"),
        "location": response.get("Location"),
        "body": response.content.decode("utf-8", "replace")[:20000],
    }
print(json.dumps({"unapplied": [str(m) for m, _ in unapplied], "pages": result}))
"""

NO_DJANGO_SCRIPT = r"""
import sys
import devconsole.demo as demo
demo.ensure_demo_database()
demo.demo_env()
print(sorted(name for name in sys.modules if name.split(".")[0] in {"django", "demosite", "shop", "blog"}))
"""

SETTINGS_SCRIPT = "from django.conf import settings; print(settings.DATABASES['default']['NAME'])"


@pytest.fixture(scope="module")
def runs(prepared, tmp_path_factory):
    """Every process the read-only tests look at, started at once to keep the
    module fast (each one is a real ``manage.py`` or Python process)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    manage_py = str(DEMO_MANAGE_PY)
    specs: dict[str, tuple[list[str], dict[str, str]]] = {
        "check": ([manage_py, "check", "--fail-level", "WARNING"], child_env()),
        "makemigrations": (
            [manage_py, "makemigrations", "--check", "--dry-run"],
            child_env(),
        ),
        "views": ([manage_py, "shell", "-c", VIEWS_SCRIPT], child_env()),
        "text": (
            [
                manage_py,
                "demo_report",
                "products",
                "--include-archived",
                "--limit",
                "2",
                "--tags",
                "office",
            ],
            child_env(),
        ),
        "json": (
            [
                manage_py,
                "demo_report",
                "posts",
                "--format",
                "json",
                "--include-archived",
                "--tags",
                "news",
            ],
            child_env(),
        ),
        "csv": (
            [
                manage_py,
                "demo_report",
                "products",
                "--format=csv",
                "--tags",
                "coffee",
                "light",
            ],
            child_env(),
        ),
        "bad-choice": (
            [manage_py, "demo_report", "products", "--format", "xml"],
            child_env(),
        ),
        "bad-section": ([manage_py, "demo_report", "customers"], child_env()),
        "settings-fallback": (
            [manage_py, "shell", "-c", SETTINGS_SCRIPT],
            child_env(DEVCONSOLE_DEMO_DB=None, XDG_CACHE_HOME=str(cache)),
        ),
        "no-django": (
            ["-c", NO_DJANGO_SCRIPT],
            child_env(PYTHONPATH=str(REPO_ROOT), DJANGO_SETTINGS_MODULE=None),
        ),
    }
    processes = {name: start(args, env) for name, (args, env) in specs.items()}
    results = {name: finish(process) for name, process in processes.items()}
    results["settings-fallback-cache"] = Run(0, str(cache), "")
    return results


# ---------------------------------------------------------------------------
# Database preparation


def test_ensure_creates_and_migrates_the_database(prepared, runs):
    _python, log = prepared
    database = demo_database_path()
    assert database.is_file()
    assert demo_stamp_path().is_file()
    if os.name == "posix":
        calls = invocations(log)
        assert len(calls) == 1 and "migrate --noinput" in calls[0]
    # Django agrees nothing is left to apply (what `migrate --check` tests).
    assert runs["views"].returncode == 0, runs["views"].stderr
    assert json.loads(runs["views"].stdout.strip().splitlines()[-1])["unapplied"] == []
    # The data migrations seeded content.
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM shop_product").fetchone()[0] >= 5
        assert db.execute("SELECT COUNT(*) FROM blog_post").fetchone()[0] >= 3


@posix_only
def test_second_call_is_fast_and_does_not_rerun_migrate(prepared):
    python, log = prepared
    before = len(invocations(log))
    database, stamp = demo_database_path(), demo_stamp_path()
    db_mtime, stamp_mtime = database.stat().st_mtime_ns, stamp.stat().st_mtime_ns

    # Its own CPU time, not the wall clock a loaded machine stretches.
    started = time.thread_time()
    ensure_demo_database(python)
    elapsed = time.thread_time() - started

    assert len(invocations(log)) == before  # no process was started
    assert elapsed < 0.2
    assert database.stat().st_mtime_ns == db_mtime
    assert stamp.stat().st_mtime_ns == stamp_mtime


@posix_only
def test_missing_database_or_stale_stamp_reruns_migrate(prepared, tmp_path, monkeypatch):
    # A valid stamp without its database (the user deleted the file to start afresh).
    valid_stamp = demo_stamp_path().read_text()
    monkeypatch.setenv("DEVCONSOLE_DEMO_DB", str(tmp_path / "db" / "demo.sqlite3"))
    (tmp_path / "db").mkdir()
    demo_stamp_path().write_text(valid_stamp)
    python, log = counting_python(tmp_path)

    ensure_demo_database(python)
    assert len(invocations(log)) == 1
    assert demo_database_path().is_file()
    assert demo_stamp_path().read_text() == valid_stamp

    demo_stamp_path().write_text("some older demo\n")
    ensure_demo_database(python)
    assert len(invocations(log)) == 2
    assert demo_stamp_path().read_text() == valid_stamp
    ensure_demo_database(python)
    assert len(invocations(log)) == 2


@posix_only
def test_parent_directories_are_created(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVCONSOLE_DEMO_DB", str(tmp_path / "a" / "b" / "demo.sqlite3"))
    # An interpreter that does nothing: only the directory creation is under test.
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    ensure_demo_database(str(script))
    assert (tmp_path / "a" / "b").is_dir()


def test_failed_migrate_raises_a_one_line_demo_error(tmp_path, monkeypatch):
    database = tmp_path / "demo.sqlite3"
    database.write_bytes(b"this is not an SQLite database, " * 100)
    monkeypatch.setenv("DEVCONSOLE_DEMO_DB", str(database))

    with pytest.raises(DemoError) as caught:
        ensure_demo_database()

    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert str(database) in message and "migrate" in message
    assert error.returncode not in (0, None)
    assert "not a database" in error.output
    assert not demo_stamp_path().exists()


def test_missing_interpreter_raises_demo_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVCONSOLE_DEMO_DB", str(tmp_path / "demo.sqlite3"))
    with pytest.raises(DemoError) as caught:
        ensure_demo_database(str(tmp_path / "no-such-python"))
    assert "\n" not in str(caught.value)


def test_console_side_never_imports_django(runs):
    run = runs["no-django"]
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Where the database lives


def test_database_path_defaults_to_the_xdg_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("DEVCONSOLE_DEMO_DB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = demo_database_path()
    assert path.parent == tmp_path / "cache" / "devconsole"
    assert path.name.startswith("demo-") and path.name.endswith(".sqlite3")
    assert demo_env()["DEVCONSOLE_DEMO_DB"] == str(path)


def test_database_path_defaults_to_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("DEVCONSOLE_DEMO_DB", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    assert demo_database_path().parent == tmp_path / ".cache" / "devconsole"
    # A relative XDG_CACHE_HOME is invalid per the spec and ignored.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert demo_database_path().parent == tmp_path / ".cache" / "devconsole"


def test_relative_override_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEVCONSOLE_DEMO_DB", "mine.sqlite3")
    assert demo_database_path() == tmp_path / "mine.sqlite3"
    assert demo_env()["DEVCONSOLE_DEMO_DB"] == str(tmp_path / "mine.sqlite3")


def test_database_is_never_inside_the_package(prepared, runs, monkeypatch):
    assert not demo_database_path().is_relative_to(PACKAGE_DIR)
    monkeypatch.delenv("DEVCONSOLE_DEMO_DB", raising=False)
    assert not demo_database_path().is_relative_to(PACKAGE_DIR)
    # Nothing the demo ran left a database file in the package.
    assert not [p for p in DEMO_DIR.rglob("*") if p.suffix in {".sqlite3", ".db", ".stamp", ".lock"}]


def test_settings_fallback_matches_demo_database_path(runs, monkeypatch):
    run = runs["settings-fallback"]
    assert run.returncode == 0, run.stderr
    monkeypatch.delenv("DEVCONSOLE_DEMO_DB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", runs["settings-fallback-cache"].stdout)
    # Django 5.2+ shell may first report its automatic imports: the path is the last line.
    assert run.stdout.strip().splitlines()[-1] == str(demo_database_path())


def test_demo_env_pins_the_settings_module():
    assert demo_env()["DJANGO_SETTINGS_MODULE"] == "demosite.settings"
    assert DEMO_MANAGE_PY == DEMO_DIR / "manage.py" and DEMO_MANAGE_PY.is_file()


# ---------------------------------------------------------------------------
# The project itself


def test_system_checks_pass(runs):
    assert runs["check"].returncode == 0, runs["check"].stderr
    assert "no issues" in runs["check"].stdout


def test_committed_migrations_match_the_models(runs):
    run = runs["makemigrations"]
    assert run.returncode == 0, run.stdout + run.stderr


def test_static_file_and_templates_are_in_the_package():
    assert (DEMO_DIR / "shop" / "static" / "shop" / "site.css").is_file()
    assert (DEMO_DIR / "shop" / "templates" / "shop" / "base.html").is_file()
    assert (DEMO_DIR / "blog" / "templates" / "blog" / "post_list.html").is_file()


def test_views(runs):
    run = runs["views"]
    assert run.returncode == 0, run.stderr
    pages = json.loads(run.stdout.strip().splitlines()[-1])["pages"]

    index = pages["/"]
    assert index["status"] == 200
    assert "/static/shop/site.css" in index["body"]
    assert "Espresso cup" in index["body"] and "Fax machine" not in index["body"]
    for link in [
        "/slow/?sleep=0.5",
        "/boom/",
        "/ping/",
        "/api/products/",
        "/blog/",
        "/admin/",
    ]:
        assert f'href="{link}"' in index["body"]

    assert pages["/slow/?sleep=0.01"]["status"] == 200
    for bad in ["/slow/?sleep=abc", "/slow/?sleep=-1", "/slow/?sleep=nan"]:
        assert pages[bad]["status"] == 400
    assert pages["/boom/"]["status"] == 500

    ping = pages["/ping/"]
    assert (ping["status"], ping["body"], ping["content_length"]) == (200, "pong", "4")

    api = pages["/api/products/"]
    assert api["status"] == 200 and api["content_type"] == "application/json"
    products = json.loads(api["body"])["products"]
    assert {"name", "slug", "price", "tags", "archived"} <= set(products[0])

    assert pages["/blog/"]["status"] == 200
    assert "What runserver does" in pages["/blog/"]["body"]
    assert "An old announcement" not in pages["/blog/"]["body"]
    assert pages["/admin/"]["status"] == 302 and "/admin/login/" in pages["/admin/"]["location"]
    assert pages["/products/notebook/"]["status"] == 200
    assert pages["/products/nothing/"]["status"] == 404


# ---------------------------------------------------------------------------
# The custom command: every kind of argument


def test_command_text_with_every_argument_kind(runs):
    run = runs["text"]
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Report on products (limit 2, archived included, tags: office)"
    rows = [line for line in lines if line.startswith("  - ")]
    assert len(rows) == 2  # --limit
    assert all("office" in row for row in rows)  # --tags
    assert any("[archived]" in row for row in rows)  # --include-archived
    assert lines[-1] == "2 of 6 products shown"


def test_command_json(runs):
    run = runs["json"]
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["section"] == "posts" and report["format"] == "json"
    assert report["include_archived"] is True and report["limit"] == 10
    assert report["tags"] == ["news"]
    assert len(report["rows"]) == 2 and any(row["archived"] for row in report["rows"])
    assert "2 of 4 posts shown" in run.stderr


def test_command_csv(runs):
    run = runs["csv"]
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert sorted(row["name"] for row in rows) == [
        "Desk lamp",
        "Espresso cup",
        "French press",
    ]


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("bad-choice", 2, "invalid choice: 'xml'"),
        ("bad-section", 1, "CommandError: unknown section 'customers'"),
    ],
)
def test_command_rejects_invalid_input(runs, case, status, message):
    run = runs[case]
    assert run.returncode == status
    assert message in run.stderr
