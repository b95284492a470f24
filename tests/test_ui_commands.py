"""The Commands view, driven from the keyboard with Textual's pilot.

The catalogue is the real one (a child process reads the demo or fixture
project, once per session); runs are real ``manage.py`` subprocesses. There is no server child
here: the view does not need one, and the live console tests cover it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import (
    Collapsible,
    DataTable,
    Input,
    OptionList,
    Static,
    TabbedContent,
)

from devconsole.commands.catalogue import Catalogue, load_catalogue
from devconsole.commands.runner import Run, RunStatus
from devconsole.console.project import Project
from devconsole.demo import DEMO_MANAGE_PY, demo_env
from devconsole.ui.app import DevConsoleApp
from devconsole.ui.screens import commands
from devconsole.ui.screens.commands import CommandsScreen, rank
from devconsole.ui.widgets.command_form import CommandFormView
from devconsole.ui.widgets.run_output import RunOutput

from .conftest import until

FIXTURE = Path(__file__).parent / "fixtures" / "catproject"
SIZE = (140, 44)


_CATALOGUES: dict[tuple[str, str | None], Catalogue] = {}


@pytest.fixture(autouse=True)
def catalogue_once_per_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each project's real catalogue is read by a child process once per
    session, then handed out as a fresh copy (so a refresh is still a new
    object): the view's tests do not each pay for a child on a busy machine."""

    def load(project: Project) -> Catalogue:
        key = (str(project.manage_py), project.settings)
        if key not in _CATALOGUES:
            _CATALOGUES[key] = load_catalogue(project)
        return dataclasses.replace(_CATALOGUES[key])

    monkeypatch.setattr(commands, "load_catalogue", load)


@pytest.fixture(autouse=True)
def _private_demo_db(demo_db: Path) -> None:
    """The demo's database is this test session's own, never the user's."""


def demo_app() -> DevConsoleApp:
    return DevConsoleApp(project=Project(DEMO_MANAGE_PY, python=sys.executable, env=tuple(demo_env().items())))


async def open_commands(pilot: Pilot[Any]) -> CommandsScreen:
    await pilot.press("c")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, CommandsScreen)
    await until(pilot, lambda: screen.catalogue is not None)
    await pilot.pause()
    return screen


def output_lines(screen: CommandsScreen) -> list[str]:
    return [strip.text for strip in screen.query_one("#run-output", RunOutput).lines]


def highlighted_prompt(palette: CommandPalette) -> str:
    """The text of the command palette's highlighted hit ("" while there is none)."""
    hits = palette.query_one(OptionList)
    if hits.highlighted is None or not hits.option_count:
        return ""
    return str(hits.get_option_at_index(hits.highlighted).prompt)


def active_tab(screen: CommandsScreen) -> str:
    return screen.query_one("#cmd-tabs", TabbedContent).active


def shows_all_of(screen: CommandsScreen, run: Run) -> bool:
    """The view shows all of ``run``: every line it printed, in the output
    pane, and its final status (the tick pulls them in after the run ends)."""
    runner = screen.runner
    assert runner is not None
    return (
        not run.running
        and not runner.lines_since(run, screen._shown_seq)
        and len(output_lines(screen)) >= len(run.lines)
        and run.status_line() in str(screen.query_one("#run-status", Static).render())
    )


async def finished(pilot: Pilot[Any], screen: CommandsScreen) -> None:
    run = screen._selected_run
    assert run is not None
    await until(pilot, lambda: not run.running)
    await until(pilot, lambda: shows_all_of(screen, run))


def test_rank_is_fuzzy_with_exact_and_prefix_matches_first() -> None:
    names = ["changepassword", "check", "collectstatic", "makemigrations", "migrate", "showmigrations", "sqlmigrate"]
    assert rank("check", names)[0] == "check"
    assert rank("mig", names) == ["migrate", "sqlmigrate", "makemigrations", "showmigrations"]
    assert rank("mkmig", names)[0] == "makemigrations"
    assert rank("colst", names)[0] == "collectstatic"
    assert rank("zzz", names) == []
    assert rank("  ", names) == names


