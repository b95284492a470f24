"""What each request did, captured in the server child as it runs.

:func:`wrap` wraps the WSGI handler runserver serves. For each request, in
the request's own thread, it keeps (in a ``threading.local``):

* every SQL query, through one execute wrapper (:func:`_observe`) that
  every database connection of the process carries (added to a request
  thread's connections at its first request, and to any connection opened
  later through ``connection_created``), which records only while this
  thread has a request's capture open (queries of commands, startup or
  other threads are not counted, nor those after the response is closed):
  SQL, parameters as
  bounded reprs, duration, rows where the cursor knows them (not for a
  SELECT: counting fetched rows would mean wrapping every cursor), and the
  issuing line (the first frame outside Django, site-packages, the standard
  library and devconsole; the verdict is cached per code object). Shapes are
  grouped here, not in the console: only the first :data:`MAX_QUERIES` are
  sent in detail, and the groups, duplicates and N+1 flags must stay exact
  beyond them. While a query runs only what cannot wait is read (the
  issuing line, a snapshot of the parameters, the cursor's row count): the
  reprs, shapes, duplicate keys and the event's dicts are made at the
  request's end, once its response is out (parameters of a type that could
  change meanwhile, or run project code in its ``repr``, are repr'd at once);
* the exception Django handled (``got_request_exception`` fires inside the
  handler's ``except``: the traceback's frames are live), with each frame's
  locals as ``reprlib``-bounded reprs; a repr that raises becomes a note, and
  one frame's locals share a time budget (:data:`LOCALS_BUDGET_S`): a slow
  ``__repr__`` cannot be interrupted, but once the budget is spent the rest
  are replaced by a note;
* the first :data:`MAX_BODY` bytes of the request body as the view reads it
  (``wsgi.input`` is teed, nothing is read ahead), the response's status
  line and headers, and the first :data:`MAX_BODY` bytes of a text response
  as its iterable passes (streaming and file responses still stream).

The request's finisher (:meth:`ServerObserver.finishers
<devconsole.child.instrument.ServerObserver>`) puts it into the ``request``
event. A failure inside capture never breaks the request: each hook catches
its own errors. Standard library and Django only.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import itertools
import linecache
import os
import re
import reprlib
import sys
import sysconfig
import threading
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from devconsole.wire import protocol
from devconsole.wire.events import (
    BodyPreview,
    CodeLine,
    ExcCause,
    ExceptionInsight,
    ExcFrame,
    RequestEvent,
    ResponseInsight,
    SqlDuplicate,
    SqlGroup,
    SqlInsight,
    SqlQuery,
)
from devconsole.wire.secretnames import MASK, is_secret_field

#: Queries kept in detail per request (counts, groups and times stay exact).
MAX_QUERIES = 100
#: Groups and duplicates sent per request (the largest first).
MAX_GROUPS = 50
#: Distinct shapes and distinct (SQL, parameters) followed per request: a
#: request running more distinct queries than this counts them all, but
#: groups and flags only the first ones.
MAX_TRACKED = 5000
#: Characters of one query's SQL, of one parameter's repr.
MAX_SQL = 1000
MAX_PARAM = 100
MAX_PARAMS = 20
#: Bytes of a request or response body kept as a preview.
MAX_BODY = 16 * 1024
MAX_BODY_LINES = 2000
#: Frames of a traceback kept (the innermost), locals per frame, chars per repr.
MAX_FRAMES = 30
MAX_LOCALS = 25
MAX_REPR = 300
MAX_CAUSES = 5
#: Seconds one frame's locals may take to repr, all together.
LOCALS_BUDGET_S = 0.05
#: Response headers kept, and characters of each.
MAX_HEADERS = 50
MAX_HEADER = 1000
#: Source lines shown around a frame's line (each side).
CONTEXT_LINES = 2
#: A shape repeated this many times in one request is an N+1 pattern.
N_PLUS_ONE = 5
N_PLUS_ONE_ENV = "DEVCONSOLE_N_PLUS_ONE"

_enabled = True
_local = threading.local()


def set_enabled(enabled: bool) -> None:
    """Turn capture on or off for the requests that start from now on
    (the control line ``insight on|off``)."""
    global _enabled
    _enabled = bool(enabled)


def is_enabled() -> bool:
    return _enabled


def n_plus_one_threshold() -> int:
    global _threshold_cache
    raw = os.environ.get(N_PLUS_ONE_ENV, "")
    cached = _threshold_cache
    if cached[0] == raw:
        return cached[1]
    try:
        value = int(raw)
    except ValueError:
        value = N_PLUS_ONE
    if value < 2:
        value = N_PLUS_ONE
    _threshold_cache = (raw, value)
    return value


#: The last ``DEVCONSOLE_N_PLUS_ONE`` seen and what it means (read on every request).
_threshold_cache: tuple[str | None, int] = (None, N_PLUS_ONE)


# ------------------------------------------------------------------ where


def _library_prefixes() -> tuple[str, ...]:
    prefixes = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            prefixes.add(os.path.realpath(path) + os.sep)
            prefixes.add(path + os.sep)
    import django

    for module in (django, sys.modules[_PACKAGE]):
        directory = os.path.dirname(module.__file__ or "")
        if directory:
            prefixes.add(directory + os.sep)
            prefixes.add(os.path.realpath(directory) + os.sep)
    return tuple(sorted(prefixes))


_PACKAGE = __name__.partition(".")[0]
#: devconsole's demo project is a project, though it ships inside the package.
_DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo") + os.sep
_PREFIXES: tuple[str, ...] | None = None
#: Whether a code object is the project's own, by ``id`` (hashing a code
#: object hashes its contents: ~0.3 µs, and a query walks ~25 frames); the
#: code object is kept alongside so that its id is never reused meanwhile.
_PROJECT_CODE: dict[int, tuple[bool, Any]] = {}


def _is_project(code: Any) -> bool:
    known = _PROJECT_CODE.get(id(code))
    if known is not None:
        return known[0]
    global _PREFIXES
    if _PREFIXES is None:
        _PREFIXES = _library_prefixes()
    filename = code.co_filename
    verdict = filename.startswith(_DEMO) or not (
        filename.startswith(_PREFIXES)
        or filename.startswith("<")
        or "site-packages" in filename
        or "dist-packages" in filename
    )
    if len(_PROJECT_CODE) > 20000:
        _PROJECT_CODE.clear()
    _PROJECT_CODE[id(code)] = (verdict, code)
    return verdict


def _issuing_site(frame: Any) -> tuple[Any, int] | None:
    """The first project frame from ``frame`` outwards, as its code object
    and line (the line is read now: the frame moves on)."""
    cache = _PROJECT_CODE
    while frame is not None:
        code = frame.f_code
        known = cache.get(id(code))
        if known[0] if known is not None else _is_project(code):
            return code, frame.f_lineno
        frame = frame.f_back
    return None


def _code_line(site: tuple[Any, int] | None) -> CodeLine | None:
    if site is None:
        return None
    code, line = site
    return {"file": code.co_filename, "line": line, "function": code.co_name}


# ------------------------------------------------------------------- SQL

_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_IN_LIST = re.compile(r"\(\s*(?:%s|\?|\bN\b)(?:\s*,\s*(?:%s|\?|\bN\b))*\s*\)")
_SHAPES: dict[str, str] = {}


def shape_of(sql: str) -> str:
    """``sql`` with literals and placeholders taken out (``IN (%s, %s)``
    becomes ``IN (…)``): what a loop issuing one query per item repeats."""
    shape = _SHAPES.get(sql)
    if shape is None:
        shape = _IN_LIST.sub("(…)", _LITERALS.sub("N", sql))
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        _SHAPES[sql] = shape
    return shape


def _has_secret_key(mapping: dict[Any, Any]) -> bool:
    return any(isinstance(key, str) and is_secret_field(key) for key in dict.keys(mapping))


class _BoundedRepr(reprlib.Repr):
    """``reprlib`` whose fallback says why a ``repr`` failed (``reprlib``'s own
    shows ``<Raises instance at 0x…>``, as if that were its repr), and which
    masks the values of secret-named keys of a dict or of a dict subclass
    (``QueryDict``, ``MultiValueDict``: ``credentials = {'password': …}``,
    ``request.POST``), at any depth it shows."""

    def _masked_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        fill = getattr(self, "fillvalue", "...")
        if level <= 0:
            return "{" + fill + "}"
        keys = list(dict.keys(x))
        try:
            keys.sort()
        except Exception:
            pass
        pieces = []
        for key in keys[: self.maxdict]:
            secret = isinstance(key, str) and is_secret_field(key)
            value = repr(MASK) if secret else self.repr1(dict.__getitem__(x, key), level - 1)
            pieces.append(f"{self.repr1(key, level - 1)}: {value}")
        if len(keys) > self.maxdict:
            pieces.append(fill)
        return "{" + ", ".join(pieces) + "}"

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        return self._masked_dict(x, level)

    def repr_instance(self, x: Any, level: int) -> str:
        if isinstance(x, dict):
            try:
                if _has_secret_key(x):
                    return f"<{type(x).__name__}: {self._masked_dict(x, level)}>"
            except Exception as exc:
                return f"<repr failed: {type(exc).__name__}>"
        try:
            text = repr(x)
        except Exception as exc:  # any repr may raise anything
            return f"<repr failed: {type(exc).__name__}>"
        if len(text) > self.maxother:
            half = max(0, (self.maxother - 3) // 2)
            text = text[:half] + "..." + text[len(text) - half :]
        return text


_PARAM_REPR = _BoundedRepr()
_PARAM_REPR.maxstring = MAX_PARAM
_PARAM_REPR.maxother = MAX_PARAM


def _param_reprs(params: Any) -> list[str]:
    if params is None:
        return []
    try:
        if isinstance(params, dict):  # bound by name (``%(token)s``): the name says, as for a dict's repr
            values: list[Any] = [(k, MASK if is_secret_field(str(k)) else v) for k, v in params.items()]
        else:  # positional: masked by the console, which sees the column (model/secrets.py)
            values = list(params)
    except Exception:
        return [_safe_repr(_PARAM_REPR, params)]
    out = [_param_repr(value) for value in values[:MAX_PARAMS]]
    if len(values) > MAX_PARAMS:
        out.append(f"… {len(values) - MAX_PARAMS} more")
    return out


#: Parameter types whose ``repr`` is short and cannot run project code.
_PLAIN = frozenset({int, float, bool, type(None)})


def _param_repr(value: Any) -> str:
    """A bounded repr; the common types without ``reprlib`` (it costs ~5 µs a call)."""
    kind = type(value)
    if kind in _PLAIN:
        return repr(value)
    if kind is str or kind is bytes:
        return repr(value) if len(value) <= MAX_PARAM else repr(value[:MAX_PARAM]) + "…"
    return _safe_repr(_PARAM_REPR, value)


def _freeze(params: Any) -> Any:
    try:
        key = tuple(params) if isinstance(params, list) else params
        hash(key)
        return key
    except Exception:
        return repr(params)[:2000]


#: Parameter types that cannot change after the query ran and whose ``repr``
#: runs no project code: their reprs can wait for the request's end.
_IMMUTABLE = frozenset(
    {
        int,
        float,
        bool,
        type(None),
        str,
        bytes,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
        uuid.UUID,
    }
)
#: Of those, the ones that may carry a time zone.
_ZONED = frozenset({datetime.datetime, datetime.time})


#: Time zones whose offset and repr run no project code.
_PLAIN_ZONES = (type(None), datetime.timezone, zoneinfo.ZoneInfo)


def _deferrable(params: Any) -> Any:
    """``params`` as a snapshot whose reprs can be made later, or None when
    they must be made now (a value of another type may change meanwhile, or
    run project code in its ``repr``; an aware time with a zone of the
    project's runs its code in ``utcoffset``; a snapshot that cannot be a
    duplicate key, such as a signalling NaN, is frozen by :func:`_freeze`).
    A tuple or list becomes a tuple; no parameters (None) are not deferred,
    so a query with none is never the duplicate of one with ``()``."""
    kind = type(params)
    if kind is not tuple and kind is not list:
        return None
    immutable, zoned = _IMMUTABLE, _ZONED
    for value in params:
        kind = type(value)
        if kind not in immutable or (kind in zoned and type(value.tzinfo) not in _PLAIN_ZONES):
            return None
    snapshot = tuple(params)
    try:
        hash(snapshot)
    except Exception:  # Decimal("sNaN"), a zone's failing utcoffset
        return None
    return snapshot


#: One query as the hot path keeps it: SQL, parameters (a snapshot, see
#: :func:`_deferrable`), their reprs when made at once (else None), whether
#: ``executemany``, alias, seconds, issuing site, rows.
_Raw = tuple[str, Any, list[str] | None, bool, str, float, tuple[Any, int] | None, int]
#: Raw queries kept before they are grouped (grouping waits for the request's
#: end, or for this many: a request of a million queries stays bounded).
_PENDING = 256


class _Capture:
    """One request's findings, kept in its thread.

    The immutable starting values are the class's: a request sets only
    what it changes (one is made for every request)."""

    count = 0
    sql_s = 0.0
    #: Characters of text in ``queries`` (for a cheap bound of the insight's size).
    query_chars = 0
    exception: ExceptionInsight | None = None
    response: ResponseInsight | None = None
    response_chunks: list[bytes] | None = None
    #: Bytes in ``response_chunks`` (a running count: a long stream is not summed per chunk).
    response_kept = 0
    response_size = 0
    #: Set once the response is closed (or the handler raised): queries stop counting.
    closed = False
    response_type = ""
    #: The request's body as the view read it, and what its headers said
    #: of it (read only when it may have one).
    tee: _TeeInput | None = None
    request_content_type = ""
    request_length = ""

    def __init__(self) -> None:
        #: The first :data:`MAX_QUERIES` queries, raw (made into :class:`SqlQuery` at the end).
        self.kept: list[_Raw] = []
        #: Queries not yet grouped (at most :data:`_PENDING`).
        self.pending: list[_Raw] = []
        #: shape -> [count, seconds, where]
        self.groups: dict[str, list[Any]] = {}
        #: (sql, params) -> [count, params reprs or None, where]
        self.seen: dict[tuple[str, Any], list[Any]] = {}

    # -- SQL --------------------------------------------------------------
    def _record(self, sql: Any, params: Any, many: bool, context: dict[str, Any], seconds: float) -> None:
        """What a query must have kept while it is fresh: its issuing line,
        a snapshot of its parameters, the cursor's row count. Shapes,
        duplicates, reprs and the event's dicts wait for the request's end
        (:meth:`_group`, :meth:`queries`): the response is out by then."""
        if type(sql) is not str:
            # A str subclass kept as a key would keep its object and run its
            # own __hash__/__eq__: its plain text instead.
            sql = str.__str__(sql) if isinstance(sql, str) else str(sql)
        self.count += 1
        self.sql_s += seconds
        if many:
            snapshot, reprs = None, [f"executemany: {_count(params)} rows"]
        else:
            snapshot = _deferrable(params)
            reprs = None
            if snapshot is None:
                reprs, snapshot = _param_reprs(params), _freeze(params)
        site = _issuing_site(sys._getframe(2))
        rowcount = -1
        kept = self.kept
        if len(kept) < MAX_QUERIES:
            # Rows of a SELECT are not counted (see the module's docstring):
            # the cursor's rowcount is read only for the other statements.
            if not sql.startswith("SELECT") and not sql.lstrip()[:6].upper() == "SELECT":
                cursor = context.get("cursor")
                if cursor is not None:
                    rowcount = getattr(cursor, "rowcount", -1)
            alias = str(getattr(context.get("connection"), "alias", ""))
        else:
            alias = ""
        raw: _Raw = (sql, snapshot, reprs, many, alias, seconds, site, rowcount)
        if len(kept) < MAX_QUERIES:
            kept.append(raw)
        pending = self.pending
        pending.append(raw)
        if len(pending) >= _PENDING:
            self._group()

    def _group(self) -> None:
        """Count the pending queries into their shapes and duplicates, in the order they ran."""
        pending, self.pending = self.pending, []
        groups, seen = self.groups, self.seen
        for sql, snapshot, reprs, many, _alias, seconds, site, _rows in pending:
            group = groups.get(shape := shape_of(sql))
            if group is not None:
                group[0] += 1
                group[1] += seconds
            elif len(groups) < MAX_TRACKED:
                groups[shape] = [1, seconds, site]
            if not many:
                key = (sql, snapshot)
                found = seen.get(key)
                if found is not None:
                    found[0] += 1
                elif len(seen) < MAX_TRACKED:
                    seen[key] = [1, reprs, site, snapshot]

    def queries(self) -> list[SqlQuery]:
        """The kept queries as the event carries them (``query_chars`` counted)."""
        out: list[SqlQuery] = []
        chars = 0
        # Keyed by the code object's identity: equal code objects of two
        # files (a function copied from one module to another) are not one site.
        sites: dict[tuple[int, int], CodeLine | None] = {}
        for sql, snapshot, reprs, _many, alias, seconds, site, rowcount in self.kept:
            params = reprs if reprs is not None else _param_reprs(snapshot)
            query: SqlQuery = {"sql": sql[:MAX_SQL], "params": params, "alias": alias, "ms": round(seconds * 1000, 3)}
            if site is not None:
                key = (id(site[0]), site[1])
                where = sites[key] if key in sites else sites.setdefault(key, _code_line(site))
                assert where is not None
                query["where"] = where
                chars += len(where["file"]) + len(where["function"])
            chars += len(query["sql"]) + sum(map(len, params)) + len(alias)
            if isinstance(rowcount, int) and rowcount >= 0:
                query["rows"] = rowcount
            out.append(query)
        self.query_chars = chars
        return out

    def sql_insight(self) -> SqlInsight:
        if not self.count:
            # Most requests of a page's assets: nothing to sort or group, and
            # empty lists are left out (every reader takes a missing one as empty).
            return {"count": 0, "ms": 0.0}
        threshold = n_plus_one_threshold()
        self._group()
        groups = sorted(self.groups.items(), key=lambda item: (-item[1][0], -item[1][1]))
        as_groups: list[SqlGroup] = []
        for shape, (count, seconds, site) in groups[:MAX_GROUPS]:
            group: SqlGroup = {"shape": shape[:MAX_SQL], "count": count, "ms": round(seconds * 1000, 3)}
            if (where := _code_line(site)) is not None:
                group["where"] = where
            as_groups.append(group)
        duplicates: list[SqlDuplicate] = []
        repeated = sorted((item for item in self.seen.items() if item[1][0] > 1), key=lambda item: -item[1][0])
        for (sql, _key), (count, reprs, site, params) in repeated[:MAX_GROUPS]:
            duplicate: SqlDuplicate = {
                "sql": sql[:MAX_SQL],
                "params": reprs if reprs is not None else _param_reprs(params),
                "count": count,
            }
            if (where := _code_line(site)) is not None:
                duplicate["where"] = where
            duplicates.append(duplicate)
        return {
            "count": self.count,
            "ms": round(self.sql_s * 1000, 3),
            "queries": self.queries(),
            "groups": as_groups,
            "duplicates": duplicates,
            "n_plus_one": [group for group in as_groups if group["count"] >= threshold],
            "threshold": threshold,
        }

    # -- response -----------------------------------------------------------
    def start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
        kept = [[str(name)[:MAX_HEADER], str(value)[:MAX_HEADER]] for name, value in headers[:MAX_HEADERS]]
        content_type = next((value for name, value in kept if name.lower() == "content-type"), "")
        self.response = {"status_line": str(status)[:MAX_HEADER], "headers": kept}
        self.response_type = content_type
        self.response_chunks = [] if _is_text(content_type) else None
        self.response_kept = 0

    def response_body(self) -> BodyPreview | None:
        if self.response is None:
            return None
        content_type = self.response_type
        if self.response_chunks is None:
            return {"content_type": content_type, "size": self.response_size, "binary": True}
        data = b"".join(self.response_chunks)
        return _preview(content_type, data, self.response_size)


def _count(params: Any) -> int:
    try:
        return len(params)
    except Exception:
        return -1


_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")
_FORM = "application/x-www-form-urlencoded"


@functools.lru_cache(maxsize=256)  # a server answers with a handful of types
def _is_text(content_type: str) -> bool:
    lowered = content_type.lower()
    return any(kind in lowered for kind in _TEXT_TYPES) or _FORM in lowered


def _preview(content_type: str, data: bytes, size: int) -> BodyPreview:
    preview: BodyPreview = {"content_type": content_type, "size": size}
    if not _is_text(content_type) and data:
        # Unlabelled or multipart: text only when it decodes and has no NUL.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\0"
        if "\0" in text or "multipart/" in content_type.lower():
            preview["binary"] = True
            return preview
    if data:
        text = data[:MAX_BODY].decode("utf-8", errors="replace")
        lines = text.split("\n")
        preview["lines"] = lines[:MAX_BODY_LINES]
        if len(lines) > MAX_BODY_LINES:
            preview["truncated"] = True
            return preview
    preview["truncated"] = size > len(data) or len(data) > MAX_BODY
    return preview


# ----------------------------------------------------------- the body tees


class _TeeInput:
    """``wsgi.input`` as the view reads it, its first :data:`MAX_BODY` bytes kept."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.kept = bytearray()

    def _keep(self, data: bytes) -> bytes:
        room = MAX_BODY - len(self.kept)
        if room > 0 and data:
            self.kept += data[:room]
        return data

    def read(self, *args: Any) -> bytes:
        return self._keep(self._stream.read(*args))

    def readline(self, *args: Any) -> bytes:
        return self._keep(self._stream.readline(*args))

    def readlines(self, *args: Any) -> list[bytes]:
        return [self._keep(line) for line in self._stream.readlines(*args)]

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            yield self._keep(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Body:
    """The response iterable, passed through chunk by chunk; text chunks are
    kept up to :data:`MAX_BODY`. Closing it ends the request's capture."""

    def __init__(self, result: Iterable[bytes], capture: _Capture) -> None:
        self._result = result
        self._capture = capture

    def __iter__(self) -> Iterator[bytes]:
        capture = self._capture
        for chunk in self._result:
            try:
                capture.response_size += len(chunk)
                kept = capture.response_chunks
                if kept is not None and capture.response_kept <= MAX_BODY:
                    piece = bytes(chunk[: MAX_BODY + 1 - capture.response_kept])
                    kept.append(piece)
                    capture.response_kept += len(piece)
            except Exception:
                pass
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._capture.closed = True


class _SizedBody(_Body):
    """A response iterable with a length (a list, Django's file wrapper…):
    wsgiref sets ``Content-Length`` from a one-item result."""

    def __len__(self) -> int:
        return len(self._result)  # type: ignore[arg-type]  # chosen only when it has one


# ------------------------------------------------------------- exceptions

_LOCALS_REPR = _BoundedRepr()
_LOCALS_REPR.maxstring = MAX_REPR
_LOCALS_REPR.maxother = MAX_REPR
_LOCALS_REPR.maxlevel = 3
_LOCALS_REPR.maxdict = 10
_LOCALS_REPR.maxlist = _LOCALS_REPR.maxtuple = _LOCALS_REPR.maxset = 10


def _safe_repr(repr_: reprlib.Repr, value: Any) -> str:
    try:
        text = repr_.repr(value)
    except Exception as exc:  # any repr may raise anything
        return f"<repr failed: {type(exc).__name__}>"
    return text[: MAX_REPR * 2]


def _frame_locals(frame: Any) -> list[list[str]]:
    deadline = time.perf_counter() + LOCALS_BUDGET_S
    out: list[list[str]] = []
    try:
        items = list(frame.f_locals.items())
    except Exception:
        return [["", "<locals not readable>"]]
    for index, (name, value) in enumerate(items):
        if index >= MAX_LOCALS:
            out.append(["…", f"{len(items) - MAX_LOCALS} more"])
            break
        if time.perf_counter() > deadline:
            out.append(["…", f"{len(items) - index} more not shown: their reprs took too long"])
            break
        out.append([str(name), _safe_repr(_LOCALS_REPR, value)])
    return out


def describe_exception(exc: BaseException) -> ExceptionInsight:
    """``exc`` with its traceback's frames (live: called where it is handled)."""
    entries = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    frames: list[ExcFrame] = []
    for tb in entries[-MAX_FRAMES:]:
        frame, line = tb.tb_frame, tb.tb_lineno
        code = frame.f_code
        first = max(1, line - CONTEXT_LINES)
        source = [
            linecache.getline(code.co_filename, n).rstrip("\n")[:400] for n in range(first, line + CONTEXT_LINES + 1)
        ]
        frames.append(
            {
                "file": code.co_filename,
                "line": line,
                "function": code.co_name,
                "project": _is_project(code),
                "source": source,
                "first": first,
                "locals": _frame_locals(frame),
            }
        )
    causes: list[ExcCause] = []
    seen = {id(exc)}
    inner: BaseException | None = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while inner is not None and id(inner) not in seen and len(causes) < MAX_CAUSES:
        seen.add(id(inner))
        causes.append({"type": _type_name(inner), "message": _message(inner)})
        inner = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
    insight: ExceptionInsight = {"type": _type_name(exc), "message": _message(exc), "frames": frames}
    if causes:
        insight["causes"] = causes
    if len(entries) > MAX_FRAMES:
        insight["message"] += f" ({len(entries) - MAX_FRAMES} outer frames not kept)"
    return insight


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:2000]
    except Exception:
        return "<str() failed>"


