"""Request insight from a real server child: SQL, exceptions, bodies, curl."""

from __future__ import annotations

import http.client
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devconsole.console.project import Project
from devconsole.console.supervisor import Supervisor
from devconsole.demo import DEMO_MANAGE_PY
from devconsole.model.secrets import MASK
from devconsole.model.state import RequestRow, request_filter

from .conftest import Events, wait_for


def _request(
    server: Supervisor, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.socket.getsockname()[1], timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _rows(events: Events) -> list[RequestRow]:
    """The rows so far, copied under the state's lock: iterating its deque
    while the supervisor's thread appends a row raises ``RuntimeError``."""
    return events.state.requests_since(0)


def _row(events: Events, path: str) -> RequestRow:
    def find() -> RequestRow | None:
        return next((row for row in reversed(_rows(events)) if row.path == path), None)

    row = wait_for(find)
    assert isinstance(row, RequestRow)
    return row


#: The demo's views, read as text (the test process never imports Django).
VIEWS = DEMO_MANAGE_PY.parent / "shop" / "views.py"


def _line_of(function: str, marker: str) -> int:
    """The line of ``function`` in the demo's views that holds ``marker``."""
    lines = VIEWS.read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"def {function}("))
    return 1 + next(index for index in range(start, len(lines)) if marker in lines[index])


def test_n_plus_one_page_reports_its_queries_and_the_loop_line(server: Supervisor, events: Events) -> None:
    assert _request(server, "GET", "/insight/n-plus-one/") == 200
    row = _row(events, "/insight/n-plus-one/")
    assert row.summary.sql_count == 21  # the permissions, then one per permission
    assert row.summary.n_plus_one == 1
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.sql is not None
    (pattern,) = insight.sql["n_plus_one"]
    assert pattern["count"] == 20 and "django_content_type" in pattern["shape"]
    assert pattern["where"]["file"] == str(VIEWS)
    assert pattern["where"]["line"] == _line_of("n_plus_one", "# one query each")
    assert pattern["where"]["function"] == "n_plus_one"
    assert len(insight.sql["queries"]) == 21
    assert insight.sql["ms"] > 0
    assert [r.path for r in _rows(events) if request_filter("n+1 sql>20")(r)] == ["/insight/n-plus-one/"]


def test_duplicate_page_flags_the_duplicate(server: Supervisor, events: Events) -> None:
    assert _request(server, "GET", "/insight/duplicate/") == 200
    assert _request(server, "GET", "/ping/") == 200
    row = _row(events, "/insight/duplicate/")
    assert (row.summary.sql_count, row.summary.duplicates, row.summary.n_plus_one) == (3, 1, 0)
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.sql is not None
    (duplicate,) = insight.sql["duplicates"]
    assert duplicate["count"] == 2 and "COUNT(*)" in duplicate["sql"]
    assert duplicate["where"]["line"] == _line_of("duplicate", "total = ")
    _row(events, "/ping/")
    kept = [r.path for r in _rows(events) if request_filter("dup")(r)]
    assert kept == ["/insight/duplicate/"]
    assert "/ping/" in [r.path for r in _rows(events) if request_filter("sql<1")(r)]


def test_a_500_carries_its_frames_and_the_views_locals(server: Supervisor, events: Events) -> None:
    assert _request(server, "GET", "/insight/boom/?token=s3cr3t&page=2") == 500
    row = _row(events, "/insight/boom/")
    assert row.summary.exception == "ZeroDivisionError"
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.exception is not None
    frames = insight.exception["frames"]
    view = next(frame for frame in frames if frame["function"] == "boom_locals")
    assert view["project"] is True and not frames[0]["project"]  # Django's handler is not the project
    assert view["line"] == _line_of("boom_locals", "ZeroDivisionError")
    names = dict(view["locals"])
    assert names["discount"] == "0"
    assert "desk-lamp" in names["basket"]
    assert names["password"] == MASK  # masked where it entered the console
    # A URL inside a repr: the request's own query string.
    assert f"token={MASK}&page=2" in names["request"] and "s3cr3t" not in str(view["locals"])
    # Hostile text arrives escaped: no ESC reaches the screen.
    assert "\x1b" not in names["hostile"] and "\\x1b[2J" in names["hostile"]
    assert "[red]" in names["hostile"]
    assert any("discount" in line for line in view["source"])
    assert [r.path for r in _rows(events) if request_filter("exc")(r)] == ["/insight/boom/"]


