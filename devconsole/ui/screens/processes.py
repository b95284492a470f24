"""The Processes view (``p``): the side processes of ``Procfile.dev``.

A table — name, state (``running``, ``exited 3``, ``crashed (SIGKILL)``,
``restarting in 2.0 s``), pid, uptime, restarts, CPU and memory — and, below
it, the selected process's own output with its colours. Rows are keyed by
name and only the cells whose text changed are updated.

CPU and memory come from ``/proc`` (:meth:`ProcessManager.usage_all`: one
scan for every group), sampled only while this view is on display, every
:data:`USAGE_EVERY` seconds, in a worker thread started from the app's
refresh of the visible view: no timer of its own, no scan on the UI thread.
A replay has no processes to sample or control (the keys say so).

``r`` here restarts the selected *process* (the footer says so), not the
server; ``R`` restarts every process but those the user stopped with ``s``.
The view shows once the project declares processes (``p`` is hidden before).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog

from devconsole.model.state import MAX_PROCESS_LOG, LogLine, ProcessRow, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.borders import set_border_subtitle
from devconsole.ui.widgets.statusline import StatusLine
from devconsole.ui.widgets.theming import component_style

if TYPE_CHECKING:
    from devconsole.console.sideprocs import ProcessManager, Usage

#: Seconds between two CPU/memory samples while the view is shown.
USAGE_EVERY = 2.0

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Name", 16),
    ("state", "State", 22),
    ("pid", "PID", 8),
    ("uptime", "Uptime", 9),
    ("restarts", "Restarts", 8),
    ("cpu", "CPU %", 7),
    ("mem", "Mem", 9),
)

#: What the keys say in a replay (one line).
REPLAY_NOTE = "Replaying a recording: its processes cannot be started, stopped or restarted."


class ProcessTable(DataTable[Text]):
    """One row per declared side process."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"procs--running", "procs--failed", "procs--idle", "procs--starting"}


class ProcessLog(RichLog):
    """The selected process's output, colours kept (SGR only: sanitized on entry)."""


