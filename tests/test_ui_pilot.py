"""The console's keys, filter, detail view, help and palette, driven by a
Pilot over the recorded demo session (tests/recordings/demo.jsonl)."""

from __future__ import annotations

import gc
import html
import re
import threading
from pathlib import Path

import pytest
from textual.color import Color
from textual.command import CommandPalette
from textual.geometry import Region
from textual.widgets import Input, OptionList

from devconsole.model.recording import load_recording
from devconsole.model.state import ServerState
from devconsole.ui.app import SERVED_HOLD, DevConsoleApp
from devconsole.ui.panels.reloads import ReloadsTable
from devconsole.ui.panels.requestlist import RequestList
from devconsole.ui.panels.requests import MAX_ROWS, RequestsPanel, row_lag_hook
from devconsole.ui.panels.sockets import SocketsTable
from devconsole.ui.screens.anatomy import AnatomyScreen
from devconsole.ui.screens.dashboard import DashboardScreen
from devconsole.ui.screens.help import HelpScreen, QuitScreen
from devconsole.ui.screens.logview import LogPane, LogScreen
from devconsole.ui.screens.request_detail import RequestDetailScreen, RequestDetailView
from devconsole.ui.widgets.theming import component_style

from .conftest import request_event, until

RECORDING = Path(__file__).parent / "recordings" / "demo.jsonl"
SIZE = (120, 36)


def replay_app() -> DevConsoleApp:
    return DevConsoleApp(recording=load_recording(RECORDING))


async def settle(pilot, app: DevConsoleApp) -> None:
    await pilot.pause()
    app.refresh_views()
    await pilot.pause()
    await pilot.pause()  # what the views scheduled after that refresh (following the tail)


def screen_text(app: DevConsoleApp) -> str:
    """The visible characters of the screen, from the exported SVG."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def table_paths(app: DevConsoleApp) -> list[str]:
    table = app.screen.query_one(RequestList)
    return [table.row_at(i).target for i in range(table.row_count)]


async def test_dashboard_shows_the_four_panels_from_the_recording() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, DashboardScreen)
        text = screen_text(app)
        for title in ("Requests", "Sockets", "Select loop", "Autoreload"):
            assert title in text
        requests = [e for e in app.recording.events if e["type"] == "request"]
        assert len(table_paths(app)) == len(requests)
        assert f"{len(requests)} total" in str(app.screen.query_one("#requests").border_subtitle)
        sockets = app.screen.query_one(SocketsTable)
        states = {sockets.row_texts(i)[1] for i in range(sockets.row_count)}
        assert {"listening", "reading", "handling", "keep-alive idle"} <= states
        # The request panel follows the tail.
        table = app.screen.query_one(RequestList)
        assert table.cursor_row == table.row_count - 1


async def test_view_keys_switch_views_and_back() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("l")
        await settle(pilot, app)
        assert isinstance(app.screen, LogScreen)
        assert any('"GET /boom/ HTTP/1.1" 500' in line for line in app.screen.query_one(LogPane).lines)
        await pilot.press("a")
        await settle(pilot, app)
        assert isinstance(app.screen, AnatomyScreen)
        text = screen_text(app)
        assert 'fetch_command("runserver")' in text
        assert "django.contrib.staticfiles" in text
        await pilot.press("d")
        await settle(pilot, app)
        assert isinstance(app.screen, DashboardScreen)


async def test_filter_by_status_class_and_path_then_clear() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        everything = table_paths(app)
        await pilot.press("slash")
        box = app.screen.query_one("#requests-filter", Input)
        assert box.has_focus
        await pilot.press(*"4xx", "enter")
        await settle(pilot, app)
        statuses = [row.status for row in app.state.requests]
        shown = table_paths(app)
        assert len(shown) == sum(1 for s in statuses if s and 400 <= s < 500) > 0
        assert "/nope/" in shown and "/ping/" not in shown
        assert "filter: 4xx" in str(app.screen.query_one("#requests").border_subtitle)
        box.value = "api"
        await settle(pilot, app)
        assert set(table_paths(app)) == {"/api/products/"}
        app.screen.query_one(RequestList).focus()
        await pilot.press("escape")
        await settle(pilot, app)
        assert table_paths(app) == everything


async def test_filter_text_that_looks_like_markup_is_shown_literally() -> None:
    """The filter term is echoed under the panel's border: as text, never markup."""
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", *"[/bar]", "enter")
        await settle(pilot, app)
        assert app.is_running
        assert "/[/bar]" in table_paths(app)
        assert "filter: [/bar]" in screen_text(app)


