"""ServerState, the bounded event store the panels read: totals stay exact
when rows are trimmed, replays are deterministic, and it is safe to feed from
threads while the UI reads it."""

from __future__ import annotations

import threading
from pathlib import Path

from devconsole.model.recording import load_recording, play
from devconsole.model.state import RequestRow, ServerState, request_filter

RECORDING = Path(__file__).parent / "recordings" / "demo.jsonl"


def request(
    n: int, *, status: int = 200, path: str = "/ping/", ts: float = 1000.0, method: str = "GET", generation: int = 1
) -> dict:
    return {
        "type": "request",
        "id": f"1.{n}",
        "conn": 1,
        "method": method,
        "path": path,
        "query": "",
        "version": "HTTP/1.1",
        "status": status,
        "duration_ms": 1.0,
        "bytes_out": 4,
        "thread": "Thread-1",
        "ts": ts + n / 1000,
        "headers": [],
        "generation": generation,
    }


def stats(total: int, generation: int = 1, at: float | None = None, **status: int) -> dict:
    event = {
        "type": "stats",
        "requests": total,
        "connections": total,
        "dropped": 0,
        "status": dict(status) or {"2xx": total},
        "generation": generation,
    }
    if at is not None:
        event["at"] = at
    return event


def test_requests_are_capped_and_totals_stay_exact() -> None:
    state = ServerState(max_requests=100)
    for n in range(1, 351):
        state.ingest(request(n))
    state.ingest(stats(350))
    assert len(state.requests) == 100
    assert state.requests[0].seq == 251 and state.requests[-1].seq == 350
    assert state.total_requests == 350
    assert [row.seq for row in state.requests_since(340)] == list(range(341, 351))
    assert state.requests_since(350) == []
    # A row trimmed away is no longer found; a kept one is, by sequence number.
    assert state.request(10) is None
    assert state.request(300).id == "1.300"


def test_totals_add_up_across_generations() -> None:
    state = ServerState()
    state.ingest({"type": "hello", "generation": 1, "listen": {"host": "127.0.0.1", "port": 1}})
    state.ingest(stats(40, generation=1, **{"2xx": 30, "4xx": 10}))
    state.ingest({"type": "hello", "generation": 2, "listen": {"host": "127.0.0.1", "port": 1}})
    state.ingest(stats(5, generation=2, **{"2xx": 4, "5xx": 1}))
    assert state.total_requests == 45
    assert state.status_counts() == {"2xx": 34, "4xx": 10, "5xx": 1}


def test_request_filter_words() -> None:
    state = ServerState()
    rows = [
        request(1, status=200, path="/static/app.css"),
        request(2, status=404, path="/nope/"),
        request(3, status=500, path="/boom/"),
        request(4, status=404, path="/static/x.js", method="POST"),
    ]
    for event in rows:
        state.ingest(event)

    def matching(text: str) -> list[RequestRow]:
        return [row for row in state.requests_since(0) if request_filter(text)(row)]

    assert [r.path for r in matching("4xx")] == ["/nope/", "/static/x.js"]
    assert [r.path for r in matching("static")] == ["/static/app.css", "/static/x.js"]
    assert [r.path for r in matching("static !4xx")] == ["/static/app.css"]
    assert [r.path for r in matching("500")] == ["/boom/"]
    assert [r.path for r in matching("POST")] == ["/static/x.js"]
    assert [r.path for r in matching("  ")] == [r.path for r in state.requests]
    # Brackets are text, not syntax.
    assert request_filter("[/bar]")(state.requests[0]) is False


def test_arrival_times_drive_rates_and_sparkline() -> None:
    now = [2000.0]
    state = ServerState(clock=lambda: now[0])
    for second in range(10):
        at = 1990.0 + second
        state.ingest(
            {
                "type": "loop",
                "iterations": 10,
                "ready": 5,
                "timeouts": 5,
                "blocked_s": 0.5,
                "elapsed_s": 1.0,
                "accepts": second,
                "at": at,
            }
        )
        state.ingest(stats(second * 10, at=at))
    accepts = state.accepts_per_second(60)
    assert len(accepts) == 60
    # Seconds 1990..1999 carry their accepts; "now" (2000) has had none yet.
    assert accepts[-11:] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 0.0]
    # 10 requests a second, measured from the cumulative totals.
    assert abs(state.requests_per_second(3.0) - 10.0) < 2.6
    assert state.loop.ready_share == 0.5
    # Quiet for longer than the window: the rate falls.
    now[0] = 2030.0
    assert state.requests_per_second(3.0) < 3.0


