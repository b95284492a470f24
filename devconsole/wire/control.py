"""The control channel between the console and one server generation.

Never the child's stdin: a view's ``input()``, ``sys.stdin.read()`` or a
debugger would read the console's lines there. Each generation gets one end
of a ``SOCK_SEQPACKET`` Unix socket pair (``--control-fd N``; a forked one
gets it among the fds of the fork server's ``serve`` message); its fd 0 is
``/dev/null``. Sequenced packets, not a stream: each packet is one message,
and the file descriptors sent with it (``SCM_RIGHTS``) arrive with that
message and no other, so a header and its socket cannot come apart.

A message is a word, then optionally a space and its argument (UTF-8).

To a server child:

``stop`` / ``stop next`` + [pipe]
    accept nothing more, hand idle connections over, drain, exit;
    ``next``: a reload (the next generation comes on this socket: the live
    reload pages are told so and reload at once). The pipe, if sent, is
    the write end of the next generation's gate: one byte is written to it
    where ``stopping`` is said, and it closes when the process ends.
``file_changed PATH``
    ask Django's ``file_changed`` receivers (answered by an event).
``go GENERATION`` / ``go GENERATION gated`` (``… twin``)
    (a spare) become ``GENERATION`` and serve; ``gated``: get everything
    ready (URLconf imported, server built) but accept only after ``accept``;
    ``twin``: its twin does (forked before the spare imported project
    modules ahead), the spare standing in for it until it ends.
``gate`` + [pipe]
    (a gated start) the read end of the old generation's gate: serve as
    soon as it is readable (a byte, or the end of a generation gone),
    without waiting for ``accept``, which follows all the same.
``accept`` / ``accept NAMES``
    (a gated start) the old generation accepts nothing more: serve now;
    ``NAMES``: the templates it had compiled (a JSON list), loaded first
    (also when the gate let it in before).
``insight on`` / ``insight off``
    request insight (queries, tracebacks) on or off.
``livereload on`` / ``livereload off``
    live reload (the script in HTML pages, the pages' streams) on or off;
    a generation starts with the switch among its arguments
    (``--browser-reload``) and is sent it again once it serves.
``adopt {header}`` + [socket]
    serve this connection, handed over by an older generation.

From a server child:

``handover {header}`` + [socket]
    an idle keep-alive connection, for the next generation.
``stopping`` / ``stopping NAMES``
    (after ``stop``; ``NAMES``: the templates it compiled, a JSON list) it accepts nothing more and reads no further request
    itself (idle connections are being handed over): the next generation may
    serve now without a request reaching this one's code.
``modules NAME NAME…``
    (once serving; in as many messages as needed) library modules it
    imported that its fork server did not hold: level 1 imports them
    for the next generation.
``patterns JSON``
    (once serving) the regular expressions it compiled: the next spare
    compiles them ahead.
``normalized JSON``
    (after ``patterns``) the URL patterns its reverse tables normalized:
    the next spare normalizes them ahead.
``project JSON``
    (once serving) the project modules it imported beyond its fork
    server's, each with the modules among them it refers to: the next spare
    imports ahead those no recent save changed.
``bye``
    (after ``stop``) no request is left: only its last events are still to
    be written, at the pace the console reads them (it is not cut for that).

A header is a JSON object: ``peer``, ``conn`` (its id where it was accepted),
``requests`` (served on it so far), ``bytes_in``, ``bytes_out``, ``opened``.
The end of the channel (EOF) means the console is gone: the child stops.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

#: ``0`` in the console's environment: live reload starts off
#: (``--no-browser-reload``). Each server child is given the switch as it is
#: when the child starts (``--browser-reload``), then ``livereload on|off``.
BROWSER_RELOAD_ENV = "DEVCONSOLE_BROWSER_RELOAD"

#: ``stop``'s argument when the console starts the next generation on the
#: same socket (a reload), not when it quits: the pages may reload at once.
STOP_SUCCESSOR = "next"

#: Largest message (a path, a header); file descriptors per message.
MAX_MESSAGE = 64 * 1024
MAX_FDS = 1

Header = dict[str, Any]


def pair() -> tuple[socket.socket, socket.socket]:
    """``(console's end, child's end)``; the child's is inheritable by the caller's choice."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, word: str, arg: str = "", fds: list[int] | None = None) -> None:
    """Send one message (and ``fds``); raises ``OSError`` when the channel broke."""
    data = (f"{word} {arg}" if arg else word).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def send_header(sock: socket.socket, word: str, header: Header, fd: int) -> None:
    """A message with a JSON header and one socket."""
    send(sock, word, json.dumps(header, separators=(",", ":")), [fd])


def receive(sock: socket.socket) -> tuple[str, str, list[int]] | None:
    """``(word, arg, fds)`` of the next message; None when the peer is gone."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    for fd in fds:
        # recv_fds does not set close-on-exec: a process the receiver starts
        # must not inherit a client's connection (and keep it open).
        os.set_inheritable(fd, False)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    word, _, arg = data.decode("utf-8", "replace").partition(" ")
    return word, arg, list(fds)


def header_of(arg: str) -> Header:
    """The JSON header of an ``adopt``/``handover`` message ({} if malformed)."""
    try:
        value = json.loads(arg)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