async def test_enter_opens_the_request_detail() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        box = app.screen.query_one("#requests-filter", Input)
        await pilot.press("slash")
        await pilot.press(*"esc", "enter")
        await settle(pilot, app)
        assert table_paths(app) == ["/esc\\x1b[31mred"]
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, RequestDetailScreen)
        detail = app.screen.query_one(RequestDetailView)
        text = str(detail.render())
        assert "GET /esc\\x1b[31mred HTTP/1.0" in text
        assert "X-Evil:" in text and "\\x1b]0;pwned\\x07" in text
        assert "404" in text and "Thread-" in text and "connection" in text
        assert "\x1b" not in app.export_screenshot()  # no raw ESC from the request
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert box is app.screen.query_one("#requests-filter", Input)


async def test_help_lists_every_view_key() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.query_one("#help-keys")
        rows = [tuple(cell.plain for cell in keys.get_row_at(i)) for i in range(keys.row_count)]
        described = {row[1] for row in rows}
        assert {"Dashboard", "Log", "Anatomy", "Restart", "Help", "Quit", "Filter"} <= described
        assert ("d", "Dashboard") in {(row[0], row[1]) for row in rows}
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


async def test_palette_offers_views_and_actions() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in (
            "View: Dashboard",
            "View: Log",
            "View: Anatomy",
            "Requests: filter",
            "Log: search",
            "Restart the server",
            "Keys",
            "Quit devconsole",
        ):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"View: Anat")
        palette = app.screen
        await until(
            pilot,
            lambda: (
                "View: Anatomy" in str(palette.query_one(OptionList).get_option_at_index(0).prompt)
                if palette.query_one(OptionList).option_count
                else False
            ),
        )
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AnatomyScreen))


async def test_restart_in_a_replay_says_why_not() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        assert app.is_running
        assert any("no server to restart" in str(n.message) for n in app._notifications)


class BusyApp(DevConsoleApp):
    """A console with one management command still running."""

    def running_commands(self) -> int:
        return 1


async def test_quit_asks_while_a_command_runs() -> None:
    app = BusyApp(recording=load_recording(RECORDING))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, DashboardScreen)
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


async def test_q_quits_at_once_when_nothing_runs() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("q")
        # No question first: the app exits at once.
        await until(pilot, lambda: app.return_code is not None)
        assert not isinstance(app.screen, QuitScreen)
    assert app.return_code == 0


async def test_requests_table_is_capped_while_totals_stay_exact() -> None:
    """5,000 requests in batches: the table keeps MAX_ROWS, the title counts all."""
    state = ServerState(max_requests=MAX_ROWS)
    app = DevConsoleApp(state=state)
    lags: list[float] = []
    async with app.run_test(size=SIZE, message_hook=row_lag_hook(lags)) as pilot:
        await pilot.pause()
        sent = 0
        for batch in (300, 1500, 700, 2500):
            for n in range(sent + 1, sent + batch + 1):
                state.ingest(
                    {
                        "type": "request",
                        "id": f"1.{n}",
                        "conn": 1,
                        "method": "GET",
                        "path": f"/r/{n}",
                        "status": 200,
                        "duration_ms": 1.0,
                        "bytes_out": 4,
                        "thread": "Thread-1",
                        "ts": 1000.0 + n,
                        "headers": [],
                    }
                )
            sent += batch
            state.ingest({"type": "stats", "requests": sent, "connections": 1, "dropped": 0, "status": {"2xx": sent}})
            app.refresh_views()
            await pilot.pause()
        paths = table_paths(app)
        assert len(paths) == MAX_ROWS
        assert paths[0] == f"/r/{sent - MAX_ROWS + 1}" and paths[-1] == f"/r/{sent}"
        assert f"{sent} total" in str(app.screen.query_one("#requests").border_subtitle)
        # The state keeps MAX_ROWS too: of the 2,500-request batch only the
        # newest 2,000 were still there to show, and only shown rows have a lag.
        assert len(lags) == 300 + 1500 + 700 + MAX_ROWS