def test_rank_puts_the_exact_name_before_longer_names_that_score_higher() -> None:
    """django-extensions adds runserver look-alikes: Textual's fuzzy score of
    ``runprofileserver`` for ``runserver`` (~18) is higher than any fixed
    score for an exact match, so the tiers must be compared first."""
    names = ["runprofileserver", "runserver", "runserver_plus", "showmigrations", "shell_plus", "show_urls"]
    assert rank("runserver", names) == ["runserver", "runserver_plus", "runprofileserver"]
    assert rank("RunServer ", names)[0] == "runserver"
    assert rank("showm", names) == ["showmigrations"]
    assert rank("sh", names)[:3] == ["show_urls", "shell_plus", "showmigrations"]  # prefixes, shortest first
    assert set(rank("rps", names)) == {"runprofileserver", "runserver_plus"}  # the fuzzy rest is still found


RECORDED = Path(__file__).parent / "fixtures" / "demo_catalogue.json"


def with_django_extensions(catalogue: Catalogue) -> Catalogue:
    """The demo's catalogue plus django-extensions' runserver look-alikes."""
    runserver = catalogue.get("runserver")
    assert runserver is not None
    extra = [
        dataclasses.replace(
            runserver,
            name=name,
            app="django_extensions",
            class_path=f"django_extensions.management.commands.{name}.Command",
            mro=(f"django_extensions.management.commands.{name}.Command", "django.core.management.base.BaseCommand"),
            shadows=(),
        )
        for name in ("runprofileserver", "runserver_plus")
    ]
    commands_ = tuple(sorted((*catalogue.commands, *extra), key=lambda c: c.name))
    return dataclasses.replace(
        catalogue, commands=commands_, installed_apps=(*catalogue.installed_apps, "django_extensions")
    )


def listed(screen: CommandsScreen) -> list[str]:
    option_list = screen.query_one("#cmd-list", OptionList)
    return [str(option_list.get_option_at_index(i).id) for i in range(option_list.option_count)]


async def test_filter_ranks_the_exact_name_first_and_enter_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: with django-extensions, ``runserver`` + Enter opened
    ``runprofileserver``'s form instead of the console's own server."""
    catalogue = with_django_extensions(Catalogue.from_json(json.loads(RECORDED.read_text())))
    monkeypatch.setattr(commands, "load_catalogue", lambda project: catalogue)
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"showm")
        await until(pilot, lambda: screen._listed_query == "showm")
        assert listed(screen)[0] == "showmigrations" and screen.current == "showmigrations"
        await pilot.press("ctrl+u", *"runserver")
        await until(pilot, lambda: screen._listed_query == "runserver")
        assert listed(screen) == ["runserver", "runserver_plus", "runprofileserver"]
        assert screen.current == "runserver"
        assert "django.contrib.staticfiles.management.commands.runserver.Command" in str(
            screen.query_one("#cmd-help", Static).render()
        )
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "dashboard")
        assert screen._form_command is None
        assert any("console's own server" in str(n.message) for n in app._notifications)


async def test_a_catalogue_reload_keeps_the_form_being_filled_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cursor moved off the best match and Enter opened that form: a new
    server generation (a fresh catalogue, the same filter) keeps it open."""
    recorded = Catalogue.from_json(json.loads(RECORDED.read_text()))
    monkeypatch.setattr(commands, "load_catalogue", lambda project: dataclasses.replace(recorded))
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"mig")
        await until(pilot, lambda: screen._listed_query == "mig")
        assert listed(screen)[:3] == ["migrate", "sqlmigrate", "makemigrations"]
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: screen._form_view is not None)
        assert screen.current == "makemigrations" and active_tab(screen) == "tab-form"
        screen.query_one(CommandFormView).set_value("name", "add_tags")
        first = screen.catalogue
        app.state.ingest({"type": "hello", "generation": app.state.generation + 1, "pid": 1})
        await until(pilot, lambda: screen.catalogue is not first)
        await pilot.pause()
        assert screen.current == "makemigrations" and active_tab(screen) == "tab-form"
        assert screen._form_view is not None and screen._form_view.values()["name"] == "add_tags"


