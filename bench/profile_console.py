"""Where the console's time goes: a profile of its UI thread, under load or idle.

Runs the real ``DevConsoleApp`` headless (160×48) on the demo project, like
``console.py``, and profiles the thread that runs the event loop (layout,
rendering, every panel's refresh) with cProfile while wrk saturates the
server (or, with ``--idle``, while nothing happens). Prints the app's CPU,
how long its screen updates took and the functions that cost the most, so a
number in console.py or idle.py can be traced to the code behind it.

    python bench/profile_console.py                 # 6 s of saturation
    python bench/profile_console.py --idle --duration 10
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    Ports,
    base_parser,
    demo_database,
    main_guard,
    parse_wrk,
    port_range,
    require_wrk,
    versions,
    wrk_argv,
)
from headless import headless_console, own_cpu, run_wrk_async


async def profile(port: int, duration: float, idle: bool, limit: int, after_request: bool = False) -> int:
    async with headless_console(port, reload=False):
        url = f"http://127.0.0.1:{port}/ping/"
        if not idle:
            await run_wrk_async(wrk_argv(url, duration=1))
        elif after_request:
            # The minute after a request: the accepts sparkline still moves.
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        await asyncio.sleep(1.0)
        profiler = cProfile.Profile()
        cpu0, t0 = own_cpu(), time.monotonic()
        profiler.enable()
        if idle:
            await asyncio.sleep(duration)
            served = ""
        else:
            result = parse_wrk(await run_wrk_async(wrk_argv(url, duration=duration)))
            served = f", {result.requests:,} requests served ({result.rps:,.0f}/s)"
        profiler.disable()
        wall = time.monotonic() - t0
        cpu = own_cpu() - cpu0
    print(
        f"console CPU: {cpu / wall * 100:.1f}% of one core over {wall:.1f} s (with the profiler's own overhead){served}"
    )
    print()
    for order, title in (("cumulative", "cumulative time (with callees)"), ("tottime", "own time")):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(order).print_stats(limit)
        print(f"## by {title}")
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))
        print()
    return 0


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds profiled (default %(default)s)")
    parser.add_argument("--idle", action="store_true", help="profile the console with nothing happening")
    parser.add_argument(
        "--after-request", action="store_true", help="with --idle: one request first (the minute after it)"
    )
    parser.add_argument("--top", type=int, default=30, help="functions listed per ordering (default %(default)s)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.top = 1.0, 10
    if args.duration < 1 or args.top < 1:
        parser.error("--duration must be ≥ 1 s and --top ≥ 1")
    if not args.idle:
        require_wrk()
    port = Ports(port_range(args.ports)).take()
    print(f"# Profile of the console's UI thread, {'idle' if args.idle else 'under saturation'}")
    print(f"Machine: {versions()}")
    print(flush=True)
    with demo_database():
        return asyncio.run(profile(port, args.duration, args.idle, args.top, args.after_request))


if __name__ == "__main__":
    main_guard(run)