def test_post_bodies_are_previewed_and_masked(server: Supervisor, events: Events) -> None:
    body = b'{"name": "Ada", "api_token": "abc", "n": [1, 2]}'
    assert _request(server, "POST", "/api/echo/", body, {"Content-Type": "application/json"}) == 201
    row = _row(events, "/api/echo/")
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.request_body is not None and insight.response is not None
    preview = insight.request_body
    assert preview["size"] == len(body) and preview["truncated"] is False
    assert '"api_token": "********"' in "\n".join(preview["pretty"])
    assert '"name": "Ada"' in "\n".join(preview["pretty"])
    assert insight.masked == ["JSON field api_token"]
    assert insight.response["status_line"] == "201 Created"
    assert any('"keys"' in line for line in insight.response["body"]["lines"])


def test_a_request_without_a_body_has_no_body_preview_and_its_response_is_kept(
    server: Supervisor, events: Events
) -> None:
    assert _request(server, "GET", "/ping/?plain=1") == 200
    assert _request(server, "GET", "/ping/?empty=1", b"", {"Content-Length": "0"}) == 200
    for query in ("plain=1", "empty=1"):
        row = wait_for(lambda query=query: next((r for r in _rows(events) if r.query == query), None))
        insight = events.state.insight(row.seq)
        assert insight is not None and insight.request_body is None and insight.response is not None
        assert insight.response["status_line"] == "200 OK"
        assert insight.response["body"]["lines"] == ["pong"]


def test_a_form_post_and_curl_sends_it_again(server: Supervisor, events: Events) -> None:
    from devconsole.model.insight import curl_command

    form = b"name=Ada&message=hi+there&password=s3cret"
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _request(server, "POST", "/api/echo/?form=1", form, form_headers) == 400  # not JSON
    row = _row(events, "/api/echo/")
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.request_body is not None
    assert insight.request_body["pretty"] == ["name = Ada", "message = hi there", f"password = {MASK}"]
    # /api/echo/ answers 201 to a JSON object only (400 to no body, a form, a list):
    # the same status again says the body went with it.
    body = b'{"name": "Ada", "api_token": "abc", "n": [1, 2]}'
    headers = {"Content-Type": "application/json", "X-Demo": "it's [b]"}
    assert _request(server, "POST", "/api/echo/?json=1", body, headers) == 201
    row = wait_for(lambda: next((r for r in _rows(events) if r.query == "json=1"), None))
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.request_body is not None
    port = server.socket.getsockname()[1]
    url = f"http://127.0.0.1:{port}{row.target}"
    command, notes = curl_command(row.method, url, row.headers, insight.request_body)
    assert notes == [f"masked body fields sent as {MASK}"]
    args = shlex.split(command)
    assert args[:4] == ["curl", "-sS", "-X", "POST"]

    def run(argv: list[str]) -> str:
        result = subprocess.run(
            [*argv, "-o", "/dev/null", "-w", "%{http_code}"], capture_output=True, text=True, timeout=30
        )
        return result.stdout

    at = args.index("--data-binary")
    assert run(args[:at] + args[at + 2 :]) == "400"  # without its body
    seen = events.state.request_seq
    assert run(args) == "201"
    again = wait_for(lambda: [r for r in events.state.requests_since(seen) if r.query == "json=1" and r.status == 201])
    resent = events.state.insight(again[0].seq)
    assert resent is not None and resent.request_body is not None
    assert resent.request_body["raw"] == insight.request_body["raw"]
    assert ["X-Demo", "it's [b]"] in again[0].headers
    # HEAD: -I (curl -X HEAD waits for a body that never comes).
    command, _ = curl_command("HEAD", f"http://127.0.0.1:{port}/ping/", [], None)
    assert shlex.split(command)[:3] == ["curl", "-sS", "-I"] and run(shlex.split(command)) == "200"
    # What it cannot send as it was is said: a masked query value, a CSRF cookie and token.
    _, notes = curl_command("GET", f"http://127.0.0.1:{port}/ping/?a=1&api_key={MASK}", [], None)
    assert notes == [f"masked query values sent as {MASK}: api_key"]
    csrf_body = {"content_type": "application/x-www-form-urlencoded", "raw": f"a=1&csrfmiddlewaretoken={MASK}"}
    _, notes = curl_command("POST", url, [["Cookie", MASK]], csrf_body)
    assert any("403 Forbidden" in note and "CSRF" in note for note in notes)


