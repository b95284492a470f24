"""Credentials in what the console shows and writes: masked by default.

Cookies, ``Authorization`` and the like, and query or form fields named like
a password, token, secret, key or session. The console's model masks them
where a request enters it (so no view can show them), and a recording masks
them unless ``--record-secrets`` is given.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

#: Header values never shown or written in clear.
SECRET_HEADERS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization"})
#: A query or form field whose name contains one of these (any case) is masked.
SECRET_FIELD_WORDS = ("password", "token", "secret", "key", "session")
#: What a masked value becomes.
MASK = "********"
#: ``name=value`` after ``?``, ``&`` or ``;`` in a URL inside text (a log line, a Referer).
_URL_FIELD = re.compile(r"(?<=[?&;])([^=&;?#\s\"'<>]+)=([^&;#\s\"'<>]*)")


def is_secret_field(name: str) -> bool:
    """Whether a query or form field named ``name`` holds a credential."""
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in SECRET_FIELD_WORDS)


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
    query and headers, and in log lines: runserver's request line) masked.
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
    if kind == "log" and isinstance(event.get("text"), str):
        text = mask_urls(event["text"])
        return event if text is event["text"] else {**event, "text": text}
    return event


#: ``"name": "value"`` in a JSON text, for a secret-named field.
_JSON_FIELD = re.compile(r'"([^"\\]{1,100})"(\s*:\s*)"(?:[^"\\]|\\.)*"')


def _mask_insight(event: dict[str, Any]) -> None:
    """What a request did (see :mod:`devconsole.child.insight`), as a
    recording keeps it: response ``Set-Cookie``, secret-named form and JSON
    fields of the bodies, and secret-named locals masked (in place: ``event``
    is a copy, its parts are replaced, never edited)."""
    response = event.get("response")
    if isinstance(response, dict) and isinstance(response.get("headers"), list):
        response = event["response"] = {**response, "headers": [mask_header(item) for item in response["headers"]]}
        if isinstance(response.get("body"), dict):
            response["body"] = _masked_body(response["body"])
    if isinstance(event.get("request_body"), dict):
        event["request_body"] = _masked_body(event["request_body"])
    sql = event.get("sql")
    if isinstance(sql, dict):
        from devconsole.model.insight import mask_sql_params  # it builds on this module

        sql = dict(sql)
        for key in ("queries", "duplicates"):
            if isinstance(sql.get(key), list):
                sql[key] = [
                    {**item, "params": mask_sql_params(str(item.get("sql", "")), list(item["params"]))[0]}
                    if isinstance(item, dict) and isinstance(item.get("params"), list)
                    else item
                    for item in sql[key]
                ]
        event["sql"] = sql
    exception = event.get("exception")
    if isinstance(exception, dict) and isinstance(exception.get("frames"), list):
        frames = []
        for frame in exception["frames"]:
            if isinstance(frame, dict) and isinstance(frame.get("locals"), list):
                pairs = [
                    [pair[0], MASK]
                    if isinstance(pair, list) and len(pair) == 2 and is_secret_field(str(pair[0]))
                    else pair
                    for pair in frame["locals"]
                ]
                frame = {**frame, "locals": pairs}
            frames.append(frame)
        event["exception"] = {**exception, "frames": frames}


def _mask_json_field(match: re.Match[str]) -> str:
    return f'"{match.group(1)}"{match.group(2)}"{MASK}"' if is_secret_field(match.group(1)) else match.group(0)


def _masked_body(body: dict[str, Any]) -> dict[str, Any]:
    """A body preview with secret-named JSON and form fields masked."""
    if not isinstance(body.get("lines"), list):
        return body
    lines = [_JSON_FIELD.sub(_mask_json_field, line) if isinstance(line, str) else line for line in body["lines"]]
    if "x-www-form-urlencoded" in str(body.get("content_type", "")):
        lines = [mask_query(line) if isinstance(line, str) else line for line in lines]
    return {**body, "lines": lines}


def mask_header(item: Any) -> Any:
    """A ``[name, value]`` header pair with a credential's value masked (and
    secret-named fields of URLs in other values); anything else as it is."""
    if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
        return item
    name, value = item
    if name.lower() in SECRET_HEADERS:
        return [name, MASK]
    return [name, mask_urls(value)]