def _postmortem_keep() -> Callable[[BaseException], str] | None:
    """The debugger's ``postmortem.keep`` (keeps the traceback for a
    post-mortem, returns its token), when this devconsole has it."""
    try:
        from devconsole.child import postmortem  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    return getattr(postmortem, "keep", None)


def _on_exception(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    capture = getattr(_local, "capture", None)
    if capture is None or capture.exception is not None:
        return
    try:
        exc = sys.exc_info()[1]
        if exc is None:
            return
        insight = describe_exception(exc)
        keep = _postmortem_keep()
        if keep is not None:
            try:
                insight["pm"] = str(keep(exc))
            except Exception:
                pass
        capture.exception = insight
    except Exception:
        pass


# ------------------------------------------------------------------ wiring


def _observe(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """The execute wrapper of every database connection: a query is
    recorded while its thread has a request's capture open, passed through
    otherwise."""
    capture: _Capture | None = getattr(_local, "capture", None)
    if capture is None or capture.closed:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        try:
            # (_record names the caller two frames up from itself: the same
            # frame whichever of the two calls it.)
            capture._record(sql, params, many, context, time.perf_counter() - started)
        except Exception:
            pass


def _add_observer(wrappers: list[Any]) -> None:
    if _observe not in wrappers:
        wrappers.append(_observe)


def _on_connection_created(sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
    """A connection opened (a thread's first query on an alias, or after a
    close): it carries the observer before its first query runs."""
    wrappers = getattr(connection, "execute_wrappers", None)
    if isinstance(wrappers, list):
        _add_observer(wrappers)


def _observe_this_thread() -> None:
    """Give the connections this thread has already made the observer (once
    per thread: a connection it makes later gets it as it opens)."""
    from django.db import connections

    for alias in connections:
        _add_observer(connections[alias].execute_wrappers)
    _local.observed = True


def wrap(handler: Callable[..., Any], observer: Any = None) -> Callable[..., Any]:
    """``handler`` (a WSGI application) capturing each request's insight;
    the finisher is registered on ``observer`` when given."""
    from django.core.signals import got_request_exception
    from django.db.backends.signals import connection_created

    got_request_exception.connect(_on_exception, weak=False, dispatch_uid="devconsole.insight")
    connection_created.connect(_on_connection_created, weak=False, dispatch_uid="devconsole.insight")
    if observer is not None and finish not in observer.finishers:
        observer.finishers.append(finish)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not _enabled:
            _local.capture = None
            return handler(environ, start_response)
        capture = _Capture()
        _local.capture = capture
        try:
            if not getattr(_local, "observed", False):
                _observe_this_thread()
            if _may_have_body(environ):
                if environ.get("wsgi.input") is not None:
                    capture.tee = environ["wsgi.input"] = _TeeInput(environ["wsgi.input"])
                capture.request_content_type = str(environ.get("CONTENT_TYPE", ""))
                capture.request_length = str(environ.get("CONTENT_LENGTH", "") or "")
            # else: no length (or 0) and no chunks: no body to show.
        except Exception:
            pass

        def capturing_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                capture.start_response(status, headers)
            except Exception:
                pass
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            result = handler(environ, capturing_start_response)
        except BaseException:
            capture.closed = True
            raise
        return _SizedBody(result, capture) if hasattr(result, "__len__") else _Body(result, capture)

    return application


def _may_have_body(environ: dict[str, Any]) -> bool:
    """Whether the request may carry a body (a length, or chunks): a GET
    without one has nothing to keep, and its input needs no tee."""
    length = environ.get("CONTENT_LENGTH")
    return bool(length and length != "0") or "HTTP_TRANSFER_ENCODING" in environ


def finish(request: RequestEvent) -> None:
    """Put what this thread captured during ``request`` into its event."""
    capture: _Capture | None = getattr(_local, "capture", None)
    if capture is None:
        return
    _local.capture = None
    capture.closed = True
    try:
        request["sql"] = capture.sql_insight()
    except Exception:
        pass  # the exception and the bodies are still worth sending
    try:
        if capture.exception is not None:
            request["exception"] = capture.exception
        tee, length = capture.tee, capture.request_length
        size = int(length) if length.isdigit() else len(tee.kept) if tee is not None else 0
        if size or (tee is not None and tee.kept):
            kept = bytes(tee.kept) if tee is not None else b""
            request["request_body"] = _preview(capture.request_content_type, kept, size)
        if capture.response is not None:
            response = capture.response
            preview = capture.response_body()
            if preview is not None:
                response["body"] = preview
            request["response"] = response
        _fit(request, capture.query_chars)
    except Exception:
        pass


# ------------------------------------------------------------------ bounds

_INSIGHT_PARTS = ("sql", "exception", "request_body", "response")
_OVER = f"this request's insight was over {protocol.MAX_INSIGHT // 1024} KiB"


def _insight_size(request: RequestEvent) -> int:
    """Bytes the insight of ``request`` takes, encoded as the event line encodes it."""
    parts = {key: request[key] for key in _INSIGHT_PARTS if key in request}  # type: ignore[literal-required]
    return len(protocol.encode(parts))


#: Bytes a JSON-encoded character can take at most (a control character: ``\\u0000``),
#: and the structure around each item of text, at most.
_PER_CHAR = 6
_PER_ITEM = 160


def _texts(items: Any) -> int:
    """Characters of the text in a few groups or duplicates."""
    total = 0
    for item in items or ():
        where = item.get("where")
        total += len(item.get("sql") or item.get("shape") or "") + sum(map(len, item.get("params") or ())) + _PER_ITEM
        if where is not None:
            total += len(where["file"]) + len(where["function"])
    return total


def _cheap_bound(request: RequestEvent, query_chars: int) -> int | None:
    """An upper bound of :func:`_insight_size`, without encoding (that costs
    ~50 µs for an ordinary page); None when it would cost as much (an exception)."""
    if "exception" in request:
        return None
    chars = 0
    sql = request.get("sql")
    queries = sql.get("queries") if sql is not None else None
    if sql is not None and queries is not None:  # a request without queries has its count and time alone
        chars += query_chars + _PER_ITEM * len(queries)
        chars += _texts(sql.get("groups")) + _texts(sql.get("duplicates")) + _texts(sql.get("n_plus_one"))
    response = request.get("response")
    if response is not None:
        chars += len(response.get("status_line", "")) + _PER_ITEM
        headers = response.get("headers", ())
        chars += sum(map(len, itertools.chain.from_iterable(headers))) + 8 * len(headers)
        chars += _body_chars(response.get("body"))
    return (chars + _body_chars(request.get("request_body"))) * _PER_CHAR + 1024


def _body_chars(body: BodyPreview | None) -> int:
    if body is None:
        return 0
    lines = body.get("lines") or ()
    return sum(map(len, lines)) + 4 * len(lines) + len(body.get("content_type", "")) + _PER_ITEM


def _fit(request: RequestEvent, query_chars: int | None = None) -> None:
    """Trim ``request``'s insight to :data:`~devconsole.wire.protocol.MAX_INSIGHT`
    bytes, encoded (the child's caps bound each part, not their sum: 100
    queries of long non-ASCII parameters alone can pass a MiB): the detailed
    queries first, then groups and duplicates, then locals (outermost frames
    first), then bodies; each cut says so where it was made. ``query_chars``
    (the characters of text in the detailed queries, counted as they were
    kept) lets an ordinary request be passed without encoding it."""
    if query_chars is not None:
        bound = _cheap_bound(request, query_chars)
        if bound is not None and bound <= protocol.MAX_INSIGHT:
            return
    size = _insight_size(request)
    if size <= protocol.MAX_INSIGHT:
        return
    sql = request.get("sql")
    if sql is not None:
        queries = sql.get("queries") or []
        kept = len(queries)
        while kept and size > protocol.MAX_INSIGHT:
            kept //= 2
            note: SqlQuery = {
                "sql": f"-- {len(queries) - kept} more queries not kept in detail: {_OVER}",
                "params": [],
                "alias": "",
                "ms": 0.0,
            }
            sql["queries"] = [*queries[:kept], note]
            size = _insight_size(request)
        while sql.get("duplicates") and size > protocol.MAX_INSIGHT:
            sql["duplicates"] = sql["duplicates"][: len(sql["duplicates"]) // 2]
            size = _insight_size(request)
        while sql.get("groups") and size > protocol.MAX_INSIGHT:
            groups = sql["groups"] = sql["groups"][: len(sql["groups"]) // 2]
            sql["n_plus_one"] = [group for group in sql.get("n_plus_one", []) if group in groups]
            size = _insight_size(request)
    exception = request.get("exception")
    if exception is not None and size > protocol.MAX_INSIGHT:
        for frame in exception.get("frames", []):
            if size <= protocol.MAX_INSIGHT:
                break
            if frame.get("locals"):
                frame["locals"] = [["…", f"locals not kept: {_OVER}"]]
                size = _insight_size(request)
    response = request.get("response")
    bodies = [response.get("body") if response is not None else None, request.get("request_body")]
    for body in bodies:
        if body is not None and body.get("lines") and size > protocol.MAX_INSIGHT:
            body["lines"] = [f"… body not kept: {_OVER}"]
            body["truncated"] = True
            size = _insight_size(request)
    for key in _INSIGHT_PARTS:  # what a child's caps cannot have let through
        if size <= protocol.MAX_INSIGHT:
            break
        if key in request:
            del request[key]  # type: ignore[misc]
            size = _insight_size(request)
