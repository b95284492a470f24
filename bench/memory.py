"""Memory stays flat: the console's RSS after 10k requests and after 200k.

Runs the real ``DevConsoleApp`` headless (160×48) on the demo project and
drives it with wrk (8 keep-alive connections on /ping/) up to a series of
checkpoints — 10k, then evenly spaced up to ``--requests`` (200k by default) —
reading the console's RSS (``/proc/self/status`` VmRSS) and its server
child's at each. Everything the console keeps is bounded (rows, log lines,
rates), so past the first checkpoint the RSS should not grow. At the
default 200k requests this takes as long as 200k requests take on your
machine at saturation (about 3 minutes at ~1,200 req/s); the elapsed time is
printed.

    python bench/memory.py                      # 10k → 200k
    python bench/memory.py --requests 50000 --first 5000
"""

from __future__ import annotations

import asyncio
import sys
import time
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
from headless import headless_console, run_wrk_async, server_rss

#: The RSS growth allowed between the first checkpoint and the last.
FLAT_MB = 50.0


def checkpoints(first: int, last: int, steps: int) -> list[int]:
    points = [first]
    for i in range(1, steps + 1):
        point = first + (last - first) * i // steps
        if point > points[-1]:
            points.append(point)
    return points


async def drive(port: int, targets: list[int], connections: int, reload: bool) -> int:
    rows = []
    async with headless_console(port, reload=reload) as app:
        url = f"http://127.0.0.1:{port}/ping/"
        base = app.state.total_requests
        rows.append(["0 (started)", "0.0", fmt(rss_mb()), fmt(server_rss(app)), "-"])
        first_rss: float | None = None
        started = time.monotonic()
        for target in targets:
            remaining = target - (app.state.total_requests - base)
            if remaining > 0:
                # wrk's threads stop after about `remaining` responses; it is
                # interrupted once the console has seen the last request.
                argv = wrk_argv(url, duration=3600, connections=connections, count=True, limit=remaining)
                reached = lambda t=target: app.state.total_requests - base >= t  # noqa: E731
                out = await run_wrk_async(argv, stop_when=reached)
                parse_wrk(out)
            await asyncio.sleep(1.0)  # the last flush and the screen's last tick
            rss = rss_mb()
            if first_rss is None:
                first_rss = rss
            total = app.state.total_requests - base
            rows.append(
                [
                    f"{total:,}",
                    fmt(time.monotonic() - started),
                    fmt(rss),
                    fmt(server_rss(app)),
                    f"{rss - first_rss:+.1f}",
                ]
            )
            print(f"{total:,} requests after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - started
        last_rss = rss_mb()
    print(
        table(
            f"Console RSS by requests served ({connections} keep-alive connections)",
            ["requests served", "elapsed s", "console RSS MB", "server child RSS MB", "Δ console MB since first"],
            rows,
        )
    )
    assert first_rss is not None
    growth = last_rss - first_rss
    print(f"{targets[-1]:,} requests took {elapsed:.0f} s ({targets[-1] / elapsed:,.0f} req/s through the console).")
    print("Targets:")
    print(
        verdict(
            growth <= FLAT_MB,
            f"console RSS grew {growth:+.1f} MB from {targets[0]:,} to {targets[-1]:,} requests (target ≤ {FLAT_MB:g} MB)",
        )
    )
    return 0


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=200_000, help="requests at the last checkpoint (default %(default)s)"
    )
    parser.add_argument(
        "--first", type=int, default=10_000, help="requests at the first checkpoint (default %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=4, help="checkpoints after the first (default %(default)s)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default %(default)s)")
    parser.add_argument("--noreload", action="store_true", help="run the console without its file watcher")
    args = parser.parse_args()
    if args.quick:
        args.first, args.requests, args.steps = 500, 1500, 1
    if not 0 < args.first < args.requests or args.steps < 1 or args.connections < 1:
        parser.error("need 0 < --first < --requests, --steps ≥ 1 and --connections ≥ 1")
    require_wrk()
    port = Ports(port_range(args.ports)).take()
    print(f"# Console memory: DevConsoleApp headless on the demo, GET /ping/ up to {args.requests:,} requests")
    print(f"Machine: {versions()}")
    print(flush=True)
    with demo_database():
        return asyncio.run(
            drive(port, checkpoints(args.first, args.requests, args.steps), args.connections, not args.noreload)
        )


if __name__ == "__main__":
    main_guard(run)
