"""Write ``screenshots/*.svg``: every view of the console, from a recording.

The same recorded session the snapshot tests replay (made by
``scripts/make_recording.py`` from the real demo server), shown headless at a
fixed size, so the pictures in the README are what a user sees. The Commands
view lists the demo's catalogue as recorded for its snapshot tests
(``tests/fixtures/demo_catalogue.json``, paths relative to ``<repo>``) instead
of asking a live project; nothing runs::

    python scripts/screenshots.py [--recording FILE] [--size 160x48] [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

from textual.widgets import Input, OptionList

# Times on screen are local: pin the zone so the pictures match on every machine.
os.environ["TZ"] = "UTC"
time.tzset()

from devconsole.commands.catalogue import Catalogue
from devconsole.console.interpreter import Origin
from devconsole.console.project import Project
from devconsole.demo import DEMO_MANAGE_PY
from devconsole.model.recording import Recording, RecordingError, load_recording
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens import commands
from devconsole.ui.screens.commands import CommandsScreen
from devconsole.ui.widgets.command_form import CommandFormView

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "fixtures" / "demo_catalogue.json"

Step = Callable[[Any], Awaitable[None]]


async def until(pilot: Any, predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


async def commands_ready(pilot: Any) -> CommandsScreen:
    """The Commands view (``c``) once its (recorded) catalogue is listed."""
    await pilot.press("c")
    screen = pilot.app.screen
    assert isinstance(screen, CommandsScreen)
    await until(pilot, lambda: screen.catalogue is not None, "the Commands view's catalogue")
    await pilot.pause()
    return screen


def highlight(name: str) -> Step:
    """The whole catalogue, ``name`` highlighted and its help shown."""

    async def step(pilot: Any) -> None:
        screen = await commands_ready(pilot)
        option_list = screen.query_one("#cmd-list", OptionList)
        option_list.focus()
        option_list.highlighted = option_list.get_option_index(name)

    return step


def fill_form(name: str, **values: str | bool) -> Step:
    """``name``'s form, opened from the filter and filled with ``values`` (nothing runs)."""

    async def step(pilot: Any) -> None:
        screen = await commands_ready(pilot)
        await pilot.press("slash", *name, "enter")
        await until(pilot, lambda: screen._form_view is not None, f"{name}'s form")
        await pilot.pause()
        form = screen.query_one(CommandFormView)
        for dest, value in values.items():
            form.set_value(dest, value)

    return step


class View(NamedTuple):
    about: str
    #: keys pressed after the replay is shown
    keys: list[str]
    #: then this, for what keys alone cannot wait for
    then: Step | None = None
    #: the recording plus the side processes the snapshot tests add to it
    processes: bool = False


#: file name → what it shows and how to get there
VIEWS: dict[str, View] = {
    "dashboard": View("the four live panels", []),
    "requests-filter": View("the Requests panel filtered to 4xx", ["slash", *"4xx", "enter"]),
    "request-detail": View("a hostile request, shown literally", ["slash", *"esc", "enter", "enter"]),
    "log": View("the Log view", ["l"]),
    "log-search": View("the Log view searching for 'Not Found'", ["l", "slash", *"Not Found", "enter"]),
    "anatomy": View("the Anatomy view", ["a"]),
    "commands": View("the Commands view, 'check' highlighted", [], highlight("check")),
    "command-form": View(
        "the demo_report form, filled",
        [],
        fill_form("demo_report", section="posts", format="json", include_archived=True),
    ),
    "help": View("the keys", ["question_mark"]),
    "palette": View("the command palette", ["ctrl+p", *"view"]),
    "processes": View("the Processes view: Procfile.dev's processes", ["p"], processes=True),
}


def use_recorded_catalogue(path: Path = CATALOGUE) -> None:
    """The Commands view lists ``path`` instead of asking the project's child process."""
    catalogue = Catalogue.from_json(json.loads(path.read_text(encoding="utf-8")))
    commands.load_catalogue = lambda project: catalogue  # type: ignore[assignment]


def recording_for(recording_path: Path, view: View) -> Recording:
    if not view.processes:
        return load_recording(recording_path)
    # The snapshot tests' side-process events, merged into the demo recording.
    sys.path.insert(0, str(ROOT))
    from tests.test_ui_processes_snapshots import recording_with_processes

    return recording_with_processes(recording_path)


async def shoot(recording_path: Path, view: View, size: tuple[int, int]) -> str:
    # The project only gives the Commands view something to list (the recorded
    # catalogue) and the status line an interpreter to name (a typical one):
    # without an address and socket no server is started.
    project = Project(DEMO_MANAGE_PY, python="/home/you/mysite/.venv/bin/python", python_origin=Origin.VENV_BESIDE)
    app = DevConsoleApp(recording=recording_for(recording_path, view), project=project)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.refresh_views()
        await pilot.pause()
        for key in view.keys:
            await pilot.press(key)
            await pilot.pause()
            app.refresh_views()
        if view.then is not None:
            await view.then(pilot)
            await pilot.pause()
            app.refresh_views()
        for widget in app.screen.query(Input):
            widget.cursor_blink = False  # the cursor shown whatever the timing
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
    use_recorded_catalogue()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, view in VIEWS.items():
        svg = asyncio.run(shoot(args.recording, view, (width, height)))
        target = args.out / f"{name}.svg"
        target.write_text(svg, encoding="utf-8")
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {view.about}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
