"""Untrusted text is made safe once, where it enters: every control character
visibly escaped, markup left as the literal characters it is."""

from __future__ import annotations

import json

import pytest

from devconsole.model.sanitize import clean, clean_line, clean_value, json_line_is_clean


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("/ping/?a=1", "/ping/?a=1"),
        ("/[@click=app.quit]x", "/[@click=app.quit]x"),  # inert: never parsed as markup
        ("/\x1b]0;title\x07", "/\\x1b]0;title\\x07"),  # OSC: set the terminal title
        ("/\x1b[31mred", "/\\x1b[31mred"),  # CSI
        ("/\x9bred", "/\\x9bred"),  # C1 CSI, one character
        ("a\x7fb", "a\\x7fb"),  # DEL
        ("a\tb\nc\rd", "a\\tb\\nc\\rd"),
        ("x\u202egnp.exe", "x\\u202egnp.exe"),  # right-to-left override
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),  # printable Unicode stays
        ("\x00", "\\x00"),
    ],
)
def test_clean_escapes_controls_visibly(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in clean(raw))


def test_clean_cuts_long_text() -> None:
    assert clean("x" * 10, limit=4) == "xxxx…"


def test_clean_line_expands_tabs_and_drops_the_line_end() -> None:
    assert clean_line("\tTraceback\r\n") == "    Traceback"


def test_clean_value_reaches_every_string_in_an_event() -> None:
    event = {"type": "request", "path": "/\x1b[2J", "headers": [["X-\x1b", "v\x07"]], "status": 200, "\x1bkey": None}
    assert clean_value(event) == {
        "type": "request",
        "path": "/\\x1b[2J",
        "headers": [["X-\\x1b", "v\\x07"]],
        "status": 200,
        "\\x1bkey": None,
    }


_PING = {
    "type": "request",
    "id": "1.1",
    "path": "/ping/",
    "status": 200,
    "ts": 1796119748.53,
    "headers": [["Host", "127.0.0.1:8000"], ["User-Agent", "wrk"]],
    "response": {"status_line": "200 OK", "body": {"content_type": "text/plain", "size": 4, "lines": ["pong", "]"]}},
}
#: A query as a request's insight carries it (a line of forty is over 4 KiB).
_QUERY = {
    "sql": 'SELECT %s AS "a" FROM "shop_product" WHERE "shop_product"."id" = %s LIMIT 1',
    "params": ["1", "7"],
    "alias": "default",
    "ms": 0.171,
    "where": {"file": "/srv/project/shop/views.py", "line": 100, "function": "queries"},
}


@pytest.mark.parametrize(
    ("event", "clean_already", "changed"),
    [
        (_PING, True, False),
        ({**_PING, "path": "/\x1b[31mred"}, False, True),  # an escape sequence
        ({**_PING, "path": "/a\x7fb"}, False, True),  # DEL
        ({**_PING, "path": "/caf\u00e9"}, False, False),  # non-ASCII: checked the slow way
        ({**_PING, "path": "/" + "x" * 5000}, False, True),  # over the limit: cut
        ({**_PING, "k" * 300: 1}, False, True),  # a key over 256 characters: cut
        ({**_PING, "k" * 256: 1}, True, False),
        ({**_PING, "response": {"body": {"content_type": "x", "lines": [1, 2]}}}, False, True),  # made strings
        ({**_PING, "response": {"body": {"content_type": "x", "lines": [1] * 2001}}}, False, True),  # truncated
        ({**_PING, "response": {"body": {"content_type": "x", "lines": ["a"] * 2001}}}, False, True),  # strings too
        ({**_PING, "response": {"body": {"content_type": "x", "lines": ["a"] * 2000}}}, True, False),
        ({**_PING, "note": "lines"}, False, False),  # "lines" elsewhere: the slow path
        ({**_PING, "sql": {"queries": [_QUERY] * 40}}, True, False),  # a long line of short strings
        ({**_PING, "sql": {"queries": [_QUERY] * 40, "note": "x" * 4096}}, True, False),  # the longest kept
        ({**_PING, "sql": {"queries": [_QUERY] * 40, "note": "x" * 4097}}, False, True),  # one string over: cut
        ({**_PING, "sql": {"queries": [_QUERY] * 40, "note": "\x1b[31m"}}, False, True),
        ({**_PING, "sql": {"queries": [_QUERY] * 40, "note": '"' * 2048}}, True, False),  # escaped quotes
        (
            {**_PING, "sql": {"queries": [_QUERY] * 40, "note": '"' * 2049}},
            False,
            False,
        ),  # as long as 4098: the slow way
        ({**_PING, "path": '/a\\"b\\', "query": "\\n"}, False, False),  # a backslash: the slow way
        ({**_PING, "path": '/a\\"b\\\n'}, False, True),  # then a line break
        ({**_PING, "path": "/a\\\u0085"}, False, True),  # then a C1 control
    ],
)
def test_json_line_is_clean_only_when_cleaning_changes_nothing(event: dict, clean_already: bool, changed: bool) -> None:
    line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    assert json_line_is_clean(line) is clean_already
    assert (clean_value(json.loads(line)) != json.loads(line)) is changed


def test_json_line_is_clean_sees_a_long_key_written_with_spaces() -> None:
    line = b'{"type":"x","' + b"k" * 300 + b'" : 1}\n'
    assert not json_line_is_clean(line)
    assert clean_value(json.loads(line)) != json.loads(line)


def test_json_line_is_clean_under_a_short_limit() -> None:
    line = b'{"type":"x","a":"' + b"b" * 101 + b'"}\n'
    assert not json_line_is_clean(line, limit=100)
    assert clean_value(json.loads(line), limit=100) != json.loads(line)
    assert json_line_is_clean(line, limit=101)


def test_json_line_is_clean_never_passes_a_utf16_line() -> None:
    """ASCII bytes that the JSON decoder reads as UTF-16 (it guesses from NUL
    bytes): here a right-to-left override."""
    line = '{"type":"x","a":"\u202e"}'.encode("utf-16-le")
    assert line.isascii() and "\u202e" in json.loads(line)["a"]
    assert not json_line_is_clean(line)
