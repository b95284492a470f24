"""Masking of request insight, one implementation for the detail, curl,
"send again" and recordings: on the text the console has (sanitized, perhaps
cut), at any depth, strings, numbers, lists and objects; and the bounds of
an insight on the wire."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from devconsole.model.insight import curl_command, from_event
from devconsole.model.sanitize import clean_value
from devconsole.model.secrets import MASK, mask_header, mask_secrets
from devconsole.wire import protocol

SECRETS = ("TABSECRET", "LONGSECRET", "12345", "NESTED7", "LISTKEY", "SESSIONVAL")


def _as_the_console_has_it(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` through the wire and the console's sanitizing, as the supervisor does."""
    decoded = protocol.decode(protocol.encode(event))
    assert decoded is not None
    return dict(clean_value(decoded))


def _request(body: str, content_type: str = "application/json", **fields: Any) -> dict[str, Any]:
    size = len(body.encode())
    event: dict[str, Any] = {
        "type": "request",
        "id": "r1",
        "method": "POST",
        "path": "/api/",
        "query": "",
        "headers": [],
        "request_body": {"content_type": content_type, "size": size, "lines": body.split("\n"), "truncated": False},
    }
    event.update(fields)
    return event


def _everything(insight: Any) -> str:
    return json.dumps([insight.request_body, insight.response, insight.sql, insight.exception], ensure_ascii=False)


def test_tab_indented_json_is_masked_and_resent_as_json() -> None:
    body = '{\n\t"user": "ada",\n\t"password": "TABSECRET"\r\n}'
    insight = from_event(_as_the_console_has_it(_request(body)))
    assert insight is not None and insight.request_body is not None
    assert "TABSECRET" not in _everything(insight)
    assert insight.masked == ["JSON field password"]
    assert json.loads(insight.request_body["raw"]) == {"user": "ada", "password": MASK}
    assert f'"password": "{MASK}"' in "\n".join(insight.request_body["pretty"])
    command, _notes = curl_command("POST", "http://127.0.0.1:1/api/", [], insight.request_body)
    assert "TABSECRET" not in command


def test_a_long_one_line_json_is_masked_everywhere() -> None:
    padding = "x" * 5000
    body = json.dumps({"pad": padding, "password": "LONGSECRET", "n": 1})
    response = {"status_line": "200 OK", "headers": [], "body": {"content_type": "application/json", "lines": [body]}}
    insight = from_event(_as_the_console_has_it(_request(body, response=response)))
    assert insight is not None and insight.request_body is not None
    assert "LONGSECRET" not in _everything(insight)
    assert insight.request_body["truncated"] is False  # 5 KB is not cut: it is re-sent whole
    assert json.loads(insight.request_body["raw"])["pad"] == padding
    command, notes = curl_command("POST", "http://127.0.0.1:1/", [], insight.request_body)
    assert "LONGSECRET" not in command and notes == [f"masked body fields sent as {MASK}"]


def test_a_line_cut_by_the_console_is_truncated_and_still_masked() -> None:
    body = json.dumps({"pad": "y" * 20000, "password": "LONGSECRET"})  # more than a child sends
    insight = from_event(_as_the_console_has_it(_request(body)))
    assert insight is not None and insight.request_body is not None
    assert insight.request_body["truncated"] is True
    assert "LONGSECRET" not in _everything(insight)
    _command, notes = curl_command("POST", "http://127.0.0.1:1/", [], insight.request_body)
    assert any("truncated" in note for note in notes)


def test_a_cut_json_body_never_falls_back_to_clear_text() -> None:
    body = '{"user": "ada", "password": "TABSEC'  # the head of a body, cut in the secret
    event = _request(body)
    event["request_body"]["truncated"] = True
    insight = from_event(_as_the_console_has_it(event))
    assert insight is not None and insight.request_body is not None
    assert "TABSEC" not in _everything(insight)
    assert '"user": "ada"' in insight.request_body["raw"]


NESTED = (
    '{"password": 12345, "pin": {"token": "NESTED7", "n": 1}, "api_key": ["LISTKEY", "k2"],'
    ' "session": {"id": "SESSIONVAL"}, "keep": [1, {"secret_x": true}], "name": "ada"}'
)


def test_numbers_lists_and_nested_values_are_masked_in_the_detail() -> None:
    insight = from_event(_as_the_console_has_it(_request(NESTED)))
    assert insight is not None and insight.request_body is not None
    assert not any(secret in _everything(insight) for secret in SECRETS)
    value = json.loads(insight.request_body["raw"])
    assert value == {
        "password": MASK,
        "pin": {"token": MASK, "n": 1},
        "api_key": MASK,
        "session": MASK,
        "keep": [1, {"secret_x": MASK}],
        "name": "ada",
    }


def test_the_same_masking_in_a_form_pair_inside_text() -> None:
    insight = from_event(_as_the_console_has_it(_request("user=ada&password=FORMSECRET", "text/plain")))
    assert insight is not None and insight.request_body is not None
    assert "FORMSECRET" not in _everything(insight)
    assert insight.request_body["raw"] == f"user=ada&password={MASK}"


def test_secret_named_headers_are_masked() -> None:
    assert mask_header(["X-Api-Key", "HEADERKEY"]) == ["X-Api-Key", MASK]
    assert mask_header(["X-CSRFToken", "CSRFHDR"]) == ["X-CSRFToken", MASK]
    assert mask_header(["Accept", "text/html"]) == ["Accept", "text/html"]


