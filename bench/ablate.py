"""Where devconsole's per-request cost comes from: parts switched off one at a time.

Runs the bare ceiling server, the tuned one and devconsole's serving path (as
in ``throughput.py``), each also with parts of the per-request work switched
off by ``bench/ablate_site/sitecustomize.py`` (``nolog``: no django.server
log line; ``noheaders``: no headers in request events; ``bufstderr``: stderr
flushed every 50 ms instead of per line; ``noinsight``: no request insight
captured; ``nohandover``: no ``poll`` before each keep-alive request).
The cells are interleaved; the table shows the median req/s and the CPU
each variant's processes spent per request, the steadier number on a busy
machine. For diagnosis: the ablated variants are not how devconsole runs.

    python bench/ablate.py
    python bench/ablate.py --close --variants bare,devconsole,devconsole+nolog
    python bench/ablate.py --variants tuned,devconsole --baseline ../before   # before/after, one run
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BENCH_DIR,
    Bare,
    BenchError,
    Devconsole,
    Ports,
    Server,
    Tuned,
    base_parser,
    demo_database,
    fmt,
    main_guard,
    median,
    port_range,
    require_wrk,
    run_wrk,
    table,
    tree_cpu,
    versions,
)

DEFAULT = "bare,bare+nolog,tuned,devconsole,devconsole+noheaders,devconsole+bufstderr"
PARTS = {"nolog", "noheaders", "bufstderr", "noinsight", "nohandover"}
KINDS = {"bare": Bare, "tuned": Tuned, "devconsole": Devconsole}


class Baseline(Devconsole):
    """devconsole's serving path from another checkout (``--baseline DIR``):
    the code before a change, measured in the same run as the code after it."""

    root: Path = Path()

    def argv(self) -> list[str]:
        return [sys.executable, str(self.root / "bench" / "serve.py"), self.mode, str(self.port)]


def make(variant: str, port: int, baseline: Path | None = None) -> Server:
    if variant == "baseline":
        if baseline is None:
            raise BenchError("--variants: 'baseline' needs --baseline DIR (another checkout of devconsole)")
        server = Baseline(port, {})
        server.root = baseline
        server.name = "baseline"
        return server
    kind, *parts = variant.split("+")
    if kind not in KINDS or not set(parts) <= PARTS:
        raise BenchError(
            f"--variants: {variant!r} is not bare, tuned or devconsole followed by +{'/+'.join(sorted(PARTS))}"
        )
    if kind != "devconsole" and set(parts) - {"nolog", "bufstderr"}:
        raise BenchError(f"--variants: {variant!r}: the {kind} server has no instrumentation to switch off")
    env = {"PYTHONPATH": str(BENCH_DIR / "ablate_site"), "DEVCONSOLE_ABLATE": ",".join(parts)}
    server = KINDS[kind](port, env)
    server.name = variant
    return server


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=DEFAULT, help="comma list of variants (default: all)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per cell (default %(default)s)")
    parser.add_argument("--reps", type=int, default=4, help="repetitions, interleaved (default %(default)s)")
    parser.add_argument("--close", action="store_true", help="Connection: close instead of keep-alive")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of devconsole (the code before a change): adds the variant 'baseline', "
        "its devconsole serving path",
    )
    args = parser.parse_args()
    if args.quick:
        args.variants, args.duration, args.reps = "bare,devconsole+nolog", 1.0, 1
    if args.duration < 1 or args.reps < 1:
        parser.error("--duration must be ≥ 1 s and --reps ≥ 1")
    require_wrk()
    ports = Ports(port_range(args.ports))
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.baseline is not None and "baseline" not in variants:
        variants.insert(variants.index("devconsole") if "devconsole" in variants else len(variants), "baseline")
    if args.baseline is not None and not (args.baseline / "bench" / "serve.py").is_file():
        parser.error(f"--baseline {args.baseline}: no bench/serve.py there")
    servers = [make(v, ports.take(), args.baseline) for v in variants]
    mode = "Connection: close" if args.close else "keep-alive"
    print(
        f"# Ablation: devconsole's per-request cost by part, GET /ping/, 8 connections, {mode}, "
        f"{args.duration:g} s per cell, {args.reps} repetitions interleaved"
    )
    print(f"Machine: {versions()}")
    print(flush=True)
    cells: dict[str, list[tuple[float, float, float, int]]] = {}
    with demo_database():
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()
                if not args.quick:
                    run_wrk(server.url, duration=1, keepalive=not args.close)
            for _ in range(args.reps):
                for server in servers:
                    assert server.proc is not None
                    before = tree_cpu(server.proc.pid)
                    result = run_wrk(server.url, duration=args.duration, keepalive=not args.close)
                    after = tree_cpu(server.proc.pid)
                    root = server.proc.pid
                    console = after.get(root, 0.0) - before.get(root, 0.0) if isinstance(server, Devconsole) else 0.0
                    total = sum(after[p] - before.get(p, 0.0) for p in after)
                    cells.setdefault(server.name, []).append((result.rps, total - console, console, result.requests))
        finally:
            for server in servers:
                server.stop()
    per_request = {
        name: (
            sum(c[1] for c in values) / max(sum(c[3] for c in values), 1) * 1e6,
            sum(c[2] for c in values) / max(sum(c[3] for c in values), 1) * 1e6,
        )
        for name, values in cells.items()
    }
    reference = per_request.get("bare")
    tuned_rps = median([c[0] for c in cells["tuned"]]) if "tuned" in cells else None
    rows = []
    for name in variants:
        server_us, console_us = per_request[name]
        total = server_us + console_us
        rps = median([c[0] for c in cells[name]])
        rows.append(
            [
                name,
                fmt(rps, 0),
                f"{(rps / tuned_rps - 1) * 100:+.1f}%" if tuned_rps else "n/a",
                fmt(server_us, 0),
                fmt(console_us, 0) if name.startswith("devconsole") or name == "baseline" else "-",
                fmt(total, 0),
                f"{total / (reference[0] + reference[1]):.2f}×" if reference else "n/a",
                " ".join(fmt(c[0], 0) for c in cells[name]),
            ]
        )
    print(
        table(
            f"CPU per request by variant ({mode})",
            [
                "variant",
                "req/s",
                "req/s vs tuned",
                "server CPU µs/req",
                "console CPU µs/req",
                "total CPU µs/req",
                "CPU vs bare",
                "req/s per repetition",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    main_guard(run)
