"""Recordings: a session's event stream saved to a file, and played back.

The format is the protocol itself: one JSON object per line, a header first
(``{"type": "recording", "v": 1, ...}``), then every event the console
ingested with ``rt``, the seconds since the recording started. Tests, the
screenshots script and ``devconsole replay`` all read this format.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devconsole.model.sanitize import clean_value
from devconsole.wire import protocol

FORMAT_VERSION = 1


class RecordingError(Exception):
    """The file is not a recording devconsole can play; one line for the user."""


class RecordingWriter:
    """Wraps an event sink so every event is also written to ``out``."""

    def __init__(
        self, out: IO[str], sink: Callable[[dict[str, Any]], None], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out = out
        self._sink = sink
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        from devconsole import __version__

        out.write(
            json.dumps({"type": "recording", "v": FORMAT_VERSION, "devconsole": __version__, "started": time.time()})
            + "\n"
        )

    def __call__(self, event: dict[str, Any]) -> None:
        line = protocol.encode({**event, "rt": round(self._clock() - self._start, 4)}).decode()
        with self._lock:
            try:
                self._out.write(line)
            except (OSError, ValueError):
                pass  # a full disk or a closed file must not stop the console
        self._sink(event)


@dataclass
class Recording:
    header: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def duration(self) -> float:
        return float(self.events[-1].get("rt", 0.0)) if self.events else 0.0

    @property
    def last_ts(self) -> float:
        """The latest wall-clock ``ts`` in the recording: the replay's fixed "now"."""
        stamps = [e["ts"] for e in self.events if isinstance(e.get("ts"), (int, float))]
        return max(stamps) if stamps else float(self.header.get("started", 0.0))


def parse_recording(lines: Iterable[str], name: str = "recording") -> Recording:
    header: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        event = protocol.decode(line)
        if event is None:
            raise RecordingError(f"{name}:{number}: not a devconsole event line")
        if header is None:
            if event["type"] != "recording":
                raise RecordingError(f"{name}: not a devconsole recording (no header line)")
            if event.get("v") != FORMAT_VERSION:
                raise RecordingError(
                    f"{name}: recording format {event.get('v')!r} is not supported (expected {FORMAT_VERSION})"
                )
            header = event
            continue
        events.append(clean_value(event))
    if header is None:
        raise RecordingError(f"{name}: empty file, not a devconsole recording")
    return Recording(header, events)


def load_recording(path: Path) -> Recording:
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            return parse_recording(stream, str(path))
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory") from None
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror}") from None


def play(
    recording: Recording,
    sink: Callable[[dict[str, Any]], None],
    *,
    speed: float = 0.0,
    stop: threading.Event | None = None,
) -> None:
    """Feed the recording's events to ``sink``; paced when ``speed`` > 0."""
    started = time.monotonic()
    for event in recording.events:
        if stop is not None and stop.is_set():
            return
        if speed > 0:
            delay = float(event.get("rt", 0.0)) / speed - (time.monotonic() - started)
            if delay > 0 and stop is not None:
                if stop.wait(delay):
                    return
            elif delay > 0:
                time.sleep(delay)
        sink(event)
