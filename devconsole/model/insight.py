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

from devconsole.model.sanitize import clean
from devconsole.model.secrets import (
    MASK,
    SECRET_HEADERS,
    body_kind,
    mask_body_text,
    mask_exception,
    mask_header,
    mask_sql,
)
from devconsole.model.secrets import mask_sql_params as mask_sql_params

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

#: A tab, CR or newline the console escaped (``\\t``) where the text entered it,
#: not itself after a backslash (``\\\\t`` is an escaped backslash and a ``t``).
_ESCAPED_SPACE = re.compile(r"(?<!\\)((?:\\\\)*)\\([tnr])")
_SPACES = {"t": "\t", "n": "\n", "r": "\r"}


def _json_value(text: str) -> tuple[bool, Any]:
    """``(parsed, value)`` of a JSON text as the console has it: as it is,
    else with the white space the console escaped put back."""
    try:
        return True, json.loads(text)
    except ValueError:
        pass
    restored = _ESCAPED_SPACE.sub(lambda m: m.group(1) + _SPACES[m.group(2)], text)
    try:
        return True, json.loads(restored, strict=False)
    except ValueError:
        return False, None


def mask_body(preview: dict[str, Any], masked: list[str]) -> dict[str, Any]:
    """A body preview with its secrets masked (:func:`.secrets.mask_body_text`:
    it needs no JSON that parses, and never gives the text back in clear);
    adds ``raw`` (the body as it can be re-sent, masked) and ``pretty`` lines."""
    lines = preview.get("lines")
    if not isinstance(lines, list):
        return preview
    kind = body_kind(preview)
    raw = mask_body_text("\n".join(str(line) for line in lines), kind, masked)
    out = dict(preview)
    pretty = raw.split("\n")
    if kind == "form":
        pretty = [clean(f"{name} = {value}") for name, value in parse_qsl(raw, keep_blank_values=True)]
    elif kind == "json" and not preview.get("truncated"):
        parsed, value = _json_value(raw)
        if parsed:
            pretty = [clean(line) for line in json.dumps(value, indent=2, ensure_ascii=False).split("\n")]
            try:
                json.loads(raw)
            except ValueError:  # escaped white space: re-send it as JSON
                raw = json.dumps(value, ensure_ascii=False)
    out["raw"] = raw
    out["pretty"] = pretty
    out["lines"] = raw.split("\n")  # the masked text: nothing keeps the clear one
    return out


_PARTS = ("sql", "exception", "request_body", "response")


def has_insight(event: dict[str, Any]) -> bool:
    """Whether a ``request`` event carries any insight (:func:`from_event` would not be None)."""
    return any(isinstance(event.get(key), dict) for key in _PARTS)


def from_event(event: dict[str, Any]) -> Insight | None:
    """The insight of a (sanitized) ``request`` event, masked; None without any."""
    if not has_insight(event):
        return None
    insight = Insight()
    if isinstance(event.get("sql"), dict):
        insight.sql = mask_sql(event["sql"], insight.masked)
    if isinstance(event.get("exception"), dict):
        insight.exception = mask_exception(event["exception"], [])  # not part of what is sent again
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
    headers = list(headers)
    method = method or "GET"
    # -X HEAD would wait for a body that never comes: -I asks for the head.
    parts = ["curl", "-sS", "-I"] if method.upper() == "HEAD" else ["curl", "-sS", "-X", method]
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
    notes += resend_caveats(method, url, headers, body)
    parts.append(url)
    return " ".join(shlex.quote(part) for part in parts), notes


#: Methods Django's CSRF check applies to.
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def resend_caveats(
    method: str,
    target: str,
    headers: Iterable[list[str]],
    body: dict[str, Any] | None,
) -> list[str]:
    """What sending a request again (curl or "send again") does not
    reproduce, beyond masked headers and bodies: query values sent masked,
    and the CSRF check a form POST will fail once its cookie or token was
    masked."""
    notes: list[str] = []
    query = target.partition("?")[2].partition("#")[0]
    masked_query = [name for name, value in parse_qsl(query, keep_blank_values=True) if value == MASK]
    if masked_query:
        notes.append(f"masked query values sent as {MASK}: {', '.join(masked_query)}")
    if method.upper() in _UNSAFE_METHODS:
        masked = {
            str(pair[0]).lower()
            for pair in headers
            if len(pair) == 2 and (pair[1] == MASK or str(pair[0]).lower() in SECRET_HEADERS)
        }
        raw = body.get("raw") if body is not None else None
        token = isinstance(raw, str) and f"csrfmiddlewaretoken={MASK}" in raw
        if token or masked & {"cookie", "x-csrftoken"}:
            notes.append("a CSRF-protected view will answer 403 Forbidden: its CSRF cookie and token were masked")
    return notes
