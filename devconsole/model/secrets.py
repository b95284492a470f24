"""Credentials in what the console shows and writes: masked by default.

Cookies, ``Authorization`` and the like, and query or form fields named like
a password, token, secret, key or session. The console's model masks them
where a request enters it (so no view can show them), and a recording masks
them unless ``--record-secrets`` is given.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from devconsole.wire.secretnames import MASK, SECRET_FIELD_WORDS, is_secret_field

__all__ = [
    "MASK",
    "SECRET_FIELD_WORDS",
    "SECRET_HEADERS",
    "body_kind",
    "is_secret_field",
    "mask_body_text",
    "mask_header",
    "mask_json_text",
    "mask_locals",
    "mask_query",
    "mask_secrets",
    "mask_sql_params",
    "mask_urls",
]

#: Header values never shown or written in clear (and any header named like
#: a secret field: ``X-Api-Key``, ``X-CSRFToken``).
SECRET_HEADERS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})
#: ``name=value`` after ``?``, ``&`` or ``;`` in a URL inside text (a log line, a Referer).
_URL_FIELD = re.compile(r"(?<=[?&;])([^=&;?#\s\"'<>]+)=([^&;#\s\"'<>]*)")


def mask_query(query: str) -> str:
    """``query`` (``a=1&token=x``) with the values of secret-named fields masked."""
    if not query:
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, equals, _value = part.partition("=")
        if equals and is_secret_field(name):
            parts[index] = f"{name}={MASK}"
    return "&".join(parts)


def mask_urls(text: str) -> str:
    """``text`` with secret-named query fields of any URL in it masked."""
    if "=" not in text:
        return text
    return _URL_FIELD.sub(lambda m: f"{m.group(1)}={MASK}" if is_secret_field(m.group(1)) else m.group(0), text)


def mask_secrets(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as a recording keeps it by default: the values of
    :data:`SECRET_HEADERS` and of secret-named query fields (in a request's
    query and headers, and in log lines: runserver's request line, a side
    process's output) masked.
    Returns ``event`` itself when there is nothing to mask."""
    kind = event.get("type")
    if kind == "request":
        masked = dict(event)
        if isinstance(event.get("query"), str):
            masked["query"] = mask_query(event["query"])
        headers = event.get("headers")
        if isinstance(headers, list):
            masked["headers"] = [mask_header(item) for item in headers]
        _mask_insight(masked)
        return masked
    if kind in ("log", "process_log") and isinstance(event.get("text"), str):
        text = mask_urls(event["text"])
        return event if text is event["text"] else {**event, "text": text}
    return event


# ------------------------------------------------------- request insight
#
# One implementation for the detail, curl, "send again" and recordings: a
# secret-named key's whole value (a string, a number, a list, an object) is
# masked, at any depth, in the text the console has (sanitized, perhaps cut
# short), so nothing depends on that text still parsing as JSON.

#: A JSON string (one that is cut short runs to the end of the text).
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.S)
#: Whitespace between JSON tokens, as sanitized text has it (``\t`` escaped).
_COLON = re.compile(r"(?:\s|\\[tnr])*:(?:\s|\\[tnr])*")
#: Where a bare JSON value (number, ``true``, ``null``…) ends.
_SCALAR_END = re.compile(r"[,}\]\s\\]")
#: ``name=value`` in text, at its start or after ``&``, ``;``, ``?`` or white space.
_FORM_PAIR = re.compile(r"(?:^|(?<=[&;?\s]))([^=&;?#\s\"'<>]{1,200})=([^&;#\s\"'<>]*)")


def _key(text: str) -> str:
    if "\\" not in text:
        return text
    try:
        return str(json.loads(f'"{text}"'))
    except ValueError:
        return text


def _value_end(text: str, start: int) -> int:
    """Where the JSON value at ``start`` ends (the end of ``text`` when it is cut)."""
    if start >= len(text):
        return start
    first = text[start]
    if first == '"':
        return _STRING.match(text, start).end()  # type: ignore[union-attr]  # always matches at a quote
    if first in "[{":
        depth, index = 0, start
        while index < len(text):
            char = text[index]
            if char == '"':
                index = _STRING.match(text, index).end()  # type: ignore[union-attr]
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return index + 1
            index += 1
        return len(text)
    found = _SCALAR_END.search(text, start)
    return found.start() if found else len(text)


