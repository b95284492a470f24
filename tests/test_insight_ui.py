"""The request detail's insight, driven by keys on a replayed session
(``tests/recordings/insight.jsonl``, recorded from the real server child)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.widgets import Input, OptionList, Static, TabbedContent

from devconsole.console.supervisor import Supervisor
from devconsole.model.insight import MAX_KEPT
from devconsole.model.recording import load_recording
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.requests import RequestsPanel
from devconsole.ui.screens.logview import LogPane, LogScreen
from devconsole.ui.screens.request_detail import InsightView, RequestDetailScreen

from .conftest import Events, until, wait_for

RECORDING = Path(__file__).parent / "recordings" / "insight.jsonl"


def _text(widget: Static) -> str:
    return str(widget.render())


async def test_frames_show_their_locals_and_curl_is_shown_with_its_caveats() -> None:
    app = DevConsoleApp(recording=load_recording(RECORDING))
    async with app.run_test(size=(120, 48)) as pilot:
        await until(
            pilot, lambda: app.screen.query(RequestsPanel) and app.screen.query_one(RequestsPanel).table.row_count >= 5
        )
        for key in ("home", "down", "down", "enter"):
            await pilot.press(key)
        screen = await until(pilot, lambda: app.screen if isinstance(app.screen, RequestDetailScreen) else None)
        assert screen.row.path == "/insight/boom/"
        frames = screen.query_one("#frames", OptionList)
        detail = screen.query_one("#frame-detail", InsightView)
        # It opens on the view's own frame, its locals there as they were.
        assert "boom_locals" in _text(detail) and "discount 0" in _text(detail)
        assert "'[red]not markup[/red] \\x1b[2J not an escape'" in _text(detail)
        frames.focus()
        await pilot.press("home")
        await until(pilot, lambda: "in inner" in _text(detail))
        await pilot.press("end", "enter")
        await until(pilot, lambda: "boom_locals" in _text(detail))
        await pilot.press("c")
        notice = screen.query_one("#detail-notice", Static)
        await until(pilot, lambda: "curl -sS -X GET" in _text(notice))
        assert "http://127.0.0.1:" in _text(notice) and "/insight/boom/" in _text(notice)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RequestDetailScreen))


async def test_the_filter_knows_what_requests_did() -> None:
    app = DevConsoleApp(recording=load_recording(RECORDING))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(
            pilot, lambda: app.screen.query(RequestsPanel) and app.screen.query_one(RequestsPanel).table.row_count >= 5
        )
        panel = app.screen.query_one(RequestsPanel)
        expected = {"n+1": 1, "dup": 2, "exc": 1, "sql>20": 1, "sql<1": 2, "!exc sql>0": 2}
        for words, count in expected.items():
            panel.apply_filter(words)
            assert panel.table.row_count == count, words


def _recorded_state() -> ServerState:
    """The recording's events ingested into a state (no replay timing)."""
    import json

    state = ServerState()
    with RECORDING.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event.get("type") != "recording":
                state.ingest(event)
    return state


def _ping(state: ServerState, number: int, ts: float) -> None:
    state.ingest(_ping_event(number, ts))


def _ping_event(number: int, ts: float) -> dict[str, Any]:
    return {
        "type": "request",
        "id": f"1.{100 + number}",
        "conn": 1,
        "method": "GET",
        "path": "/ping/",
        "query": "",
        "version": "HTTP/1.1",
        "status": 200,
        "bytes_out": 2,
        "thread": "t",
        "ts": ts,
        "headers": [],
        "duration_ms": 1.0,
        "sql": {"count": 0, "ms": 0.0, "queries": []},
        "generation": 1,
    }


async def test_an_older_flagged_row_opens_without_its_detail() -> None:
    state = _recorded_state()
    flagged = next(row for row in state.requests if row.path == "/insight/n-plus-one/")
    last = state.requests[-1].ts
    for number in range(MAX_KEPT + 5):
        _ping(state, number, last + 1 + number / 1000)
    assert state.insight(flagged.seq) is None and flagged.summary.n_plus_one
    app = DevConsoleApp(state=state)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.query(RequestsPanel))
        app.screen.query_one(RequestsPanel).apply_filter("n+1")
        await until(pilot, lambda: app.screen.query_one(RequestsPanel).table.row_count == 1)
        await pilot.press("enter")
        screen = await until(pilot, lambda: app.screen if isinstance(app.screen, RequestDetailScreen) else None)
        notice = screen.query_one("#detail-notice", Static)
        await until(pilot, lambda: f"only the newest {MAX_KEPT} requests keep them" in _text(notice))
        assert screen.query_one(TabbedContent).active == "tab-request"
        assert app.is_running


