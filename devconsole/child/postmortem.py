"""Post-mortem after the fact: the last few unhandled exceptions, kept alive.

Request insight calls :func:`keep` when a request fails; the token it returns
travels in the exception's event (``pm``), and the console can ask for a
post-mortem on it later (:mod:`.debugger` runs ``pdb`` on the traceback, its
frames' locals as they were). Only :data:`KEEP` are held: a traceback keeps
every frame's locals alive, so the oldest is released as a new one comes.

Standard library only.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType

#: How many failures stay open to a post-mortem.
KEEP = 5

_lock = threading.Lock()
_kept: OrderedDict[str, tuple[BaseException, str]] = OrderedDict()
_counter = itertools.count(1)
#: Names the request the current thread handles (``GET /boom/``); set by
#: :func:`devconsole.child.debugger.install`.
describe_request: Callable[[], str] | None = None


def keep(exc: BaseException) -> str:
    """Hold ``exc`` (and its traceback) for a later post-mortem; its token.
    Call it in the failing request's thread: the request is noted too."""
    token = f"pm{next(_counter)}"
    label = describe_request() if describe_request is not None else ""
    with _lock:
        _kept[token] = (exc, label)
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return token


def traceback_of(token: str) -> TracebackType | None:
    """The traceback kept under ``token``, or None once released (or never kept)."""
    with _lock:
        kept = _kept.get(token)
    return kept[0].__traceback__ if kept is not None else None


def request_of(token: str) -> str:
    """The request that failed with the exception kept under ``token`` ('' if unknown)."""
    with _lock:
        kept = _kept.get(token)
    return kept[1] if kept is not None else ""


def tokens() -> list[str]:
    """The tokens still held, oldest first."""
    with _lock:
        return list(_kept)
