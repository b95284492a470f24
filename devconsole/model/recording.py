"""Recordings: a session's event stream saved to a file, and played back.

The format is the protocol itself: one JSON object per line, a header first
(``{"type": "recording", "v": 1, ...}``), then every event the console
ingested with ``rt``, the seconds since the recording started. Tests, the
screenshots script and ``devconsole replay`` all read this format.

Writing (:class:`RecordFile`, :class:`RecordingWriter`): the file is the
user's alone (mode 0600), every line is written whole as it comes (a killed
console leaves complete lines, at worst one cut short), credentials are
masked unless asked for (:func:`mask_secrets`), and a failed write (a full
disk) stops the recording, says so in the console, and lets the session go on.

Reading (:func:`load_recording`, :func:`play`): the file is streamed, never
held: one pass counts and checks, playing reads it again, so memory is the
console's own caps whatever the file's size. Each line is checked against
its event's definition (the state's own check); lines that fail are skipped,
counted and named, and a last line cut short is ignored, both with a note
played into the console's log.
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devconsole.model.sanitize import clean, clean_colour_line, clean_value
from devconsole.model.secrets import mask_secrets
from devconsole.wire import events as event_defs
from devconsole.wire import protocol

FORMAT_VERSION = 1

#: The longest line a recording may hold; longer ones are skipped whole, unread.
MAX_RECORDED_LINE = 4 * protocol.MAX_LINE


class RecordingError(Exception):
    """The file is not a recording devconsole can play; one line for the user."""


# ------------------------------------------------------------------ writing
class RecordFile(io.TextIOBase):
    """The file a recording is written to: created for its owner alone
    (0600), each line written whole with one system call (nothing buffered
    to lose on a signal), the first failure kept in :attr:`failure`.

    ``keep_secrets`` (``--record-secrets``) is read by :class:`RecordingWriter`.
    """

    def __init__(self, path: str | os.PathLike[str], *, keep_secrets: bool = False) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.keep_secrets = keep_secrets
        #: Why writing stopped (``No space left on device``), or None.
        self.failure: str | None = None
        self._fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            # An existing file keeps its mode through O_CREAT: make it private too
            # (only a regular file: never chmod a device such as /dev/full).
            if stat.S_ISREG(os.fstat(self._fd).st_mode):
                os.fchmod(self._fd, 0o600)
        except OSError:
            pass

    @property
    def name(self) -> str:
        return self.path

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        if self.closed:
            raise ValueError("write to a closed recording")
        data = memoryview(text.encode("utf-8", "replace"))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            if self.failure is None:
                self.failure = exc.strerror or str(exc)
            raise
        return len(text)

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


class RecordingWriter:
    """Wraps an event sink so every event is also written to ``out``.

    Secrets are masked (:func:`mask_secrets`) unless ``keep_secrets`` (by
    default: ``out.keep_secrets``, see :class:`RecordFile`). The first write
    that fails stops the recording: a ``log`` line on stderr says so in the
    console, :attr:`failure` keeps why, and events keep reaching ``sink``.
    """

    def __init__(
        self,
        out: IO[str],
        sink: Callable[[dict[str, Any]], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        keep_secrets: bool | None = None,
    ) -> None:
        self._out = out
        self._sink = sink
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._keep_secrets = bool(getattr(out, "keep_secrets", False)) if keep_secrets is None else keep_secrets
        #: Why the recording stopped, or None while it goes on.
        self.failure: str | None = None
        from devconsole import __version__

        header = {"type": "recording", "v": FORMAT_VERSION, "devconsole": __version__, "started": time.time()}
        if self._write(json.dumps(header) + "\n"):
            self._sink(self._stopped_event())

    def _write(self, line: str) -> bool:
        """Write ``line`` unless stopped; True when this write stopped the recording."""
        with self._lock:
            if self.failure is not None:
                return False
            try:
                self._out.write(line)
            except (OSError, ValueError) as exc:  # a full disk, a closed file
                self.failure = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
                return True
        return False

    def _stopped_event(self) -> dict[str, Any]:
        name = getattr(self._out, "name", None)
        where = f" ({clean(str(name), 200)})" if isinstance(name, str) else ""
        text = f"devconsole: recording stopped: {self.failure}{where}; the session goes on"
        return {"type": "log", "stream": "stderr", "text": text, "ts": time.time()}

    def __call__(self, event: dict[str, Any]) -> None:
        if self.failure is None:
            recorded = event if self._keep_secrets else mask_secrets(event)
            line = protocol.encode({**recorded, "rt": round(self._clock() - self._start, 4)}).decode()
            stopped = self._write(line)
        else:
            stopped = False
        self._sink(event)
        if stopped:
            self._sink(self._stopped_event())


# ------------------------------------------------------------------ reading
@dataclass
class SkippedLines:
    """Lines of a recording that were not played: counted, the first named."""

    count: int = 0
    first_line: int = 0
    first: str = ""

    def add(self, number: int, why: str) -> None:
        self.count += 1
        if self.count == 1:
            self.first_line, self.first = number, why

    def describe(self) -> str:
        lines = "line" if self.count == 1 else "lines"
        return f"{self.count} {lines} skipped: first at line {self.first_line}: {self.first}"


#: Why the last line was not played: the file ends in the middle of it.
_CUT_SHORT = "the last line is cut short (the recording was interrupted while writing it): ignored"


@dataclass
class _Line:
    number: int
    event: dict[str, Any] | None = None
    #: Why the line is not played (None: played, or blank).
    problem: str | None = None
    #: The file ends inside this line.
    cut_short: bool = False


def _raw_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None, bool]]:
    """``(number, bytes, whole)`` for each line of ``stream``; ``None`` for a
    line longer than :data:`MAX_RECORDED_LINE` (skipped, never held whole);
    ``whole`` is False for a last line without its newline."""
    number = 0
    while True:
        chunk = stream.readline(MAX_RECORDED_LINE)
        if not chunk:
            return
        number += 1
        if chunk.endswith(b"\n"):
            yield number, chunk, True
        elif len(chunk) < MAX_RECORDED_LINE:
            yield number, chunk, False
            return
        else:
            while chunk and not chunk.endswith(b"\n"):
                chunk = stream.readline(MAX_RECORDED_LINE)
            yield number, None, True


def _lines(raw: Iterable[tuple[int, bytes | str | None, bool]]) -> Iterator[_Line]:
    """Each line decoded and checked against its event's definition."""
    for number, data, whole in raw:
        if data is None:
            yield _Line(number, problem=f"longer than {MAX_RECORDED_LINE} bytes")
            continue
        if not data.strip():
            continue
        event = protocol.decode(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
        if event is None:
            yield _Line(number, problem="not a devconsole event line", cut_short=not whole)
            continue
        problem = event_defs.problem(event)
        if problem is not None:
            yield _Line(number, problem=clean(problem, 120))
            continue
        text = event.get("text")
        if event["type"] == "process_log" and isinstance(text, str):
            # A side process's colours travel as SGR sequences: kept, as live.
            yield _Line(number, event={**clean_value({**event, "text": ""}), "text": clean_colour_line(text)})
            continue
        yield _Line(number, event=clean_value(event))


def _header(first: _Line | None, name: str) -> dict[str, Any]:
    if first is None:
        raise RecordingError(f"{name}: empty file, not a devconsole recording")
    if first.event is None:
        raise RecordingError(f"{name}:{first.number}: not a devconsole event line")
    header = first.event
    if header["type"] != "recording":
        raise RecordingError(f"{name}: not a devconsole recording (no header line)")
    if header.get("v") != FORMAT_VERSION:
        raise RecordingError(
            f"{name}: recording format {header.get('v')!r} is not supported (expected {FORMAT_VERSION})"
        )
    if not isinstance(header.get("started"), (int, float)) or isinstance(header.get("started"), bool):
        header = {**header, "started": 0.0}
    return header


class _Summary:
    """What one pass over a recording's lines found."""

    def __init__(self) -> None:
        self.count = 0
        self.duration = 0.0
        self.last_ts: float | None = None
        self.skipped = SkippedLines()
        self.cut_short = False

    def take(self, line: _Line) -> dict[str, Any] | None:
        """The event to play from ``line``, or None (counted)."""
        if line.cut_short:
            self.cut_short = True
            return None
        event = line.event
        if event is None:
            self.skipped.add(line.number, line.problem or "")
            return None
        if event["type"] == "recording":
            self.skipped.add(line.number, "a second recording header")
            return None
        self.count += 1
        rt = event.get("rt")
        if isinstance(rt, (int, float)):
            self.duration = float(rt)
        ts = event.get("ts")
        if isinstance(ts, (int, float)) and (self.last_ts is None or ts > self.last_ts):
            self.last_ts = float(ts)
        return event

    def notes(self) -> tuple[str, ...]:
        notes = [f"devconsole: replay: {self.skipped.describe()}"] if self.skipped.count else []
        if self.cut_short:
            notes.append(f"devconsole: replay: {_CUT_SHORT}")
        return tuple(notes)


class RecordedEvents:
    """A recording file's playable events, read from the file each time they
    are iterated (never held in memory); ``len()`` is their number."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        summary = _Summary()
        with self.path.open("rb") as stream:
            lines = _lines(_raw_lines(stream))
            next(lines, None)  # the header
            for line in lines:
                event = summary.take(line)
                if event is not None:
                    yield event


class Recording:
    """A recording's header and its events (a list, or :class:`RecordedEvents`
    streamed from the file), with what was skipped as console notes."""

    def __init__(
        self,
        header: dict[str, Any],
        events: list[dict[str, Any]] | RecordedEvents,
        *,
        duration: float | None = None,
        last_ts: float | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.header = header
        self.events = events
        self.notes = notes
        if duration is None or last_ts is None:
            summary = _Summary()
            for event in events:
                summary.take(_Line(0, event=event))
            duration, last_ts = summary.duration, summary.last_ts
        self.duration = duration
        #: The latest wall-clock ``ts`` in the recording: the replay's fixed "now".
        self.last_ts = last_ts if last_ts is not None else float(header.get("started") or 0.0)

    def note_events(self) -> list[dict[str, Any]]:
        """The notes as ``log`` events, played before the recording."""
        ts = float(self.header.get("started") or 0.0)
        return [{"type": "log", "stream": "stderr", "text": text, "ts": ts, "rt": 0.0} for text in self.notes]


def _summarize(lines: Iterator[_Line], name: str, keep: list[dict[str, Any]] | None) -> tuple[dict[str, Any], _Summary]:
    header = _header(next(lines, None), name)
    summary = _Summary()
    for line in lines:
        event = summary.take(line)
        if event is not None and keep is not None:
            keep.append(event)
    if summary.count == 0 and (summary.skipped.count or summary.cut_short):
        why = summary.skipped.describe() if summary.skipped.count else _CUT_SHORT
        raise RecordingError(f"{name}: no event to replay ({why})")
    return header, summary


def parse_recording(lines: Iterable[str], name: str = "recording") -> Recording:
    """A recording from lines of text, held in memory (small ones: tests)."""
    numbered = ((number, line, line.endswith("\n")) for number, line in enumerate(lines, 1))
    events: list[dict[str, Any]] = []
    header, summary = _summarize(_lines(numbered), name, events)
    return Recording(header, events, duration=summary.duration, last_ts=summary.last_ts, notes=summary.notes())


def load_recording(path: Path) -> Recording:
    """The recording in ``path``, checked in one streaming pass; its events
    are read again from the file when played."""
    try:
        with path.open("rb") as stream:
            header, summary = _summarize(_lines(_raw_lines(stream)), str(path), None)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory") from None
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror}") from None
    return Recording(
        header,
        RecordedEvents(path, summary.count),
        duration=summary.duration,
        last_ts=summary.last_ts,
        notes=summary.notes(),
    )


def play(
    recording: Recording,
    sink: Callable[[dict[str, Any]], None],
    *,
    speed: float = 0.0,
    stop: threading.Event | None = None,
) -> None:
    """Feed the recording's notes, then its events, to ``sink``; paced when ``speed`` > 0."""
    for note in recording.note_events():
        sink(note)
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