def _log(state: ServerState, text: str, ts: float, stream: str = "stderr") -> None:
    state.ingest({"type": "log", "stream": stream, "text": text, "ts": ts, "generation": 1})


async def test_o_in_the_log_opens_the_traceback_request_and_g_comes_back_to_it() -> None:
    state = _recorded_state()
    last = max(line.ts for line in state.log)
    # A 404 warning below the traceback (no traceback of its own): not what `o` opens.
    favicon = _ping_event(1, last + 0.5) | {"path": "/favicon.ico", "status": 404}
    state.ingest(favicon)
    _log(state, "Not Found: /favicon.ico", last + 0.5)
    for number in range(80):
        _log(state, f"filler {number}", last + 1 + number / 1000, "stdout")
    app = DevConsoleApp(state=state)
    async with app.run_test(size=(120, 30)) as pilot:
        app.action_view("log")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, LogScreen) and app.screen.query(LogPane) else None
        )
        pane = screen.query_one(LogPane)
        await until(pilot, lambda: pane.line_count >= 100)
        # The traceback and the 404 both on screen, the 404 lowest.
        at = next(i for i, line in enumerate(pane.lines) if "Internal Server Error: /insight/boom/" in line)
        pane.scroll_to(y=at, animate=False, immediate=True)
        await pilot.pause()
        await pilot.press("o")
        detail = await until(pilot, lambda: app.screen if isinstance(app.screen, RequestDetailScreen) else None)
        assert detail.row.path == "/insight/boom/"
        pane.scroll_end(animate=False, immediate=True)
        await pilot.press("g")
        await until(pilot, lambda: app.screen is screen and pane.marked_index is not None)
        assert "Internal Server Error: /insight/boom/" in pane.lines[pane.marked_index or 0]
        assert not pane.is_vertical_scroll_end
        # Back at the end, the pane follows new lines again.
        await pilot.press("end")
        await until(pilot, lambda: pane.is_vertical_scroll_end)
        for number in range(40):
            _log(state, f"after {number}", time.time(), "stdout")
        await until(pilot, lambda: pane.lines and pane.lines[-1].endswith("after 39"))
        await until(pilot, lambda: pane.is_vertical_scroll_end)


async def test_rows_keep_their_exception_marker_and_both_sql_flags_and_the_filter_words_are_told() -> None:
    from devconsole.model.insight import Summary
    from devconsole.ui.formatting import sql_cell
    from devconsole.ui.screens.help import INTRO

    assert sql_cell(Summary(21, 1.5, duplicates=1, n_plus_one=1)).endswith("N+1 dup")
    state = _recorded_state()
    long_path = "/insight/boom/" + "x" * 300
    state.ingest(
        _ping_event(1, time.time())
        | {"path": long_path, "status": 500, "exception": {"type": "builtins.ZeroDivisionError", "message": "x"}}
    )
    app = DevConsoleApp(state=state)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.screen.query(RequestsPanel))
        panel = app.screen.query_one(RequestsPanel)
        await until(pilot, lambda: panel.table.row_count >= 6)
        cells = panel.table.row_cells(panel.table.row_count - 1)
        # The path cell is cut at its end (the exception's name): the marker has its own column.
        assert cells[2][0].startswith("/insight/boom/xxx") and cells[2][0].endswith("ZeroDivisionError")
        assert cells[3][0] == "✖" and panel.table.COLUMNS[3].width == 1
        box = panel.query_one("#requests-filter", Input)
        binding = next(b for b in panel.BINDINGS if isinstance(b, Binding) and b.id == "requests.filter")
        for word in ("sql>", "dup", "n+1", "exc"):
            assert word in str(box.placeholder) and word in binding.tooltip and word in INTRO


