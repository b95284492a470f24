"""Autoreload: one row per change batch the watcher saw, and what came of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical

from devconsole.model.state import ReloadRow, ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.panels.linetable import Cell, Column, LineTable
from devconsole.ui.widgets.borders import set_border_subtitle

DECISION_LABELS = {
    "restarted": "restarted",
    "handled": "handled, no restart",
    "ignored": "ignored",
    "failed": "failed",
}


def short_files(files: list[str], limit: int = 2) -> str:
    """``shop/views.py`` for one file, ``a.py, b.py +3`` for a batch."""
    names = ["/".join(PurePath(path).parts[-2:]) for path in files[:limit]]
    extra = len(files) - limit
    return ", ".join(names) + (f" +{extra}" if extra > 0 else "") if names else "-"


def slowest_step(row: ReloadRow) -> str:
    """The step that took most of a reload's time and how long:
    ``django.setup() 1.21 s`` (blank when the row has no steps)."""
    step = row.slowest
    return "" if step is None else f"{step.name} {fmt.duration_ms(step.ms)}"


#: Rows kept, as many as the state keeps.
MAX_ROWS = 500


class ReloadsTable(LineTable):
    """One line per change batch, newest last, following the tail."""

    COLUMNS: ClassVar[list[Column]] = [
        Column("time", "Time", 8),
        Column("files", "Changed", 36),
        Column("decision", "Decision", 19),
        Column("took", "Took", 8, right=True),
        Column("detail", "Error, or the slowest step", 0),
    ]
    PREFIX = "reloads"
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "reloads--header",
        "reloads--cursor",
        "reloads--cursor-focused",
        "reloads--restarted",
        "reloads--handled",
        "reloads--ignored",
        "reloads--failed",
        "reloads--error",
        "reloads--step",
    }

    def row_cells(self, index: int) -> Sequence[Cell]:
        row: ReloadRow = self._rows[index]
        return (
            (fmt.clock_time(row.ts, millis=False), ""),
            (short_files(row.files), ""),
            (
                DECISION_LABELS.get(row.decision, row.decision),
                f"reloads--{row.decision}" if row.decision in DECISION_LABELS else "",
            ),
            (fmt.duration_ms(row.duration_ms), ""),
            (row.error, "reloads--error") if row.error else (slowest_step(row), "reloads--step"),
        )


class ReloadsPanel(Vertical):
    """Time, changed files, decision, how long the restart took and the
    step that took most of it, the error."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Autoreload"
        self._seq = 0

    def compose(self) -> ComposeResult:
        yield ReloadsTable(id="reloads-table")

    @property
    def table(self) -> ReloadsTable:
        return self.query_one(ReloadsTable)

    def refresh_from_state(self, state: ServerState) -> None:
        rows = state.reloads_since(self._seq)
        if rows:
            self._seq = rows[-1].seq
            self.table.append_rows(rows, MAX_ROWS)
        roots = state.watch.roots if state.watch is not None else ()
        parts = [f"{len(state.reloads)} events" if state.reloads else "no changes yet"]
        if roots:
            parts.append(f"watching {len(roots)} dirs")
        set_border_subtitle(self, " · ".join(parts))
