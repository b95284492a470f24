"""SVG snapshots of every view, fed by the recorded demo session.

Deterministic by construction: no live server (the recording is replayed all
at once), a fixed clock (the recording's own last timestamp), times from event
timestamps in UTC (conftest sets ``TZ``), a fixed terminal size. Update them with
``pytest tests/test_ui_snapshots.py --snapshot-update`` and look at the SVGs
before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Log

from devconsole.model.recording import load_recording
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.linetable import LineTable

from .conftest import until

RECORDING = Path(__file__).parent / "recordings" / "demo.jsonl"


def replay_app() -> DevConsoleApp:
    return DevConsoleApp(recording=load_recording(RECORDING))


def tails_shown(app: DevConsoleApp) -> bool:
    """Every view on screen that follows its newest line shows it: the tables
    whose cursor is on the last row and the log are scrolled to their end."""
    screen = app.screen
    for table in screen.query(LineTable):
        if table.FOLLOWS_TAIL and table.at_tail() and table.scroll_offset.y != table.max_scroll_y:
            return False
    return all(log.scroll_offset.y == log.max_scroll_y for log in screen.query(Log) if log.auto_scroll)


async def settle(pilot) -> None:
    """Let the replayed events reach the panels (the tick would do it in 100 ms)
    and the views scroll to their tail, then draw what that moved."""
    app = pilot.app
    await pilot.pause()  # a view switched to has composed its panels
    app.refresh_views()  # the state, applied to the view on display, now
    # Following the tail is a scroll after the next refresh (the new height laid out first).
    await until(pilot, lambda: tails_shown(app))
    # The scroll posts scrollbar updates and repaints: let them all land.
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def view(*keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", [(120, 36), (160, 48)], ids=["120x36", "160x48"])
def test_dashboard(snap_compare, size) -> None:
    assert snap_compare(replay_app(), terminal_size=size, run_before=view())


@pytest.mark.parametrize("size", [(120, 36), (160, 48)], ids=["120x36", "160x48"])
def test_log_view(snap_compare, size) -> None:
    assert snap_compare(replay_app(), terminal_size=size, run_before=view("l"))


@pytest.mark.parametrize("size", [(120, 36), (160, 48)], ids=["120x36", "160x48"])
def test_anatomy_view(snap_compare, size) -> None:
    assert snap_compare(replay_app(), terminal_size=size, run_before=view("a"))


def test_request_detail_of_a_hostile_request(snap_compare) -> None:
    """The request with an ESC in its path and escape sequences in its headers."""
    keys = ["slash", *"esc", "enter", "enter"]
    assert snap_compare(replay_app(), terminal_size=(120, 36), run_before=view(*keys))


def test_requests_filtered_to_4xx(snap_compare) -> None:
    keys = ["slash", *"4xx", "enter"]
    assert snap_compare(replay_app(), terminal_size=(120, 36), run_before=view(*keys))


def test_help(snap_compare) -> None:
    assert snap_compare(replay_app(), terminal_size=(120, 36), run_before=view("question_mark"))
