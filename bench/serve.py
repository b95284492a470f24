"""Serve the demo project for a benchmark: ``serve.py MODE PORT``.

``devconsole``: the console's own server path without the screen — the
console binds the port, :class:`~devconsole.console.supervisor.Supervisor` starts
the server child (the demo's real ``runserver``, instrumented) on it, and every
event is ingested into a :class:`~devconsole.model.state.ServerState`, exactly
the work the console does per request, minus drawing.

``bare``: the ceiling. Django's own ``WSGIServer`` with ``ThreadingMixIn``
(what runserver builds) and ``TCP_NODELAY`` on accepted sockets, serving the
handler runserver would serve (staticfiles' ``get_handler()``), with no
instrumentation: the ceiling the benchmark issue names.

``tuned``: ``bare`` plus the two changes devconsole makes to how a response
leaves (``devconsole.child.instrument.transport_handler``: each response in
one ``sendall``; the ``django.server`` request line not built when nobody
reads it), still without instrumentation. devconsole against this is what
the instrumentation itself costs.

Runs until its stdin closes (or SIGINT/SIGTERM), then stops its server and
exits; run from the demo project directory with its environment.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import threading
from pathlib import Path


def serve_devconsole(port: int, stop: threading.Event) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from devconsole.console.listen import bind, parse_addrport
    from devconsole.console.project import Project
    from devconsole.console.supervisor import Supervisor
    from devconsole.demo import DEMO_MANAGE_PY, demo_env
    from devconsole.model.state import ServerState

    address = parse_addrport(f"127.0.0.1:{port}")
    state = ServerState()
    supervisor = Supervisor(
        Project(DEMO_MANAGE_PY, env=tuple(demo_env().items())), address, bind(address), state.ingest
    )
    child = supervisor.start()
    try:
        if not child.hello.wait(60) or not child.alive:
            raise SystemExit("serve.py: the server child did not start")
        stop.wait()
    finally:
        supervisor.close()


def serve_bare(port: int, stop: threading.Event, *, tuned: bool = False) -> None:
    demo = Path(__file__).resolve().parents[1] / "devconsole" / "demo"
    sys.path.insert(0, str(demo))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
    import django

    django.setup()
    from socketserver import ThreadingMixIn

    from django.core.management import get_commands, load_command_class
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

    # The handler runserver itself would serve (staticfiles wraps it).
    command = load_command_class(get_commands()["runserver"], "runserver")
    handler = command.get_handler(use_static_handler=True, insecure_serving=False)

    class BareServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, object]:
            sock, address = super().get_request()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, address

    handler_class: type = WSGIRequestHandler
    if tuned:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from devconsole.child.instrument import quiet_request_log, request_line_reaches_nobody, transport_handler

        quiet_request_log()
        handler_class = transport_handler(WSGIRequestHandler, request_line_reaches_nobody())
    server = BareServer(("127.0.0.1", port), handler_class)
    server.set_app(handler)
    thread = threading.Thread(target=server.serve_forever, name="bare-server", daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    modes = {"devconsole": serve_devconsole, "bare": serve_bare, "tuned": functools.partial(serve_bare, tuned=True)}
    if len(sys.argv) != 3 or sys.argv[1] not in modes or not sys.argv[2].isdigit():
        sys.stderr.write(f"usage: serve.py {{{','.join(modes)}}} PORT\n")
        raise SystemExit(2)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    modes[sys.argv[1]](int(sys.argv[2]), stop)


if __name__ == "__main__":
    main()
