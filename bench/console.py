"""The console under saturation: CPU, RSS, row lag and exact counts.

Runs the real ``DevConsoleApp`` headless (160×48) on the demo project, then
saturates it with wrk (8 keep-alive connections on /ping/) for ``--duration``
seconds while the dashboard is showing. Reports:

* the console process's CPU (% of one core) and RSS (start, peak, end), and
  the same for its server child;
* the lag from a request finishing (in the server child) to its row being
  applied to the Requests table (the panel's ``RowsApplied`` messages), p50/p99/max;
* exact counts: what wrk sent (counted by ``bench/count.lua``) against the
  console's own Requests total.

    python bench/console.py                 # 60 s of saturation
    python bench/console.py --duration 20
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    Ports,
    base_parser,
    demo_database,
    fmt,
    main_guard,
    parse_wrk,
    port_range,
    require_wrk,
    rss_mb,
    table,
    verdict,
    versions,
    wrk_argv,
)
from headless import (
    headless_console,
    own_cpu,
    run_wrk_async,
    server_cpu,
    server_rss,
    settled,
)

#: The Requests table follows saturation within this, at p99 (issue 17).
ROW_LAG_TARGET_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def saturate(port: int, duration: float, connections: int, reload: bool, warmup: bool = True) -> int:
    lag: deque[float] = deque(maxlen=200_000)
    async with headless_console(port, reload=reload, row_lag=lag) as app:
        url = f"http://127.0.0.1:{port}/ping/"
        if warmup:
            # Warm up (imports, database), then let the screen catch up and start clean.
            await run_wrk_async(wrk_argv(url, duration=1, connections=connections))
            await asyncio.sleep(1.0)
        base_total = app.state.total_requests
        lag.clear()

        rss = {"console": [rss_mb()], "server": [server_rss(app)]}
        cpu0, server0, t0 = own_cpu(), server_cpu(app), time.monotonic()
        sampling = True

        async def sample() -> None:
            while sampling:
                await asyncio.sleep(1.0)
                rss["console"].append(rss_mb())
                rss["server"].append(server_rss(app))

        sampler = asyncio.create_task(sample())
        # wrk's threads stop after `duration` s of load; wrk itself is
        # interrupted once the console has seen the last request.
        argv = wrk_argv(url, duration=duration + 30, connections=connections, count=True, stop_after=duration)
        out = await run_wrk_async(argv, stop_when=settled(app, t0 + duration))
        result = parse_wrk(out)
        cpu1, server1 = own_cpu(), server_cpu(app)
        wall = time.monotonic() - t0
        sampling = False
        await sampler
        sent = result.sent or 0
        # The screen's last tick.
        await asyncio.sleep(0.5)
        total = app.state.total_requests - base_total
        rss["console"].append(rss_mb())
        rss["server"].append(server_rss(app))
        lags = [x * 1000 for x in lag]
        dropped = app.state.dropped

    console_pct = (cpu1 - cpu0) / wall * 100
    server_pct = (server1 - server0) / wall * 100
    print(
        table(
            f"The console under saturation ({duration:g} s, {connections} keep-alive connections)",
            ["", "value"],
            [
                ["wrk: requests sent", f"{sent:,}"],
                ["wrk: responses received", f"{result.received or result.requests:,}"],
                ["console: Requests total", f"{total:,}"],
                ["console: rows dropped by the server child (totals stay exact)", f"{dropped:,}"],
                ["req/s (wrk)", fmt(result.served_rps, 0)],
                ["latency p50 / p99 ms (wrk)", f"{fmt(result.p50_ms, 2)} / {fmt(result.p99_ms, 2)}"],
                ["console CPU, % of one core", fmt(console_pct)],
                ["server child CPU, % of one core", fmt(server_pct)],
                [
                    "console RSS MB: start / peak / end",
                    " / ".join(fmt(v) for v in (rss["console"][0], max(rss["console"]), rss["console"][-1])),
                ],
                [
                    "server child RSS MB: start / peak / end",
                    " / ".join(fmt(v) for v in (rss["server"][0], max(rss["server"]), rss["server"][-1])),
                ],
                ["rows applied to the Requests table", f"{len(lags):,}"],
                [
                    "row lag ms: p50 / p99 / max",
                    " / ".join(fmt(percentile(lags, q), 1) for q in (50, 99, 100)) if lags else "n/a",
                ],
            ],
        )
    )
    print("Targets:")
    print(verdict(total == sent, f"exact counts: the console's total {total:,} == {sent:,} sent by wrk"))
    if lags:
        p99 = percentile(lags, 99)
        print(
            verdict(
                p99 <= ROW_LAG_TARGET_MS,
                f"row lag p99 {p99:.1f} ms (target ≤ {ROW_LAG_TARGET_MS:g} ms)",
                figure="console row lag p99 under saturation, counts exact",
                devconsole=f"{p99:.1f} ms",
                target=f"≤ {ROW_LAG_TARGET_MS:g} ms",
            )
        )
    else:
        print("FAIL  row lag: no row was shown")
    errors = result.socket_errors + result.non_2xx
    if errors:
        print(f"note: wrk saw {errors} errors")
    return 0


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of saturation (default %(default)s)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default %(default)s)")
    parser.add_argument("--noreload", action="store_true", help="run the console without its file watcher")
    args = parser.parse_args()
    if args.quick:
        args.duration = 1.0
    if args.duration < 1 or args.connections < 1:
        parser.error("--duration must be ≥ 1 s and --connections ≥ 1")
    require_wrk()
    port = Ports(port_range(args.ports)).take()
    print("# The console under saturation: DevConsoleApp headless on the demo, GET /ping/")
    print(f"Machine: {versions()}")
    print(flush=True)
    with demo_database():
        return asyncio.run(saturate(port, args.duration, args.connections, not args.noreload, warmup=not args.quick))


if __name__ == "__main__":
    main_guard(run)
