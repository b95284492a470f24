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


def clean_value(value: Any, limit: int = 4096) -> Any:
    """Clean every string inside a decoded JSON value (dicts, lists, scalars)."""
    if isinstance(value, str):
        return clean(value, limit)
    if isinstance(value, dict):
        return {clean(str(k), 256): clean_value(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_value(v, limit) for v in value]
    return value
