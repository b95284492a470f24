"""The event protocol: one definition per event type, checked where events
are applied; the docstring names exactly the fields; versions are checked."""

from __future__ import annotations

import enum
import json
import re
import typing
from pathlib import Path

import pytest

from devconsole.model import state as state_module
from devconsole.model.recording import load_recording
from devconsole.model.state import ServerState
from devconsole.wire import events, protocol

RECORDING = Path(__file__).parent / "recordings" / "demo.jsonl"


def _doc_sections() -> dict[str, str]:
    """Each event's paragraph in the protocol docstring, by type."""
    doc = protocol.__doc__ or ""
    sections: dict[str, str] = {}
    current: list[str] = []
    for line in doc.splitlines():
        if line.startswith("``"):  # a heading line: ``name`` or ``a`` / ``b``
            current = re.findall(r"``(\w+)``", line)
            for kind in current:
                sections[kind] = ""
        elif line.startswith("    ") and current:
            for kind in current:
                sections[kind] += line + "\n"
        elif not line.strip():
            continue
        else:
            current = []
    return sections


def _literal_values(definition: type) -> set[str]:
    values: set[str] = set()

    def walk(tp: object) -> None:
        if typing.get_origin(tp) is typing.Literal:
            values.update(str(v) for v in typing.get_args(tp))
        for arg in typing.get_args(tp):
            walk(arg)
        if typing.is_typeddict(tp):
            for inner in typing.get_type_hints(tp).values():
                walk(inner)

    walk(definition)
    return values


def test_the_docstring_lists_exactly_the_defined_events() -> None:
    assert set(_doc_sections()) == set(events.DEFINITIONS)


@pytest.mark.parametrize("kind", sorted(events.DEFINITIONS))
def test_the_docstring_names_every_field_and_no_other(kind: events.EventType) -> None:
    section = _doc_sections()[kind]
    named = set(re.findall(r"``\[?([a-z_]+)", section))
    fields = {name.rpartition(".")[2] for name in events.field_names(kind)}
    assert fields - named == set(), f"{kind}: fields not in the docstring"
    # Anything else named is a value the definition allows (a state, a decision...)
    # or another event type mentioned in passing.
    allowed = fields | _literal_values(events.DEFINITIONS[kind]) | set(events.DEFINITIONS)
    extra = named - allowed - {"directory", "glob", "name", "value", "detect", "stop", "start", "ready"}
    assert extra == set(), f"{kind}: the docstring names what the definition does not"


def test_every_defined_type_has_its_entry_in_the_state_table() -> None:
    assert set(state_module._HANDLERS) == set(events.DEFINITIONS)
    assert events.CHILD_EVENTS | events.CONSOLE_EVENTS == set(events.DEFINITIONS)
    assert not events.CHILD_EVENTS & events.CONSOLE_EVENTS


def test_a_recorded_session_matches_the_definitions() -> None:
    recording = load_recording(RECORDING)
    kinds = set()
    for event in recording.events:
        assert events.is_known(event["type"]), event["type"]
        assert events.problem(event) is None, event
        kinds.add(event["type"])
    assert {"hello", "request", "conn_open", "conn_close", "loop", "stats", "log", "reload"} <= kinds


def test_wrong_field_types_are_named() -> None:
    assert events.problem({"type": "request", "status": "200"}) == "request.status: '200' is not int or null"
    assert events.problem({"type": "request", "headers": [["a", 1]]}) is not None
    assert events.problem({"type": "hello", "listen": {"host": "h", "port": "80"}}) is not None
    assert events.problem({"type": "conn_state", "state": "dancing"}) is not None
    assert events.problem({"type": "loop", "iterations": True}) is not None
    # Ints are fine where a float is expected; a missing field is no problem.
    assert events.problem({"type": "loop", "blocked_s": 0}) is None
    assert events.problem({"type": "request"}) is None


def test_an_unknown_type_is_counted_and_shown_never_applied() -> None:
    state = ServerState()
    state.ingest({"type": "quantum", "x": 1})
    state.ingest({"type": "quantum"})
    state.ingest({"type": "other"})
    assert state.unknown_events.count == 3
    assert state.unknown_events.first == "quantum"
    assert any("unknown type" in line.text and "quantum" in line.text for line in state.log)


def test_a_malformed_event_is_counted_and_does_not_crash_the_state() -> None:
    state = ServerState()
    state.ingest({"type": "request", "id": "1.1", "status": "oops", "path": "/x"})
    state.ingest({"type": "hello", "generation": 1, "runserver": "not a dict"})
    state.ingest({"type": "stats", "requests": "many"})
    assert state.invalid_events.count == 3
    assert state.invalid_events.first.startswith("request.status")
    assert not state.requests and state.hello is None and state.total_requests == 0
    # A good one still goes through.
    state.ingest({"type": "request", "id": "1.2", "status": 200, "path": "/y"})
    assert [row.path for row in state.requests] == ["/y"]


def test_a_hello_in_another_protocol_version_is_one_error_line() -> None:
    line = json.dumps({"type": "hello", "v": protocol.PROTOCOL_VERSION + 1, "generation": 3, "pid": 1})
    event = protocol.decode(line)
    assert event is not None and event["type"] == "error" and event["phase"] == "protocol"
    assert event["generation"] == 3
    assert event["message"] == (
        f"server child speaks protocol {protocol.PROTOCOL_VERSION + 1}, this console {protocol.PROTOCOL_VERSION}: "
        "devconsole differs between the project's interpreter and the console — reinstall it there"
    )
    state = ServerState()
    state.ingest(event)
    assert state.status == "error" and state.hello is None
    assert state.errors[-1].message == event["message"]
    good = protocol.decode(json.dumps({"type": "hello", "v": protocol.PROTOCOL_VERSION, "generation": 1}))
    assert good is not None and good["type"] == "hello"


