"""The messages between the console and a fork server, defined once.

A fork server (:mod:`devconsole.child.forkserver`) and the console's handle on
it (:class:`devconsole.console.supervisor.ForkServerHandle`) talk over a
``SOCK_SEQPACKET`` socket pair: one JSON object per packet, with an ``op``
naming the message, and file descriptors passed alongside with
``SCM_RIGHTS``. Both sides build and read messages with this module only.

To a fork server:

``level1`` + [control socket]
    (level 0) fork a level 1 that runs the project's setup; with ``apps``,
    an apps level instead, which runs it up to the project's own models
    and holds it there;
    (the apps level) fork a level 1 that goes on with the setup from there.
``serve`` + [control, stdout, stderr, events]
    fork a server child: ``args`` (the server child's command line),
    ``spare`` (prepare, then wait for ``go GENERATION`` on the control
    socket, :mod:`devconsole.wire.control`), ``gated`` (serve
    only after ``accept`` on the control socket); its stdin is ``/dev/null``.
``preload``
    import ``modules`` while idle (level 0: libraries a level 1 used;
    level 1: libraries the last generation imported from outside the project);
    with ``stop``: drop what is left and answer ``preloaded`` (before the
    next import: an import under way finishes first);
    ``seq`` numbers them (echoed by ``preloaded``).
``quit``
    exit once every child is reaped.

From a fork server:

``ready``
    ``level``, ``pid``, ``forkable``, ``threads``, ``files``, and for a
    level 1 or an apps level ``reactor``, for a level 1 ``modules``; ``phases``.
``failed``
    (level 1, the apps level) the setup failed: ``level``, ``pid``, ``phase``, ``message``,
    ``files`` (what it had imported, to watch for the fix).
``forked``
    ``pid``, ``ms`` (the fork's duration).
``exit``
    a child was reaped: ``pid``, ``returncode``.
``preloaded``
    answers ``preload``: ``loaded``, ``forkable``, ``files`` (the project
    files held, with those a failed import ran), ``seq`` (the highest
    ``preload`` handled: every one up to it is answered).
"""

from __future__ import annotations

import json
import os
import socket
from enum import Enum, IntEnum
from typing import Any

#: Largest message read; file descriptors per message.
MAX_MESSAGE = 1 << 20
MAX_FDS = 8
#: Largest message sent: a packet of a Unix socket is bounded by its send
#: buffer (Linux's default, 208 KiB), whatever the reader would take.
MAX_PACKET = 192 * 1024

Message = dict[str, Any]


class ForkServerLevel(IntEnum):
    """How much a fork server holds: ``BASE`` (level 0) Django imported, no
    settings; ``SETUP`` (level 1) the project's ``django.setup()`` done;
    ``APPS`` (between the two: forked from level 0, forks level 1) the
    settings imported and ``django.setup()`` done up to the models of the
    project's own apps: every library's models imported, none of the project's."""

    BASE = 0
    SETUP = 1
    APPS = 2


class Op(str, Enum):
    """The ``op`` of a message (the value is what travels)."""

    # to a fork server
    LEVEL1 = "level1"
    SERVE = "serve"
    PRELOAD = "preload"
    QUIT = "quit"
    # from a fork server
    READY = "ready"
    FAILED = "failed"
    FORKED = "forked"
    EXIT = "exit"
    PRELOADED = "preloaded"


def message(op: Op, **fields: Any) -> Message:
    """A message: ``{"op": op, **fields}`` (``op`` as its plain string)."""
    return {"op": op.value, **fields}


def op_of(msg: Message | None) -> Op | None:
    """The message's :class:`Op`, or None for none or an unknown one."""
    if msg is None:
        return None
    try:
        return Op(msg.get("op"))
    except ValueError:
        return None


def encode(msg: Message) -> bytes:
    return json.dumps(msg, default=str).encode()


def fit(msg: Message, droppable: tuple[tuple[str, Any], ...]) -> Message:
    """``msg`` within :data:`MAX_PACKET` once encoded: the ``droppable``
    fields (name, what stands for none) emptied in turn, as needed."""
    for name, nothing in droppable:
        if len(encode(msg)) <= MAX_PACKET:
            break
        msg[name] = nothing
    return msg


def decode(data: bytes) -> Message | None:
    """The message in ``data``; None when it is not a JSON object with an ``op``."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("op"), str) else None


def send(sock: socket.socket, msg: Message, fds: list[int] | None = None) -> None:
    """Send one message (and ``fds``); raises ``OSError`` when the socket broke."""
    data = encode(msg)
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def receive(sock: socket.socket) -> tuple[Message | None, list[int], bool]:
    """One message and the fds that came with it, and whether the peer is
    gone (EOF: no message, no fds). A packet that is not a message comes as
    ``(None, fds, False)``: the caller closes the fds."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, [], True
    return decode(data), list(fds), False
