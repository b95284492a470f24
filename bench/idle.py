"""Idle: the CPU devconsole uses with nothing happening, against runserver's.

runserver and devconsole, each with and without autoreload, are started as a
user starts them (in a terminal: a pty, 160×48) on the demo project, all at
once. Once each has answered one request and ``--settle`` seconds have passed
(startup work done: checks, the command catalogue, the file watcher's first
scan), the CPU time of each process tree (``/proc/PID/stat``; the console with
its server child, runserver's autoreloader with its serving child) is read
at the start and at the end of ``--duration`` seconds of idleness.

    python bench/idle.py                # 30 s
    python bench/idle.py --duration 60
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    Ports,
    base_parser,
    demo_database,
    descendants,
    fmt,
    launches,
    main_guard,
    port_range,
    rss_mb,
    table,
    tree_cpu,
    versions,
)


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of idleness measured (default %(default)s)"
    )
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait after the first 200 (default %(default)s)"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.settle = 2.0, 0.5
    if args.duration <= 0 or args.settle < 0:
        parser.error("--duration must be > 0 and --settle ≥ 0")
    print(f"# Idle: CPU over {args.duration:g} s with nothing happening, after {args.settle:g} s of settling")
    print(f"Machine: {versions()}")
    print(flush=True)
    with demo_database():
        variants = launches(Ports(port_range(args.ports)))
        try:
            for variant in variants:
                variant.start()
            for variant in variants:
                variant.first_200()
            time.sleep(args.settle)
            before = {v.name: tree_cpu(v.proc.pid) for v in variants if v.proc}
            t0 = time.monotonic()
            time.sleep(args.duration)
            after = {v.name: tree_cpu(v.proc.pid) for v in variants if v.proc}
            wall = time.monotonic() - t0
            rss = {}
            for v in variants:
                assert v.proc is not None
                pids = [v.proc.pid, *descendants(v.proc.pid)]
                rss[v.name] = (rss_mb(v.proc.pid), sum(rss_mb(p) for p in pids))
        finally:
            for variant in variants:
                variant.stop()
    rows = []
    for variant in variants:
        assert variant.proc is not None
        root = variant.proc.pid
        first, last = before[variant.name], after[variant.name]
        main = last.get(root, 0.0) - first.get(root, 0.0)
        others = sum(seconds - first.get(pid, 0.0) for pid, seconds in last.items() if pid != root)
        rows.append(
            [
                variant.name,
                fmt(main / wall * 100, 2),
                fmt(others / wall * 100, 2),
                fmt((main + others) / wall * 100, 2),
                str(len(last)),
                fmt(rss[variant.name][0]),
                fmt(rss[variant.name][1]),
            ]
        )
    print(
        table(
            f"Idle CPU over {wall:.0f} s (% of one core)",
            ["command", "main process", "its children", "total", "processes", "main RSS MB", "total RSS MB"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    main_guard(run)
