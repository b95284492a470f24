"""Write ``screenshots/*.svg``: every view of the console, from a recording.

The same recorded session the snapshot tests replay (made by
``scripts/make_recording.py`` from the real demo server), shown headless at a
fixed size, so the pictures in the README are what a user sees::

    python scripts/screenshots.py [--recording FILE] [--size 160x48] [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from devconsole.core.recording import RecordingError, load_recording
from devconsole.ui.app import DevConsoleApp

ROOT = Path(__file__).resolve().parent.parent

#: file name → (what it shows, keys pressed after the replay is shown)
VIEWS: dict[str, tuple[str, list[str]]] = {
    "dashboard": ("the four live panels", []),
    "requests-filter": ("the Requests panel filtered to 4xx", ["slash", *"4xx", "enter"]),
    "request-detail": ("a hostile request, shown literally", ["slash", *"esc", "enter", "enter"]),
    "log": ("the Log view", ["l"]),
    "log-search": ("the Log view searching for 'Not Found'", ["l", "slash", *"Not Found", "enter"]),
    "anatomy": ("the Anatomy view", ["a"]),
    "help": ("the keys", ["question_mark"]),
    "palette": ("the command palette", ["ctrl+p", *"view"]),
}


async def shoot(recording_path: Path, keys: list[str], size: tuple[int, int]) -> str:
    app = DevConsoleApp(recording=load_recording(recording_path))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.refresh_views()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            app.refresh_views()
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        return app.export_screenshot(title="devconsole")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recording", type=Path, default=ROOT / "tests" / "recordings" / "demo.jsonl")
    parser.add_argument("--size", default="160x48", help="terminal size, WIDTHxHEIGHT")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args(argv)
    try:
        width, height = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size}: expected WIDTHxHEIGHT, e.g. 160x48")
    try:
        load_recording(args.recording)
    except RecordingError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (about, keys) in VIEWS.items():
        svg = asyncio.run(shoot(args.recording, keys, (width, height)))
        target = args.out / f"{name}.svg"
        target.write_text(svg, encoding="utf-8")
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {about}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
