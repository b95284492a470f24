"""Stopping a child process and everything it started, written once.

Every child the console starts leads its own process group (a server
generation, a fork server, a command run, the catalogue child), so a signal
to the group reaches what the child started too. :func:`stop_group` is the
one stop: ask gracefully, wait, then ``SIGTERM`` to the group, wait, then
``SIGKILL``; :func:`signal_group` the one signal, for callers that escalate
on their own schedule (Ctrl+C pressed again on a command run).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence

#: After the graceful request: each signal, and how long to wait for the exit after it.
ESCALATION: tuple[tuple[signal.Signals, float], ...] = ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0))


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pid`` leads; False if it is gone
    (or not ours to signal)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(
    pid: int,
    wait: Callable[[float], bool],
    *,
    graceful: Callable[[], object] | None = None,
    timeout: float,
    escalation: Sequence[tuple[signal.Signals, float]] = ESCALATION,
    send_signal: Callable[[int], object] | None = None,
) -> bool:
    """Stop the process group ``pid`` leads: ``graceful()`` (a stop request
    the child understands; none: the wait alone), ``wait(timeout)``, then
    each signal of ``escalation`` to the group with its own wait. ``wait``
    returns True once the process exited; ``send_signal(sig)`` replaces
    :func:`signal_group` where the caller must check first that the pid is
    still its child's. True if the process exited in the end."""
    if graceful is not None:
        graceful()
    if wait(timeout):
        return True
    for sig, seconds in escalation:
        if send_signal is not None:
            send_signal(sig)
        else:
            signal_group(pid, sig)
        if wait(seconds):
            return True
    return False


#: The signals that end the console the way ``q`` does (a closed terminal
#: window, ``kill``): exit status 128 + the signal's number.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