async def test_ctrl_r_runs_the_best_match_of_the_filter_not_the_last_form() -> None:
    """Issue 10: after running ``check``, filtering to ``showmigrations`` and
    pressing Ctrl+R ran ``check`` again. The current command is the one the
    Help tab shows, the Form tab holds and Ctrl+R runs."""
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"check", "enter")
        await until(pilot, lambda: screen._form_view is not None)
        await pilot.press("ctrl+r")
        await finished(pilot, screen)
        assert any("System check identified no issues" in line for line in output_lines(screen))
        await pilot.press("slash", "ctrl+u", *"showmigrations")
        await until(pilot, lambda: listed(screen) == ["showmigrations"])
        # The check form is put away: the Form tab cannot show one command while Ctrl+R runs another.
        assert screen.current == "showmigrations" and screen._form_command is None
        await pilot.press("ctrl+r")
        await until(pilot, lambda: len(screen.runner.history()) == 2)  # type: ignore[union-attr]
        await finished(pilot, screen)
        first, second = screen.runner.history()  # type: ignore[union-attr]
        assert first.name == "check" and second.name == "showmigrations" and second.status == RunStatus.SUCCEEDED
        assert "manage.py showmigrations" in second.command_line
        assert any("[X] 0001_initial" in line for line in output_lines(screen))
        table = screen.query_one("#history", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        assert "manage.py showmigrations" in str(table.get_row_at(1)[3])
        # Ctrl+R built its form: F3 shows showmigrations', and Ctrl+R again runs it again.
        assert screen._form_command is not None and screen._form_command.name == "showmigrations"
        await pilot.press("f3")
        await pilot.pause()
        assert "manage.py showmigrations" in str(screen.query_one("#form-cmdline", Static).render())
        await pilot.press("ctrl+r")
        await until(pilot, lambda: len(screen.runner.history()) == 3)  # type: ignore[union-attr]
        await finished(pilot, screen)
        assert screen.runner.history()[-1].name == "showmigrations"  # type: ignore[union-attr]


async def test_ctrl_r_typed_in_a_burst_runs_what_was_typed_before_it() -> None:
    """``/showm`` and Ctrl+R arriving together: Ctrl+R acts after the filter
    has the keys typed before it, never on the list they replaced."""
    from textual import events

    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"check", "enter")
        await until(pilot, lambda: screen._form_view is not None)
        await pilot.press("ctrl+r")
        await finished(pilot, screen)
        keys = [("slash", "/"), *((c, c) for c in "showm"), ("ctrl+r", None)]
        for key, char in keys:
            app.post_message(events.Key(key, char))
        await until(pilot, lambda: len(screen.runner.history()) == 2)  # type: ignore[union-attr]
        await finished(pilot, screen)
        assert screen.query_one("#cmd-filter", Input).value == "showm"
        assert [run.name for run in screen.runner.history()] == ["check", "showmigrations"]  # type: ignore[union-attr]


async def test_ctrl_r_from_the_filter_shows_a_form_that_needs_values() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"demo_r", "ctrl+r")
        await until(pilot, lambda: active_tab(screen) == "tab-form")
        assert screen._selected_run is None and screen.runner.history() == []  # type: ignore[union-attr]
        error = screen.query_one("#field-0-error", Static)
        await until(pilot, lambda: error.display and "a value is required" in str(error.render()))
        await until(pilot, lambda: app.focused is not None and app.focused.id == "field-0")


