"""Render: what drawing the dashboard costs the console, per frame.

Under saturation the console's UI thread spends most of its time in
Textual's compositor, and the Requests table is redrawn whole on every
refresh (new rows scroll every line). This runs the real ``DevConsoleApp``
headless (160×48) on the recorded demo session, fills the Requests table
(its 2,000 rows: the steady state of a busy server), then feeds it, per
frame, 30 request events, the state of 8 keep-alive connections and the
select loop's figures (one refresh each, as a busy server's flushes
arrive), and times per frame, in the UI thread's CPU:

* the dashboard as the compositor drew it (every widget's ``render_lines``,
  summed), and the widgets that cost the most;
* the Requests table's lines drawn anew the way the compositor draws them
  (its own lines, then Textual's styles and filters), and its own
  ``render_line`` calls alone.

No server, no sockets: one process.

    python bench/render.py                    # 300 frames
    python bench/render.py --baseline ../old  # the same, then devconsole from another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import base_parser, fmt, main_guard, median, table, versions

RECORDING = Path(__file__).resolve().parents[1] / "tests" / "recordings" / "demo.jsonl"


def _request(n: int, generation: int) -> dict[str, object]:
    return {
        "type": "request",
        "id": f"{generation}.{n}",
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
        "generation": generation,
        "sql": {"count": 0, "ms": 0.0},
    }


def _connection(conn: int, n: int, generation: int) -> dict[str, object]:
    return {
        "type": "conn_state",
        "conn": 1 + conn,
        "peer": f"127.0.0.1:{40000 + conn}",
        "state": "idle",
        "requests": n // 8,
        "bytes_in": n * 50,
        "bytes_out": n * 120,
        "thread": f"Thread-{1 + conn}",
        "opened": time.time() - 5,
        "generation": generation,
    }


def _loop(generation: int) -> dict[str, object]:
    return {
        "type": "loop",
        "iterations": 3,
        "ready": 3,
        "timeouts": 0,
        "blocked_s": 0.02,
        "elapsed_s": 0.025,
        "accepts": 0,
        "poll_interval": 0.5,
        "generation": generation,
    }


def _stats(n: int, generation: int) -> dict[str, object]:
    return {
        "type": "stats",
        "requests": n,
        "connections": 8,
        "dropped": 0,
        "status": {"2xx": n - n // 5, "4xx": n // 5},
        "open": 8,
        "generation": generation,
    }


async def _frames(count: int) -> dict[str, object]:
    from textual.geometry import Region
    from textual.widget import Widget

    from devconsole.model.recording import load_recording
    from devconsole.ui.app import DevConsoleApp
    from devconsole.ui.panels.requestlist import RequestList

    drawn: dict[str, float] = {}
    render_lines = Widget.render_lines

    def timed(widget: Widget, crop: Region) -> object:
        started = time.thread_time()
        try:
            return render_lines(widget, crop)
        finally:
            name = f"{type(widget).__name__}#{widget.id}" if widget.id else type(widget).__name__
            drawn[name] = drawn.get(name, 0.0) + time.thread_time() - started

    Widget.render_lines = timed  # type: ignore[method-assign]
    app = DevConsoleApp(recording=load_recording(RECORDING))
    frames: list[float] = []
    widgets: dict[str, list[float]] = {}
    composed: list[float] = []
    own: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        generation = app.state.generation
        n = 0
        for _ in range(2_100):  # the table full: its row count and scroll range stop changing
            n += 1
            app.state.ingest(_request(n, generation))
        app.refresh_views()
        for _ in range(3):
            await pilot.pause()
        for frame in range(count + 10):
            for _ in range(30):
                n += 1
                app.state.ingest(_request(n, generation))
            for conn in range(8):
                app.state.ingest(_connection(conn, n, generation))
            app.state.ingest(_loop(generation))
            app.state.ingest(_stats(n, generation))
            drawn.clear()
            app.refresh_views()
            await pilot.pause()
            await pilot.pause()
            if frame >= 10:
                frames.append(sum(drawn.values()))
                for name, seconds in drawn.items():
                    widgets.setdefault(name, []).append(seconds)
            table_widget = app.screen.query_one(RequestList)
            region = table_widget.region
            started = time.thread_time()
            table_widget._styles_cache.clear()  # every line anew, as after a scroll
            render_lines(table_widget, Region(0, 0, region.width, region.height))
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
    costly = sorted(widgets.items(), key=lambda item: -sum(item[1]))[:5]
    return {
        "frame": median(frames) * 1000,
        "table": median(composed[10:]) * 1000,
        "own": median(own[10:]) * 1000,
        "lines": region.height,
        "widgets": [[name, sum(values) / len(frames)] for name, values in costly],
    }


def _measure(count: int) -> None:
    print(json.dumps(asyncio.run(_frames(count))))


def _run_in(tree: Path | None, count: int) -> dict[str, object]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(count)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"render.py: the measuring process failed:\n{out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


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
    print(
        f"# Render: the dashboard drawn per frame, 160×48, the Requests table full, {args.frames} frames of 30 new rows"
    )
    print(f"Machine: {versions()}")
    print(flush=True)
    trees: list[tuple[str, Path | None]] = [("this tree", Path(__file__).resolve().parents[1])]
    if args.baseline is not None:
        if not (args.baseline / "devconsole" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no devconsole package there")
        trees.append(("baseline", args.baseline.resolve()))
    results = [(name, _run_in(tree, args.frames)) for name, tree in trees]
    rows = []
    for name, result in results:
        frame, drawn, own, lines = (float(result[key]) for key in ("frame", "table", "own", "lines"))  # type: ignore[arg-type]
        rows.append(
            [name, fmt(frame, 2), str(int(lines)), fmt(drawn, 2), fmt(own, 2), fmt(drawn * 1000 / max(lines, 1), 0)]
        )
    print(
        table(
            "UI thread CPU per frame (median)",
            [
                "devconsole",
                "dashboard drawn, ms",
                "table lines",
                "table drawn anew, ms",
                "its own render_line, ms",
                "µs per table line",
            ],
            rows,
        )
    )
    for name, result in results:
        print()
        print(
            table(
                f"Widgets that cost the most to draw, {name} (mean ms per frame)",
                ["widget", "ms"],
                [[widget, fmt(seconds * 1000, 3)] for widget, seconds in result["widgets"]],  # type: ignore[attr-defined]
            )
        )
    return 0


if __name__ == "__main__":
    main_guard(run)
