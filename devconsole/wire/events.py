"""One definition per event on the stream, shared by both sides.

Each event is a ``TypedDict``: the server child builds plain dicts against
these definitions (no object per event on the request path, nothing to
convert before ``json``), mypy checks the fields it sends, and the console
checks what it receives against the same definitions with :func:`problem`
before anything reads a field.

A field the definition declares is checked when present; a missing one
takes its reader's default (hand-made test events, recordings from an older
child). Fields the console adds to every event (``generation``, and ``at`` /
``rt`` in replays and recordings) are declared once, in :class:`_Stamped`.

Runs in the project's interpreter too (the child imports it through
:mod:`.protocol`): standard library only, Python 3.10 syntax at run time.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypedDict, Union, get_args

# ---------------------------------------------------------------- common


class _Stamped(TypedDict, total=False):
    #: The server generation the event belongs to (the console adds it).
    generation: int
    #: When a replay delivered it (the recording's own clock).
    at: float
    #: Seconds since the recording started (recordings only).
    rt: float


# ------------------------------------------------------- sent by the child


#: The runserver command that won: class path, app, MRO, apps it shadows
#: (``class`` is a keyword: the functional form is the only spelling).
RunserverInfo = TypedDict("RunserverInfo", {"class": str, "app": str, "mro": list[str], "shadows": list[str]})


class ListenInfo(TypedDict):
    host: str
    port: int


class PhaseTiming(TypedDict):
    name: str
    ms: float


ServerKind = Literal["wsgi", "asgi"]


class _HelloExtraFields(TypedDict, total=False):
    #: The project's root (the directory of manage.py): its files are named from there.
    root: str
    #: How many of ``phases`` were done before the change that made this
    #: generation (a spare prepares ahead): they took none of a reload's time.
    ahead: int


class HelloEvent(_Stamped, _HelloExtraFields):
    type: Literal["hello"]
    v: int
    pid: int
    python: str
    django: str
    settings: str
    runserver: RunserverInfo
    server: list[str]
    handler: str
    listen: ListenInfo
    threading: bool
    poll_interval: float | None
    phases: list[PhaseTiming]
    urlconf_error: str | None
    request_log: Literal["events", "stderr"]
    server_kind: ServerKind


class LoopEvent(_Stamped):
    type: Literal["loop"]
    iterations: int
    ready: int
    timeouts: int
    blocked_s: float
    elapsed_s: float
    accepts: int
    poll_interval: float


class StatsEvent(_Stamped):
    type: Literal["stats"]
    requests: int
    connections: int
    dropped: int
    status: dict[str, int]
    open: int


ConnState = Literal["reading", "handling", "idle", "closed", "handshake", "websocket", "closing", "livereload"]


class _ConnFields(_Stamped):
    id: int
    peer: str
    state: ConnState
    thread: str
    bytes_in: int
    bytes_out: int
    requests: int
    ts: float


class _ConnExtraFields(TypedDict, total=False):
    #: The request handled on the connection (HTTP), or the WebSocket's path.
    method: str
    path: str
    kind: Literal["websocket"]
    messages_in: int
    messages_out: int
    #: On a ``conn_close``: the connection moved to the next generation (idle
    #: keep-alive at a reload), it was not closed.
    handover: bool
    #: A live reload stream (state ``livereload``): the path of its page.
    page: str


class ConnOpenEvent(_ConnFields, _ConnExtraFields):
    type: Literal["conn_open"]


class ConnStateEvent(_ConnFields, _ConnExtraFields):
    type: Literal["conn_state"]


class ConnCloseEvent(_ConnFields, _ConnExtraFields):
    type: Literal["conn_close"]


class CodeLine(TypedDict):
    """A line of code: where a query was issued, a frame of a traceback."""

    file: str
    line: int
    function: str


class SqlQuery(TypedDict, total=False):
    sql: str
    #: Bounded ``repr`` of each parameter.
    params: list[str]
    alias: str
    ms: float
    #: ``cursor.rowcount`` where the database knows it (not for a SELECT).
    rows: int
    where: CodeLine


class SqlGroup(TypedDict, total=False):
    """Queries of one shape (literals and parameters taken out)."""

    shape: str
    count: int
    ms: float
    where: CodeLine


class SqlDuplicate(TypedDict, total=False):
    """One SQL with the same parameters run more than once."""

    sql: str
    params: list[str]
    count: int
    where: CodeLine


class SqlInsight(TypedDict, total=False):
    count: int
    ms: float
    queries: list[SqlQuery]
    groups: list[SqlGroup]
    duplicates: list[SqlDuplicate]
    #: Shapes repeated at least ``threshold`` times.
    n_plus_one: list[SqlGroup]
    threshold: int


class ExcFrame(TypedDict, total=False):
    file: str
    line: int
    function: str
    #: The project's own code (not Django, a library, the standard library).
    project: bool
    #: Source lines around ``line``, from ``first``.
    source: list[str]
    first: int
    #: ``[name, bounded repr]`` pairs.
    locals: list[list[str]]


class ExcCause(TypedDict):
    type: str
    message: str


class ExceptionInsight(TypedDict, total=False):
    type: str
    message: str
    frames: list[ExcFrame]
    #: Chained causes and contexts, innermost last.
    causes: list[ExcCause]
    #: A post-mortem token (the traceback kept in the child).
    pm: str


class BodyPreview(TypedDict, total=False):
    content_type: str
    size: int
    #: The first bytes as text lines (absent for a binary body).
    lines: list[str]
    truncated: bool
    binary: bool


class ResponseInsight(TypedDict, total=False):
    status_line: str
    headers: list[list[str]]
    body: BodyPreview


class _RequestInsight(TypedDict, total=False):
    """What the child learnt about the request beyond the request line
    (:mod:`devconsole.child.insight`); absent when capture is off."""

    sql: SqlInsight
    exception: ExceptionInsight
    request_body: BodyPreview
    response: ResponseInsight


class RequestEvent(_Stamped, _RequestInsight):
    type: Literal["request"]
    id: str
    conn: int | None
    method: str
    path: str
    query: str
    version: str
    status: int | None
    duration_ms: float
    bytes_out: int
    thread: str
    ts: float
    headers: list[list[str]]


class CheckMessage(TypedDict):
    level: str
    id: str
    msg: str
    obj: str
    hint: str


class ChecksEvent(_Stamped):
    type: Literal["checks"]
    messages: list[CheckMessage]
    migrations: int | None
    error: str | None
    ms: float


class ErrorEvent(_Stamped):
    type: Literal["error"]
    phase: str
    message: str
    traceback: str


class WatchEvent(_Stamped):
    type: Literal["watch"]
    roots: list[str]
    globs: list[str]
    dir_globs: list[list[str]]
    files: list[str]
    files_total: int
    ignore: list[str]
    ts: float


class FileChangedEvent(_Stamped):
    type: Literal["file_changed"]
    path: str
    handled: bool


class ByeEvent(_Stamped):
    type: Literal["bye"]
    in_flight: int


class LiveReloadEvent(_Stamped):
    """Live reload in this generation: the console's switch, the project's
    DEBUG, and how many pages follow (sent when any of them changes)."""

    type: Literal["livereload"]
    enabled: bool
    debug: bool
    pages: int


class LiveReloadSkipEvent(_Stamped):
    """A page that cannot follow the code, and why (once per path)."""

    type: Literal["livereload_skip"]
    path: str
    reason: str


class DrainingEvent(_Stamped):
    """A generation asked to stop still has requests in flight (sent again
    each time their number changes, 0 last)."""

    type: Literal["draining"]
    in_flight: int


class _SpareReadyExtraFields(TypedDict, total=False):
    #: How many URL patterns' forms it computed ahead (see
    #: ``devconsole.child.warmup.normalize_ahead``).
    normalized: int


class SpareReadyEvent(_Stamped, _SpareReadyExtraFields):
    type: Literal["spare_ready"]
    pid: int
    #: The project files it holds, exactly (a change to one: not this spare).
    files: list[str]
    #: It forked a twin and imports project modules ahead (see
    #: ForkServer._import_ahead): ``go N twin`` has the twin serve.
    twin: bool


class SpareAheadEvent(_Stamped):
    """A spare with a twin imported the project modules chosen to import
    ahead: the project files it holds now (``go N`` promotes it only when
    none changed; else ``go N twin``)."""

    type: Literal["spare_ahead"]
    pid: int
    files: list[str]


class _SpareFailedExtraFields(TypedDict, total=False):
    #: A library it imported ahead built template engines (see
    #: ForkServer._spare_preload): the next spares import none ahead.
    unsafe_preload: bool


class SpareFailedEvent(_Stamped, _SpareFailedExtraFields):
    type: Literal["spare_failed"]
    pid: int
    message: str


# ------------------------------------------------------ added by the console


class LogEvent(_Stamped):
    type: Literal["log"]
    stream: str
    text: str
    ts: float


class _ExitCut(TypedDict, total=False):
    #: Who cut the requests still in flight (``by you``, ``quit``), when the
    #: console ended the process on purpose before they finished.
    cut: str


class ExitEvent(_Stamped, _ExitCut):
    type: Literal["exit"]
    returncode: int | None
    ts: float


ReloadDecision = Literal["restarted", "handled", "ignored", "failed"]


class _ReloadHow(TypedDict, total=False):
    """How a restarted generation came to be (absent when none did)."""

    level: Literal["fork", "setup", "full", "spawn"]
    via: str
    spare: bool
    #: The spare's twin served (see ``SpareReadyEvent.twin``).
    twin: bool
    #: Where the time went, in order: the decision, each fork server rebuilt
    #: (its own phases: ``django.setup()``…) and the new generation's phases
    #: after the change (``URLconf import``…).
    steps: list[PhaseTiming]


class ReloadEvent(_Stamped, _ReloadHow):
    type: Literal["reload"]
    ts: float
    files: list[str]
    decision: ReloadDecision
    duration_ms: float | None
    phases: dict[str, float]
    error: str | None
    new_generation: int | None


# ------------------------------------------------- side processes (console)


class ProcessesEvent(_Stamped):
    """The side processes a project declares (Procfile.dev, pyproject), once
    at start: their ``names`` in order, and ``error``, the one line saying
    what is wrong with a malformed declaration (then ``names`` is empty)."""

    type: Literal["processes"]
    names: list[str]
    error: str | None
    ts: float


ProcessState = Literal["starting", "running", "stopping", "stopped", "exited", "crashed", "restarting"]


class ProcessEvent(_Stamped):
    """A side process changed state (:mod:`devconsole.console.sideprocs`)."""

    type: Literal["process"]
    name: str
    state: ProcessState
    pid: int | None
    #: Its exit status once it ended (negative: the signal that ended it).
    returncode: int | None
    restarts: int
    #: Seconds until the restart, when ``state`` is ``restarting``.
    delay: float | None
    ts: float


class ProcessLogEvent(_Stamped):
    """A line of a side process's output (SGR colour sequences kept, every
    other control character escaped)."""

    type: Literal["process_log"]
    name: str
    stream: str
    text: str
    ts: float


EventType = Literal[
    "hello",
    "loop",
    "stats",
    "conn_open",
    "conn_state",
    "conn_close",
    "request",
    "checks",
    "error",
    "watch",
    "file_changed",
    "bye",
    "livereload",
    "livereload_skip",
    "draining",
    "spare_ready",
    "spare_ahead",
    "spare_failed",
    "log",
    "exit",
    "reload",
    "processes",
    "process",
    "process_log",
]

Event = (
    HelloEvent
    | LoopEvent
    | StatsEvent
    | ConnOpenEvent
    | ConnStateEvent
    | ConnCloseEvent
    | RequestEvent
    | ChecksEvent
    | ErrorEvent
    | WatchEvent
    | FileChangedEvent
    | ByeEvent
    | LiveReloadEvent
    | LiveReloadSkipEvent
    | DrainingEvent
    | SpareReadyEvent
    | SpareAheadEvent
    | SpareFailedEvent
    | LogEvent
    | ExitEvent
    | ReloadEvent
    | ProcessesEvent
    | ProcessEvent
    | ProcessLogEvent
)

#: Every event type and its definition.
DEFINITIONS: dict[EventType, type] = {
    "hello": HelloEvent,
    "loop": LoopEvent,
    "stats": StatsEvent,
    "conn_open": ConnOpenEvent,
    "conn_state": ConnStateEvent,
    "conn_close": ConnCloseEvent,
    "request": RequestEvent,
    "checks": ChecksEvent,
    "error": ErrorEvent,
    "watch": WatchEvent,
    "file_changed": FileChangedEvent,
    "bye": ByeEvent,
    "livereload": LiveReloadEvent,
    "livereload_skip": LiveReloadSkipEvent,
    "draining": DrainingEvent,
    "spare_ready": SpareReadyEvent,
    "spare_ahead": SpareAheadEvent,
    "spare_failed": SpareFailedEvent,
    "log": LogEvent,
    "exit": ExitEvent,
    "reload": ReloadEvent,
    "processes": ProcessesEvent,
    "process": ProcessEvent,
    "process_log": ProcessLogEvent,
}

#: Sent by the server child (or a fork server's spare); the rest the console adds.
CONSOLE_EVENTS: frozenset[EventType] = frozenset({"log", "exit", "reload", "processes", "process", "process_log"})
CHILD_EVENTS: frozenset[EventType] = frozenset(get_args(EventType)) - CONSOLE_EVENTS


# ------------------------------------------------------------------ checks

_Check = Callable[[Any], bool]


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(v) for v in typing.get_args(tp))
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_describe(t) for t in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _compile(tp: Any) -> _Check:
    """A predicate that says whether a decoded JSON value fits ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return lambda value: True
    if tp is float:
        return lambda value: isinstance(value, (float, int)) and not isinstance(value, bool)
    if tp is int:
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if tp in (str, bool):
        return lambda value: isinstance(value, tp)
    if tp is type(None):
        return lambda value: value is None
    if origin is Literal:
        allowed = frozenset(args)
        # str subclasses too: a console-side enum (``ReloadDecision``) is its value.
        return lambda value: isinstance(value, (str, int)) and value in allowed
    if origin in (Union, types.UnionType):
        checks = tuple(_compile(arg) for arg in args)
        return lambda value: any(check(value) for check in checks)
    if origin is list:
        item = _compile(args[0])
        return lambda value: isinstance(value, list) and all(item(x) for x in value)
    if origin is dict:
        item = _compile(args[1])
        return lambda value: isinstance(value, dict) and all(item(x) for x in value.values())
    if typing.is_typeddict(tp):
        fields = _fields(tp)
        return lambda value: isinstance(value, dict) and _first_problem(value, fields) is None
    raise TypeError(f"no check for {tp!r}")