def test_decode_passes_unknown_types_on_and_refuses_what_is_not_an_event() -> None:
    assert protocol.decode('{"type": "quantum"}') == {"type": "quantum"}
    assert protocol.decode("[1, 2]") is None
    assert protocol.decode('{"no": "type"}') is None
    assert protocol.decode(b"\xff\xfe") is None


class _Decision(str, enum.Enum):
    RESTARTED = "restarted"


#: Values of every JSON shape (and a few Python ones the console side makes).
_PROBES: list[object] = [
    None,
    True,
    False,
    0,
    7,
    -1,
    1.5,
    float("nan"),
    "",
    "x",
    "restarted",
    "closed",
    "events",
    _Decision.RESTARTED,
    [],
    ["a"],
    [1],
    [["a", "b"]],
    [["a", 1]],
    [[]],
    ["a", None],
    [{"name": "p", "ms": 1.0}],
    [{"name": "p", "ms": "1"}],
    [{"level": "ERROR", "id": "x", "msg": "m", "obj": "o", "hint": ""}],
    {},
    {"2xx": 3},
    {"2xx": "3"},
    {"2xx": True},
    {"host": "h", "port": 80},
    {"host": "h", "port": "80"},
    {"class": "c", "app": "a", "mro": ["m"], "shadows": []},
    {"class": 1},
    {"a": 1.5},
]


def _generic_problem(event: dict[str, object]) -> str | None:
    """The field-by-field check the fast path stands in for (names the first problem)."""
    kind = str(event["type"])
    found = events._first_problem(event, events._fields(events.DEFINITIONS[kind]))  # type: ignore[index]
    return f"{kind}.{found}" if found is not None else None


def _samples() -> dict[str, dict[str, object]]:
    """One valid event of each recorded type, from the demo recording."""
    found: dict[str, dict[str, object]] = {}
    for event in load_recording(RECORDING).events:
        found.setdefault(event["type"], dict(event))
    return found


@pytest.mark.parametrize("kind", sorted(events.DEFINITIONS))
def test_the_fast_check_answers_exactly_as_the_field_by_field_one(kind: events.EventType) -> None:
    base = _samples().get(kind, {"type": kind})
    names = [name for name in typing.get_type_hints(events.DEFINITIONS[kind]) if name != "type"]
    checked = 0
    for name in names:
        for probe in _PROBES:
            event = {**base, name: probe}
            assert events.problem(event) == _generic_problem(event), event
            checked += 1
        # Two wrong fields: the first in the definition's order is named.
        for other in names:
            event = {**base, name: object(), other: object()}
            assert events.problem(event) == _generic_problem(event) is not None
    assert checked == len(names) * len(_PROBES)


def test_valid_events_never_reach_the_field_by_field_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes the check cheap: a valid event is answered by the fast path
    alone (the generic check is only the fallback that names a problem)."""
    monkeypatch.setattr(events, "_CHECKS", {})

    def refuse(*args: object) -> None:
        raise AssertionError("the generic check ran for a valid event")

    monkeypatch.setattr(events, "_first_problem", refuse)
    recorded = [event for event in load_recording(RECORDING).events if events.is_known(event["type"])]
    assert recorded
    for event in recorded:
        assert events.problem(event) is None, event
    # An int where a float is declared, null where allowed, a missing field: still fast.
    assert events.problem({"type": "loop", "blocked_s": 0, "generation": 2}) is None
    assert events.problem({"type": "request", "status": None}) is None
    assert events.problem({"type": "request"}) is None
    with pytest.raises(AssertionError, match="generic check ran"):
        events.problem({"type": "request", "status": "200"})


def test_a_str_enum_for_a_literal_and_a_bool_for_an_int_are_judged_as_before() -> None:
    # The fast path does not take them; the fallback gives the same answers as ever.
    assert events.problem({"type": "reload", "decision": _Decision.RESTARTED}) is None
    assert events.problem({"type": "stats", "requests": True}) == "stats.requests: True is not int"
    assert events.problem({"type": "stats", "status": {"2xx": 1.5}}) == "stats.status: {'2xx': 1.5} is not dict"
    assert events.problem({"type": "conn_state", "state": "dancing"}) == (
        "conn_state.state: 'dancing' is not 'reading' or 'handling' or 'idle' or 'closed' or 'handshake' or "
        "'websocket' or 'closing' or 'livereload'"
    )


def test_a_reloads_steps_and_a_hellos_ahead_are_checked() -> None:
    steps = [{"name": "change noticed", "ms": 1.5}, {"name": "URLconf import", "ms": 12}]
    assert events.problem({"type": "reload", "decision": "restarted", "steps": steps}) is None
    assert events.problem({"type": "reload", "steps": [{"name": "fork", "ms": "1"}]}) is not None
    assert events.problem({"type": "reload", "steps": [["fork", 1.0]]}) is not None
    assert events.problem({"type": "hello", "ahead": 3}) is None
    assert events.problem({"type": "hello", "ahead": "3"}) is not None
