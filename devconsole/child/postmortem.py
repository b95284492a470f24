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
from types import TracebackType

#: How many failures stay open to a post-mortem.
KEEP = 5

_lock = threading.Lock()
_kept: OrderedDict[str, BaseException] = OrderedDict()
_counter = itertools.count(1)


def keep(exc: BaseException) -> str:
    """Hold ``exc`` (and its traceback) for a later post-mortem; its token."""
    token = f"pm{next(_counter)}"
    with _lock:
        _kept[token] = exc
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return token


def traceback_of(token: str) -> TracebackType | None:
    """The traceback kept under ``token``, or None once released (or never kept)."""
    with _lock:
        exc = _kept.get(token)
    return exc.__traceback__ if exc is not None else None


def tokens() -> list[str]:
    """The tokens still held, oldest first."""
    with _lock:
        return list(_kept)