def _fields(definition: type) -> tuple[tuple[str, _Check, str], ...]:
    hints = typing.get_type_hints(definition)
    return tuple((name, _compile(tp), _describe(tp)) for name, tp in hints.items() if name != "type")


def _first_problem(event: dict[str, Any], fields: tuple[tuple[str, _Check, str], ...]) -> str | None:
    for name, check, expected in fields:
        if name in event and not check(event[name]):
            return f"{name}: {event[name]!r:.40} is not {expected}"
    return None


# ------------------------------------------------------- the fast path
#
# The generic checks above name the first problem; they cost a closure call
# (or several) per field, ~9 µs for a ``request``: as much as applying it.
# Each definition also gets one function, generated from its fields once,
# that tests every field inline with exact-type fast paths (``type(v) is
# int``) and falls back to the generic checks at the first value it does not
# accept outright (a bool where an int is declared, a str subclass for a
# Literal, an unknown state...). What it accepts the generic checks accept
# too, so the answer is always theirs: only a valid event is faster.

#: The exact types of a JSON value that fit each scalar type, no questions asked.
_EXACT: dict[Any, frozenset[type]] = {
    int: frozenset({int}),
    float: frozenset({float, int}),
    str: frozenset({str}),
    bool: frozenset({bool}),
    type(None): frozenset({type(None)}),
}


