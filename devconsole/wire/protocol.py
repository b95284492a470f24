"""The event protocol between a server child and the console.

One JSON object per line, each with a ``type``. The child writes them on a
pipe of its own (its stdout and stderr are separate pipes, read by the parent
as ``log`` events). The same lines, saved with their arrival time, are a
recording that can be replayed into the UI.

Every event type has one definition in :mod:`.events`; the list below names
exactly their fields (a test holds the two together). The console adds
a ``generation`` to each event it reads, replays add ``at``, recordings ``rt``.
:func:`decode` turns a line into an event and checks the ``hello`` version;
the console's state checks each event's fields against its definition
before it reads one, and counts (and shows) what it ignores.

Sent by the server child:

``hello``
    once the server is serving: ``v`` (:data:`PROTOCOL_VERSION`), ``pid``,
    ``python``, ``django``, ``settings``, ``runserver`` (``class``, ``app``,
    ``mro``, ``shadows``), ``server`` (the server class's MRO),
    ``handler``, ``listen`` (``host``, ``port``), ``threading``,
    ``poll_interval``, ``phases`` (a list of ``name``, ``ms``),
    ``urlconf_error``, ``request_log`` (``events`` when the child left
    runserver's per-request log line to the console, which writes it from
    ``request`` events, else ``stderr``), ``server_kind``: ``wsgi``
    (Django's ``WSGIServer`` and its select loop) or ``asgi`` (Daphne,
    Channels' runserver, on Twisted: no select loop, ``poll_interval``
    null, ``handler`` the ASGI application's class); ``root``, the
    directory of manage.py (the project's files are named from there);
    ``ahead``, how many of ``phases`` a spare did before the change that
    made it this generation.
``loop``
    aggregated since the previous one: ``iterations``, ``ready``,
    ``timeouts``, ``blocked_s``, ``elapsed_s``, ``accepts``, ``poll_interval``.
``conn_open`` / ``conn_state`` / ``conn_close``
    ``id``, ``peer``, ``state`` (``reading``, ``handling``, ``idle``,
    ``closed``), ``thread``, ``bytes_in``, ``bytes_out``, ``requests``, ``ts``.
    Once it has handled a request, an HTTP connection adds that request's
    ``method`` and ``path``. A page's live reload stream is in state
    ``livereload`` and adds its ``page`` (the page's path). A WebSocket (ASGI servers) adds ``kind`` (``websocket``), ``path``,
    ``messages_in``, ``messages_out``; its states are ``handshake``,
    ``websocket`` (open), ``closing``, ``closed``.
    A connection opened and closed between two flushes comes as its
    ``conn_close`` alone. A ``conn_close`` with ``handover`` (true) moved to
    the next generation at a reload, which opens it anew.
``request``
    ``id``, ``conn``, ``method``, ``path``, ``query``, ``version``,
    ``status``, ``duration_ms``, ``bytes_out``, ``thread``, ``ts`` (wall
    clock at start), ``headers`` (a list of ``[name, value]``).
    With capture on (:mod:`devconsole.child.insight`, the default), also
    what the request did, each part bounded (see :data:`MAX_INSIGHT`):
    ``sql``: ``count``, ``ms`` (exact), ``queries`` (the first
    ``MAX_QUERIES``: ``sql``, ``params`` as bounded reprs, ``alias``,
    ``ms``, ``rows`` where known, ``where`` the issuing line: ``file``,
    ``line``, ``function``), ``groups`` (by ``shape``: ``count``, ``ms``,
    ``where``), ``duplicates`` (same ``sql`` and ``params``: ``count``,
    ``where``), ``n_plus_one`` (groups of at least ``threshold`` queries);
    ``exception``: ``type``, ``message``, ``frames`` (``file``, ``line``,
    ``function``, ``project``, ``source`` lines from ``first``,
    ``locals`` as ``[name, repr]``), ``causes`` (``type``, ``message``),
    ``pm`` (a post-mortem token); ``request_body`` and ``response``'s
    ``body``: ``content_type``, ``size``, ``lines``, ``truncated``,
    ``binary``; ``response``: ``status_line``, ``headers``, ``body``.
``stats``
    cumulative totals, exact even when rows were dropped: ``requests``,
    ``connections``, ``dropped``, ``status`` (counts by class, ``2xx``...),
    ``open`` (connections open now).
``checks``
    ``messages`` (each ``level``, ``id``, ``msg``, ``obj``, ``hint``),
    ``migrations`` (unapplied count, or null), ``error``, ``ms``.
``error``
    a failure the server could not start past: ``phase``, ``message``,
    ``traceback``. Phases in :data:`NON_FATAL_PHASES` are shown but the
    server goes on (``"server class"``: a runserver whose server class
    devconsole does not know, served by Django's WSGI runserver instead).
``watch``
    what the watcher covers: ``roots``, ``globs``, ``dir_globs`` (a list of
    ``[directory, glob]``), ``files`` (capped) and ``files_total``,
    ``ignore``, ``ts``.
``file_changed``
    the answer to the console's ``file_changed PATH``: ``path``,
    ``handled`` (a receiver of Django's signal took it: no restart).
``bye``
    the child is stopping: ``in_flight``.
``livereload``
    live reload (:mod:`devconsole.child.livereload`) in this generation:
    ``enabled`` (the console's switch), ``debug`` (the project's DEBUG;
    it is on only with both), ``pages`` (streams open now); sent with
    ``hello`` and whenever one changes. Requests under ``/__devconsole__/``
    are no ``request`` event and not in ``stats``.
``livereload_skip``
    a page left without the script, once per path: ``path``, ``reason``
    (its Content-Security-Policy forbids it).
``draining``
    the child was asked to stop and still has requests in flight: it
    accepts nothing more and finishes them however long they take (the
    next generation serves everything new): ``in_flight``, sent again each
    time that number changes (0 once drained).
``spare_ready``
    a spare forked ahead of a reload (generation 0) is ready: ``pid``,
    ``files`` (the project files it holds, those its libraries' imports
    ran included), ``twin`` (it forked a twin holding those files alone,
    and now imports project modules ahead), ``normalized`` (how many URL
    patterns' forms it computed ahead).
``spare_ahead``
    a spare with a twin imported the project modules ahead: ``pid``,
    ``files`` (the project files it holds now).
``spare_failed``
    the spare could not prepare: ``pid``, ``message``; ``unsafe_preload``
    when a library it imported ahead built template engines (the next
    spares import none ahead).

Added by the console itself:

``log``
    ``stream``, ``text``, ``ts``: a line of the child's stdout or stderr, or
    of the console's own.
``exit``
    ``returncode``, ``ts``: a generation's process ended; ``cut`` (why: by you,
    quit) when the console ended it on purpose with requests still in
    flight.
``reload``
    from the reload machinery (:mod:`devconsole.console.reloader`): ``ts``,
    ``files``, ``decision`` (``restarted``, ``handled``, ``ignored``,
    ``failed``), ``duration_ms``, ``phases`` (``detect``, ``stop``,
    ``start``, ``ready`` in ms), ``error``, ``new_generation``, and how the
    new server came to be: ``level`` (``fork``, ``setup``, ``full``,
    ``spawn``), ``via``, ``spare``, ``twin`` (the spare's twin served);
    ``steps``, where the time went (a list of
    ``name``, ``ms``: the change noticed, each fork server rebuilt, the new
    generation's phases after the change).

Added by the side processes' manager (:mod:`devconsole.console.sideprocs`,
wired in :mod:`devconsole.console.session`):

``processes``
    once at start: ``names`` (the declared side processes, in order),
    ``error`` (one line, with the file and line number, when the
    declaration is malformed; none run then), ``ts``.
``process``
    a side process changed state: ``name``, ``state`` (``starting``,
    ``running``, ``stopping``, ``stopped``, ``exited``, ``crashed``,
    ``restarting``), ``pid``, ``returncode`` (negative: the signal),
    ``restarts``, ``delay`` (seconds before a restart), ``ts``.
``process_log``
    a line of its output: ``name``, ``stream``, ``text`` (colour
    sequences kept, every other control character escaped), ``ts``.
"""

