"""The event protocol between a server child and the console.

One JSON object per line, each with a ``type``. The child writes them on a
pipe of its own (its stdout and stderr are separate pipes, read by the parent
as ``log`` events). The same lines, saved with their arrival time, are a
recording that can be replayed into the UI.

Types sent by the child:

``hello``
    once the server is serving: ``pid``, ``python``, ``django``, ``settings``,
    ``runserver`` (``class``, ``app``, ``mro``, ``shadows``), ``handler``,
    ``listen`` (``host``, ``port``), ``threading``, ``poll_interval``,
    ``phases`` (list of ``{"name", "ms"}``), ``generation``, ``urlconf_error``,
    ``request_log`` (``"events"`` when the child left runserver's per-request
    log line to the console, which writes it from ``request`` events),
    ``server_kind``: ``"wsgi"`` (Django's ``WSGIServer`` and its select
    loop) or ``"asgi"`` (Daphne, Channels' runserver, on Twisted: no select
    loop, ``poll_interval`` null, ``handler`` the ASGI application's class).
``loop``
    aggregated since the previous one: ``iterations``, ``ready``,
    ``timeouts``, ``blocked_s``, ``elapsed_s``, ``accepts``, ``poll_interval``.
``conn_open`` / ``conn_state`` / ``conn_close``
    ``id``, ``peer``, ``state`` (``reading``, ``handling``, ``idle``,
    ``closed``), ``thread``, ``bytes_in``, ``bytes_out``, ``requests``, ``ts``.
    A WebSocket (ASGI servers) adds ``kind: "websocket"``, ``path``,
    ``messages_in``, ``messages_out``; its states are ``handshake``,
    ``websocket`` (open), ``closing``, ``closed``.
    A connection opened and closed between two flushes comes as its
    ``conn_close`` alone.
``request``
    ``id``, ``conn``, ``method``, ``path``, ``query``, ``version``,
    ``status``, ``duration_ms``, ``bytes_out``, ``thread``, ``ts`` (wall
    clock at start), ``headers`` (list of ``[name, value]``).
``stats``
    cumulative totals, exact even when rows were dropped: ``requests``,
    ``connections``, ``dropped``, ``status`` (counts by class, ``"2xx"``...).
``checks``
    ``messages`` (``level``, ``id``, ``msg``, ``obj``), ``migrations``
    (unapplied count, or null), ``error``.
``error``
    a failure the server could not start past: ``phase``, ``message``,
    ``traceback``. Phases in :data:`NON_FATAL_PHASES` are shown but the
    server goes on (``server class``: a runserver whose server class
    devconsole does not know, served by Django's WSGI runserver instead).
``bye``
    the child is stopping: ``in_flight``.

Added by the console itself: ``log`` (``stream``, ``text``), ``exit``
(``generation``, ``returncode``), and, from the reload machinery (see
:mod:`.reloader`):

``reload``
    ``ts``, ``files``, ``decision`` (``restarted``, ``handled``, ``ignored``,
    ``failed``), ``duration_ms``, ``phases`` (``detect``, ``stop``,
    ``start``, ``ready`` in ms), ``error``, ``new_generation``, and how the
    new server came to be: ``level`` (``fork``, ``setup``, ``full``,
    ``spawn``), ``via``, ``spare``.
``watch``
    ``roots``, ``globs``, ``files`` (capped) and ``files_total``: what the
    watcher covers.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1

#: Bytes a single event line may take; longer lines are dropped by the reader.
MAX_LINE = 1 << 20

#: Error phases the server goes on serving through (the console shows them,
#: the generation is not failed): a URLconf that does not import yet, a
#: file_changed receiver that raised.
NON_FATAL_PHASES = frozenset({"file_changed", "URLconf import", "server class"})


#: One encoder for every event: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def encode(event: dict[str, Any]) -> bytes:
    """One event as a JSON line."""
    return _ENCODER.encode(event).encode() + b"\n"


def decode(line: bytes | str) -> dict[str, Any] | None:
    """The event on ``line``, or ``None`` when it is not a JSON object with a type."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value
    return None
