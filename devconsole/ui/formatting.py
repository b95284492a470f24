"""How numbers, times and names read in the panels.

Times come from event timestamps, shown in local time like the terminal's
clock; the tests and the screenshots script run with ``TZ=UTC``, so their
pictures are the same on every machine.
"""

from __future__ import annotations

import re
import time

from devconsole.console.listen import ListenAddress
from devconsole.model.insight import Summary
from devconsole.model.state import ListenAt

_THREAD = re.compile(r"^(Thread-\d+) \(process_request_thread\)$")


def clock_time(ts: float, millis: bool = True) -> str:
    """``HH:MM:SS.mmm`` (local time) of a wall-clock timestamp."""
    if ts <= 0:
        return "--:--:--"
    text = time.strftime("%H:%M:%S", time.localtime(ts))
    return f"{text}.{int(ts * 1000) % 1000:03d}" if millis else text


def size(count: int | None) -> str:
    """Bytes, short: ``812``, ``3.4k``, ``1.2M``."""
    if count is None:
        return "-"
    if count < 1000:
        return str(count)
    for unit in ("k", "M", "G"):
        count_f = count / 1000
        if count_f < 1000:
            return f"{count_f:.1f}{unit}" if count_f < 100 else f"{count_f:.0f}{unit}"
        count = int(count_f)
    return f"{count}T"


def duration_ms(ms: float | None) -> str:
    """``0.9 ms``, ``412 ms``, ``1.25 s``."""
    if ms is None:
        return "-"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def sql_cell(summary: Summary) -> str:
    """A request's SQL in a Requests cell: ``21·1.5ms N+1``, ``2·0.9ms dup``,
    ``21·1.5ms N+1 dup`` (both),
    ``-`` when nothing was captured."""
    if summary.sql_count is None:
        return "-"
    if not summary.sql_count:
        return "0"
    text = f"{summary.sql_count}·{duration_ms(summary.sql_ms)}"
    flags = [word for word, flagged in (("N+1", summary.n_plus_one), ("dup", summary.duplicates)) if flagged]
    return " ".join([text, *flags])


def age(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h01m``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def thread(name: str) -> str:
    """``Thread-12`` for socketserver's ``Thread-12 (process_request_thread)``."""
    match = _THREAD.match(name)
    return match.group(1) if match else name


def percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def listen_address(listen: ListenAt) -> str:
    """``host:port`` of the hello's ``listen`` (IPv6 hosts in brackets)."""
    return ListenAddress(listen.host, listen.port, ipv6=":" in listen.host).display
