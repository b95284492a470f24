"""Make untrusted text safe to show.

Request paths, headers, log lines and command output come from whoever can
reach the port or from the project's code. They are cleaned once, where events
enter the console, so nothing downstream has to think about it:

* C0 and C1 control characters, DEL, and Unicode bidi overrides are replaced by
  visible escapes (``\\x1b``), so no escape sequence reaches the terminal;
* the result is plain text: widgets receive it as ``rich.text.Text`` /
  ``Content``, never as markup.
"""

from __future__ import annotations

import re
from typing import Any

# C0 (minus nothing: tabs and newlines are escaped too, callers split lines
# first), DEL, C1, bidi embeddings/overrides/isolates, line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str, limit: int = 4096) -> str:
    """``text`` with every control character visibly escaped, cut at ``limit``."""
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isascii() and text.isprintable():
        return text  # the common case, checked in C: nothing to escape
    return _UNSAFE.sub(_escape, text)


def clean_line(text: str, limit: int = 4096) -> str:
    """One line of output: tabs expanded, trailing CR dropped, the rest escaped."""
    return clean(text.rstrip("\r\n").expandtabs(4), limit)


def clean_text(text: str, limit: int = 4096) -> str:
    """Several lines (a traceback, a help text): line breaks kept, each line
    cleaned as by :func:`clean_line`. Idempotent."""
    return "\n".join(clean_line(line, limit) for line in text.split("\n"))


#: ``ESC [ params m``: Select Graphic Rendition (colours, bold), the one escape sequence output may keep.
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_SGR_SPLIT = re.compile(r"(\x1b\[[0-9;:]*m)")


def clean_colour_line(raw: str, limit: int = 4096) -> str:
    """One line of a program's output, safe to show with its colours: SGR
    sequences kept (for ``Text.from_ansi``), every other control character
    (other escape sequences included) visibly escaped. A carriage return
    inside the line keeps what a terminal would show: the text after the
    last one (progress bars)."""
    raw = raw.rstrip("\r\n")
    if "\r" in raw:
        raw = raw.rsplit("\r", 1)[-1] or raw.replace("\r", "")
    raw = raw.expandtabs(4)
    if len(raw) > limit:
        raw = raw[:limit] + "…"
    if "\x1b" not in raw:
        return clean(raw, limit + 1)
    parts = _SGR_SPLIT.split(raw)
    # split with a group: odd items are the SGR sequences themselves.
    return "".join(part if i % 2 else clean(part, limit + 1) for i, part in enumerate(parts))


def strip_sgr(text: str) -> str:
    """The plain text of a line cleaned by :func:`clean_colour_line`."""
    return _SGR.sub("", text) if "\x1b" in text else text


#: Characters of one line of a body preview (the child keeps 16 KiB of a body:
#: a line is never cut unless a child sends more than it should).
BODY_LINE_LIMIT = 16 * 1024
#: Lines of a body preview kept (the child sends no more).
BODY_LINES = 2000


def _clean_preview(value: dict[str, Any], out: dict[str, Any]) -> None:
    """A body preview's lines (``out`` is the rest, cleaned): bounded by
    :data:`BODY_LINE_LIMIT`, not the usual limit, and a preview with a line
    cut here says it is ``truncated`` (curl must not send it as whole)."""
    lines = value["lines"]
    cut = False
    kept = []
    for line in lines[:BODY_LINES]:
        text = line if type(line) is str else str(line)
        cut = cut or len(text) > BODY_LINE_LIMIT
        kept.append(clean(text, BODY_LINE_LIMIT))
    out["lines"] = kept
    if cut or len(lines) > BODY_LINES:
        out["truncated"] = True


#: Decoded JSON values with no text inside.
_SCALARS = frozenset({int, float, bool, type(None)})


