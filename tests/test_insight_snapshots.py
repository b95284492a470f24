"""SVG snapshots of a request's detail with what it did: a 500 (its frames
and locals), an N+1 page (its SQL) and a JSON POST (its body), replayed from
``tests/recordings/insight.jsonl`` (``scripts/make_insight_recording.py``
records it from the real server child). Same conventions as
``test_ui_snapshots.py``: a fixed terminal, times in UTC, no live server."""

from __future__ import annotations

from pathlib import Path

from devconsole.model.recording import load_recording
from devconsole.ui.app import DevConsoleApp

from .test_ui_snapshots import view

RECORDING = Path(__file__).parent / "recordings" / "insight.jsonl"


def replay_app() -> DevConsoleApp:
    return DevConsoleApp(recording=load_recording(RECORDING))


def test_requests_show_sql_and_exceptions(snap_compare) -> None:
    assert snap_compare(replay_app(), terminal_size=(120, 36), run_before=view())


def test_detail_of_a_500_opens_on_its_exception(snap_compare) -> None:
    keys = ["home", "down", "down", "enter"]
    assert snap_compare(replay_app(), terminal_size=(120, 48), run_before=view(*keys))


def test_detail_of_an_n_plus_one_opens_on_its_sql(snap_compare) -> None:
    keys = ["home", "enter"]
    assert snap_compare(replay_app(), terminal_size=(120, 48), run_before=view(*keys))


def test_detail_of_a_json_post_shows_its_body(snap_compare) -> None:
    keys = ["end", "up", "enter"]
    assert snap_compare(replay_app(), terminal_size=(120, 48), run_before=view(*keys))