def test_a_first_request_just_after_start_is_not_a_burst() -> None:
    """One request 30 ms after the first sample: a rate over at least a
    second (1/s), not 1 / 0.03 s."""
    now = [500.0]
    state = ServerState(clock=lambda: now[0])
    state.ingest(stats(0, at=500.0))
    state.ingest(stats(1, at=500.03))
    now[0] = 500.03
    assert state.requests_per_second(3.0) == 1.0
    # Over a full second of history the span is the one measured.
    now[0] = 502.0
    assert state.requests_per_second(3.0) == 0.5


def test_closed_connections_linger_then_go() -> None:
    now = [100.0]
    state = ServerState(linger=3.0, clock=lambda: now[0])
    state.ingest(
        {"type": "conn_open", "id": 1, "peer": "127.0.0.1:5000", "state": "reading", "ts": 99.0, "generation": 1}
    )
    state.ingest({"type": "conn_state", "id": 1, "state": "idle", "requests": 1, "bytes_in": 80, "generation": 1})
    assert state.connection(1, 1).state == "idle"
    state.ingest({"type": "conn_close", "id": 1, "generation": 1})
    now[0] = 102.0
    assert [c.state for c in state.connections()] == ["closed"]
    now[0] = 103.5
    assert state.connections() == []


def test_thousands_of_closed_connections_go_in_the_order_they_closed() -> None:
    """``Connection: close`` at full rate leaves thousands lingering: each goes
    exactly ``linger`` after its close, whatever the order of the events, and
    one closed twice (its close, then its generation's end) goes once, after
    the later close."""
    now = [100.0]
    state = ServerState(linger=3.0, clock=lambda: now[0])
    for n in range(3000):
        now[0] = 100.0 + n / 1000
        state.ingest({"type": "conn_open", "id": n, "peer": "127.0.0.1:5000", "state": "reading", "generation": 1})
        state.ingest({"type": "conn_close", "id": n, "generation": 1})
    state.ingest({"type": "conn_open", "id": 9999, "peer": "127.0.0.1:6000", "state": "idle", "generation": 1})
    now[0] = 103.5  # closed before 100.5 are gone: ids 0..499
    ids = sorted(row.id for row in state.connections())
    assert ids[:2] == [500, 501] and ids[-2:] == [2999, 9999] and len(ids) == 2501
    state.ingest({"type": "conn_close", "id": 9999, "generation": 1})  # closes at 103.5
    state.ingest({"type": "exit", "returncode": 0, "generation": 1})  # the generation's end closes nothing more
    now[0] = 106.4
    assert [row.id for row in state.connections()] == [9999]
    now[0] = 106.6
    assert state.connections() == []


def test_a_connection_reported_only_by_its_close_lingers_too() -> None:
    """A connection opened and closed between two flushes comes as one conn_close."""
    now = [100.0]
    state = ServerState(linger=3.0, clock=lambda: now[0])
    state.ingest(
        {
            "type": "conn_close",
            "id": 7,
            "peer": "127.0.0.1:5001",
            "state": "closed",
            "requests": 1,
            "bytes_in": 83,
            "bytes_out": 271,
            "ts": 99.9,
            "generation": 1,
        }
    )
    (row,) = state.connections()
    assert (row.peer, row.state, row.requests, row.bytes_out) == ("127.0.0.1:5001", "closed", 1, 271)
    now[0] = 103.5
    assert state.connections() == []


def test_recording_replays_deterministically() -> None:
    recording = load_recording(RECORDING)
    started = float(recording.header["started"])
    end = started + recording.duration

    def replay() -> ServerState:
        state = ServerState(clock=lambda: end)
        play(recording, lambda e: state.ingest({**e, "at": started + float(e.get("rt") or 0.0)}))
        return state

    one, two = replay(), replay()
    assert one.total_requests == two.total_requests == len([e for e in recording.events if e["type"] == "request"])
    assert one.accepts_per_second() == two.accepts_per_second()
    assert sum(one.accepts_per_second()) > 0
    assert [c.state for c in one.connections()] == [c.state for c in two.connections()]
    assert {"reading", "handling", "idle"} <= {c.state for c in one.connections()}
    assert [r.decision for r in one.reloads] == ["restarted", "handled", "ignored", "failed"]
    assert one.requests_per_second() == two.requests_per_second()


