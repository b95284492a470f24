"""bench/browser_reload.py runs: its ``--quick`` mode, for real (headless
Chromium, the console in a pty on a copy of the demo, and runserver with
django-browser-reload when that package is installed), and prints its
tables. The numbers of a quick run mean nothing; only what must hold whatever
the load is checked (every edit reached the page, both windows followed, no
CSS edit navigated the page, every number there).
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_bench_smoke import number, table_rows

BENCH = Path(__file__).resolve().parent.parent / "bench" / "browser_reload.py"
ANCHOR = "runserver + django-browser-reload"

needs_browser = pytest.mark.skipif(
    importlib.util.find_spec("selenium") is None or not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs selenium and Chromium with its driver (apt-get install chromium chromium-driver)",
)


def ports() -> str:
    base = random.randrange(20000, 30000)
    return f"{base}-{base + 63}"


def run_bench(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), DEVCONSOLE_BENCH_DB=str(tmp_path / "demo.db"))
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--ports", ports(), *extra],
        capture_output=True,
        text=True,
        env=environ,
        timeout=170,
    )


@needs_browser
def test_quick_run_times_every_edit_in_the_page(tmp_path: Path) -> None:
    with_anchor = importlib.util.find_spec("django_browser_reload") is not None
    run = run_bench(tmp_path, *(() if with_anchor else ("--only", "devconsole")))
    out = run.stdout
    assert run.returncode == 0, f"exit {run.returncode}\n{out}\n{run.stderr}"
    assert "Machine: " in out and "Chromium " in out
    rows = table_rows(out, "save → new content in the page")
    assert set(rows) == {"view edit", "template edit", "CSS edit"}
    for kind, cells in rows.items():
        assert number(cells[1]) > 0, (kind, cells)  # devconsole's median
        if with_anchor:
            assert number(cells[0]) > 0 and number(cells[2]) > 0, (kind, cells)
    details = table_rows(out, "Details")
    for kind in ("view", "template", "css"):
        assert details[f"{kind}: two windows both follow"][1] == "yes", out
        assert details[f"{kind}: missed (not in the page 30 s after the save)"][1] == "0", out
    assert details["CSS edits that navigated the page"][1] == "0", out
    if with_anchor:
        # django-browser-reload reloads the page for a CSS edit: the probe tells.
        assert details["CSS edits that navigated the page"][0] == "2", out


def test_a_missing_browser_is_one_clear_line(tmp_path: Path) -> None:
    run = run_bench(tmp_path, env={"DEVCONSOLE_CHROMIUM": str(tmp_path / "no-chromium")})
    assert run.returncode == 2, run
    assert run.stderr.count("\n") == 1, run.stderr
    assert "no-chromium" in run.stderr and "apt-get install chromium chromium-driver" in run.stderr