from __future__ import annotations

import json
from typing import Any, cast

from devconsole.wire.events import ErrorEvent, Event

PROTOCOL_VERSION = 1

#: Bytes a single event line may take; longer lines are dropped by the reader.
MAX_LINE = 1 << 20

#: What one request's insight may take at most, JSON-encoded, well under
#: :data:`MAX_LINE`: the child measures it and trims what is over (queries,
#: then locals, then bodies; see ``child/insight.py``), saying so where it cut.
MAX_INSIGHT = 600 * 1024

#: Error phases the server goes on serving through (the console shows them,
#: the generation is not failed): a URLconf that does not import yet, a
#: file_changed receiver that raised, a debugger that could not be installed.
NON_FATAL_PHASES = frozenset({"file_changed", "URLconf import", "server class", "debugger"})


#: One encoder for every event: ``json.dumps`` with options builds a new one
#: per call. UTF-8 as it is, not ``\\uXXXX`` escapes: a Cyrillic or CJK
#: character costs 2-3 bytes, not 6.
#: No check for circular references: an event is plain data built here (a
#: cycle would end in RecursionError rather than ValueError), and the check
#: is a dictionary kept for every container of every event.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False, check_circular=False)


def encode(event: Event | dict[str, Any]) -> bytes:
    """One event as a JSON line (UTF-8; a lone surrogate, which only a string
    can hold, is written as its JSON escape)."""
    return _ENCODER.encode(event).encode("utf-8", "backslashreplace") + b"\n"


def decode(line: bytes | str) -> dict[str, Any] | None:
    """The event on ``line``, or ``None`` when it is not a JSON object with a type.

    A ``hello`` in another protocol version than this console's comes back as
    an ``error`` event (phase ``protocol``) that says so in one line: the
    server child runs devconsole from the project's interpreter, and the two
    installs differ. Field types are checked where events are applied
    (:meth:`devconsole.model.state.ServerState.ingest`), against
    :mod:`.events`; an unknown type is passed on, to be counted there."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    if value["type"] == "hello" and value.get("v") != PROTOCOL_VERSION:
        return version_mismatch(value)
    return value


def version_mismatch(hello: dict[str, Any]) -> dict[str, Any]:
    """The ``error`` event standing for a ``hello`` in another protocol version."""
    message = (
        f"server child speaks protocol {hello.get('v')!r:.20}, this console {PROTOCOL_VERSION}: "
        "devconsole differs between the project's interpreter and the console — reinstall it there"
    )
    event: ErrorEvent = {"type": "error", "phase": "protocol", "message": message, "traceback": ""}
    if isinstance(hello.get("generation"), int):
        event["generation"] = hello["generation"]
    return cast("dict[str, Any]", event)
