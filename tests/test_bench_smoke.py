"""The benchmark scripts run: each in its ``--quick`` mode, for real (wrk, the
demo project, runserver, the console's server child, the headless console),
and each prints its table. The numbers of a quick run mean nothing; only
what must hold whatever the load is checked (exact counts, every row there).

The scripts run at the same time, on disjoint port ranges, so the whole
file takes about as long as the slowest one. The ranges are wide and start at
a random base below the kernel's ephemeral range, and each script takes only
ports nothing is listening on: whatever else holds ports on the machine (a
developer's server, another test run), the scripts find free ones.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
TIMEOUT = 120

#: script → its extra arguments.
SCRIPTS = {
    "throughput.py": (),
    "console.py": (),
    "memory.py": (),
    "startup.py": (),
    "idle.py": (),
    "profile_console.py": ("--idle",),
    "ablate.py": (),
    "ingest.py": (),
    "keepalive.py": (),
    "insight.py": (),
    "render.py": (),
}
#: Ports each script's range spans; a script needs at most 4 free ones.
SPAN = 64


def ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (wrk's)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_ranges(count: int) -> list[str]:
    """``count`` disjoint ``LO-HI`` ranges of :data:`SPAN` ports at a random
    base between 10000 and the ephemeral range, so that neither fixed ports
    held by something else nor a concurrent run of this file get in the way
    (the scripts skip ports that are in use)."""
    top = max(ephemeral_low(), 10000 + count * SPAN + 1)
    base = random.randrange(10000, top - count * SPAN)
    return [f"{base + i * SPAN}-{base + (i + 1) * SPAN - 1}" for i in range(count)]


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """Every script's ``--quick`` run: its exit status and output."""
    # One demo database for all of them, prepared once (by the first script
    # that gets there: preparation is locked).
    db = tmp_path_factory.mktemp("bench-db") / "demo.sqlite3"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")), DEVCONSOLE_BENCH_DB=str(db))
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(BENCH / name), "--quick", "--ports", ports, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        for (name, extra), ports in zip(SCRIPTS.items(), port_ranges(len(SCRIPTS)), strict=True)
    }
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        # A script that is still running (a timeout, a Ctrl+C) is interrupted
        # first, so its own clean-up stops its servers and wrk; then killed.
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    yield results