class ProcessesScreen(Screen[None]):
    """Side processes: their states and controls, and the selected one's log."""

    AUTO_FOCUS = "#procs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "r",
            "restart",
            "Restart process",
            id="procs.restart",
            tooltip="Restart the selected side process (not the server)",
        ),
        Binding("s", "stop", "Stop", id="procs.stop", tooltip="Stop the selected process (its whole group)"),
        Binding("t", "start", "Start", id="procs.start", tooltip="Start the selected process"),
        Binding(
            "R",
            "restart_all",
            "Restart all",
            id="procs.restart-all",
            tooltip="Restart every side process but the ones you stopped (s); t starts one of those",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._state: ServerState | None = None
        #: The cells shown, by row: only changed ones are updated.
        self._cells: dict[str, tuple[str, ...]] = {}
        self._usage: dict[str, Usage | None] = {}
        self._sampled = 0.0
        #: The process whose log is shown, and the last line written.
        self._log_of: str | None = None
        self._log_seq = 0
        self._note: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusLine()
        table = ProcessTable(id="procs", cursor_type="row", zebra_stripes=False)
        table.border_title = "Processes"
        for key, label, width in COLUMNS:
            table.add_column(label, width=width, key=key)
        yield table
        log = ProcessLog(id="proc-log", max_lines=MAX_PROCESS_LOG, markup=False, highlight=False, wrap=False)
        log.border_title = "Output"
        yield log
        yield Footer()

    # -- reading the state -----------------------------------------------------
    def manager(self) -> ProcessManager | None:
        session = getattr(self.app, "session", None)
        return getattr(session, "processes", None)

    def refresh_from_state(self, state: ServerState) -> None:
        self._state = state
        self.query_one(StatusLine).refresh_from_state(state)
        rows = list(state.processes.values())
        self._sample(rows)
        now = state.clock()
        table = self.query_one(ProcessTable)
        for row in rows:
            cells = self._cells_of(row, now)
            shown = self._cells.get(row.name)
            if shown is None:
                table.add_row(
                    *(self._styled(key, cell, row) for key, cell in zip(self._keys(), cells, strict=True)), key=row.name
                )
            elif shown != cells:
                for key, old, new in zip(self._keys(), shown, cells, strict=True):
                    if old != new or key == "state":
                        table.update_cell(row.name, key, self._styled(key, new, row))
            self._cells[row.name] = cells
        self._show_note(state)
        self._show_log(state)

    @staticmethod
    def _keys() -> list[str]:
        return [key for key, _, _ in COLUMNS]

    def _styled(self, key: str, cell: str, row: ProcessRow) -> Text:
        if key == "state":
            if row.failed:
                kind = "failed"
            elif row.state == "running":
                kind = "running"
            elif row.state in ("starting", "restarting"):
                kind = "starting"
            else:
                kind = "idle"
            return Text(cell, style=component_style(self.query_one(ProcessTable), f"procs--{kind}"))
        if key in ("pid", "uptime", "restarts", "cpu", "mem"):
            return Text(cell, justify="right")
        return Text(cell)

    def _cells_of(self, row: ProcessRow, now: float) -> tuple[str, ...]:
        usage = self._usage.get(row.name) if row.state == "running" else None
        running = row.state == "running" and row.started is not None
        return (
            row.name,
            row.describe(now),
            str(row.pid) if row.pid is not None and row.state in ("running", "stopping", "starting") else "–",
            fmt.age(now - row.started) if running and row.started is not None else "–",
            str(row.restarts),
            f"{usage.cpu_percent:.1f}" if usage is not None and usage.cpu_percent is not None else "–",
            fmt.size(usage.rss_bytes) if usage is not None else "–",
        )

    def _sample(self, rows: list[ProcessRow]) -> None:
        """CPU and memory of the running processes, at most every USAGE_EVERY
        seconds, read in a thread (the next refresh shows them)."""
        manager = self.manager()
        now = time.monotonic()
        if manager is None or now - self._sampled < USAGE_EVERY or not any(row.state == "running" for row in rows):
            return
        self._sampled = now

        def scan() -> None:
            self._usage = manager.usage_all()  # one assignment: the UI thread reads whole dicts

        self.run_worker(scan, thread=True, exclusive=True, group="procs-usage", exit_on_error=False)

    def _show_note(self, state: ServerState) -> None:
        if state.process_error:
            note = f"{state.process_error} — no side process runs; the server serves"
        else:
            running = sum(1 for row in state.processes.values() if row.state == "running")
            note = f"{running}/{len(state.processes)} running"
        if note != self._note:
            self._note = note
            set_border_subtitle(self.query_one(ProcessTable), note)

    def selected(self) -> str | None:
        table = self.query_one(ProcessTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # no row under the cursor yet
            return None
        return str(key.value) if key.value is not None else None

    def _show_log(self, state: ServerState) -> None:
        name = self.selected()
        log = self.query_one(ProcessLog)
        row = state.processes.get(name) if name is not None else None
        if name != self._log_of:
            self._log_of = name
            self._log_seq = 0
            log.clear()
            log.border_title = f"Output of {name}" if name else "Output"
        if row is None:
            return
        lines = [line for line in list(row.log) if line.seq > self._log_seq]
        if not lines:
            return
        self._log_seq = lines[-1].seq
        for line in lines:
            log.write(self._line(line))

    @staticmethod
    def _line(line: LogLine) -> Text:
        text = Text()
        text.append(f"{fmt.clock_time(line.ts)} {'!' if line.stream == 'stderr' else ' '} ", style="dim")
        text.append_text(Text.from_ansi(line.text))
        return text

    @on(DataTable.RowHighlighted, "#procs")
    def _row_changed(self) -> None:
        if self._state is not None:
            self._show_log(self._state)

    # -- controls --------------------------------------------------------------
    def _control(self, verb: str) -> None:
        manager = self.manager()
        if manager is None:
            self.notify(REPLAY_NOTE if getattr(self.app, "recording", None) is not None else "No side processes run.")
            return
        if verb == "restart_all":
            restarted = manager.restart_all()
            kept = len(manager.names) - len(restarted)
            self.notify(
                f"Restarting {len(restarted)} side processes…"
                + (f" ({kept} stopped by you left alone)" if kept else "")
            )
            return
        name = self.selected()
        if name is None or name not in manager.names:
            return
        getattr(manager, verb)(name)
        self.notify(f"{verb.capitalize()}: {name}", markup=False)

    def action_restart(self) -> None:
        self._control("restart")

    def action_stop(self) -> None:
        self._control("stop")

    def action_start(self) -> None:
        self._control("start")

    def action_restart_all(self) -> None:
        self._control("restart_all")