async def test_a_request_from_another_thread_wakes_the_view_before_its_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows follow what arrives, not the tick: with the tick an hour away,
    a request ingested by a reader thread still reaches the table."""
    import devconsole.ui.app as app_module

    monkeypatch.setattr(app_module, "TICK", 3600.0)
    state = ServerState()
    app = DevConsoleApp(state=state)
    lags: list[float] = []
    async with app.run_test(size=SIZE, message_hook=row_lag_hook(lags)) as pilot:
        await pilot.pause()
        reader = threading.Thread(target=state.ingest, args=(request_event("/woken/"),))
        reader.start()
        reader.join()
        await until(pilot, lambda: "/woken/" in table_paths(app), timeout=10)
        assert len(lags) == 1


async def test_a_restart_holds_the_rows_until_its_server_answered() -> None:
    """While a restart is under way the view draws nothing new (on two cores
    a frame is taken from the new server's first answer); what came
    meanwhile is drawn once the hold ends, with no further event, and a
    refresh asked for (a key, a view switch) is never held."""
    state = ServerState()
    app = DevConsoleApp(state=state)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.hold_refresh(3600)  # a restart began
        reader = threading.Thread(target=state.ingest, args=(request_event("/held/"),))
        reader.start()
        reader.join()
        await pilot.pause()
        app._tick()  # the timer's tick, as it comes
        await pilot.pause()
        assert "/held/" not in table_paths(app)
        app.hold_refresh(SERVED_HOLD)  # its server answered
        await until(pilot, lambda: "/held/" in table_paths(app), timeout=10)
        app.hold_refresh(3600)
        state.ingest(request_event("/asked/"))
        app.refresh_views()
        assert "/asked/" in table_paths(app)


async def test_theme_switch_recolours_rows_already_shown() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.screen.query_one(RequestList)
        before = table.style("requests--5xx")
        assert before == table.get_component_rich_style("requests--5xx", partial=True)
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        # The new theme's CSS applied (Textual does it on its next message), then the views told.
        await until(pilot, lambda: table.get_component_rich_style("requests--5xx", partial=True) != before)
        await settle(pilot, app)
        after = table.style("requests--5xx")
        assert after == table.get_component_rich_style("requests--5xx", partial=True)
        assert after != before
        # The /boom/ row, as rendered now, carries the new theme's 5xx colour.
        row = table_paths(app).index("/boom/")
        table.move_cursor(row)
        await pilot.pause()
        line = table.render_line(row - int(table.scroll_offset.y) + 1)
        status = [segment for segment in line if segment.text.strip() == "500"]
        assert status and status[0].style.color == after.color


async def test_status_line_puts_a_broken_urlconf_first() -> None:
    """A reload that broke urls.py keeps serving (an error page) and says why, up front."""
    recording = load_recording(RECORDING)
    hello = next(event for event in recording.events if event["type"] == "hello")
    app = DevConsoleApp(recording=recording)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.state.ingest({**hello, "generation": 2, "urlconf_error": "SyntaxError: invalid syntax (views.py, line 66)"})
        await settle(pilot, app)
        line = str(app.screen.query_one("#status").render())
        assert "URLconf: SyntaxError: invalid syntax (views.py, line 66)" in line
        assert line.index("URLconf") < line.index("generation 2")
        await pilot.press("a")
        await settle(pilot, app)
        assert "URLconf: SyntaxError" in screen_text(app)


async def test_mouse_selects_then_opens_a_request() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.screen.query_one(RequestList)
        top = int(table.scroll_offset.y)
        # Line 0 is the header; line 2 is the second row on screen.
        await pilot.click(RequestList, offset=(30, 2))
        await pilot.pause()
        assert table.cursor_row == top + 1
        assert isinstance(app.screen, DashboardScreen)
        await pilot.click(RequestList, offset=(30, 2))
        await pilot.pause()
        assert isinstance(app.screen, RequestDetailScreen)
        assert app.screen.row.seq == table.row_at(top + 1).seq


async def test_muted_text_is_drawn_muted() -> None:
    """``$text-muted`` and ``$text-disabled`` are automatic, translucent
    colours: drawn between the background and the text, never as white."""
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for theme in ("textual-dark", "textual-light"):
            app.theme = theme
            await settle(pilot, app)
            table = app.screen.query_one(RequestList)
            background = table.background_colors[1].brightness
            text = Color.from_rich_color(table.rich_style.color).brightness
            muted = Color.from_rich_color(component_style(table, "requests--dim").color).brightness
            closed = Color.from_rich_color(
                component_style(app.screen.query_one(SocketsTable), "sockets--closed").color
            ).brightness
            order = sorted([background, closed, muted, text])
            assert order in ([background, closed, muted, text], [text, muted, closed, background]), (
                theme,
                background,
                closed,
                muted,
                text,
            )
            assert len({round(v, 3) for v in order}) == 4, (theme, order)


async def test_the_sockets_cursor_stays_on_its_connection() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.screen.query_one(SocketsTable)
        table.focus()
        await pilot.press("down")
        assert table.cursor_row == 1
        key = table.keys()[1]
        cells = (("x", ""),) * len(table.COLUMNS)
        # A new connection appears above it: the cursor follows its row.
        table.show_rows([("new", cells), *[(k, table.row_cells(i)) for i, k in enumerate(table.keys())]])
        assert table.cursor_row == 2 and table.keys()[2] == key
        # Its row goes: the cursor stays at the same place, on the next row.
        table.show_rows([(k, table.row_cells(i)) for i, k in enumerate(table.keys()) if k != key])
        assert table.cursor_row == 2 and key not in table.keys()


async def test_a_filter_then_new_requests_show_each_request_once() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        panel = app.screen.query_one(RequestsPanel)
        before = [path for path in table_paths(app) if "ping" in path]
        assert before
        # A request arrives, and the filter changes before the next tick applies it.
        app.state.ingest(
            {
                "type": "request",
                "generation": app.state.generation,
                "method": "GET",
                "path": "/ping/",
                "version": "HTTP/1.1",
                "status": 200,
                "bytes_out": 4,
                "duration_ms": 1.0,
                "ts": 1.0,
                "id": "x.1",
            }
        )
        panel.apply_filter("ping")
        await settle(pilot, app)
        assert table_paths(app) == [*before, "/ping/"]


async def test_the_cursor_row_takes_the_focused_colours() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        sockets = app.screen.query_one(SocketsTable)
        app.screen.query_one(RequestList).focus()
        await pilot.pause()
        unfocused = sockets.style(sockets._cursor_component())
        sockets.focus()
        await pilot.pause()
        assert sockets.style(sockets._cursor_component()) != unfocused
        # Both differ from the plain rows: the cursor shows either way.
        assert unfocused.bgcolor is not None


async def test_the_status_line_shows_the_newest_error_after_fifty() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        generation = app.state.generation
        for n in range(60):
            app.state.ingest(
                {"type": "error", "generation": generation, "phase": "URLconf import", "message": f"Err{n}"}
            )
        await settle(pilot, app)
        app.state.ingest({"type": "error", "generation": generation, "phase": "URLconf import", "message": "NEWEST"})
        await settle(pilot, app)
        assert "NEWEST" in str(app.screen.query_one("#status").render())


async def test_the_loop_panel_says_an_asgi_server_has_no_select_loop() -> None:
    """Daphne serves with Twisted: the panel says so in a line, not six rows of zeros."""
    recording = load_recording(RECORDING)
    hello = next(event for event in recording.events if event["type"] == "hello")
    app = DevConsoleApp(recording=recording)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert "blocked in select" in screen_text(app)
        app.state.ingest({**hello, "generation": 2, "server_kind": "asgi"})
        await settle(pilot, app)
        text = screen_text(app)
        assert "no select" in text and "blocked in select" not in text
        assert "accepts/s" in text


async def test_credentials_are_masked_in_the_row_the_detail_and_the_log() -> None:
    """Cookies, Authorization and secret-named query fields never reach the screen in clear."""
    recording = load_recording(RECORDING)
    request = next(event for event in recording.events if event["type"] == "request")
    app = DevConsoleApp(recording=recording)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.state.ingest(
            {
                **request,
                "id": "secret-1",
                "path": "/login/",
                "query": "next=/&api_token=hunter2&q=kept",
                "headers": [
                    ["Cookie", "sessionid=hunter2"],
                    ["Authorization", "Basic aHVudGVyMg=="],
                    ["Accept", "*/*"],
                ],
            }
        )
        app.state.ingest({"type": "log", "stream": "stderr", "text": "GET /x?password=hunter2 from a project logger"})
        await settle(pilot, app)
        assert table_paths(app)[-1] == "/login/?next=/&api_token=********&q=kept"
        await pilot.press("end", "enter")
        await settle(pilot, app)
        assert isinstance(app.screen, RequestDetailScreen)
        text = str(app.screen.query_one(RequestDetailView).render())
        assert "********" in text and "*/*" in text and "kept" in text
        assert "hunter2" not in text and "aHVudGVyMg" not in text
        log = "\n".join(line.text for line in app.state.log)
        assert "password=********" in log and "hunter2" not in log


async def test_a_page_following_the_code_shows_in_sockets_and_the_status_line() -> None:
    app = replay_app()
    async with app.run_test(size=(160, 48)) as pilot:  # wide enough for the page beside the peer
        await settle(pilot, app)
        generation = app.state.generation
        assert "live reload" not in screen_text(app)  # a recording from before: nothing said
        app.state.ingest({"type": "livereload", "enabled": True, "debug": True, "pages": 1, "generation": generation})
        app.state.ingest(
            {
                "type": "conn_open",
                "id": 999,
                "peer": "127.0.0.1:5999",
                "state": "livereload",
                "thread": "Thread-99",
                "bytes_in": 120,
                "bytes_out": 249,
                "requests": 0,
                "ts": app.state.clock(),
                "method": "GET",
                "path": "/__devconsole__/events",
                "page": "/shop/",
                "generation": generation,
            }
        )
        await settle(pilot, app)
        text = screen_text(app)
        assert "live reload · 1 page" in text
        assert "127.0.0.1:5999 · live reload page /shop/" in text
        assert f"{generation}.999" not in [row.key for row in app.state.in_flight()]  # not a request in flight
        # No key to turn it in a replay: nothing serves.
        assert not app.check_action("toggle_browser_reload", ())


async def test_a_console_that_is_its_process_freezes_what_it_made_by_its_first_frame() -> None:
    """``own_process`` (the command line, a benchmark): the collector no longer
    walks the objects of the first frame; an app among many (tests) leaves them."""
    shared = replay_app()
    async with shared.run_test(size=(120, 36)) as pilot:
        await settle(pilot, shared)
        assert gc.get_freeze_count() == 0
    app = DevConsoleApp(recording=load_recording(RECORDING), own_process=True)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: gc.get_freeze_count() > 0)
            screen = app.screen
            # Frozen: the view on display is no longer among what a collection walks.
            assert not any(obj is screen for obj in gc.get_objects())
    finally:
        gc.unfreeze()


async def test_an_autoreload_row_names_the_step_that_took_most_of_the_reload() -> None:
    """A slow reload says where its time went: the step that took the most
    (a models.py edit: ``django.setup()`` in the rebuilt level 1), never a
    step of a spare's preparation done before the save."""
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.state.ingest(
            {
                "type": "reload",
                "ts": 1795240570.0,
                "files": ["/work/main/devconsole/demo/shop/models.py"],
                "decision": "restarted",
                "duration_ms": 1482.0,
                "phases": {"detect": 2.0, "stop": 30.0, "start": 1301.0, "ready": 160.0},
                "error": None,
                "new_generation": 3,
                "level": "setup",
                "steps": [
                    {"name": "change noticed", "ms": 2.0},
                    {"name": "settings import", "ms": 40.5},
                    {"name": "django.setup()", "ms": 1213.4},
                    {"name": "level 1 fork", "ms": 30.0},
                    {"name": "URLconf import", "ms": 150.0},
                ],
            }
        )
        await settle(pilot, app)
        row = app.state.reloads[-1]
        assert row.slowest is not None and row.slowest.name == "django.setup()"
        table = app.screen.query_one(ReloadsTable)
        lines = [table.render_line(y).text for y in range(table.row_count + 1)]
        assert "Error, or the slowest step" in lines[0]
        line = next(line for line in lines if "shop/models.py" in line and "restarted" in line)
        assert "1.48 s" in line and "django.setup() 1.21 s" in line
        # An error takes the place (it says more), and a template handled
        # without a restart has no step to name.
        failed = next(line for line in lines if "failed" in line)
        assert "SyntaxError" in failed and "django.setup()" not in failed
        handled = next(line for line in lines if "handled, no restart" in line)
        assert handled.rstrip().endswith("3.1 ms")


async def test_the_anatomy_of_a_promoted_spare_counts_its_start_from_the_save() -> None:
    """A generation that was a spare did its first phases before the save:
    the anatomy says so, and its total is what came after."""
    recording = load_recording(RECORDING)
    hello = next(event for event in recording.events if event["type"] == "hello")
    app = DevConsoleApp(recording=recording)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        phases = [
            {"name": "fork", "ms": 20.0},
            {"name": 'fetch_command("runserver")', "ms": 0.5},
            {"name": "WSGI handler", "ms": 8.0},
            {"name": "URLconf import", "ms": 7.0},
            {"name": "wait for the old generation", "ms": 2.0},
            {"name": "serve_forever", "ms": 1.0},
        ]
        app.state.ingest({**hello, "generation": 2, "phases": phases, "ahead": 3})
        await pilot.press("a")
        await settle(pilot, app)
        assert isinstance(app.screen, AnatomyScreen)
        lines = screen_text(app).splitlines()
        fetch = next(line for line in lines if 'fetch_command("runserver")' in line and "ManagementUtility" in line)
        assert "prepared ahead" in fetch
        urlconf = next(line for line in lines if "URLconf import" in line and "url_patterns" in line)
        assert "prepared ahead" not in urlconf
        total = next(line for line in lines if "total to first loop" in line)
        assert "10 ms" in total and "28 ms more prepared ahead" in total


async def test_a_table_line_is_as_wide_as_the_table_in_as_few_segments_as_its_styles() -> None:
    """Each line of a table fills the table exactly, whatever its cells hold
    (wide characters, text longer than its column), and cells drawn alike
    are one segment: the compositor pays per segment of every line it draws."""
    app = replay_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        app.state.ingest(request_event(path="/日本語/" + "ß" * 200, status=200))
        app.state.ingest(request_event(path="/emoji/🙂🙂🙂", status=404))
        await settle(pilot, app)
        table = app.screen.query_one(RequestList)
        width = table.scrollable_content_region.width
        for y in range(1, min(table.row_count, table.scrollable_content_region.height - 1) + 1):
            strip = table.render_line(y)
            assert strip.cell_length == width
            assert sum(segment.cell_length for segment in strip) == width
            styles = [segment.style for segment in strip]
            assert all(a != b for a, b in zip(styles, styles[1:], strict=False))  # neighbours differ
        texts = "".join(table.render_line(y).text for y in range(1, table.row_count + 1))
        assert "/日本語/" in texts and "🙂" in texts


async def test_a_panels_subtitle_follows_the_counts_and_repaints_only_its_border() -> None:
    """The Requests panel's subtitle (its totals and rate) changes on every
    refresh under load: the new text is drawn, and only the panel's bottom
    border line is marked for repainting."""
    app = replay_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        panel = app.screen.query_one(RequestsPanel)
        before = panel.border_subtitle
        generation = app.state.generation
        app.state.ingest({**request_event(path="/subtitle/", status=200), "generation": generation})
        app.state.ingest(
            {
                "type": "stats",
                "requests": app.state.total_requests + 1000,
                "connections": 1,
                "dropped": 0,
                "status": {"2xx": 1000},
                "open": 0,
                "generation": generation,
            }
        )
        app.refresh_views()
        outer = panel.outer_size
        assert panel._repaint_regions == {Region(0, outer.height - 1, outer.width, 1)}
        await settle(pilot, app)
        after = panel.border_subtitle
        assert after != before and after is not None
        total = int(after.split(" total")[0].split()[-1])
        assert f"{total} total" in screen_text(app)
