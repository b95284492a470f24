"""Memory: every process of the tree (PSS) against runserver's, and the
console's RSS staying flat from 10k requests to 200k.

First, runserver and devconsole (each with and without autoreload) are
started as a user starts them (in a pty, 160×48) on the demo project, all
at once; once each answered ``--warm`` requests and ``--settle`` seconds have
passed, the memory of every process of each tree is read: PSS from
``/proc/PID/smaps_rollup`` (a page shared by n processes counts 1/n in each:
forked processes share most of their pages, so PSS adds up to what the tree
really uses, where RSS counts a shared page once per process), RSS beside it.

Then it runs the real ``DevConsoleApp`` headless (160×48) on the demo project and
drives it with wrk (8 keep-alive connections on /ping/) up to a series of
checkpoints — 10k, then evenly spaced up to ``--requests`` (200k by default) —
reading the console's RSS (``/proc/self/status`` VmRSS) and its server
child's at each. Everything the console keeps is bounded (rows, log lines,
rates), so past the first checkpoint the RSS should not grow. At the
default 200k requests this takes as long as 200k requests take on your
machine at saturation (about 3 minutes at ~1,200 req/s); the elapsed time is
printed.

    python bench/memory.py                      # the trees, then 10k → 200k
    python bench/memory.py --requests 50000 --first 5000
    python bench/memory.py --trees-only         # without wrk
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BenchError,
    Ports,
    base_parser,
    demo_database,
    descendants,
    fmt,
    get_status,
    launches,
    main_guard,
    parse_wrk,
    port_range,
    process_roles,
    pss_mb,
    ratio,
    require_wrk,
    rss_mb,
    table,
    thread_count,
    verdict,
    versions,
    wrk_argv,
)
from headless import headless_console, run_wrk_async, server_rss

#: The RSS growth allowed between the first checkpoint and the last.
FLAT_MB = 50.0
#: The issue's target: devconsole's whole tree against runserver's, in PSS.
PSS_RATIO = 1.3


def trees(ports: Ports, warm: int, settle: float) -> None:
    """Every process of each tree, idle after ``warm`` requests, and the PSS
    target's verdict line."""
    variants = launches(ports)
    memory: dict[str, list[tuple[str, int, int, float, float]]] = {}
    try:
        for variant in variants:
            variant.start()
        for variant in variants:
            variant.first_200()
            for _ in range(warm):
                get_status(variant.port)
        time.sleep(settle)
        for variant in variants:
            assert variant.proc is not None
            roles = process_roles(variant.proc.pid)
            rows = []
            for pid in [variant.proc.pid, *descendants(variant.proc.pid)]:
                try:
                    rows.append((roles.get(pid, "?"), pid, thread_count(pid), pss_mb(pid), rss_mb(pid)))
                except OSError:
                    continue
            memory[variant.name] = rows
    finally:
        for variant in variants:
            variant.stop()
    print(
        table(
            f"Memory of each process, idle after {warm} requests",
            ["command", "process", "pid", "threads", "PSS MB", "RSS MB"],
            [
                [name, role, str(pid), str(n), fmt(pss), fmt(rss)]
                for name, rows in memory.items()
                for role, pid, n, pss, rss in rows
            ],
        )
    )
    totals = {name: (sum(r[3] for r in rows), sum(r[4] for r in rows), len(rows)) for name, rows in memory.items()}
    summary = []
    for name, (pss, rss, count) in totals.items():
        reference = totals["runserver --noreload" if name.endswith("--noreload") else "runserver"]
        summary.append(
            [
                name,
                str(count),
                fmt(pss),
                f"{ratio(pss, reference[0]):.2f}×",
                fmt(rss),
                f"{ratio(rss, reference[1]):.2f}×",
            ]
        )
    print(
        table(
            "Memory of every process of the tree",
            ["command", "processes", "PSS MB", "PSS vs runserver", "RSS MB", "RSS vs runserver"],
            summary,
        )
    )
    ours, theirs = totals["devconsole"][0], totals["runserver"][0]
    met = ours <= PSS_RATIO * theirs
    print("Targets:")
    print(
        verdict(
            met,
            f"memory of every process (PSS): devconsole {ours:.1f} MB vs runserver {theirs:.1f} MB,"
            f" {ratio(ours, theirs):.2f}× (target ≤ {PSS_RATIO:g}×)",
            figure="memory of every process (PSS), idle after a few requests",
            runserver=f"{theirs:.1f} MB ({totals['runserver'][2]} processes)",
            devconsole=f"{ours:.1f} MB ({totals['devconsole'][2]} processes), {ratio(ours, theirs):.2f}×",
            target=f"≤ {PSS_RATIO:g}× runserver's",
        )
    )
    print(flush=True)


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
            figure=f"console RSS growth from {targets[0]:,} to {targets[-1]:,} requests",
            devconsole=f"{growth:+.1f} MB",
            target=f"≤ {FLAT_MB:g} MB",
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
    parser.add_argument("--trees-only", action="store_true", help="only the memory of each tree (no wrk needed)")
    parser.add_argument("--warm", type=int, default=20, help="requests before the trees are read (default %(default)s)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds idle before the trees are read (default %(default)s)"
    )
    args = parser.parse_args()
    if args.quick:
        args.first, args.requests, args.steps, args.warm, args.settle = 500, 1500, 1, 2, 0.5
    if not 0 < args.first < args.requests or args.steps < 1 or args.connections < 1:
        parser.error("need 0 < --first < --requests, --steps ≥ 1 and --connections ≥ 1")
    ports = Ports(port_range(args.ports))
    print("# Memory: every process of the tree (PSS), and the console's RSS by requests served")
    print(f"Machine: {versions()}")
    print(flush=True)
    with demo_database():
        trees(ports, args.warm, args.settle)
        if args.trees_only:
            return 0
        try:
            require_wrk()
        except BenchError as exc:
            print(f"Console RSS by requests served: not measured ({exc}).")
            return 0
        port = ports.take()
        print(f"## Console memory: DevConsoleApp headless on the demo, GET /ping/ up to {args.requests:,} requests")
        print(flush=True)
        return asyncio.run(
            drive(port, checkpoints(args.first, args.requests, args.steps), args.connections, not args.noreload)
        )


if __name__ == "__main__":
    main_guard(run)