def test_files_are_named_from_the_project_root_and_wrapped_sql_keeps_its_column(tmp_path: Path) -> None:
    from rich.console import Console
    from rich.style import Style

    from devconsole.model.insight import Insight
    from devconsole.ui.widgets import request_insight as draw

    (tmp_path / "manage.py").write_text("")
    (tmp_path / "shop").mkdir()
    views = f"{tmp_path}/shop/views.py"
    library = "/venv/lib/python3.11/site-packages/django/db/models/query.py"
    long_sql = "SELECT " + ", ".join(f'"shop_item"."column_{n}"' for n in range(12)) + ' FROM "shop_item"'
    where = {"file": views, "line": 79, "function": "n_plus_one"}
    other = {"file": views, "line": 85, "function": "again"}
    insight = Insight(
        sql={
            "count": 3,
            "ms": 1.0,
            "queries": [
                {"sql": long_sql, "params": ["1"], "ms": 0.5, "where": where},
                {"sql": long_sql, "params": ["1"], "ms": 0.5, "where": other},
                {"sql": "SELECT 1", "params": [], "ms": 0.1, "where": where},
            ],
            "duplicates": [{"sql": long_sql, "params": ["1"], "count": 2, "where": where}],
            "n_plus_one": [],
        },
        exception={"frames": [{"file": views, "line": 79, "function": "n_plus_one", "project": True}]},
    )
    # Without a root from the console or the recording's hello: the common
    # directory of the project's files, never a look at this machine's disk.
    assert draw.project_root(insight, None) == f"{tmp_path}/shop"
    root = draw.project_root(insight, str(tmp_path))
    assert root == str(tmp_path)
    assert draw.short_path(views, root) == "shop/views.py"
    assert draw.short_path(library, root) == "django/db/models/query.py"
    assert draw.short_path("/usr/lib/python3.11/threading.py", root) == "/usr/lib/python3.11/threading.py"
    assert str(draw.frame_label({"file": views, "line": 79, "function": "f", "project": True}, root)).startswith(
        "▶ shop/views.py:79 in f"
    )
    # The frame's own heading keeps the absolute path.
    assert str(draw.frame_text({"file": views, "line": 79}, lambda name: Style())).startswith(f"{views}:79")
    console = Console(width=70, record=True, color_system=None)
    console.print(draw.sql_text(insight, lambda name: Style(), root))
    lines = console.export_text().splitlines()
    assert f"/{tmp_path.name}/" not in "\n".join(lines)
    # Every duplicate's issuing line, not only the first.
    assert any("from shop/views.py:79 in n_plus_one" in line for line in lines)
    assert any("and shop/views.py:85 in again" in line for line in lines)
    queries = lines[lines.index("Queries") + 1 :]
    assert len(queries) > 6  # the long SQL wrapped
    for line in queries:
        # A query's number and time, or its SQL's column: nothing under the left column.
        assert line.startswith(("    1 ", "    2 ", "    3 ", " " * 15)), line
    assert any(line.startswith(" " * 15 + "params 1 · shop/views.py:79") for line in queries)


async def test_the_request_tab_does_not_repeat_the_response_and_timing_tabs() -> None:
    app = DevConsoleApp(state=_recorded_state())
    async with app.run_test(size=(120, 48)) as pilot:
        await until(pilot, lambda: app.screen.query(RequestsPanel))
        app.screen.query_one(RequestsPanel).apply_filter("exc")
        await until(pilot, lambda: app.screen.query_one(RequestsPanel).table.row_count == 1)
        await pilot.press("enter")
        screen = await until(pilot, lambda: app.screen if isinstance(app.screen, RequestDetailScreen) else None)
        detail = screen.query_one("#detail")
        await until(pilot, lambda: "Headers received" in _text(detail))
        assert "\nResponse\n" not in _text(detail) and "\nTiming\n" not in _text(detail)
        assert "started" in _text(detail)


async def test_send_again_follows_the_new_row_and_browser_opens_its_url(
    server: Supervisor, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.client
    import webbrowser

    port = server.socket.getsockname()[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/api/echo/?n=1", body=b'{"name": "Ada"}', headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 201
    conn.close()
    first = wait_for(lambda: next((r for r in events.state.requests_since(0) if r.path == "/api/echo/"), None))
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *args, **kwargs: opened.append(url) or True)
    app = DevConsoleApp(state=events.state)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.query(RequestsPanel))
        app.screen.query_one(RequestsPanel).apply_filter("/api/echo/")
        await until(pilot, lambda: app.screen.query_one(RequestsPanel).table.row_count == 1)
        await pilot.press("enter")
        screen = await until(pilot, lambda: app.screen if isinstance(app.screen, RequestDetailScreen) else None)
        assert screen.row.seq == first.seq
        await pilot.press("o")
        assert opened == [f"http://127.0.0.1:{port}/api/echo/?n=1"]
        await pilot.press("e")
        # The detail follows the request sent again: a new row, same method, target and (JSON) body, 201.
        follow = await until(
            pilot,
            lambda: (
                app.screen if isinstance(app.screen, RequestDetailScreen) and app.screen.row.seq != first.seq else None
            ),
            timeout=20,
        )
        assert follow.row.method == "POST" and follow.row.target == "/api/echo/?n=1" and follow.row.status == 201
        notice = follow.query_one("#detail-notice", Static)
        await until(pilot, lambda: f"the first was {first.id}" in _text(notice))
