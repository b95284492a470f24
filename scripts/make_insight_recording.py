"""Record the demo's insight pages into ``tests/recordings/insight.jsonl``.

The request-detail snapshots read it: an N+1 page, a duplicated query (with
a hostile search string in its parameters), a 500 with locals, a JSON POST
and a form POST, each served by the real server child and recorded through
the console's own supervisor (secrets masked as ``--record`` masks them).
Run it again whenever the insight a request carries changes::

    python scripts/make_insight_recording.py [OUTPUT]
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from pathlib import Path

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.supervisor import Supervisor
from devconsole.demo import DEMO_MANAGE_PY, demo_env, ensure_demo_database
from devconsole.model.recording import RecordingWriter

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "recordings" / "insight.jsonl"

#: (method, path, body, content type): the requests, in order.
REQUESTS = [
    ("GET", "/insight/n-plus-one/", None, None),
    ("GET", "/insight/duplicate/?q=%5Bred%5Dlamp%1b%5B2J", None, None),
    ("GET", "/insight/boom/", None, None),
    ("POST", "/api/echo/", b'{"name": "Ada", "api_token": "abc123", "items": [1, 2, 3]}', "application/json"),
    ("POST", "/contact/", b"name=Ada&message=Hello+there&password=s3cret", "application/x-www-form-urlencoded"),
]


def send(host: str, port: int, method: str, path: str, body: bytes | None, content_type: str | None) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=15)
    headers = {"User-Agent": "devconsole-recording"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def record(output: Path) -> int:
    ensure_demo_database(sys.executable)
    project = Project(DEMO_MANAGE_PY, env=tuple(demo_env().items()))
    sock = bind(ListenAddress("127.0.0.1", 0))
    host, port = sock.getsockname()[:2]
    with output.open("w", encoding="utf-8") as out:
        recorder = RecordingWriter(out, lambda event: None)
        cut = threading.Event()
        seen: list[str] = []

        def sink(event: dict) -> None:  # type: ignore[type-arg]
            if cut.is_set():
                return
            if event.get("type") == "request":
                seen.append(str(event.get("path")))
            recorder(event)

        supervisor = Supervisor(project, ListenAddress(host, port), sock, sink)
        try:
            if not supervisor.start().hello.wait(60):
                print("make_insight_recording: the server child did not say hello in 60 s", file=sys.stderr)
                return 1
            for method, path, body, content_type in REQUESTS:
                send(host, port, method, path, body, content_type)
                time.sleep(0.2)
            deadline = time.monotonic() + 10
            while len(seen) < len(REQUESTS) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            cut.set()
            supervisor.close()
    count = sum(1 for _ in output.open(encoding="utf-8")) - 1
    print(f"{output}: {count} events")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    raise SystemExit(record(target))
