"""SVG snapshots of the Commands view and of a filled form.

Deterministic: the catalogue is the demo project's, recorded once into
``tests/fixtures/demo_catalogue.json`` (paths made relative: ``<repo>``,
``<site-packages>``) and fed to the view instead of a live child process; the
interpreter is shown as ``python``; nothing runs. Update with
``pytest tests/test_ui_commands_snapshots.py --snapshot-update`` and look at
the SVGs before committing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widget import Widget

from devconsole.commands.catalogue import Catalogue
from devconsole.console.project import Project
from devconsole.demo import DEMO_MANAGE_PY
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens import commands
from devconsole.ui.screens.commands import CommandsScreen
from devconsole.ui.widgets.command_form import CommandFormView

from .conftest import until

RECORDED = Path(__file__).parent / "fixtures" / "demo_catalogue.json"
SIZE = (130, 40)


@pytest.fixture(autouse=True)
def recorded_catalogue(monkeypatch: pytest.MonkeyPatch) -> Catalogue:
    catalogue = Catalogue.from_json(json.loads(RECORDED.read_text()))
    monkeypatch.setattr(commands, "load_catalogue", lambda project: catalogue)
    return catalogue


def app() -> DevConsoleApp:
    return DevConsoleApp(project=Project(DEMO_MANAGE_PY, python="python"))


async def ready(pilot: Any) -> CommandsScreen:
    await pilot.press("c")
    screen = pilot.app.screen
    assert isinstance(screen, CommandsScreen)
    await until(pilot, lambda: screen.catalogue is not None)
    await pilot.pause()
    return screen


def in_view(widget: Widget) -> bool:
    """``widget`` is drawn inside every container that scrolls it (as laid
    out on screen: after any scroll to it has been applied and drawn)."""
    region = widget.region
    return bool(region) and all(
        ancestor.region.contains_region(region)
        for ancestor in widget.ancestors
        if isinstance(ancestor, Widget) and ancestor.allow_vertical_scroll
    )


async def settle(pilot: Any, focused: Widget) -> None:
    """Let layout, scrolling and focus land, so a loaded machine shows the same:
    ``focused`` has the focus (asked for with ``focus()``, which is deferred)
    and is scrolled into view. The cursor stays on (no blink) so its state
    does not depend on timing."""
    from textual.widgets import Input

    app = pilot.app
    for widget in app.screen.query(Input):
        widget.cursor_blink = False
    await until(pilot, lambda: app.focused is focused and in_view(focused))
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def test_recorded_catalogue_matches_the_demo(recorded_catalogue: Catalogue) -> None:
    """The recording is the demo's catalogue, not something made up."""
    from devconsole.commands.catalogue import load_catalogue  # the real one
    from devconsole.demo import demo_env

    real = load_catalogue(Project(DEMO_MANAGE_PY, env=tuple(demo_env().items())))
    assert real.names == recorded_catalogue.names
    assert real.installed_apps == recorded_catalogue.installed_apps
    assert real.get("demo_report") is not None
    assert [a.dest for a in real.get("demo_report").arguments] == [  # type: ignore[union-attr]
        a.dest
        for a in recorded_catalogue.get("demo_report").arguments  # type: ignore[union-attr]
    ]


def test_commands_view(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await ready(pilot)
        await pilot.press("slash", *"demo")
        await pilot.pause()
        command_list = screen.query_one("#cmd-list")
        command_list.focus()
        await settle(pilot, command_list)

    assert snap_compare(app(), terminal_size=SIZE, run_before=run_before)


def test_filled_form(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await ready(pilot)
        await pilot.press("slash", *"demo_report", "enter")
        await until(pilot, lambda: screen._form_view is not None)
        await pilot.pause()
        form = screen.query_one(CommandFormView)
        form.set_value("section", "posts")
        form.set_value("format", "json")
        form.set_value("include_archived", True)
        form.set_value("limit", "five")  # invalid: the error shows at the field
        await pilot.pause()
        await pilot.press("ctrl+r")  # validates, shows the error, runs nothing
        await pilot.pause()
        assert screen._selected_run is None
        bad = form._widget("limit")  # the first bad field: focused and scrolled to
        assert bad is not None
        await settle(pilot, bad)

    assert snap_compare(app(), terminal_size=SIZE, run_before=run_before)
