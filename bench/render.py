"""Render: what drawing the Requests table costs the console, per frame.

Under saturation the console's UI thread spends most of its time in
Textual's compositor, and the Requests table is redrawn whole on every
refresh (new rows scroll every line). This runs the real ``DevConsoleApp``
headless (160×48) on the recorded demo session, feeds it request events 30
at a time (one refresh each, as a busy server's flushes arrive) and times,
per frame, the table's lines drawn the way the compositor draws them
(``render_lines``: the table's own lines, then Textual's styles and
filters), and the table's own ``render_line`` calls alone. No server, no
sockets: one process, the UI thread's CPU.

    python bench/render.py                    # 300 frames
    python bench/render.py --baseline ../old  # the same, then devconsole from another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import base_parser, fmt, main_guard, median, table, versions

RECORDING = Path(__file__).resolve().parents[1] / "tests" / "recordings" / "demo.jsonl"


def _request(n: int) -> dict[str, object]:
    return {
        "type": "request",
        "id": f"1.{n}",
        "conn": 1 + n % 8,
        "method": "GET",
        "path": f"/ping/{n % 7}",
        "query": "",
        "version": "HTTP/1.1",
        "status": 404 if n % 5 == 0 else 200,
        "bytes_out": 4,
        "thread": f"Thread-{1 + n % 8}",
        "ts": time.time(),
        "headers": [["Host", "127.0.0.1:8000"]],
        "duration_ms": 1.5,
        "generation": 1,
        "sql": {"count": 0, "ms": 0.0},
    }


async def _frames(count: int) -> tuple[list[float], list[float], int]:
    from textual.geometry import Region

    from devconsole.model.recording import load_recording
    from devconsole.ui.app import DevConsoleApp
    from devconsole.ui.panels.requestlist import RequestList

    app = DevConsoleApp(recording=load_recording(RECORDING))
    composed: list[float] = []
    own: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        n = 0
        for _ in range(count + 20):
            for _ in range(30):
                n += 1
                app.state.ingest(_request(n))
            app.refresh_views()
            await pilot.pause()
            table_widget = app.screen.query_one(RequestList)
            region = table_widget.region
            started = time.thread_time()
            table_widget._styles_cache.clear()  # every line anew, as after a scroll
            table_widget.render_lines(Region(0, 0, region.width, region.height))
            composed.append(time.thread_time() - started)
            started = time.thread_time()
            table_widget._frame = (
                region.width,
                table_widget.rich_style,
                table_widget._widths(region.width),
                table_widget._cursor_component(),
            )
            try:
                for y in range(region.height):
                    table_widget.render_line(y)
            finally:
                table_widget._frame = None
            own.append(time.thread_time() - started)
        lines = region.height
    return composed[20:], own[20:], lines


def _measure(count: int) -> None:
    composed, own, lines = asyncio.run(_frames(count))
    print(f"{median(composed) * 1000:.3f} {median(own) * 1000:.3f} {lines}")


def _run_in(tree: Path | None, count: int) -> tuple[float, float, int]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(count)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"render.py: the measuring process failed:\n{out.stderr[-2000:]}")
    composed, own, lines = out.stdout.split()[-3:]
    return float(composed), float(own), int(lines)


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames timed (default %(default)s)")
    parser.add_argument("--baseline", type=Path, help="another checkout of devconsole, measured after this one")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # the child process's own run
    args = parser.parse_args()
    if args.measure is not None:
        _measure(args.measure)
        return 0
    if args.quick:
        args.frames = 20
    if args.frames < 1:
        parser.error("--frames must be ≥ 1")
    print(f"# Render: the Requests table drawn per frame, 160×48, {args.frames} frames of 30 new rows")
    print(f"Machine: {versions()}")
    print(flush=True)
    trees: list[tuple[str, Path | None]] = [("this tree", Path(__file__).resolve().parents[1])]
    if args.baseline is not None:
        if not (args.baseline / "devconsole" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no devconsole package there")
        trees.append(("baseline", args.baseline.resolve()))
    rows = []
    for name, tree in trees:
        composed, own, lines = _run_in(tree, args.frames)
        rows.append([name, str(lines), fmt(composed, 2), fmt(own, 2), fmt(composed * 1000 / max(lines, 1), 0)])
    print(
        table(
            "UI thread CPU per frame (median)",
            ["devconsole", "lines", "table drawn, ms", "its own render_line, ms", "µs per line drawn"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    main_guard(run)