def mask_json_text(text: str, names: list[str]) -> str:
    """``text`` (JSON, or what is left of it) with the value of every
    secret-named key masked, at any depth; adds the keys to ``names``."""
    if '"' not in text:
        return text
    out: list[str] = []
    done = 0
    index = text.find('"')
    while index != -1:
        string = _STRING.match(text, index)
        assert string is not None  # a quote always starts one
        end = string.end()
        colon = _COLON.match(text, end)
        if colon is not None and is_secret_field(_key(string.group(1))):
            value_start = colon.end()
            value_end = _value_end(text, value_start)
            out += [text[done:value_start], f'"{MASK}"']
            names.append(_key(string.group(1)))
            done = value_end
            index = text.find('"', value_end)
        else:
            index = text.find('"', end)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def mask_form_text(text: str, names: list[str]) -> str:
    """``text`` with the values of secret-named ``name=value`` pairs masked."""
    if "=" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if not is_secret_field(match.group(1)) or match.group(2) == MASK:
            return match.group(0)
        names.append(match.group(1))
        return f"{match.group(1)}={MASK}"

    return _FORM_PAIR.sub(replace, text)


def body_kind(preview: dict[str, Any]) -> str:
    """``json``, ``form``, ``text`` or ``binary``."""
    content_type = str(preview.get("content_type") or "").lower()
    if preview.get("binary"):
        return "binary"
    if "json" in content_type:
        return "json"
    if "application/x-www-form-urlencoded" in content_type:
        return "form"
    return "text"


def mask_body_text(text: str, kind: str, masked: list[str]) -> str:
    """A body's text with its secrets masked, whether or not it still parses:
    a form's secret-named fields; in JSON or other text, the values of
    secret-named JSON keys and ``name=value`` pairs. Adds what was masked,
    in words (``JSON field password``), to ``masked``."""
    if kind == "binary" or not text:
        return text
    if kind == "form":
        names = [name for name, _value in parse_qsl(text, keep_blank_values=True) if is_secret_field(name)]
        masked.extend(f"form field {name}" for name in names if name)
        return mask_query(text)
    names = []
    text = mask_json_text(text, names)
    masked.extend(f"JSON field {name}" for name in names)
    names = []
    text = mask_form_text(text, names)
    masked.extend(f"form field {name}" for name in names)
    return text


def mask_locals(pairs: list[Any], masked: list[str]) -> list[Any]:
    """A frame's ``[name, repr]`` pairs with secret-named locals masked, and
    secret-named query fields of URLs inside any repr (``request`` is
    ``<WSGIRequest: GET '/reset/?token=…'>``); the child masks secret-named
    items inside the reprs of dicts it sends."""
    out = []
    for pair in pairs:
        if isinstance(pair, list) and len(pair) == 2:
            if is_secret_field(str(pair[0])) and pair[1] != MASK:
                masked.append(f"local {pair[0]}")
                pair = [pair[0], MASK]
            elif isinstance(pair[1], str) and (clean := mask_urls(pair[1])) != pair[1]:
                masked.append(f"a URL in local {pair[0]}")
                pair = [pair[0], clean]
        out.append(pair)
    return out


#: The column a placeholder is compared with or assigned to: ``"col" = %s``,
#: ``col IN (%s``, ``col LIKE %s``.
_COLUMN_BEFORE = re.compile(r'["`\[]?(\w+)["`\]]?\s*(?:=|<>|!=|<=|>=|<|>|\bIN\s*\(|\bLIKE)\s*(?:\(\s*)?$', re.I)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+\S+\s*\(([^)]*)\)", re.I)