#: A key longer than :func:`clean_value` keeps (a false match only costs the slow path).
_LONG_KEY = re.compile(rb'"[^"]{257,}"\s*:')
#: An escape other than ``\\"`` (``\\\\`` too: telling its pairs apart is not worth it).
_OTHER_ESCAPE = re.compile(rb'\\[^"]')
#: A stretch over 256 bytes after a quote: a string may be too long (each
#: stretch is scanned from its two ends only, so these searches are linear).
_OVER_256 = re.compile(rb'"[^"]{257}')
#: A string longer than :func:`clean_value` keeps.
_LONG_STRING = re.compile(rb'"[^"]{4097}')


def _long_string(limit: int) -> re.Pattern[bytes]:
    return re.compile(rb'"[^"]{%d}' % (limit + 1))


#: A body preview's ``lines`` holding nothing but strings, as the child encodes it.
_STRING_LINES = re.compile(rb'"lines":\[(?:"[^"]*"(?:,"[^"]*")*)?\]')


def json_line_is_clean(line: bytes, limit: int = 4096) -> bool:
    """Whether :func:`clean_value` would give the JSON value on ``line`` back
    unchanged, told from the bytes alone (True only when that is certain).

    A line of ASCII whose only escapes are ``\\"`` (SQL quotes its names: a
    request's queries are full of them) holds no control character and no
    non-ASCII text (the encoder escapes the one, the ASCII test sees the
    other). With each of those escapes made two plain bytes, no string is
    longer than the longest stretch after a quote. What is left: a key over
    256 characters, and a body preview's ``lines`` that are not all
    strings. An event line of a busy server is mostly like that, and the
    check costs a few scans in C against a walk of every value in Python
    (about half, for a request of twenty queries)."""
    # A NUL byte: the JSON decoder would read the line as UTF-16, not ASCII.
    if not line.isascii() or b"\x7f" in line or b"\x00" in line:
        return False
    if b"\\" in line:
        if _OTHER_ESCAPE.search(line) is not None:
            return False
        line = line.replace(b'\\"', b"__")  # as long: a string is never found shorter than it is
    if limit < 256:
        if _long_string(limit).search(line) is not None:  # a key over 256 is a string over the limit too
            return False
    elif len(line) > 256 and _OVER_256.search(line) is not None:
        if _LONG_KEY.search(line) is not None:
            return False
        if len(line) > limit and (_LONG_STRING if limit == 4096 else _long_string(limit)).search(line) is not None:
            return False
    mentions = line.count(b'"lines"')
    if not mentions:
        return True
    found = _STRING_LINES.findall(line)
    # Every preview all strings, and none over the lines a preview keeps
    # (its strings hold no quote: items are one more than the separators).
    return len(found) == mentions and all(lines.count(b'","') < BODY_LINES for lines in found)


def clean_value(value: Any, limit: int = 4096) -> Any:
    """Clean every string inside a decoded JSON value (dicts, lists, scalars).

    A request's insight holds hundreds of strings (its queries): numbers and
    short safe strings are taken as they are without a call per value."""
    kind = type(value)
    if kind is str:
        if len(value) <= limit and value.isascii() and value.isprintable():
            return value
        return clean(value, limit)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if not (type(key) is str and len(key) <= 256 and key.isascii() and key.isprintable()):
                key = clean(str(key), 256)
            item_kind = type(item)
            if item_kind in _SCALARS:
                out[key] = item
            elif item_kind is str and len(item) <= limit and item.isascii() and item.isprintable():
                out[key] = item
            else:
                out[key] = clean_value(item, limit)
        if type(value.get("lines")) is list and "content_type" in value:
            _clean_preview(value, out)
        return out
    if kind is list:
        # Header pairs and query lists: plain short strings need no call each.
        return [
            item
            if type(item) is str and len(item) <= limit and item.isascii() and item.isprintable()
            else item
            if type(item) in _SCALARS
            else clean_value(item, limit)
            for item in value
        ]
    if isinstance(value, str):  # a str subclass
        return clean(value, limit)
    return value
