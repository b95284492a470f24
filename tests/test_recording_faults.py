"""Recordings under faults: written privately with secrets masked, a write
that fails (``/dev/full``) stops the recording and not the session, and a
damaged or huge recording replays what it can in bounded memory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devconsole.model.recording import RecordFile, RecordingWriter, load_recording, play
from devconsole.model.secrets import MASK
from devconsole.model.state import ServerState
from devconsole.ui.app import DevConsoleApp

HEADER = json.dumps({"type": "recording", "v": 1, "devconsole": "test", "started": 1700000000.0})


def request(number: int, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "request",
        "id": f"r{number}",
        "conn": 1,
        "method": "GET",
        "path": f"/item/{number}/",
        "query": "",
        "version": "HTTP/1.1",
        "status": 200,
        "duration_ms": 1.5,
        "bytes_out": 120,
        "thread": "Thread-1",
        "ts": 1700000000.0 + number,
        "headers": [["Host", "127.0.0.1"]],
        "rt": float(number),
    }
    event.update(fields)
    return event


def write_recording(path: Path, lines: list[str], *, end: str = "\n") -> Path:
    path.write_text("\n".join([HEADER, *lines]) + end)
    return path


# ------------------------------------------------------------------ writing
def test_the_file_is_private_even_over_an_existing_readable_one(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        fresh = RecordFile(tmp_path / "fresh.jsonl")
        over = RecordFile(path)
    finally:
        os.umask(old_umask)
    fresh.close()
    over.close()
    assert stat.S_IMODE((tmp_path / "fresh.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == ""


def recorded(path: Path, event: dict[str, Any], *, keep_secrets: bool = False) -> dict[str, Any]:
    out = RecordFile(path, keep_secrets=keep_secrets)
    seen: list[dict[str, Any]] = []
    RecordingWriter(out, seen.append)(event)
    out.close()
    assert seen == [event], "the console itself sees the event unmasked"
    return dict(json.loads(path.read_text().splitlines()[1]))


def test_credentials_are_masked_unless_asked_for(tmp_path: Path) -> None:
    event = request(
        1,
        query="page=2&api_key=k1&Session_ID=s1&csrfToken=t1&PASSWORD=p1&q=keep",
        headers=[
            ["Cookie", "sessionid=abc"],
            ["Authorization", "Basic dXNlcjpwYXNz"],
            ["proxy-authorization", "Bearer xyz"],
            ["Referer", "http://127.0.0.1/login/?next=/&secret=s2"],
            ["User-Agent", "curl"],
        ],
    )
    log = {"type": "log", "stream": "stderr", "text": '"GET /?token=t3&a=1 HTTP/1.1" 200 12', "ts": 1.0}

    masked = recorded(tmp_path / "masked.jsonl", event)
    assert masked["query"] == f"page=2&api_key={MASK}&Session_ID={MASK}&csrfToken={MASK}&PASSWORD={MASK}&q=keep"
    assert dict(masked["headers"]) == {
        "Cookie": MASK,
        "Authorization": MASK,
        "proxy-authorization": MASK,
        "Referer": f"http://127.0.0.1/login/?next=/&secret={MASK}",
        "User-Agent": "curl",
    }
    text = (tmp_path / "masked.jsonl").read_text()
    for secret in ("abc", "dXNlcjpwYXNz", "xyz", "k1", "s1", "t1", "p1", "s2"):
        assert secret not in text
    assert recorded(tmp_path / "log.jsonl", log)["text"] == f'"GET /?token={MASK}&a=1 HTTP/1.1" 200 12'

    clear = recorded(tmp_path / "clear.jsonl", event, keep_secrets=True)
    assert clear["query"] == event["query"] and clear["headers"] == event["headers"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_stops_the_recording_and_says_so_once(tmp_path: Path) -> None:
    out = RecordFile("/dev/full")
    state = ServerState()
    writer = RecordingWriter(out, state.ingest)
    for number in range(3):
        writer(request(number))
    out.close()
    assert writer.failure == "No space left on device" == out.failure
    assert len(state.requests) == 3, "the session goes on"
    stopped = [line.text for line in state.log if "recording stopped" in line.text]
    assert stopped == ["devconsole: recording stopped: No space left on device (/dev/full); the session goes on"]
    assert all(line.stream == "stderr" for line in state.log if "recording stopped" in line.text)


# ------------------------------------------------------------------ replay
def test_bad_lines_are_skipped_counted_and_shown(tmp_path: Path) -> None:
    lines = [json.dumps(request(n)) for n in range(1, 41)]
    lines[9] = json.dumps(request(10, status="200"))  # line 11 of the file: wrong type
    lines[19] = "{not json"  # line 21
    lines[29] = json.dumps(request(30, rt="late"))  # line 31: a stamp of the wrong type
    path = write_recording(tmp_path / "damaged.jsonl", lines)
    recording = load_recording(path)
    assert len(recording.events) == 37
    assert recording.notes == (
        "devconsole: replay: 3 lines skipped: first at line 11: request.status: '200' is not int or null",
    )

    state = ServerState()
    play(recording, state.ingest)
    assert len(state.requests) == 37 and state.invalid_events.count == 0
    assert state.log[0].text == recording.notes[0] and state.log[0].stream == "stderr"


def test_a_last_line_cut_short_is_ignored_with_a_note(tmp_path: Path) -> None:
    lines = [json.dumps(request(n)) for n in range(1, 6)]
    lines[-1] = lines[-1][:40]
    path = write_recording(tmp_path / "killed.jsonl", lines, end="")
    recording = load_recording(path)
    assert len(recording.events) == 4 and recording.duration == 4.0
    assert len(recording.notes) == 1 and "last line is cut short" in recording.notes[0]


async def test_the_console_shows_the_note(tmp_path: Path) -> None:
    lines = [json.dumps(request(n)) for n in range(1, 6)]
    lines[2] = json.dumps(request(3, headers="none"))
    app = DevConsoleApp(recording=load_recording(write_recording(tmp_path / "r.jsonl", lines)))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        texts = [line.text for line in app.state.log]
        assert any("1 line skipped: first at line 4: request.headers" in text for text in texts), texts
        assert len(app.state.requests) == 4


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devconsole", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_nothing_valid_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "bad.jsonl", [json.dumps(request(1, status="x")), "[]"])
    result = run_cli("replay", str(path))
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        f"devconsole: error: {path}: no event to replay (2 lines skipped: first at line 2: request.status: 'x' is not int or null)"
    ]


def test_memory_is_bounded_by_the_console_not_the_file(tmp_path: Path) -> None:
    """A ~50 MB recording replays in a process whose peak RSS stays far below
    what holding its events would take (several hundred MB)."""
    path = tmp_path / "big.jsonl"
    with path.open("w") as out:
        out.write(HEADER + "\n")
        number = 0
        while out.tell() < 50_000_000:
            number += 1
            out.write(json.dumps(request(number, headers=[["Host", "127.0.0.1"], ["User-Agent", "x" * 200]])) + "\n")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from devconsole.model.recording import load_recording, play\n"
        "from devconsole.model.state import ServerState\n"
        "recording = load_recording(Path(sys.argv[1]))\n"
        "state = ServerState()\n"
        "started = float(recording.header['started'])\n"
        "play(recording, lambda e: state.ingest({**e, 'at': started + float(e.get('rt') or 0.0)}))\n"
        "peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
        "print(state.request_seq, len(recording.events), int(peak) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    total, events, peak_mb = map(int, result.stdout.split())
    assert total == events == number, result.stdout
    assert peak_mb < 150, f"replaying {path.stat().st_size >> 20} MB took a peak of {peak_mb} MB"


@pytest.mark.tty
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_recording_to_a_full_disk_keeps_the_session_and_says_so_at_exit(tmp_path: Path) -> None:
    """In a real terminal: the console runs, ``q`` quits with status 0, and
    after the terminal is restored one line says the recording stopped."""
    from tests.test_tty_smoke import DEVCONSOLE, LEAVE_ALT_SCREEN, Terminal, free_port, panels_drawn, user_terminal_env

    terminal = Terminal(
        [str(DEVCONSOLE), "--demo", f"127.0.0.1:{free_port()}", "--record", "/dev/full"],
        user_terminal_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        terminal.wait_for(panels_drawn, "the dashboard's four panels", timeout=120)
        terminal.child.send("q")
        assert terminal.wait_exit() == 0, terminal.describe()
    finally:
        terminal.close()
    raw = bytes(terminal.raw)
    after = raw[raw.rfind(LEAVE_ALT_SCREEN) :].decode("utf-8", "replace")
    assert after.count("devconsole: recording stopped: No space left on device (/dev/full)") == 1, terminal.describe()
    assert "Traceback" not in raw.decode("utf-8", "replace"), terminal.describe()


def test_a_recording_masks_insight_as_the_detail_does(tmp_path: Path) -> None:
    body = '{"password": 12345, "pin": {"token": 7}, "api_key": ["k1"], "name": "ada"}'
    event = request(
        1,
        request_body={"content_type": "application/json", "size": len(body), "lines": [body], "truncated": False},
        response={"status_line": "200 OK", "headers": [["Set-Cookie", "sessionid=COOKIE1"], ["X-Api-Key", "HDRKEY"]]},
        sql={"count": 1, "queries": [{"sql": 'SELECT 1 WHERE "session_key" = %s', "params": ["'SQLSESSION'"]}]},
        exception={"type": "E", "message": "", "frames": [{"locals": [["password", "'LOCALPW'"], ["n", "1"]]}]},
    )
    masked = recorded(tmp_path / "masked.jsonl", event)
    text = (tmp_path / "masked.jsonl").read_text()
    for secret in ("12345", ": 7", "k1", "COOKIE1", "HDRKEY", "SQLSESSION", "LOCALPW"):
        assert secret not in text, secret
    assert json.loads(masked["request_body"]["lines"][0]) == {
        "password": MASK,
        "pin": {"token": MASK},
        "api_key": MASK,
        "name": "ada",
    }
    assert masked["exception"]["frames"][0]["locals"] == [["password", MASK], ["n", "1"]]
    clear = recorded(tmp_path / "clear.jsonl", event, keep_secrets=True)
    assert clear["request_body"] == event["request_body"]