def test_ingest_from_threads_while_reading() -> None:
    state = ServerState(max_requests=500)
    stop = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        seq = 0
        while not stop.is_set():
            rows = state.requests_since(seq)
            if rows:
                assert all(a.seq < b.seq for a, b in zip(rows, rows[1:], strict=False))
                seq = rows[-1].seq
                seen.append(seq)
            [row for row in state.requests_since(0) if request_filter("4xx")(row)]
            state.status_counts()

    def writer(offset: int) -> None:
        for n in range(2000):
            state.ingest(request(offset + n, status=404 if n % 3 else 200))

    reading = threading.Thread(target=reader)
    reading.start()
    writers = [threading.Thread(target=writer, args=(k * 10000,)) for k in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reading.join()
    assert state.request_seq == 8000
    assert len(state.requests) == 500
    assert seen and seen[-1] <= 8000


def test_totals_stay_exact_while_a_generation_drains_after_the_next_said_hello() -> None:
    """Fork-mode reload: the old child still reports after the new one's hello."""
    state = ServerState()
    state.ingest({"type": "hello", "generation": 1})
    state.ingest({"type": "stats", "generation": 1, "requests": 10, "connections": 2, "status": {"2xx": 10}})
    state.ingest({"type": "hello", "generation": 2})
    state.ingest({"type": "stats", "generation": 1, "requests": 12, "connections": 2, "status": {"2xx": 12}})
    assert state.total_requests == 12
    state.ingest({"type": "stats", "generation": 2, "requests": 1, "connections": 1, "status": {"4xx": 1}})
    assert state.total_requests == 13 and state.total_connections == 3
    assert state.status_counts() == {"2xx": 12, "4xx": 1}
    # Many reloads later the old generations are folded, the totals unchanged.
    for generation in range(3, 40):
        state.ingest({"type": "hello", "generation": generation})
        state.ingest({"type": "stats", "generation": generation, "requests": 1, "connections": 1, "status": {"2xx": 1}})
    assert state.total_requests == 13 + 37 and state.status_counts() == {"2xx": 12 + 37, "4xx": 1}
    assert len(state._gen_stats) <= 9


def test_closed_connections_go_even_when_nobody_looks() -> None:
    now = [1000.0]
    state = ServerState(linger=3.0, clock=lambda: now[0])
    state.ingest({"type": "hello", "generation": 1})
    for conn in range(1, 101):
        state.ingest({"type": "conn_close", "generation": 1, "id": conn, "peer": "127.0.0.1:1", "at": now[0]})
    assert len(state.conns) == 100
    now[0] += 10
    state.ingest({"type": "stats", "generation": 1, "requests": 100, "connections": 100, "at": now[0]})
    assert state.conns == {}  # no connections() call needed


def test_a_total_sent_after_its_generation_was_folded_is_not_counted_twice() -> None:
    state = ServerState()
    state.ingest({"type": "hello", "generation": 1})
    state.ingest({"type": "stats", "generation": 1, "requests": 100, "connections": 5, "status": {"2xx": 100}})
    # Many reloads while generation 1 still drains (a reader that lags behind).
    for generation in range(2, 20):
        state.ingest({"type": "hello", "generation": generation})
        state.ingest({"type": "stats", "generation": generation, "requests": 1, "connections": 1, "status": {"2xx": 1}})
    assert state.total_requests == 100 + 18
    # Folded by now; its next running total adds only its 20 new requests.
    state.ingest({"type": "stats", "generation": 1, "requests": 120, "connections": 5, "status": {"2xx": 120}})
    assert state.total_requests == 120 + 18
    assert state.total_connections == 5 + 18
    assert state.status_counts() == {"2xx": 120 + 18}
    state.ingest({"type": "stats", "generation": 1, "requests": 120, "connections": 5, "status": {"2xx": 120}})
    assert state.total_requests == 120 + 18


def test_a_generation_is_folded_at_its_exit_and_a_late_total_adds_only_what_is_new() -> None:
    state = ServerState()
    state.ingest({"type": "hello", "generation": 1})
    state.ingest({"type": "stats", "generation": 1, "requests": 7, "connections": 1, "status": {"2xx": 7}})
    state.ingest({"type": "hello", "generation": 2})
    state.ingest({"type": "exit", "generation": 1, "returncode": 0})
    assert 1 not in state._gen_stats and state.total_requests == 7
    state.ingest({"type": "stats", "generation": 1, "requests": 9, "connections": 1, "status": {"2xx": 9}})
    assert state.total_requests == 9 and state.status_counts() == {"2xx": 9}


def _conn(kind: str, generation: int, state: str, **extra: object) -> dict:
    event = {
        "type": kind,
        "id": 7,
        "peer": "127.0.0.1:5000",
        "state": state,
        "thread": "Thread-7",
        "bytes_in": 100,
        "bytes_out": 40,
        "requests": 0,
        "ts": 1000.0,
        "generation": generation,
    }
    return event | extra


def test_live_reload_pages_and_skips() -> None:
    state = ServerState(clock=lambda: 1000.0)
    assert state.live_reload is None  # an older recording: nothing said
    state.ingest({"type": "hello", "generation": 2})
    state.ingest({"type": "livereload", "enabled": True, "debug": True, "pages": 2, "generation": 2})
    assert state.live_reload is not None and state.live_reload.text == "live reload · 2 pages"
    # The old generation ending its streams does not count against the new one.
    state.ingest({"type": "livereload", "enabled": True, "debug": True, "pages": 0, "generation": 1})
    assert state.live_reload.text == "live reload · 2 pages"
    state.ingest({"type": "livereload", "enabled": True, "debug": True, "pages": 1, "generation": 2})
    assert state.live_reload.text == "live reload · 1 page"
    state.ingest({"type": "livereload", "enabled": False, "debug": True, "pages": 0, "generation": 2})
    assert state.live_reload.text == "live reload off"
    state.ingest({"type": "livereload", "enabled": True, "debug": False, "pages": 0, "generation": 2})
    assert state.live_reload.text == "live reload off (DEBUG is False)"
    # A page's stream: its page, never a request in flight, never a cut row when its generation exits.
    state.ingest(_conn("conn_open", 2, "livereload", method="GET", path="/__devconsole__/events", page="/shop/"))
    (row,) = state.connections()
    assert (row.state, row.page) == ("livereload", "/shop/")
    assert state.in_flight() == []
    state.ingest({"type": "exit", "returncode": 0, "generation": 2, "ts": 1001.0})
    assert not state.requests and state.cut_requests == 0
    state.ingest({"type": "livereload_skip", "path": "/csp/", "reason": "its CSP says no", "generation": 2})
    assert state.log[-1].text == "devconsole: live reload: /csp/ does not follow the code: its CSP says no"
    assert state.invalid_events.count == 0 and state.unknown_events.count == 0


def test_insight_is_masked_when_asked_for_and_kept_for_the_newest_requests_only() -> None:
    from devconsole.model import insight as insight_model
    from devconsole.model.secrets import MASK

    state = ServerState()
    for n in range(1, insight_model.MAX_KEPT + 3):
        event = request(n)
        event["response"] = {"status_line": "200 OK", "headers": [["Set-Cookie", f"sessionid=s{n}"]]}
        state.ingest(event)
    state.ingest(request(insight_model.MAX_KEPT + 3))  # no insight at all
    newest = state.requests[-2].seq
    insight = state.insight(newest)
    assert insight is not None and insight.response is not None
    assert insight.response["headers"] == [["Set-Cookie", MASK]]
    assert state.insight(newest) is insight  # masked once
    assert state.insight(state.requests[-1].seq) is None
    assert state.insight(state.requests[0].seq) is None  # beyond the newest kept
    assert state.insight(state.requests[1].seq) is None
    assert state.insight(state.requests[2].seq) is not None


def test_rows_since_a_seq_are_the_newer_ones_with_or_without_gaps() -> None:
    state = ServerState(max_requests=50)
    for n in range(1, 121):
        state.ingest(request(n))
    seqs = [row.seq for row in state.requests]
    assert seqs == list(range(71, 121))
    for seq in (0, 70, 71, 100, 119, 120, 500):
        assert [row.seq for row in state.requests_since(seq)] == [s for s in seqs if s > seq]
    from collections import deque

    from devconsole.model.state import _since

    gaps = deque(RequestRow(**{**vars(state.requests[0]), "seq": s}) for s in (3, 5, 9))
    assert [row.seq for row in _since(gaps, 4)] == [5, 9]
    assert _since(gaps, 9) == []
