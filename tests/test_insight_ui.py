"""The request detail's insight, driven by keys on a replayed session
(``tests/recordings/insight.jsonl``, recorded from the real server child)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList, Static

from devconsole.model.recording import load_recording
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
