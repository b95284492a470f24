"""The console under a saturated server: keys still answer, the Requests
table stays capped, the totals stay exact, and every finished request is
counted once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from textual import events

from devconsole.console.listen import ListenAddress, bind
from devconsole.console.project import Project
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.panels.requestlist import RequestList
from devconsole.ui.panels.requests import MAX_ROWS, row_lag_hook
from devconsole.ui.screens.dashboard import DashboardScreen
from devconsole.ui.screens.logview import LogScreen

from .conftest import until

CLIENTS = 6
SECONDS = 4.0


#: The load comes from another process, as it would from a browser or a
#: benchmark: client threads inside the console's process would compete with
#: its UI thread for the GIL and measure that instead.
CLIENT = """
import http.client, sys, threading, time
port, seconds, clients = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
counts = [0] * clients
def hammer(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("GET", "/ping/")
        conn.getresponse().read()
        counts[i] += 1
    conn.close()
threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(counts))
"""


async def _key_until(app: DevConsoleApp, key: str, predicate, timeout: float = 30.0) -> tuple[float, float]:
    """Send a key as the terminal would and time until ``predicate`` holds:
    ``(wall-clock seconds, CPU seconds this process spent meanwhile)``.

    Not ``pilot.press``: it waits until every widget's queue is empty, which
    never happens while panels are being fed; a user's key does not wait so.
    """
    started, cpu = time.monotonic(), time.process_time()
    app.post_message(events.Key(key, key))
    while not predicate():
        assert time.monotonic() - started < timeout, f"key {key!r} got no answer in {timeout} s"
        await asyncio.sleep(0.01)  # a poll of the predicate (the resolution of the timing), not a wait for it
    return time.monotonic() - started, time.process_time() - cpu


async def test_keys_answer_while_the_server_is_saturated(demo_project: Project) -> None:
    sock = bind(ListenAddress("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = DevConsoleApp(project=demo_project, address=ListenAddress("127.0.0.1", port), sock=sock)
    lags: list[float] = []
    async with app.run_test(size=(120, 36), message_hook=row_lag_hook(lags)) as pilot:
        await until(pilot, lambda: app.state.hello is not None)
        load = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(port), str(SECONDS), str(CLIENTS)], stdout=subprocess.PIPE, text=True
        )
        switches: list[tuple[float, float]] = []
        try:
            while load.poll() is None:
                # A view switch and back, timed: the UI thread must not be starved.
                switches.append(await _key_until(app, "l", lambda: isinstance(app.screen, LogScreen)))
                switches.append(await _key_until(app, "d", lambda: isinstance(app.screen, DashboardScreen)))
                # The pace of the user's keys (part of the load), not a wait for anything.
                await asyncio.sleep(0.2)
            out, _ = load.communicate(timeout=30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        sent = int(out.strip())
        assert sent > 200, f"the load was too light to mean anything ({sent} requests)"
        # Every finished request has reached the state: counted (stats) and as a row (its event).
        await until(pilot, lambda: app.state.total_requests >= sent and app.state.request_seq >= sent, timeout=20)
        app.refresh_views()  # applies it to the dashboard now
        assert app.state.request_seq == sent  # each request's row came once
        table = app.screen.query_one(RequestList)
        assert table.row_count == min(sent, MAX_ROWS)
        assert app.state.total_requests == sent
        assert f"{sent} total" in str(app.screen.query_one("#requests").border_subtitle)
        assert len(app.state.requests) <= MAX_ROWS
        print(
            f"\n{sent} requests in {SECONDS:g} s; key to view (l, d, ...) took "
            f"{', '.join(f'{wall:.2f} ({cpu:.2f} CPU)' for wall, cpu in switches)} s"
        )
        # Starved means the console's own threads (its event readers) kept
        # the UI thread from running: this process spent seconds of CPU while
        # the key waited. Other processes on a loaded machine stretch the wall
        # clock, not that.
        assert switches and max(cpu for _wall, cpu in switches) < 3.0, switches
        # Every shown row has a lag sample, and the lags are sane.
        assert 0 < len(lags) <= sent
        assert max(lags) < 30
    app.shutdown()
