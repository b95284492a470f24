"""SVG snapshots of the Processes view and of the Log view's source column,
fed by the recorded demo session plus fixed side-process events (the way
``test_ui_snapshots`` is fed): no live process, the recording's own clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devconsole.model.recording import Recording, parse_recording
from devconsole.ui.app import DevConsoleApp

from .test_ui_snapshots import RECORDING, view

#: Seconds before the recording's last event at which each side-process event happened.
EVENTS: list[tuple[float, dict[str, object]]] = [
    (9.0, {"type": "processes", "names": ["tailwind", "worker", "mail", "beat"], "error": None}),
    (
        8.9,
        {
            "type": "process",
            "name": "tailwind",
            "state": "running",
            "pid": 41001,
            "returncode": None,
            "restarts": 0,
            "delay": None,
        },
    ),
    (
        8.9,
        {
            "type": "process",
            "name": "worker",
            "state": "running",
            "pid": 41002,
            "returncode": None,
            "restarts": 0,
            "delay": None,
        },
    ),
    (
        8.9,
        {
            "type": "process",
            "name": "mail",
            "state": "running",
            "pid": 41003,
            "returncode": None,
            "restarts": 0,
            "delay": None,
        },
    ),
    (
        8.9,
        {
            "type": "process",
            "name": "beat",
            "state": "running",
            "pid": 41004,
            "returncode": None,
            "restarts": 0,
            "delay": None,
        },
    ),
    (
        8.5,
        {"type": "process_log", "name": "tailwind", "stream": "stdout", "text": "\x1b[36m≈ tailwindcss\x1b[0m v4.0.0"},
    ),
    (8.0, {"type": "process_log", "name": "tailwind", "stream": "stdout", "text": "Done in \x1b[1m312ms\x1b[0m"}),
    (7.5, {"type": "process_log", "name": "worker", "stream": "stderr", "text": "[tasks] . shop.tasks.send_receipt"}),
    (
        6.0,
        {
            "type": "process_log",
            "name": "mail",
            "stream": "stderr",
            "text": "listen tcp :1025: bind: address already in use",
        },
    ),
    (
        6.0,
        {
            "type": "process",
            "name": "mail",
            "state": "exited",
            "pid": 41003,
            "returncode": 3,
            "restarts": 2,
            "delay": None,
        },
    ),
    (
        6.0,
        {
            "type": "process",
            "name": "mail",
            "state": "restarting",
            "pid": 41003,
            "returncode": 3,
            "restarts": 2,
            "delay": 8.0,
        },
    ),
    (
        5.0,
        {
            "type": "process",
            "name": "beat",
            "state": "crashed",
            "pid": 41004,
            "returncode": -9,
            "restarts": 0,
            "delay": None,
        },
    ),
    (
        2.0,
        {
            "type": "process",
            "name": "worker",
            "state": "stopped",
            "pid": 41002,
            "returncode": -15,
            "restarts": 0,
            "delay": None,
        },
    ),
    (
        1.5,
        {
            "type": "process",
            "name": "worker",
            "state": "running",
            "pid": 41077,
            "returncode": None,
            "restarts": 1,
            "delay": None,
        },
    ),
    (1.0, {"type": "process_log", "name": "worker", "stream": "stdout", "text": "celery@dev ready."}),
]


def recording_with_processes(recording: Path = RECORDING) -> Recording:
    """``recording`` with :data:`EVENTS` merged in (also what ``scripts/screenshots.py`` shows)."""
    lines = recording.read_text().splitlines()
    header = json.loads(lines[0])
    events = [json.loads(line) for line in lines[1:]]
    last_ts = max(float(event["ts"]) for event in events if isinstance(event.get("ts"), (int, float)))
    started = float(header["started"])
    extra = [{**event, "ts": last_ts - before, "rt": round(last_ts - before - started, 4)} for before, event in EVENTS]
    merged = sorted(events + extra, key=lambda event: float(event.get("rt") or 0.0))
    return parse_recording([json.dumps(header) + "\n", *(json.dumps(event) + "\n" for event in merged)])


def replay_app() -> DevConsoleApp:
    return DevConsoleApp(recording=recording_with_processes())


@pytest.mark.parametrize("size", [(120, 36), (160, 48)], ids=["120x36", "160x48"])
def test_processes_view(snap_compare, size) -> None:
    assert snap_compare(replay_app(), terminal_size=size, run_before=view("p"))


def test_processes_view_with_the_failing_one_selected(snap_compare) -> None:
    assert snap_compare(replay_app(), terminal_size=(120, 36), run_before=view("p", "down", "down"))


def test_log_view_with_sources(snap_compare) -> None:
    assert snap_compare(replay_app(), terminal_size=(160, 48), run_before=view("l"))


def test_log_view_one_source(snap_compare) -> None:
    assert snap_compare(replay_app(), terminal_size=(160, 48), run_before=view("l", "s", "s"))


def test_the_recording_is_well_formed() -> None:
    recording = recording_with_processes()
    kinds = [event["type"] for event in recording.events]
    assert kinds.count("process") == 9 and kinds.count("process_log") == 5 and "processes" in kinds
    # Every one of them passed the definitions' checks (none skipped as malformed).
    assert not recording.notes
