"""Record a real demo session into ``tests/recordings/demo.jsonl``.

The snapshot tests, the screenshots and ``devconsole replay`` all read this
file, so it must come from the real server, not be written by hand: this
script binds a loopback port, starts the demo project's server child through
the console's own :class:`~devconsole.console.supervisor.Supervisor`, and records
every event while it sends a scripted mix of requests — keep-alive and not,
static files, a 404, a 500, slow ones, and hostile paths and headers sent on a
raw socket. The server child does not watch files itself, so a few ``reload``
events (one per decision the Autoreload panel shows) are appended at the end,
shaped exactly as the reload machinery sends them.

Run it again whenever the event protocol changes::

    python scripts/make_recording.py [OUTPUT]
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.console.supervisor import Supervisor
from devconsole.demo import DEMO_MANAGE_PY, demo_env, ensure_demo_database
from devconsole.model.recording import RecordingWriter

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "recordings" / "demo.jsonl"

#: Requests sent on a raw socket so that bytes no HTTP client would send reach the server.
HOSTILE_RAW = [
    b"GET /%1b]0;title%07 HTTP/1.0\r\n\r\n",
    b"GET /esc\x1b[31mred HTTP/1.0\r\nX-Evil: \x1b]0;pwned\x07\r\nUser-Agent: \x9bcurl\r\n\r\n",
    b"GET /c1\xc2\x9b2J HTTP/1.0\r\nReferer: [@click=app.quit]\r\n\r\n",
]


def get(base: str, path: str) -> int:
    """One request on its own connection (``Connection: close``): the status."""
    try:
        with urllib.request.urlopen(base + path, timeout=15) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def keep_alive(host: str, port: int, paths: list[str]) -> None:
    """Several requests on one HTTP/1.1 connection (the server keeps it when it can)."""
    conn = http.client.HTTPConnection(host, port, timeout=15)
    try:
        for path in paths:
            conn.request("GET", path, headers={"User-Agent": "devconsole-recording"})
            conn.getresponse().read()
            time.sleep(0.15)
    finally:
        conn.close()


def raw(host: str, port: int, payload: bytes) -> None:
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(payload)
        while sock.recv(65536):
            pass


def script(host: str, port: int) -> None:
    """The scripted traffic: a few seconds of a user clicking around, and an attacker."""
    base = f"http://{host}:{port}"
    for path in ["/", "/static/shop/site.css", "/blog/", "/api/products/"]:
        get(base, path)
        time.sleep(0.2)
    keep_alive(host, port, ["/ping/"] * 6)
    get(base, "/nope/")
    time.sleep(0.3)
    get(base, "/boom/")
    time.sleep(0.3)
    get(base, "/slow/?sleep=0.4")
    for path in ["/[/bar]", "/[@click=app.quit]x"]:
        get(base, path)
        time.sleep(0.2)
    for payload in HOSTILE_RAW:
        raw(host, port, payload)
        time.sleep(0.2)
    for _ in range(3):
        keep_alive(host, port, ["/ping/", "/api/products/"])
    get(base, "/slow/?sleep=0.8")


def leave_open(host: str, port: int) -> list[Any]:
    """End the recording with live connections: keep-alive idle, handling, reading."""
    idle = http.client.HTTPConnection(host, port, timeout=15)
    idle.request("GET", "/ping/", headers={"User-Agent": "devconsole-recording"})
    idle.getresponse().read()
    slow = socket.create_connection((host, port), timeout=15)
    slow.sendall(b"GET /slow/?sleep=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    silent = socket.create_connection((host, port), timeout=15)
    time.sleep(0.8)
    return [idle, slow, silent]


def reload_events(at: float, generation: int) -> list[dict[str, Any]]:
    """One ``reload`` event per decision, after the traffic (see ServerState._on_reload)."""
    demo = DEMO_MANAGE_PY.parent
    return [
        {
            "type": "reload",
            "ts": at - 0.9,
            "files": [str(demo / "shop" / "views.py")],
            "decision": "restarted",
            "duration_ms": 412.6,
            "phases": {"detect": 52.0, "stop": 38.4, "start": 301.2, "ready": 21.0},
            "error": None,
            "new_generation": generation + 1,
        },
        {
            "type": "reload",
            "ts": at - 0.6,
            "files": [str(demo / "blog" / "templates" / "blog" / "post_list.html")],
            "decision": "handled",
            "duration_ms": 3.1,
            "phases": {"detect": 51.0},
            "error": None,
            "new_generation": None,
        },
        {
            "type": "reload",
            "ts": at - 0.3,
            "files": [str(demo / "README.txt"), str(demo / "notes.md")],
            "decision": "ignored",
            "duration_ms": None,
            "phases": {},
            "error": None,
            "new_generation": None,
        },
        {
            "type": "reload",
            "ts": at,
            "files": [str(demo / "shop" / "models.py")],
            "decision": "failed",
            "duration_ms": 250.4,
            "phases": {"detect": 50.2, "stop": 35.0, "start": 165.2},
            "error": "SyntaxError: invalid syntax (models.py, line 12)",
            "new_generation": generation + 2,
        },
    ]


def record(output: Path) -> int:
    ensure_demo_database(sys.executable)
    project = Project(DEMO_MANAGE_PY, env=tuple(demo_env().items()))
    # Port 0: the kernel picks a free one; the child adopts the bound socket.
    sock = bind(ListenAddress("127.0.0.1", 0))
    host, port = sock.getsockname()[:2]
    address = ListenAddress(host, port)
    with output.open("w", encoding="utf-8") as out:
        # Events go only to the file; after the cut (the shutdown) not even there.
        recorder = RecordingWriter(out, lambda event: None)
        cut = threading.Event()
        supervisor = Supervisor(project, address, sock, lambda event: None if cut.is_set() else recorder(event))
        opened: list[Any] = []
        try:
            child = supervisor.start()
            if not child.hello.wait(60):
                print("make_recording: the server child did not say hello in 60 s", file=sys.stderr)
                return 1
            script(host, port)
            opened = leave_open(host, port)
            for event in reload_events(time.time(), supervisor.generation):
                recorder(event)
        finally:
            # The recording ends with connections open and the server serving.
            cut.set()
            for conn in opened:
                conn.close()
            supervisor.close()
    count = sum(1 for _ in output.open(encoding="utf-8")) - 1
    print(f"{output}: {count} events")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    raise SystemExit(record(target))