def test_hostile_sql_parameters_arrive_escaped(server: Supervisor, events: Events) -> None:
    assert _request(server, "GET", "/insight/duplicate/?q=%5Bred%5Dx%1b%5B2J") == 200
    row = _row(events, "/insight/duplicate/")
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.sql is not None
    params = [param for query in insight.sql["queries"] for param in query["params"]]
    assert "'%[red]x\\x1b[2J%'" in params, params
    assert not any("\x1b" in param for param in params)


#: Run in a fresh interpreter (the test process never imports Django): locals
#: whose repr raises, is slow, is huge, with a chained cause.
LOCALS_SCRIPT = r"""
import json, time
from devconsole.child import insight

class Raises:
    def __repr__(self):
        raise ValueError("no repr for you")

class Slow:
    def __repr__(self):
        time.sleep(insight.LOCALS_BUDGET_S * 2)
        return "slow"

def view():
    broken = Raises()
    huge = "x" * 100_000
    nested = [[[[[1]]]]] * 50
    slow = Slow()
    after = 1
    try:
        {}["missing"]
    except KeyError as exc:
        raise RuntimeError("failed [red]\x1b[2J") from exc

try:
    view()
except RuntimeError as exc:
    print(json.dumps(insight.describe_exception(exc)))
"""


def test_locals_are_bounded_and_a_bad_repr_is_a_note() -> None:
    import json
    import sys

    run = subprocess.run([sys.executable, "-c", LOCALS_SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["type"] == "RuntimeError" and found["message"] == "failed [red]\x1b[2J"
    assert found["causes"] == [{"type": "KeyError", "message": "'missing'"}]
    frame = next(frame for frame in found["frames"] if frame["function"] == "view")
    names = dict(frame["locals"])
    assert names["broken"] == "<repr failed: ValueError>"
    assert len(names["huge"]) < 1000
    assert len(names["nested"]) < 400
    # The slow repr spent the frame's budget: what comes after it is a note.
    assert "slow" in names and "after" not in names
    assert any("took too long" in value for _name, value in frame["locals"])


def test_a_file_response_still_streams_whole_and_is_previewed(server: Supervisor, events: Events) -> None:
    css = (DEMO_MANAGE_PY.parent / "shop" / "static" / "shop" / "site.css").read_bytes()
    conn = http.client.HTTPConnection("127.0.0.1", server.socket.getsockname()[1], timeout=10)
    conn.request("GET", "/static/shop/site.css")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, css)
    conn.close()
    row = _row(events, "/static/shop/site.css")
    insight = events.state.insight(row.seq)
    assert insight is not None and insight.response is not None
    body = insight.response["body"]
    assert body["size"] == len(css) and body["truncated"] is False
    assert "\n".join(body["lines"]) == css.decode()


#: A one-file project's settings, which are its URLconf too (an in-memory database).
ONE_FILE_SETTINGS = """
SECRET_KEY = "test"
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "{module}"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = []
from django.db import connection
from django.urls import path
"""


def one_file_settings(module: str) -> str:
    return ONE_FILE_SETTINGS.replace("{module}", module)


HUGE_SETTINGS = (
    one_file_settings("hugesettings")
    + """

def huge(request):
    text = "漢" * 98
    with connection.cursor() as cursor:
        for _ in range(100):
            cursor.execute("SELECT " + ", ".join(["%s"] * 20), [text] * 20)
    big = {f"k{n}": "漢" * 300 for n in range(10)}
    credentials = {"username": "ada", "password": "CREDSECRET"}
    return 1 / 0


urlpatterns = [path("huge/", huge)]
"""
)


def test_a_huge_insight_arrives_trimmed_with_a_note(tmp_path: Path, events: Events) -> None:
    from devconsole.model.state import RequestRow as Row

    from .conftest import make_project, serving

    project = make_project(tmp_path, "hugesettings", HUGE_SETTINGS)
    with serving(project, events) as server:
        assert _request(server, "GET", "/huge/") == 500
        row: Row = _row(events, "/huge/")
        insight = events.state.insight(row.seq)
        assert insight is not None and insight.sql is not None and insight.exception is not None
        assert row.summary.sql_count == 100  # counts stay exact
        queries = insight.sql["queries"]
        assert len(queries) < 100 and "not kept in detail" in queries[-1]["sql"]
        frame = next(frame for frame in insight.exception["frames"] if frame["function"] == "huge")
        names = dict(frame["locals"])
        assert "CREDSECRET" not in names["credentials"] and "'username': 'ada'" in names["credentials"]


def test_the_n_plus_one_threshold_is_the_users(
    demo_project: Project, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``devconsole --n-plus-one N`` reaches the server child through its environment."""
    from devconsole.cli import N_PLUS_ONE_ENV

    from .conftest import serving

    monkeypatch.setenv(N_PLUS_ONE_ENV, "21")  # the page repeats its query 20 times
    with serving(demo_project, events) as server:
        assert _request(server, "GET", "/insight/n-plus-one/") == 200
        row = _row(events, "/insight/n-plus-one/")
        assert (row.summary.sql_count, row.summary.n_plus_one) == (21, 0)


def test_sql_parameters_of_secret_columns_are_masked() -> None:
    """What Django's auth and sessions send (a password hash, a session key)
    is masked like a secret-named local; other parameters are shown. Bound
    by name, the child masks by the name; positional, the console by the
    column it fills."""
    from devconsole.child.insight import _param_reprs
    from devconsole.model.secrets import mask_sql_params

    def shown(sql: str, params: list[Any] | dict[str, Any]) -> list[str]:
        return mask_sql_params(sql, _param_reprs(params))[0]

    insert = 'INSERT INTO "auth_user" ("password", "last_login", "username") VALUES (%s, %s, %s)'
    assert shown(insert, ["pbkdf2_sha256$1$x", None, "ada"]) == [MASK, "None", "'ada'"]
    session = (
        'SELECT "django_session"."session_data" FROM "django_session" WHERE ("django_session"."expire_date" > %s'
        ' AND "django_session"."session_key" = %s) LIMIT 21'
    )
    assert shown(session, ["2026-12-01", "k3y"]) == ["'2026-12-01'", MASK]
    update = 'UPDATE "auth_user" SET "password" = %s WHERE "auth_user"."id" = %s'
    assert shown(update, ["hash", 7]) == [MASK, "7"]
    in_list = 'SELECT 1 FROM "api" WHERE "api"."token" IN (%s, %s) AND "api"."id" = %s'
    assert shown(in_list, ["a", "b", 3]) == [MASK, MASK, "3"]
    by_name = 'SELECT 1 FROM "api" WHERE "api"."token" = %(api_token)s AND "api"."id" = %(id)s'
    assert shown(by_name, {"api_token": "t", "id": 3}) == [f"('api_token', {MASK!r})", "('id', 3)"]
    plain = 'SELECT * FROM "shop_product" WHERE "shop_product"."id" IN (%s, %s)'
    assert shown(plain, [1, 2]) == ["1", "2"]


MANY_SETTINGS = (
    one_file_settings("manysettings")
    + """

class Tag(str):
    \"\"\"A parameter whose repr changes after its query ran.\"\"\"

    state = ["at query time"]

    def __repr__(self):
        return f"Tag({self.state[-1]})"


def many(request):
    params = [0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", [Tag("x")])
        for n in range(700):
            cursor.execute("SELECT %s, %s", [n % 2, "same"])  # two parameter sets, 350 times each
            params[0] = n
            cursor.execute("SELECT %s + 1", params)  # a list the view changes after each query
    Tag.state.append("later")
    return __import__("django.http").http.HttpResponse("ok")


def rows(request):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x integer)")
        cursor.execute("INSERT INTO t VALUES (%s), (%s)", [1, 2])
        cursor.execute("  update t SET x = x + 1")
        cursor.execute("SELECT x FROM t")
    return __import__("django.http").http.HttpResponse("ok")


def odd(request):
    import decimal

    import one.q
    import two.q

    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute("SELECT %s", [decimal.Decimal("sNaN")])  # cannot be hashed
            cursor.execute("SELECT 1")  # no parameters...
            cursor.execute("SELECT 1", ())  # ...is not the same query as no parameters given
        one.q.run(cursor)  # the same function, line for line, in two files
        two.q.run(cursor)
    return __import__("django.http").http.HttpResponse("ok")


def fresh(request):
    from django.db import connections

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connections["default"].close()
    del connections["default"]  # the next query opens a new connection object in this thread
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 2")
    return __import__("django.http").http.HttpResponse("ok")


urlpatterns = [path("many/", many), path("rows/", rows), path("odd/", odd), path("fresh/", fresh)]
"""
)


def test_counts_groups_and_params_stay_exact_past_the_detail_bound(tmp_path: Path, events: Events) -> None:
    """1,401 queries: more than the child keeps in detail and more than it
    holds before grouping them, so every count crosses both bounds. The
    parameters shown are those each query ran with, though the view changed
    its list and a value's repr afterwards."""
    from devconsole.child.insight import MAX_QUERIES

    from .conftest import make_project, serving

    project = make_project(tmp_path, "manysettings", MANY_SETTINGS)
    with serving(project, events) as server:
        assert _request(server, "GET", "/many/") == 200
        row = _row(events, "/many/")
        assert (row.summary.sql_count, row.summary.duplicates, row.summary.n_plus_one) == (1401, 2, 2)
        insight = events.state.insight(row.seq)
        assert insight is not None and insight.sql is not None
        sql = insight.sql
        assert sql["count"] == 1401 and len(sql["queries"]) == MAX_QUERIES
        shown = [q["params"] for q in sql["queries"][:5]]
        assert shown == [["Tag(at query time)"], ["0", "'same'"], ["0"], ["1", "'same'"], ["1"]]
        assert all(q["where"]["function"] == "many" for q in sql["queries"])
        counts = {group["shape"]: group["count"] for group in sql["groups"]}
        assert counts == {"SELECT %s, %s": 1400 // 2, "SELECT %s + N": 700, "SELECT %s": 1}
        duplicates = sorted((d["count"], d["params"]) for d in sql["duplicates"])
        assert duplicates == [(350, ["0", "'same'"]), (350, ["1", "'same'"])]
        assert {group["count"] for group in sql["n_plus_one"]} == {700}

        assert _request(server, "GET", "/rows/") == 200  # rows where the cursor knows them: not for a SELECT
        row = _row(events, "/rows/")
        insight = events.state.insight(row.seq)
        assert insight is not None and insight.sql is not None
        assert [query.get("rows") for query in insight.sql["queries"]] == [None, 2, 2, None]


def test_odd_parameters_and_twin_functions(tmp_path: Path, events: Events) -> None:
    """A parameter that cannot be a key, no parameters against empty ones,
    and one function copied into two files: every query counted, each
    attributed to its own file."""
    from .conftest import make_project, serving

    project = make_project(tmp_path, "manysettings", MANY_SETTINGS)
    for package in ("one", "two"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "q.py").write_text("def run(cursor):\n    cursor.execute('SELECT 2')\n")
    with serving(project, events) as server:
        assert _request(server, "GET", "/odd/") == 200
        row = _row(events, "/odd/")
        insight = events.state.insight(row.seq)
        assert insight is not None and insight.sql is not None
        sql = insight.sql
        assert sql["count"] == 8
        duplicates = sorted((d["sql"], d["count"], d["params"]) for d in sql["duplicates"])
        assert duplicates == [
            ("SELECT %s", 2, ["Decimal('sNaN')"]),
            ("SELECT 1", 2, []),
            ("SELECT 1", 2, []),
            ("SELECT 2", 2, []),  # one function's query, from two files
        ]
        files = [Path(q["where"]["file"]).parent.name for q in sql["queries"][-2:]]
        assert files == ["one", "two"]


def test_every_query_of_each_request_on_a_kept_alive_connection_counts_once(tmp_path: Path, events: Events) -> None:
    """One connection, one server thread, three requests: each counts its
    own queries, exactly, including those on a connection object the view
    made anew (observed as it opened), and none is counted twice."""
    from .conftest import make_project, serving

    project = make_project(tmp_path, "manysettings", MANY_SETTINGS)
    with serving(project, events) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.socket.getsockname()[1], timeout=10)
        try:
            for _ in range(3):
                conn.request("GET", "/fresh/")
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b"ok")
        finally:
            conn.close()
        rows = wait_for(
            lambda: (lambda found: found if len(found) == 3 else None)(
                [row for row in _rows(events) if row.path == "/fresh/"]
            )
        )
        assert len({row.thread for row in rows}) == 1  # one keep-alive connection, one thread
        assert [row.summary.sql_count for row in rows] == [2, 2, 2]
        for row in rows:
            insight = events.state.insight(row.seq)
            assert insight is not None and insight.sql is not None
            assert [query["sql"] for query in insight.sql["queries"]] == ["SELECT 1", "SELECT 2"]
