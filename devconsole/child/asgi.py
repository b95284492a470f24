"""Daphne (Channels' runserver) on the console's socket, observed through ASGI.

Daphne's ``runserver`` subclasses Django's but its ``inner_run`` builds its
own server: ``server_cls(application=..., endpoints=[...], signal_handlers=...,
action_logger=..., ...)`` then ``.run()``, which starts Twisted's reactor.
:func:`daphne_server` hands it a subclass of that ``Server`` which:

* listens on the console's inherited socket (a dup of it, adopted through
  Twisted's ``AdoptedStreamServerEndpoint``: the ``fd:`` endpoint Daphne
  documents) instead of binding ``addr:port`` itself, so connections that
  arrive during a reload wait in the shared backlog;
* never installs signal handlers: the reactor runs in ``django-main-thread``
  and the agent's main thread obeys the console;
* wraps the application (:func:`instrument_application`): each HTTP request
  becomes the same ``request`` event the WSGI path sends, each WebSocket is
  its TCP connection's row with ``state: "websocket"`` and its message counts;
* counts accepted connections and their bytes by wrapping the HTTP factory's
  protocols (Twisted has no select loop we instrument; accepts still count);
* stops the way a WSGI generation does (:meth:`shutdown` stops accepting;
  :meth:`dc_finish`, once requests in flight are done, closes what is left and
  stops the reactor).

Child-side: standard library and Django only at import; Daphne and Twisted
are the project's, imported only when its runserver is Daphne's. Nothing
here is on the WSGI path.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Any, Literal

from devconsole.child.instrument import MAX_HEADER_VALUE, MAX_HEADERS, Connection, ConnEvent, ServerObserver
from devconsole.child.introspect import class_path
from devconsole.wire.events import RequestEvent

#: Longest wait for open connections to close once the reactor is told to stop.
CLOSE_TIMEOUT = 2.0


class AsgiConnection(Connection):
    """A TCP connection Daphne accepted; becomes a WebSocket after an upgrade."""

    __slots__ = ("protocol", "transport", "messages_in", "messages_out")

    def __init__(self, conn_id: int, peer: str) -> None:
        super().__init__(conn_id, peer)
        self.protocol = ""
        self.transport: Any = None
        self.messages_in = 0
        self.messages_out = 0

    def as_event(self, kind: Literal["conn_open", "conn_state", "conn_close"]) -> ConnEvent:
        event = super().as_event(kind)
        if self.protocol == "websocket":
            event["kind"] = "websocket"
            event["path"] = self.path
            event["messages_in"] = self.messages_in
            event["messages_out"] = self.messages_out
        return event


def peer_name(host: Any, port: Any) -> str:
    """``host:port`` as the WSGI path names peers (IPv6 in brackets)."""
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_daphne_server(server_cls: Any) -> bool:
    """Whether ``server_cls`` is Daphne's ``Server`` (or a subclass)."""
    module = sys.modules.get("daphne.server")
    base = getattr(module, "Server", None)
    return isinstance(server_cls, type) and base is not None and issubclass(server_cls, base)


