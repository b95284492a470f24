"""Startup: from launch to the first 200, devconsole against runserver.

Each variant is started as a user starts it — in a terminal (a pty, 160×48),
from the demo project's directory — and ``GET /ping/`` is polled every 5 ms
from the moment of launch until it answers 200:

* ``runserver`` / ``runserver --noreload``: ``python manage.py runserver``;
* ``devconsole`` / ``devconsole --noreload``: ``devconsole --demo`` (the full
  Textual console: its screen, the server child, the catalogue child).

Runs are interleaved (A B C D A B C D …); medians and ratios come from the
same run. The time at which the first child process started (devconsole's
server child or fork server, runserver's autoreloaded child; 10 ms resolution) is
shown too. devconsole binds its port before anything else, so a poll that
connects early waits in the backlog and is answered as soon as the server
child serves: the time measured is the time a browser would wait.

    python bench/startup.py             # 7 repetitions
    python bench/startup.py --reps 3
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
    fmt,
    launches,
    main_guard,
    median,
    port_range,
    ratio,
    table,
    versions,
)


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reps", type=int, default=7, help="launches of each variant, interleaved (default %(default)s)"
    )
    args = parser.parse_args()
    if args.quick:
        args.reps = 1
    if args.reps < 1:
        parser.error("--reps must be ≥ 1")
    print(f"# Startup: launch to the first 200 on /ping/ of the demo project, {args.reps} repetitions interleaved")
    print(f"Machine: {versions()}")
    print(flush=True)
    times: dict[str, list[float]] = {}
    children: dict[str, list[float]] = {}
    with demo_database():
        variants = launches(Ports(port_range(args.ports)))
        if args.quick:
            variants = [v for v in variants if "--noreload" not in v.name]
        for rep in range(args.reps):
            for variant in variants:
                try:
                    variant.start()
                    times.setdefault(variant.name, []).append(variant.first_200())
                    child = variant.first_child()
                    if child is not None:
                        children.setdefault(variant.name, []).append(child)
                finally:
                    variant.stop()
                time.sleep(0.2)
            print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    base = median(times["runserver"])
    base_noreload = median(times.get("runserver --noreload", [float("nan")]))
    rows = []
    for variant in variants:
        values = times[variant.name]
        reference = base_noreload if variant.name.endswith("--noreload") else base
        rows.append(
            [
                variant.name,
                fmt(median(values) * 1000, 0),
                fmt(min(values) * 1000, 0),
                fmt(max(values) * 1000, 0),
                f"{ratio(median(values), reference):.2f}×",
                fmt(median(children[variant.name]) * 1000, 0) if variant.name in children else "-",
                " ".join(fmt(v * 1000, 0) for v in values),
            ]
        )
    print(
        table(
            "Launch to first 200 (ms)",
            [
                "command",
                "median",
                "min",
                "max",
                "vs runserver (same reload mode)",
                "first child process started",
                "each launch",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    main_guard(run)
