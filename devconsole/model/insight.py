"""What a request did (its SQL, its exception, its bodies), as the console keeps it.

The server child captures it (:mod:`devconsole.child.insight`) and groups
queries by shape there: only the first queries travel in detail, and the
groups, duplicates and N+1 flags must count all of them. Here it is masked
where it enters (:func:`from_event`), summarised for the Requests row, and
turned into what the detail shows and copies (pretty bodies, a curl line).

What is masked, and why:

* request bodies: form and JSON fields named like a password, token,
  secret, key or session (the rules of :mod:`.secrets`), at any depth;
* response headers: ``Set-Cookie`` (like the request's ``Cookie``);
* locals named like a secret (``password = …``);
* SQL parameters stay visible — they are what a developer debugs with —
  except the value compared with or assigned to a secret-named column
  (``"session_key" = %s``: that is the session cookie again).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from devconsole.model.secrets import (
    MASK,
    SECRET_FIELD_WORDS,
    SECRET_HEADERS,
    is_secret_field,
    mask_header,
    mask_query,
)

#: Insight kept for this many of the newest requests (a row keeps its summary).
MAX_KEPT = 200


@dataclass
class Insight:
    """One request's insight, masked."""

    sql: dict[str, Any] | None = None
    exception: dict[str, Any] | None = None
    request_body: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    #: What was masked, in words (``form field password``), for the curl line.
    masked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    """What the Requests row shows and filters on."""

    sql_count: int | None = None
    sql_ms: float = 0.0
    duplicates: int = 0
    n_plus_one: int = 0
    exception: str = ""


def summarize(event: dict[str, Any]) -> Summary:
    sql = event.get("sql")
    exception = event.get("exception")
    if not isinstance(sql, dict) and not isinstance(exception, dict):
        return Summary()
    count: int | None = None
    ms, dups, n1 = 0.0, 0, 0
    if isinstance(sql, dict):
        count = int(sql.get("count") or 0)
        ms = float(sql.get("ms") or 0.0)
        dups = len(sql.get("duplicates") or ())
        n1 = len(sql.get("n_plus_one") or ())
    label = ""
    if isinstance(exception, dict):
        label = str(exception.get("type") or "exception").rpartition(".")[2]
    return Summary(count, ms, dups, n1, label)


# ------------------------------------------------------------------ masking

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


def _mask_json(value: Any, names: list[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            if is_secret_field(str(key)) and not isinstance(inner, (dict, list)):
                out[key] = MASK
                names.append(str(key))
            else:
                out[key] = _mask_json(inner, names)
        return out
    if isinstance(value, list):
        return [_mask_json(inner, names) for inner in value]
    return value


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


def mask_body(preview: dict[str, Any], masked: list[str]) -> dict[str, Any]:
    """A body preview with secret-named form and JSON fields masked; adds
    ``raw`` (the body as it can be re-sent, masked) and ``pretty`` lines."""
    lines = preview.get("lines")
    if not isinstance(lines, list):
        return preview
    raw = "\n".join(str(line) for line in lines)
    kind = body_kind(preview)
    out = dict(preview)
    pretty = list(lines)
    if kind == "form":
        names = [name for name, _value in parse_qsl(raw, keep_blank_values=True) if is_secret_field(name)]
        raw = mask_query(raw)
        masked.extend(f"form field {name}" for name in names)
        pretty = [f"{name} = {value}" for name, value in parse_qsl(raw, keep_blank_values=True)]
    elif kind == "json" and not preview.get("truncated"):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        else:
            names = []
            value = _mask_json(value, names)
            if names:
                raw = json.dumps(value, ensure_ascii=False)
                masked.extend(f"JSON field {name}" for name in names)
            pretty = json.dumps(value, indent=2, ensure_ascii=False).split("\n")
    out["raw"] = raw
    out["pretty"] = pretty
    out["lines"] = raw.split("\n")  # the masked text: nothing keeps the clear one
    return out


def from_event(event: dict[str, Any]) -> Insight | None:
    """The insight of a (sanitized) ``request`` event, masked; None without any."""
    keys = ("sql", "exception", "request_body", "response")
    if not any(isinstance(event.get(key), dict) for key in keys):
        return None
    insight = Insight()
    sql = event.get("sql")
    if isinstance(sql, dict):
        sql = dict(sql)
        for list_key in ("queries", "duplicates"):
            items = []
            for item in sql.get(list_key) or ():
                item = dict(item)
                params, names = mask_sql_params(str(item.get("sql") or ""), list(item.get("params") or ()))
                item["params"] = params
                insight.masked.extend(f"SQL parameter {name}" for name in names)
                items.append(item)
            sql[list_key] = items
        insight.sql = sql
    exception = event.get("exception")
    if isinstance(exception, dict):
        exception = dict(exception)
        frames = []
        for frame in exception.get("frames") or ():
            frame = dict(frame)
            frame["locals"] = [
                [pair[0], MASK] if len(pair) == 2 and is_secret_field(str(pair[0])) else pair
                for pair in frame.get("locals") or ()
            ]
            frames.append(frame)
        exception["frames"] = frames
        insight.exception = exception
    body = event.get("request_body")
    if isinstance(body, dict):
        insight.request_body = mask_body(body, insight.masked)
    response = event.get("response")
    if isinstance(response, dict):
        response = dict(response)
        response["headers"] = [mask_header(pair) for pair in response.get("headers") or ()]
        if isinstance(response.get("body"), dict):
            response["body"] = mask_body(response["body"], [])
        insight.response = response
    insight.masked = sorted(set(insight.masked))
    return insight


# ----------------------------------------------------------------- actions

#: Headers curl computes itself (copying them would be wrong or duplicated).
_CURL_SKIPS = frozenset({"content-length", "connection"})


def curl_command(
    method: str,
    url: str,
    headers: Iterable[list[str]],
    body: dict[str, Any] | None,
) -> tuple[str, list[str]]:
    """A curl command line that sends the request again, and notes on what
    it cannot reproduce exactly (masked secrets, a truncated or binary body)."""
    notes: list[str] = []
    parts = ["curl", "-sS", "-X", method or "GET"]
    masked_headers = []
    for pair in headers:
        if len(pair) != 2:
            continue
        name, value = pair
        if name.lower() in _CURL_SKIPS:
            continue
        if value == MASK or name.lower() in SECRET_HEADERS:
            masked_headers.append(name)
        parts += ["-H", f"{name}: {value}"]
    if masked_headers:
        notes.append(f"masked headers sent as {MASK}: {', '.join(masked_headers)}")
    if body is not None:
        if body.get("binary"):
            notes.append(f"binary body ({body.get('size', 0)} bytes) not included")
        elif isinstance(body.get("raw"), str):
            parts += ["--data-binary", body["raw"]]
            if body.get("truncated"):
                notes.append(f"body truncated to its first {len(body['raw'])} characters")
            if MASK in body["raw"]:
                notes.append("masked body fields sent as " + MASK)
        elif body.get("size"):
            notes.append(f"body ({body.get('size')} bytes) not read by the view: not included")
    parts.append(url)
    return " ".join(shlex.quote(part) for part in parts), notes
