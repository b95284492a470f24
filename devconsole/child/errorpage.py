"""The page served while the project cannot start.

Runs on the console's socket instead of Django's server, so a browser that
reloads during a broken save gets a 500 with the traceback, never a refused
connection. Uses only the standard library: Django itself may be what broke.

The traceback (paths, source lines, settings values in messages) is shown to
loopback clients only: a server bound on 0.0.0.0 is reachable from the
network, and any other client gets a plain 500.
"""

from __future__ import annotations

import html
import ipaddress
import socketserver
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from devconsole.child.instrument import ServerObserver, instrument_server
from devconsole.wire.events import ErrorEvent

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>devconsole: {title}</title>
<meta http-equiv="refresh" content="2">
<style>body{{font-family:system-ui,sans-serif;margin:2rem;background:#fff8f6;color:#222}}
h1{{color:#b3261e;font-size:1.4rem}}pre{{background:#fff;border:1px solid #e0c4c0;padding:1rem;overflow:auto}}</style>
</head><body><h1>{title}</h1>
<p>The project failed during <b>{phase}</b>. devconsole keeps the port open and
reloads this page every 2 seconds; fix the code and save.</p>
<pre>{traceback}</pre></body></html>
"""


PLAIN = """<!doctype html>
<html><head><meta charset="utf-8"><title>Server Error (500)</title>
<meta http-equiv="refresh" content="2"></head>
<body><h1>Server Error (500)</h1></body></html>
"""


def is_loopback_peer(peer: str) -> bool:
    """Whether a client at ``peer`` (the ``REMOTE_ADDR`` the server sees:
    ``127.0.0.1``, ``::1``, ``::ffff:127.0.0.1``) is on this machine."""
    try:
        ip = ipaddress.ip_address(peer.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """The console shows requests from its own events."""


def error_app(error: ErrorEvent) -> Any:
    """A WSGI application that answers every request 500 with ``error``
    (an ``error`` event: ``message``, ``phase``, ``traceback``) for a
    loopback client, a plain 500 for any other."""
    body = PAGE.format(
        title=html.escape(error["message"]),
        phase=html.escape(error["phase"]),
        traceback=html.escape(error["traceback"]),
    ).encode()
    plain = PLAIN.encode()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        page = body if is_loopback_peer(str(environ.get("REMOTE_ADDR", ""))) else plain
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))],
        )
        return [page]

    return app


def make_error_server(
    listen_fd: int, observer: ServerObserver, error: ErrorEvent, wrap: Callable[[Any], Any] | None = None
) -> Any:
    """A threaded WSGI server on ``listen_fd`` that answers 500 with ``error``
    (its application passed through ``wrap``, if given: live reload)."""
    base = type("ErrorServer", (socketserver.ThreadingMixIn, WSGIServer), {"daemon_threads": True})
    server_cls = instrument_server(base, listen_fd, observer)
    server = server_cls(("127.0.0.1", 0), _QuietHandler)
    observer.server = None  # the error server is not the project's server
    app = error_app(error)
    server.set_app(wrap(app) if wrap is not None else app)
    return server