def table_rows(output: str, title: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under ``### title``, by first cell."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### ") and title in line)
    rows: dict[str, list[str]] = {}
    for line in lines[start + 4 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def table_columns(output: str, title: str) -> dict[str, int]:
    """The header of the Markdown table under ``### title``: each column's
    index in the cells :func:`table_rows` gives (the first column is the key)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### ") and title in line)
    header = next(line for line in lines[start + 1 :] if line.startswith("|"))
    names = [cell.strip() for cell in header.strip("|").split("|")]
    return {name: index - 1 for index, name in enumerate(names) if index}


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("×"))


def ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert "Machine: " in run.stdout and "Django " in run.stdout
    return run.stdout


@needs_wrk
def test_throughput_compares_the_four_servers(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["throughput.py"])
    for mode in ("keep-alive", "Connection: close"):
        rows = table_rows(out, mode)
        assert set(rows) == {"runserver", "devconsole", "bare", "tuned"}
        for name, cells in rows.items():
            assert number(cells[0]) > 0, (mode, name, cells)  # req/s
            assert cells[8] == "0", (mode, name, cells)  # errors
        assert number(rows["bare"][4]) == 1.0  # vs bare
        assert number(rows["tuned"][5]) == 1.0  # vs tuned
        assert number(rows["runserver"][3]) == 1.0  # vs runserver
    # Every target is judged in the same run.
    assert len(re.findall(r"^(PASS|FAIL)  ", out, re.M)) == 4


@needs_wrk
def test_keepalive_reloads_lose_nothing_and_count_exactly(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["keepalive.py"])
    rows = table_rows(out, "saves per load")
    assert rows["wrk: failed requests (socket errors + not 2xx)"][1] == "0", out
    assert rows["clients: failed requests"][1] == "0", out
    assert rows["wrk: console's total (sent + timing polls)"][1].endswith("(exact)"), out
    assert rows["clients: console's total (answered + timing polls)"][1].endswith("(exact)"), out
    assert "PASS  devconsole: the console's totals equal the clients' counts" in out


@needs_wrk
def test_console_counts_exactly_what_wrk_sent(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["console.py"])
    rows = table_rows(out, "The console under saturation")
    sent = number(rows["wrk: requests sent"][0])
    assert sent > 0
    assert number(rows["console: Requests total"][0]) == sent
    assert re.search(r"^PASS  exact counts", out, re.M)
    # The headless console drew the rows: its lag was recorded for each one.
    assert number(rows["rows applied to the Requests table"][0]) > 0


@needs_wrk
def test_memory_reads_rss_at_each_checkpoint(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["memory.py"])
    rows = table_rows(out, "Console RSS by requests served")
    served = [number(key) for key in rows if key[0].isdigit() and key != "0 (started)"]
    assert len(served) == 2 and served[0] >= 500 and served[1] >= 1500
    for cells in rows.values():
        assert number(cells[1]) > 10  # console RSS MB
    assert re.search(r"^(PASS|FAIL)  console RSS grew", out, re.M)
    # Every process of each tree, in PSS, against runserver's.
    trees = table_rows(out, "Memory of every process of the tree")
    assert set(trees) == {"runserver", "runserver --noreload", "devconsole", "devconsole --noreload"}
    assert number(trees["runserver"][2]) == 1.0 and int(trees["devconsole"][0]) >= 2
    for cells in trees.values():
        assert 10 < number(cells[1]) <= number(cells[3])  # PSS ≤ RSS
    assert re.search(r"^(PASS|FAIL)  memory of every process \(PSS\)", out, re.M)


def test_all_runs_each_script_and_sums_up_every_target(tmp_path: Path) -> None:
    """all.py: each script's tables, then one summary row per verdict; a
    script or mode this checkout lacks is one row, not the end of the run."""
    env = dict(os.environ, DEVCONSOLE_BENCH_DB=str(tmp_path / "demo.sqlite3"))
    run = subprocess.run(
        [sys.executable, str(BENCH / "all.py"), "--quick", "--only", "idle.py,commands.py,reload.py"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT * 3,
    )
    assert run.returncode in (0, 1), run.stderr
    out = run.stdout
    assert "### Each process over" in out  # idle.py's own tables are there
    rows = table_lines(out, "Summary: every target")
    figures = [cells[0] for cells in rows]
    assert any(f.startswith("idle: idle CPU of every process") for f in figures)
    idle = next(cells for cells in rows if cells[0].startswith("idle: idle CPU of every process"))
    assert idle[1].endswith("processes)") and idle[2].endswith("processes)") and idle[4] in ("yes", "**no**")
    assert any(f.startswith("reload, minimal project: ") for f in figures)
    assert not any(f.startswith("reload, large project") for f in figures)  # a mode's run only when named


def test_startup_times_both(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["startup.py"])
    rows = table_rows(out, "Launch to first 200")
    assert set(rows) == {"runserver", "devconsole"}
    for cells in rows.values():
        assert 0 < number(cells[0]) < 60_000


def test_idle_measures_every_process_tree(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["idle.py"])
    rows = table_rows(out, "every process of the tree")
    assert set(rows) == {"runserver", "runserver --noreload", "devconsole", "devconsole --noreload"}
    # The console runs its server in a child process: at least two processes.
    assert int(rows["devconsole --noreload"][2]) >= 2
    for cells in rows.values():
        assert number(cells[0]) >= 0 and number(cells[3]) > 10  # CPU %, PSS MB
    # Each process has its row, named by its role.
    roles = {(cells[0], cells[1]) for cells in table_lines(out, "Each process")}
    assert {("runserver", "autoreloader"), ("runserver", "serving child"), ("devconsole", "console")} <= roles
    assert ("devconsole --noreload", "server child") in roles
    assert re.search(r"^(PASS|FAIL)  idle CPU of every process: devconsole ", out, re.M)


def table_lines(output: str, title: str) -> list[list[str]]:
    """Every row of the Markdown table under ``### title`` (first cells may repeat)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### ") and title in line)
    rows = []
    for line in lines[start + 4 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_profile_names_the_console_code(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["profile_console.py"])
    assert re.search(r"^console CPU: [\d.]+% of one core", out, re.M)
    # The profile reaches into the app's own code, not only the event loop.
    assert "## by cumulative time" in out and "textual" in out


@needs_wrk
def test_ablation_prices_each_variant(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["ablate.py"])
    rows = table_rows(out, "CPU per request by variant")
    column = table_columns(out, "CPU per request by variant")
    assert set(rows) == {"bare", "devconsole+nolog"}
    assert number(rows["bare"][column["CPU vs bare"]]) == 1.0
    for cells in rows.values():
        assert number(cells[column["req/s"]]) > 0 and number(cells[column["total CPU µs/req"]]) > 0
        assert number(cells[column["server CPU µs/req"]]) > 0


def test_ingest_prices_the_event_check(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["ingest.py"])
    rows = table_rows(out, "ServerState.ingest, µs per event")
    assert {"request", "conn_open", "conn_close", "loop", "stats"} <= set(rows)
    for cells in rows.values():
        assert number(cells[0]) > 0 and number(cells[1]) > 0  # with and without the check
        assert number(cells[3]) > 0  # the check alone


def test_render_times_the_requests_table_per_frame(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["render.py"])
    rows = table_rows(out, "UI thread CPU per frame")
    column = table_columns(out, "UI thread CPU per frame")
    assert set(rows) == {"this tree"}
    cells = rows["this tree"]
    assert number(cells[column["table lines"]]) >= 10  # the table's lines at 160×48
    drawn, own = number(cells[column["table drawn anew, ms"]]), number(cells[column["its own render_line, ms"]])
    assert 0 < own < drawn  # its own lines are part of what the compositor draws
    assert number(cells[column["dashboard drawn, ms"]]) > 0
    widgets = table_rows(out, "Widgets that cost the most to draw, this tree")
    assert "RequestList#requests-table" in widgets  # redrawn whole as rows scroll in


def test_missing_wrk_is_one_clear_line(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    run = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "wrk is not installed" in run.stderr and "apt-get install wrk" in run.stderr


def test_insight_prices_capture_on_and_off(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = ok(runs["insight.py"])
    rows = table_rows(out, "Time per request, capture off vs on")
    assert set(rows) == {"20 queries (/insight/queries/?n=20)", "no query (/ping/)"}
    for cells in rows.values():
        off, on, share = number(cells[0]), number(cells[1]), number(cells[2])
        assert off > 0 and on > 0 and abs(share - on / off) < 0.01
    assert re.search(r"^(PASS|FAIL)  20 queries: capture costs", out, re.M)
    cpu = table_rows(out, "CPU time per request")
    assert set(cpu) == set(rows)
    for cells in cpu.values():
        child_off, child_on, console_off, console_on, child_more, console_more = map(number, cells)
        assert child_off > 0 and child_on > 0 and console_off >= 0 and console_on >= 0
        assert abs(child_more - (child_on - child_off)) <= 1 and abs(console_more - (console_on - console_off)) <= 1


def test_insight_in_process_prices_the_childs_side() -> None:
    """``--in-process``: the page through Django's handler in the script's own
    process, each part of the capture's cost a column."""
    run = subprocess.run(
        [sys.executable, str(BENCH / "insight.py"), "--quick", "--in-process"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(os.environ, PYTHONPATH=str(BENCH.parent)),
    )
    out = ok(run)
    rows = table_rows(out, "The server child's CPU per request")
    assert set(rows) == {"20 queries (/insight/queries/?n=20)", "no query (/ping/)"}
    for cells in rows.values():
        off, on, share = number(cells[0]), number(cells[1]), number(cells[2])
        assert off > 0 and on > 0 and abs(share - on / off) < 0.01


def _load_all() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_all_under_test", BENCH / "all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_all_keeps_every_line_a_script_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both pipes read whole, each by its own thread: thousands of progress
    lines on stderr and a report on stdout, none lost."""
    bench_all: Any = _load_all()
    script = tmp_path / "chatty.py"
    script.write_text(
        "import sys\nfor i in range(2001):\n    print(f'progress {i}', file=sys.stderr)\n    print(f'row {i}')\n"
    )
    out, err, code = bench_all._run([sys.executable, str(script)], dict(os.environ))
    assert code == 0
    assert err.splitlines() == [f"progress {i}" for i in range(2001)]
    assert out.splitlines() == [f"row {i}" for i in range(2001)]


@pytest.mark.parametrize(
    ("body", "judged", "expected"),
    [
        # A missed target: exit 1, its FAIL row; finished, failed on the target.
        ("record('latency', '1', '2', '< 1', False)\nsys.exit(1)", True, ([False], 1, 0, 0)),
        # A crash after a met target: the met row, and a failure of the run.
        ("record('latency', '1', '1', '< 2', True)\nraise RuntimeError('boom')", True, ([True, None], 0, 1, 1)),
        # Exit 1 with no missed target is a crash too.
        ("sys.exit(1)", True, ([None], 0, 1, 1)),
        # A judging script that judged nothing failed.
        ("pass", True, ([None], 0, 1, 1)),
        # A script that judges nothing (startup) ran.
        ("pass", False, ([None], 0, 0, 0)),
    ],
)
def test_all_counts_a_crashed_script_as_a_failure_and_a_missed_target_as_a_miss(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    judged: bool,
    expected: tuple[list[object], int, int, int],
) -> None:
    bench_all: Any = _load_all()
    (tmp_path / "fake.py").write_text(
        f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nfrom benchlib import record\n{body}\n"
    )
    monkeypatch.setattr(bench_all, "BENCH", tmp_path)
    rows = bench_all.run_step(bench_all.Step("fake", "fake.py", judged=judged), quick=False)
    mets, missed, crashed, unmeasured = expected
    assert [row["met"] for row in rows] == mets
    assert sum(1 for row in rows if row.get("failed")) == crashed
    assert sum(1 for row in rows if row.get("unmeasured")) == unmeasured
    text, failed = bench_all.verdict_line(rows)
    assert f"{missed} missed it" in text and f"{unmeasured} not measured" in text
    assert failed == bool(missed or crashed)