async def test_keyboard_only_check_run() -> None:
    """The done-when walk: c, /, check, Enter, Ctrl+R."""
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"check", "enter")
        await until(pilot, lambda: isinstance(app.focused, Input) and app.focused.id != "cmd-filter")
        assert active_tab(screen) == "tab-form"
        cmdline = str(screen.query_one("#form-cmdline", Static).render())
        assert "manage.py check --force-color" in cmdline
        await pilot.press("ctrl+r")
        await finished(pilot, screen)
        assert active_tab(screen) == "tab-output"
        assert any("System check identified no issues" in line for line in output_lines(screen))
        status = str(screen.query_one("#run-status", Static).render())
        assert "succeeded" in status and "manage.py check" in status
        assert app.running_commands() == 0
        # The history survives switching views.
        await pilot.press("escape", "d")
        await pilot.pause()
        assert app.current_mode == "dashboard"
        await pilot.press("c")
        await until(pilot, lambda: app.current_mode == "commands")
        assert app.screen is screen
        table = screen.query_one("#history", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[0] == "1" and "succeeded" in str(row[1]) and "manage.py check" in str(row[3])
        assert any("System check identified no issues" in line for line in output_lines(screen))


async def test_demo_report_form_with_a_choice_and_a_flag() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"demo_r", "enter")
        await until(
            pilot, lambda: screen._form_view is not None and app.focused is not None and app.focused.id == "field-0"
        )
        # Run before filling the required positional: the error shows at the field.
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert screen._selected_run is None
        error = screen.query_one("#field-0-error", Static)
        assert "a value is required" in str(error.render()) and error.display
        # section, then --format (select: open, down twice to json), then the flag.
        await pilot.press(*"posts", "tab", "enter", "down", "down", "enter", "tab", "space")
        await pilot.pause()
        form = screen.query_one(CommandFormView)
        assert form.values()["format"] == "json" and form.values()["include_archived"] is True
        # Django's common options are folded away, built when opened.
        assert form.values()["verbosity"] == "" and not form.query("#field-11")
        form.query_one("#form-advanced", Collapsible).collapsed = False
        await until(pilot, lambda: form.query("#field-11"))
        assert form.form.fields[11].dest == "skip_checks"
        form.set_value("skip_checks", True)
        await pilot.pause()
        cmdline = str(screen.query_one("#form-cmdline", Static).render())
        assert "manage.py demo_report posts --format json --include-archived --skip-checks --force-color" in cmdline
        await pilot.press("ctrl+r")
        await finished(pilot, screen)
        run = screen._selected_run
        assert run is not None and run.status == RunStatus.SUCCEEDED
        text = "\n".join(output_lines(screen))
        assert '"section": "posts"' in text and '"format": "json"' in text and '"include_archived": true' in text
        assert "posts shown" in text  # the summary, coloured, on stderr
        assert not error.display


async def test_ctrl_c_interrupts_the_run_not_the_console() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        await pilot.press("slash", *"shell", "enter")
        await until(pilot, lambda: screen._form_view is not None)
        await pilot.pause()
        form = screen.query_one(CommandFormView)
        assert form.in_terminal  # shell talks to the user: in the terminal by default
        form.query_one("#form-in-terminal").value = False  # type: ignore[attr-defined]
        form.set_value("command", "import time\nprint('started', flush=True)\ntime.sleep(60)")
        await pilot.pause()
        await pilot.press("ctrl+r")
        run = screen._selected_run
        assert run is not None and not run.in_terminal
        await until(pilot, lambda: "started" in run.output_text())
        assert app.running_commands() == 1
        await pilot.press("ctrl+c")
        await finished(pilot, screen)
        assert run.status == RunStatus.INTERRUPTED
        assert app.is_running and isinstance(app.screen, CommandsScreen)
        assert "interrupted" in str(screen.query_one("#run-status", Static).render())
        # Nothing left to interrupt: Ctrl+C only says so.
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running
        # F5 runs it again.
        await pilot.press("f5")
        again = screen._selected_run
        assert again is not None and again is not run and again.args == run.args
        await until(pilot, lambda: "started" in again.output_text())
        await pilot.press("ctrl+c")
        await finished(pilot, screen)
        # "Run in terminal" (Ctrl+T): the headless test driver cannot hand the
        # terminal over, so the run happens in the output pane, with a warning.
        # The real suspension is covered by test_runner's in-terminal tests.
        form.set_value("command", "print(6 * 7)")
        await pilot.press("ctrl+t")
        await finished(pilot, screen)
        assert "42" in output_lines(screen)
        assert any("cannot hand over" in str(n.message) for n in app._notifications)