def _exact_types(tp: Any) -> frozenset[type] | None:
    """The exact types that fit ``tp`` when it is a scalar or a union of scalars."""
    if tp in _EXACT:
        return _EXACT[tp]
    if typing.get_origin(tp) in (Union, types.UnionType):
        found: set[type] = set()
        for arg in typing.get_args(tp):
            exact = _exact_types(arg)
            if exact is None:
                return None
            found |= exact
        return frozenset(found)
    return None


class _FastCheckSource:
    """The source of one definition's fast check, and the constants it names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}
        self._names = 0

    def constant(self, value: object) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def variable(self) -> str:
        self._names += 1
        return f"v{self._names}"

    def fields(self, definition: type, mapping: str, indent: str, *, skip_type: bool) -> None:
        """Check each field of ``definition`` present in ``mapping`` (a dict)."""
        for name, tp in typing.get_type_hints(definition).items():
            if skip_type and name == "type":
                continue
            if tp is Any:
                continue
            value = self.variable()
            self.lines.append(f"{indent}if {name!r} in {mapping}:")
            self.lines.append(f"{indent}    {value} = {mapping}[{name!r}]")
            self.value(tp, value, indent + "    ")

    def value(self, tp: Any, value: str, indent: str) -> None:
        """Lines that give up (``return _slow(event)``) unless ``value`` fits ``tp``."""
        fail = "return _slow(event)"
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        exact = _exact_types(tp)
        if tp is Any:
            return
        if exact is not None and len(exact) == 1:
            (only,) = exact
            name = only.__name__ if only in (int, str, bool, float) else self.constant(only)
            self.lines.append(f"{indent}if type({value}) is not {name}: {fail}")
        elif exact is not None:
            self.lines.append(f"{indent}if type({value}) not in {self.constant(exact)}: {fail}")
        elif origin is Literal:
            kinds, allowed = frozenset(type(arg) for arg in args), frozenset(args)
            test = f"type({value}) not in {self.constant(kinds)} or {value} not in {self.constant(allowed)}"
            self.lines.append(f"{indent}if {test}: {fail}")
        elif origin is list or origin is dict:
            item = self.variable()
            items = value if origin is list else f"{value}.values()"
            self.lines.append(f"{indent}if type({value}) is not {origin.__name__}: {fail}")
            self.lines.append(f"{indent}for {item} in {items}:")
            self.value(args[-1], item, indent + "    ")
        elif typing.is_typeddict(tp):
            self.lines.append(f"{indent}if type({value}) is not dict: {fail}")
            self.fields(tp, value, indent, skip_type=False)
        else:  # a union of non-scalars: the generic check, exact
            self.lines.append(f"{indent}if not {self.constant(_compile(tp))}({value}): {fail}")


def _fast_check(kind: str, definition: type) -> Callable[[dict[str, Any]], str | None]:
    """The function :func:`problem` calls for events of ``kind``."""
    generic = _fields(definition)

    def slow(event: dict[str, Any]) -> str | None:
        found = _first_problem(event, generic)
        return f"{kind}.{found}" if found is not None else None

    source = _FastCheckSource()
    source.lines.append("def check(event):")
    source.fields(definition, "event", "    ", skip_type=True)
    source.lines.append("    return None")
    namespace: dict[str, Any] = {"_slow": slow, **source.constants}
    text = "\n".join(source.lines) + "\n"
    exec(compile(text, f"<devconsole.wire.events check of {kind!r}>", "exec"), namespace)
    check: Callable[[dict[str, Any]], str | None] = namespace["check"]
    check.__doc__ = text  # what it does, for whoever steps into it
    return check


_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {}


def _check_for(kind: str) -> Callable[[dict[str, Any]], str | None] | None:
    check = _CHECKS.get(kind)
    if check is None:
        definition = DEFINITIONS.get(kind)  # type: ignore[call-overload]
        if definition is None:
            return None
        # Built on first use: the server child never checks what it sends.
        check = _CHECKS[kind] = _fast_check(kind, definition)
    return check


def is_known(kind: object) -> bool:
    return kind in DEFINITIONS


def problem(event: dict[str, Any]) -> str | None:
    """What is wrong with ``event`` against its definition (``"request.status:
    '200' is not int or null"``), or ``None``. An unknown type is no problem
    here: see :func:`is_known`."""
    kind = event.get("type")
    try:
        check = _CHECKS[kind]  # type: ignore[index]
    except (KeyError, TypeError):  # not built yet, an unknown type, or no type at all
        built = _check_for(kind) if isinstance(kind, str) else None
        if built is None:
            return None
        check = built
    return check(event)


def field_names(kind: EventType) -> list[str]:
    """The fields an event of ``kind`` carries besides ``type`` and the stamps,
    nested ones as ``parent.child`` (what the protocol's docstring lists)."""
    stamps = set(_Stamped.__annotations__)
    names: list[str] = []

    def walk(definition: type, prefix: str) -> None:
        for name, tp in typing.get_type_hints(definition).items():
            if name == "type" and not prefix or not prefix and name in stamps:
                continue
            names.append(prefix + name)
            for inner in (tp, *typing.get_args(tp)):
                if typing.is_typeddict(inner):
                    walk(inner, f"{prefix}{name}.")

    walk(DEFINITIONS[kind], "")
    return names
