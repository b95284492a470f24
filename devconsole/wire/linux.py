"""The Linux calls devconsole makes through ``ctypes`` on both sides of the
pipe: inotify (the console's file watcher; a spare's saved sources) and the
parent-death signal (side processes; a spare's twin). Standard library only;
the C library is loaded once, on first use."""

from __future__ import annotations

import ctypes
import os
import signal
import struct
from collections.abc import Iterator
from typing import Any

# inotify(7)
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_DONT_FOLLOW = 0x2000000
IN_EXCL_UNLINK = 0x4000000
IN_ISDIR = 0x40000000

#: An event's fixed part: watch descriptor, mask, cookie, length of the name.
_EVENT = struct.Struct("iIII")
#: prctl(2)'s option.
_PR_SET_PDEATHSIG = 1

_libc: Any = None


def libc() -> Any:
    """The C library, ``errno`` kept, its inotify calls and ``prctl`` typed.
    OSError or AttributeError where there is no such library, no inotify
    or no ``prctl``."""
    global _libc
    if _libc is None:
        # The process's own symbols: the C library is among them (no search
        # of the system's libraries, which can run a program).
        lib = ctypes.CDLL(None, use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_init1.restype = ctypes.c_int
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_add_watch.restype = ctypes.c_int
        lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.inotify_rm_watch.restype = ctypes.c_int
        # Resolved now, not at its first call: a ``preexec_fn`` calls it
        # after a fork of a threaded process, where nothing should be looked up.
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.prctl.restype = ctypes.c_int
        _libc = lib
    return _libc


def _failed(call: str) -> OSError:
    number = ctypes.get_errno()
    return OSError(number, f"{call}: {os.strerror(number)}")


def inotify_init() -> int:
    """A new inotify instance's descriptor: non-blocking, closed on exec."""
    fd = int(libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        raise _failed("inotify_init1")
    return fd


def add_watch(fd: int, path: str, mask: int) -> int:
    """Watch ``path`` for ``mask``: the watch descriptor. OSError (its
    ``errno`` the kernel's) when it cannot be watched."""
    wd = int(libc().inotify_add_watch(fd, os.fsencode(path), mask))
    if wd < 0:
        raise _failed(f"inotify_add_watch {path}")
    return wd


def rm_watch(fd: int, wd: int) -> None:
    libc().inotify_rm_watch(fd, wd)


def read_events(fd: int) -> Iterator[tuple[int, int, bytes]]:
    """Every event queued on the non-blocking inotify ``fd`` now, as
    ``(wd, mask, name)``; an error reading it is raised."""
    while True:
        try:
            data = os.read(fd, 64 * 1024)
        except BlockingIOError:
            return
        if not data:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            yield wd, mask, data[offset : offset + length].rstrip(b"\0")
            offset += length


def die_with_parent() -> bool:
    """Have the kernel send this process SIGKILL when its parent (thread)
    dies (``PR_SET_PDEATHSIG``); False where that cannot be asked."""
    try:
        return int(libc().prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