def mask_sql_params(sql: str, params: list[str]) -> tuple[list[str], list[str]]:
    """``params`` with the values bound to secret-named columns masked, and
    the names of those columns."""
    if not params or "%s" not in sql:
        return params, []
    lowered = sql.lower()
    if not any(word in lowered for word in SECRET_FIELD_WORDS):
        return params, []  # the common case: no column could be secret
    masked = list(params)
    names: list[str] = []
    insert = _INSERT.match(sql)
    if insert:
        columns = [part.strip().strip('"`[]') for part in insert.group(1).split(",")]
        for index, value in enumerate(masked):
            column = columns[index % len(columns)] if columns else ""
            if column and is_secret_field(column) and value != MASK:
                masked[index] = MASK
                names.append(column)
        return masked, names
    pieces = sql.split("%s")
    for index in range(min(len(pieces) - 1, len(masked))):
        found = _COLUMN_BEFORE.search(pieces[index][-80:])
        column = found.group(1) if found else ""
        if not found and index and not pieces[index].strip(" ,"):
            continue  # the next value of an IN list: decided by its first
        if column and is_secret_field(column):
            masked[index] = MASK
            names.append(column)
            # The rest of an IN (%s, %s, …) list shares the column.
            following = index + 1
            while following < len(masked) and following < len(pieces) and not pieces[following].strip(" ,"):
                masked[following] = MASK
                following += 1
    return masked, sorted(set(names))


def mask_sql(sql: dict[str, Any], masked: list[str]) -> dict[str, Any]:
    """A request's SQL insight with parameters bound to secret-named columns masked."""
    sql = dict(sql)
    for key in ("queries", "duplicates"):
        if not isinstance(sql.get(key), list):
            continue
        items = []
        for item in sql[key]:
            if isinstance(item, dict) and isinstance(item.get("params"), list):
                params, names = mask_sql_params(str(item.get("sql") or ""), list(item["params"]))
                masked.extend(f"SQL parameter {name}" for name in names)
                item = {**item, "params": params}
            items.append(item)
        sql[key] = items
    return sql


def mask_exception(exception: dict[str, Any], masked: list[str]) -> dict[str, Any]:
    """An exception's insight with secret-named locals masked."""
    if not isinstance(exception.get("frames"), list):
        return exception
    frames = []
    for frame in exception["frames"]:
        if isinstance(frame, dict) and isinstance(frame.get("locals"), list):
            frame = {**frame, "locals": mask_locals(frame["locals"], masked)}
        frames.append(frame)
    return {**exception, "frames": frames}


def _mask_insight(event: dict[str, Any]) -> None:
    """What a request did (see :mod:`devconsole.child.insight`), as a
    recording keeps it: response ``Set-Cookie`` and secret-named headers, the
    bodies' secrets (:func:`mask_body_text`), SQL parameters of secret-named
    columns and secret-named locals masked (in place: ``event`` is a copy,
    its parts are replaced, never edited)."""
    ignored: list[str] = []
    response = event.get("response")
    if isinstance(response, dict):
        response = event["response"] = dict(response)
        if isinstance(response.get("headers"), list):
            response["headers"] = [mask_header(item) for item in response["headers"]]
        if isinstance(response.get("body"), dict):
            response["body"] = _masked_body(response["body"])
    if isinstance(event.get("request_body"), dict):
        event["request_body"] = _masked_body(event["request_body"])
    if isinstance(event.get("sql"), dict):
        event["sql"] = mask_sql(event["sql"], ignored)
    if isinstance(event.get("exception"), dict):
        event["exception"] = mask_exception(event["exception"], ignored)


def _masked_body(body: dict[str, Any]) -> dict[str, Any]:
    """A body preview with its secrets masked, its lines kept as lines."""
    lines = body.get("lines")
    if not isinstance(lines, list):
        return body
    text = "\n".join(str(line) for line in lines)
    masked = mask_body_text(text, body_kind(body), [])
    return body if masked == text else {**body, "lines": masked.split("\n")}


#: ``(name, value)`` → the value shown, for header pairs seen lately: a
#: client sends the same headers with every request, and masking one costs
#: more than the rest of its row. Bounded (emptied when full).
_HEADER_MASKS: dict[tuple[str, str], str] = {}
_HEADER_MASKS_MAX = 1024


def mask_header(item: Any) -> Any:
    """A ``[name, value]`` header pair with a credential's value masked (and
    secret-named fields of URLs in other values); anything else as it is."""
    if not (isinstance(item, list) and len(item) == 2):
        return item
    name, value = item
    if not (isinstance(name, str) and isinstance(value, str)):
        return item
    key = (name, value)
    shown = _HEADER_MASKS.get(key)
    if shown is None:
        shown = MASK if name.lower() in SECRET_HEADERS or is_secret_field(name) else mask_urls(value)
        if len(_HEADER_MASKS) >= _HEADER_MASKS_MAX:
            _HEADER_MASKS.clear()
        _HEADER_MASKS[key] = shown
    return [name, shown]
