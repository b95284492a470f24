"""The real devconsole app, headless, on the demo project: shared by the
console and memory benchmarks.

The benchmark process *is* the console: ``DevConsoleApp`` runs in it through
``App.run_test`` (Textual's headless driver: layout, rendering and timers all
run, only the terminal output is discarded), so this process's CPU and RSS are
the console's, and the server child is the one its supervisor started.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from benchlib import BenchError, cpu_seconds, rss_mb


def own_cpu() -> float:
    """CPU seconds of this process (the console), all threads, children excluded."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def headless_console(
    port: int, *, reload: bool = True, size: tuple[int, int] = (160, 48), row_lag: deque[float] | None = None
) -> AsyncIterator[Any]:
    """A running ``DevConsoleApp`` serving the demo on ``port``, its server
    child up; with ``row_lag``, collecting there each row's lag (seconds from
    a request's end to its row in the Requests table)."""
    from devconsole.console.listen import BindError, bind, parse_addrport
    from devconsole.console.project import Project
    from devconsole.demo import DEMO_MANAGE_PY, demo_env
    from devconsole.ui.app import DevConsoleApp

    address = parse_addrport(f"127.0.0.1:{port}")
    try:
        sock = bind(address)
    except BindError as exc:
        raise BenchError(exc.strerror or str(exc)) from None
    project = Project(DEMO_MANAGE_PY, env=tuple(demo_env().items()))
    app = DevConsoleApp(project=project, address=address, sock=sock, reload=reload, own_process=True)
    from devconsole.ui.panels.requests import row_lag_hook

    try:
        async with app.run_test(size=size, message_hook=row_lag_hook(row_lag) if row_lag is not None else None):
            await wait_until(lambda: app.state.hello is not None, 60, "the server child's hello")
            yield app
    finally:
        app.shutdown()


def server_pid(app: Any) -> int:
    child = app.supervisor.child if app.supervisor is not None else None
    if child is None:
        raise BenchError("the console has no server child")
    return int(child.process.pid)


def server_cpu(app: Any) -> float:
    return cpu_seconds(server_pid(app))


def server_rss(app: Any) -> float:
    return rss_mb(server_pid(app))


def settled(app: Any, not_before: float, quiet: float = 0.5) -> Callable[[], bool]:
    """A ``stop_when`` for :func:`run_wrk_async`: true once ``not_before``
    (monotonic) has passed and the console's total has not moved for ``quiet`` s."""
    seen = {"total": -1, "since": time.monotonic()}

    def check() -> bool:
        now = time.monotonic()
        total = app.state.total_requests
        if total != seen["total"]:
            seen["total"], seen["since"] = total, now
            return False
        return now >= not_before and now - seen["since"] >= quiet

    return check


async def run_wrk_async(argv: list[str], *, stop_when: Callable[[], bool] | None = None) -> str:
    """Run wrk without blocking the console's event loop; SIGINT it (it then
    prints its report) as soon as ``stop_when()`` is true."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        if stop_when is not None:
            exited = asyncio.ensure_future(proc.wait())  # one waiter, polled
            while not exited.done():
                if stop_when():
                    proc.send_signal(signal.SIGINT)
                    break
                await asyncio.wait({exited}, timeout=0.05)
        out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {(err or out).decode(errors='replace').strip()[-300:]}")
    return out.decode(errors="replace")