def instrument_application(app: Any, observer: ServerObserver) -> Any:
    """An ASGI application that runs ``app`` and reports to ``observer``.

    HTTP: one ``request`` event per request, shaped like the WSGI path's
    (status from ``http.response.start``, ``bytes_out`` the body bytes, done
    at the last body chunk). WebSocket: the connection's row turns
    ``websocket``; messages received and sent are counted; the row closes
    when the application is done with the socket.
    """

    async def observed(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        kind = scope.get("type")
        if kind == "http":
            return await _http(scope, receive, send)
        if kind == "websocket":
            return await _websocket(scope, receive, send)
        return await app(scope, receive, send)

    def _conn(scope: dict[str, Any]) -> AsgiConnection | None:
        client = scope.get("client")
        if not client or len(client) < 2:
            return None
        conn = observer.conns.get(peer_name(client[0], client[1]))  # type: ignore[call-overload]
        return conn if isinstance(conn, AsgiConnection) else None

    async def _http(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        conn = _conn(scope)
        headers = scope.get("headers") or []
        request: RequestEvent = {
            "type": "request",
            "id": "",
            "conn": conn.id if conn else None,
            "method": str(scope.get("method") or ""),
            "path": str(scope.get("path") or ""),
            "query": bytes(scope.get("query_string") or b"").decode("latin-1"),
            "version": f"HTTP/{scope.get('http_version') or '1.1'}",
            "status": None,
            "bytes_out": 0,
            "thread": threading.current_thread().name,
            "ts": time.time(),
            "headers": [
                [bytes(k).decode("latin-1"), bytes(v).decode("latin-1")[:MAX_HEADER_VALUE]]
                for k, v in headers[:MAX_HEADERS]
            ],
            "duration_ms": 0.0,
        }
        t0 = time.perf_counter()
        done = False
        if conn is not None:
            conn.state = "handling"
            observer.dirty.add(conn)

        def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            request["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            if conn is not None:
                conn.requests += 1
                request["id"] = f"{conn.id}.{conn.requests}"
                if conn.state != "closed":
                    conn.state = "idle"
                    observer.dirty.add(conn)
            else:
                request["id"] = f"-.{observer.requests_total + 1}"
            observer.on_request(request)

        async def observed_send(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                request["status"] = int(message.get("status") or 0) or None
            await send(message)
            if kind == "http.response.body":
                request["bytes_out"] += len(message.get("body") or b"")
                if not message.get("more_body"):
                    finish()

        try:
            return await app(scope, receive, observed_send)
        except BaseException:
            if request["status"] is None:
                request["status"] = 500  # Daphne answers it with its own 500 page
            raise
        finally:
            finish()

    async def _websocket(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        conn = _conn(scope)
        if conn is None:
            client = scope.get("client") or ("?", 0)
            conn = AsgiConnection(next(observer._ids), peer_name(*client[:2]))
            observer.conns[conn.peer] = conn  # type: ignore[index]
            observer.connections_total += 1
            observer.opened.append(conn)
            observer.wake()
        conn.protocol = "websocket"
        conn.path = str(scope.get("path") or "")
        conn.state = "handshake"
        conn.thread = threading.current_thread().name
        observer.dirty.add(conn)

        async def observed_receive() -> dict[str, Any]:
            message = await receive()
            kind = message.get("type")
            if kind == "websocket.receive":
                conn.messages_in += 1
                conn.bytes_in += len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
                observer.dirty.add(conn)
            elif kind == "websocket.disconnect":
                conn.state = "closing"
                observer.dirty.add(conn)
            return message

        async def observed_send(message: dict[str, Any]) -> None:
            kind = message.get("type")
            await send(message)
            if kind == "websocket.accept":
                conn.state = "websocket"
            elif kind == "websocket.send":
                conn.messages_out += 1
            elif kind == "websocket.close":
                conn.state = "closing"
            observer.dirty.add(conn)

        try:
            return await app(scope, observed_receive, observed_send)
        finally:
            observer.on_close(conn.peer)  # type: ignore[arg-type]

    observed.dc_app = app  # type: ignore[attr-defined]
    return observed


def daphne_server(base: type, listen_fd: int, observer: ServerObserver) -> type:
    """A subclass of Daphne's ``Server`` (``base``) serving ``listen_fd``
    and reporting to ``observer``; see the module docstring."""
    import daphne.server as daphne_module
    from twisted.internet import reactor
    from twisted.internet.endpoints import AdoptedStreamServerEndpoint

    class ConsoleDaphneServer(base):
        dc_kind = "asgi"

        def __init__(self, application: Any, *args: Any, **kwargs: Any) -> None:
            self.dc_application = application
            kwargs["endpoints"] = [f"fd:fileno={listen_fd}"]  # replaced by the adopted port in run()
            kwargs["signal_handlers"] = False  # the reactor runs off the main thread
            super().__init__(instrument_application(application, observer), *args, **kwargs)
            listen = socket.socket(fileno=os.dup(listen_fd))
            try:
                self.dc_family = listen.family
                address = listen.getsockname()
            finally:
                listen.close()
            self.server_name, self.server_port = str(address[0]), int(address[1])
            self.dc_port: Any = None
            self.dc_stopped = threading.Event()
            observer.server = self

        # serving -----------------------------------------------------------
        def run(self) -> None:
            """Daphne's ``run``, with our socket adopted instead of a bind."""
            original = daphne_module.serverFromString

            def endpoint(reactor_: Any, description: str) -> Any:
                if description == f"fd:fileno={listen_fd}":
                    # A dup: the endpoint closes the fd it adopts. IPv6 too
                    # (the fd: string cannot name an address family).
                    return AdoptedStreamServerEndpoint(reactor_, os.dup(listen_fd), self.dc_family)
                return original(reactor_, description)

            daphne_module.serverFromString = endpoint
            try:
                super().run()
            finally:
                daphne_module.serverFromString = original
                self.dc_stopped.set()
            if self.dc_port is None:
                raise RuntimeError("Daphne could not listen on the console's socket (see the log)")

        def listen_success(self, port: Any) -> None:
            super().listen_success(port)
            self.dc_port = port
            self._observe_factory()
            observer.serving.set()

        def _observe_factory(self) -> None:
            factory = self.http_factory
            build = factory.buildProtocol

            def build_protocol(addr: Any) -> Any:
                protocol = build(addr)
                if protocol is not None:
                    # Also while stopping (accepted before stopListening took
                    # effect): a stop waits for its request like any other.
                    _observe_protocol(protocol, addr)
                return protocol

            factory.buildProtocol = build_protocol

        # stopping ----------------------------------------------------------
        def shutdown(self) -> None:
            """Stop accepting (the console's socket stays open in the console);
            requests in flight go on."""
            done = threading.Event()

            def stop_listening() -> None:
                try:
                    if self.dc_port is not None:
                        self.dc_port.stopListening()
                finally:
                    done.set()

            if reactor.running:
                reactor.callFromThread(stop_listening)
                done.wait(CLOSE_TIMEOUT)

        def dc_finish(self) -> None:
            """Once no request is in flight: close the connections left
            (keep-alive, WebSockets with a "going away" close), then stop the
            reactor, so Daphne's ``run`` returns."""
            if not reactor.running:
                return

            def close_all() -> None:
                for conn in list(observer.conns.values()):
                    transport = getattr(conn, "transport", None)
                    if transport is None:
                        continue
                    protocol = getattr(transport, "protocol", None)
                    try:
                        if (
                            getattr(conn, "protocol", "") == "websocket"
                            and protocol is not None
                            and hasattr(protocol, "sendClose")
                        ):
                            protocol.sendClose(code=1001)
                        else:
                            transport.loseConnection()
                    except Exception:
                        transport.loseConnection()

            reactor.callFromThread(close_all)
            deadline = time.monotonic() + CLOSE_TIMEOUT
            while observer.conns and time.monotonic() < deadline:
                time.sleep(0.01)
            reactor.callFromThread(reactor.stop)  # type: ignore[misc]  # twisted types the global reactor as a module
            self.dc_stopped.wait(CLOSE_TIMEOUT)

    def _observe_protocol(protocol: Any, addr: Any) -> None:
        """Count the connection's bytes and see it close (until an upgrade
        hands the transport to a WebSocket protocol, whose end the
        application wrapper sees)."""
        host, port = getattr(addr, "host", "?"), getattr(addr, "port", 0)
        conn = AsgiConnection(next(observer._ids), peer_name(host, port))
        conn.thread = threading.current_thread().name
        key = conn.peer
        observer.conns[key] = conn  # type: ignore[index]
        observer.connections_total += 1
        observer.ready += 1  # an accept, for the accepts/s sparkline
        observer.opened.append(conn)
        observer.wake()
        make_connection = protocol.makeConnection
        data_received = protocol.dataReceived
        connection_lost = protocol.connectionLost

        def observed_make_connection(transport: Any) -> Any:
            conn.transport = transport
            write, write_sequence = transport.write, transport.writeSequence

            def observed_write(data: bytes) -> Any:
                conn.bytes_out += len(data)
                observer.dirty.add(conn)
                return write(data)

            def observed_write_sequence(seq: Any) -> Any:
                seq = list(seq)
                conn.bytes_out += sum(len(d) for d in seq)
                observer.dirty.add(conn)
                return write_sequence(seq)

            transport.write, transport.writeSequence = observed_write, observed_write_sequence
            return make_connection(transport)

        def observed_data_received(data: bytes) -> Any:
            conn.bytes_in += len(data)
            observer.dirty.add(conn)
            return data_received(data)

        def observed_connection_lost(reason: Any) -> Any:
            try:
                return connection_lost(reason)
            finally:
                if observer.conns.get(key) is conn:  # type: ignore[call-overload]
                    observer.on_close(key)  # type: ignore[arg-type]

        protocol.makeConnection = observed_make_connection
        protocol.dataReceived = observed_data_received
        protocol.connectionLost = observed_connection_lost

    ConsoleDaphneServer.__name__ = base.__name__
    ConsoleDaphneServer.__qualname__ = base.__qualname__
    ConsoleDaphneServer.__module__ = base.__module__
    return ConsoleDaphneServer


def application_path(server: Any) -> str:
    """The class of the application Daphne serves (what the ``hello`` names as handler)."""
    app = getattr(server, "dc_application", None)
    return class_path(app if isinstance(app, type) else type(app)) if app is not None else ""