def test_a_recording_and_the_detail_mask_alike() -> None:
    event = _request(
        NESTED,
        response={
            "status_line": "200 OK",
            "headers": [["Set-Cookie", "sessionid=SESSIONVAL"], ["X-Api-Key", "LISTKEY"]],
        },
        sql={
            "count": 1,
            "queries": [{"sql": 'SELECT 1 FROM s WHERE "session_key" = %s', "params": ["'SESSIONVAL'"]}],
        },
        exception={
            "type": "E",
            "message": "",
            "frames": [{"locals": [["password", "'TABSECRET'"], ["credentials", f"{{'password': '{MASK}'}}"]]}],
        },
    )
    event = _as_the_console_has_it(event)
    recorded = json.dumps(mask_secrets(event))
    insight = from_event(event)
    assert insight is not None
    for secret in SECRETS:
        assert secret not in recorded and secret not in _everything(insight)


def test_an_event_costs_utf8_bytes_and_debugger_is_not_fatal() -> None:
    line = protocol.encode({"type": "log", "text": "Привет" * 100})
    assert len(line) < 1300  # 2 bytes a character, not 6
    assert protocol.decode(line) == {"type": "log", "text": "Привет" * 100}
    surrogate = protocol.encode({"type": "log", "text": "a\udc80b"})
    assert protocol.decode(surrogate) == {"type": "log", "text": "a\udc80b"}
    assert "debugger" in protocol.NON_FATAL_PHASES


REPR_SCRIPT = """
import json
import django
from django.conf import settings
settings.configure()
django.setup()
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from devconsole.child.insight import _LOCALS_REPR, _safe_repr
credentials = {"username": "ada", "password": "s3cret", "inner": {"api_token": 7}}
post = QueryDict("username=ada&password=QDSECRET")
multi = MultiValueDict({"session_id": ["MVSECRET"], "a": ["1"]})
print(json.dumps([_safe_repr(_LOCALS_REPR, value) for value in (credentials, post, multi, {"a": 1})]))
"""


def test_the_child_masks_secret_named_items_of_dicts_in_locals() -> None:
    run = subprocess.run([sys.executable, "-c", REPR_SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    credentials, post, multi, plain = json.loads(run.stdout)
    assert "s3cret" not in credentials and "'username': 'ada'" in credentials
    assert f"'password': '{MASK}'" in credentials and f"'api_token': '{MASK}'" in credentials
    assert "QDSECRET" not in post and post.startswith("<QueryDict: {") and "'username': ['ada']" in post
    assert "MVSECRET" not in multi and multi.startswith("<MultiValueDict:")
    assert plain == "{'a': 1}"


def test_a_huge_insight_is_trimmed_to_its_bound_with_notes() -> None:
    from devconsole.child import insight as child

    params = ["'" + "Ж" * 98 + "'" for _ in range(20)]
    queries = [{"sql": "SELECT * FROM t WHERE a = %s" + " " * 900, "params": params, "alias": "default", "ms": 1.0}]
    frames = [{"function": f"f{n}", "locals": [[f"v{i}", "Ж" * 600] for i in range(25)]} for n in range(30)]
    event: Any = {
        "type": "request",
        "sql": {"count": 300, "ms": 3.0, "queries": queries * 100, "groups": [], "duplicates": []},
        "exception": {"type": "E", "message": "m", "frames": frames},
        "request_body": {"content_type": "text/plain", "size": 16384, "lines": ["Ж" * 8000]},
    }
    assert len(protocol.encode({key: event[key] for key in ("sql", "exception")})) > protocol.MAX_INSIGHT
    child._fit(event)
    assert child._insight_size(event) <= protocol.MAX_INSIGHT
    kept = event["sql"]["queries"]
    assert 0 < len(kept) < 100 and "not kept in detail" in kept[-1]["sql"]
    assert event["sql"]["count"] == 300  # counts stay exact
    assert event["request_body"]["lines"] == ["Ж" * 8000]  # bodies go last
    assert any("locals not kept" in str(frame["locals"]) for frame in event["exception"]["frames"])


def test_the_cheap_bound_of_an_ordinary_insight_is_above_its_size() -> None:
    from devconsole.child import insight as child

    where = {"file": "/p/views.py", "line": 1, "function": "v"}
    query = {"sql": "SELECT %s", "params": ["''"] * 21, "alias": "default", "ms": 0.123456, "where": where, "rows": 1}
    chars = 20 * (len(query["sql"]) + 2 * 21 + len("default") + len("/p/views.py") + 1)
    group = {"shape": "SELECT N", "count": 20, "ms": 1.5, "where": where}
    event: Any = {
        "sql": {"count": 20, "ms": 1.0, "queries": [query] * 20, "groups": [group], "duplicates": [], "n_plus_one": []},
        "response": {
            "status_line": "200 OK",
            "headers": [["A", ""]] * 50,
            "body": {"content_type": "", "lines": [""] * 9},
        },
    }
    bound = child._cheap_bound(event, chars)
    assert bound is not None and bound >= child._insight_size(event)
    event["exception"] = {"frames": []}
    assert child._cheap_bound(event, chars) is None  # locals: measured, not bounded
