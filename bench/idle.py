"""Idle: the CPU devconsole uses with nothing happening, against runserver's.

runserver and devconsole, each with and without autoreload, are started as a
user starts them (in a terminal: a pty, 160×48) on the demo project, all at
once. Once each has answered one request and ``--settle`` seconds have passed
(startup work done: checks, the command catalogue, the file watcher's first
scan), the CPU time (``/proc/PID/stat``) and the wake-ups (context switches
of every thread, ``/proc/PID/task/TID/status``) of every process of each tree
are read at the start and at the end of ``--duration`` seconds of idleness:
the console, its fork servers, its server child and its spare; runserver's
autoreloader and its serving child. Each process's share is printed, then
the totals against runserver's, with memory (PSS and RSS) beside them.

    python bench/idle.py                # 30 s
    python bench/idle.py --duration 60
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    Launch,
    Ports,
    base_parser,
    cpu_seconds,
    demo_database,
    descendants,
    fmt,
    launches,
    main_guard,
    port_range,
    process_roles,
    pss_mb,
    ratio,
    rss_mb,
    table,
    thread_count,
    verdict,
    versions,
    wakeups,
)


def sample(variant: Launch) -> dict[int, tuple[str, float, int]]:
    """pid → (role, CPU seconds, wake-ups) for every process of the tree."""
    assert variant.proc is not None
    roles = process_roles(variant.proc.pid)
    out = {}
    for pid in [variant.proc.pid, *descendants(variant.proc.pid)]:
        try:
            out[pid] = (roles.get(pid, "?"), cpu_seconds(pid), wakeups(pid))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return out


def memory(pids: list[int]) -> dict[int, tuple[float, float, int]]:
    """pid → (PSS MB, RSS MB, threads)."""
    out = {}
    for pid in pids:
        try:
            out[pid] = (pss_mb(pid), rss_mb(pid), thread_count(pid))
        except (OSError, ValueError):
            continue
    return out


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
            before = {v.name: sample(v) for v in variants}
            t0 = time.monotonic()
            time.sleep(args.duration)
            after = {v.name: sample(v) for v in variants}
            wall = time.monotonic() - t0
            mem = {v.name: memory(list(after[v.name])) for v in variants}
        finally:
            for variant in variants:
                variant.stop()
    rows = []
    totals: dict[str, tuple[float, float, int, float, float]] = {}
    for variant in variants:
        first, last = before[variant.name], after[variant.name]
        cpu_total = wake_total = 0.0
        pss_total = rss_total = 0.0
        for pid, (role, cpu, woken) in last.items():
            start = first.get(pid)
            # A process started during the window (a new spare) counts from its start.
            cpu0, woken0 = (start[1], start[2]) if start else (0.0, 0)
            d_cpu, d_woken = (cpu - cpu0) / wall * 100, (woken - woken0) / wall
            pss, rss, threads = mem[variant.name].get(pid, (float("nan"), float("nan"), 0))
            cpu_total += d_cpu
            wake_total += d_woken
            pss_total += pss
            rss_total += rss
            rows.append([variant.name, role, str(pid), str(threads), fmt(d_cpu, 2), fmt(d_woken), fmt(pss), fmt(rss)])
        totals[variant.name] = (cpu_total, wake_total, len(last), pss_total, rss_total)
    print(
        table(
            f"Each process over {wall:.0f} s idle",
            ["command", "process", "pid", "threads", "CPU % of a core", "wake-ups/s", "PSS MB", "RSS MB"],
            rows,
        )
    )
    summary = []
    for name, (cpu, woken, count, pss, rss) in totals.items():
        reference = totals["runserver --noreload" if name.endswith("--noreload") else "runserver"]
        summary.append(
            [
                name,
                fmt(cpu, 2),
                fmt(woken),
                str(count),
                fmt(pss),
                f"{ratio(pss, reference[3]):.2f}×",
                fmt(rss),
            ]
        )
    print(
        table(
            f"Idle over {wall:.0f} s, every process of the tree",
            ["command", "CPU % of a core", "wake-ups/s", "processes", "PSS MB", "PSS vs runserver", "RSS MB"],
            summary,
        )
    )
    print("Targets:")
    ours, theirs = totals["devconsole"][0], totals["runserver"][0]
    print(
        verdict(
            ours <= theirs,
            f"idle CPU of every process: devconsole {ours:.2f}% vs runserver {theirs:.2f}% of a core"
            " (target ≤ runserver's)",
            figure=f"idle CPU of every process, {wall:.0f} s, nothing happening, {args.settle:g} s after a request",
            runserver=f"{theirs:.2f} % ({totals['runserver'][2]} processes)",
            devconsole=f"{ours:.2f} % ({totals['devconsole'][2]} processes)",
            target="≤ runserver's",
        )
    )
    ours, theirs = totals["devconsole --noreload"][0], totals["runserver --noreload"][0]
    print(f"Without autoreload (no target): devconsole {ours:.2f}% vs runserver {theirs:.2f}% of a core.")
    return 0


if __name__ == "__main__":
    main_guard(run)
