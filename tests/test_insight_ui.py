"""The request detail's insight, driven by keys on a replayed session
(``tests/recordings/insight.jsonl``, recorded from the real server child)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList, Static, TabbedContent

from devconsole.model.insight import MAX_KEPT
from devconsole.model.recording import load_recording
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.requests import RequestsPanel
from devconsole.ui.screens.request_detail import InsightView, RequestDetailScreen

from .conftest import until

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
    state.ingest(
        {
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
    )


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