async def test_runserver_entry_shows_the_dashboard() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        option_list = screen.query_one("#cmd-list", OptionList)
        ids = [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]
        headers = [i for i in ids if i and i.startswith("app:")]
        assert headers[-1] == "app:django.core"  # core last
        assert ids.index("app:shop") < ids.index("demo_report") < ids.index("app:django.core")
        assert len([i for i in ids if i and not i.startswith("app:")]) == len(screen.catalogue or ())
        # The palette finds commands too.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"demo_rep")
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        # The search runs in a worker and shows its hits in batches: Enter picks the highlighted one.
        await until(pilot, lambda: "demo_report" in highlighted_prompt(palette))
        await pilot.press("enter")
        await until(pilot, lambda: screen._form_command is not None)
        assert screen._form_command is not None and screen._form_command.name == "demo_report"
        assert active_tab(screen) == "tab-form"
        await pilot.press("escape", "slash", *"runserver")
        await pilot.pause()
        help_text = str(screen.query_one("#cmd-help", Static).render())
        assert "django.contrib.staticfiles.management.commands.runserver.Command" in help_text
        assert "django.core.management.commands.runserver.Command" in help_text  # in the MRO
        assert "shadows   django.core" in help_text
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "dashboard"
        assert any("console's own server" in str(n.message) for n in app._notifications)


async def test_broken_command_and_catalogue_refresh_after_a_reload() -> None:
    app = DevConsoleApp(project=Project(FIXTURE / "manage.py", python=sys.executable))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        first = screen.catalogue
        assert first is not None and first.get("broken") is not None
        summary = str(screen.query_one("#cmd-summary", Static).render())
        assert "2 failed to load" in summary
        await pilot.press("slash", *"broken", "enter")
        await pilot.pause()
        assert active_tab(screen) == "tab-help"
        help_text = str(screen.query_one("#cmd-help", Static).render())
        assert "ModuleNotFoundError: No module named 'alpha_missing_module'" in help_text
        # The others still work.
        await pilot.press("ctrl+u", *"ping", "enter", "ctrl+r")
        await finished(pilot, screen)
        assert output_lines(screen)[-1] == "pong"
        # Hostile output: colours are kept, other escapes and markup shown as text.
        hostile = "print('\\x1b]0;pwned\\x07 \\x1b[31mred\\x1b[0m [@click=app.quit]q[/] [bold]b')"
        screen.runner.start("shell", ["-v", "0", "-c", hostile])  # type: ignore[union-attr]
        screen.select_run(screen.runner.history()[-1])  # type: ignore[union-attr]
        await finished(pilot, screen)
        assert output_lines(screen)[-1] == "\\x1b]0;pwned\\x07 red [@click=app.quit]q[/] [bold]b"
        log = screen.query_one("#run-output", RunOutput)
        assert any(segment.style and segment.style.color and segment.text == "red" for segment in log.lines[-1])
        assert app.is_running and "\x1b]" not in app.export_screenshot()
        # A new server generation says hello: the catalogue is read again.
        app.state.ingest({"type": "hello", "generation": app.state.generation + 1, "pid": 1})
        await until(pilot, lambda: screen.catalogue is not first)
        assert screen.catalogue == first


async def test_commands_view_without_a_project() -> None:
    from devconsole.model.recording import load_recording

    recording = Path(__file__).parent / "recordings" / "demo.jsonl"
    app = DevConsoleApp(recording=load_recording(recording))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CommandsScreen)
        assert "No project" in str(screen.query_one("#cmd-summary", Static).render())
        await pilot.press("ctrl+r", "ctrl+c")
        await pilot.pause()
        assert app.is_running


async def test_filter_takes_keys_typed_in_one_burst() -> None:
    """``/check`` and Enter arriving together (a fast typist, a paste, tmux)
    all reach the filter: none is lost to the list or taken as an app key."""
    from textual import events

    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_commands(pilot)
        for char in "/check":
            app.post_message(events.Key("slash" if char == "/" else char, char))
        # A key lost to the list or taken as an app key never reaches the box: this times out.
        await until(pilot, lambda: screen.query_one("#cmd-filter", Input).value == "check", timeout=10)
        await pilot.pause()  # nothing more arrives: the box keeps exactly the keys typed
        assert screen.query_one("#cmd-filter", Input).value == "check"
        app.post_message(events.Key("enter", "\r"))
        await until(pilot, lambda: active_tab(screen) == "tab-form")
        assert screen._form_command is not None and screen._form_command.name == "check"
