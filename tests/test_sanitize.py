"""Untrusted text is made safe once, where it enters: every control character
visibly escaped, markup left as the literal characters it is."""

from __future__ import annotations

import pytest

from devconsole.model.sanitize import clean, clean_line, clean_value


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
