"""Autoreload: one row per change batch the watcher saw, and what came of it."""

from __future__ import annotations

from pathlib import PurePath
from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical

from ...core.state import ReloadRow, ServerState
from .. import format as fmt
from ..borders import set_border_subtitle
from ..theming import FollowsTheme
from .table import LiveTable, cell

DECISION_LABELS = {
    "restarted": "restarted",
    "handled": "handled, no restart",
    "ignored": "ignored",
    "failed": "failed",
    "restarting": "restarting…",
}


def short_files(files: list[str], limit: int = 2) -> str:
    """``shop/views.py`` for one file, ``a.py, b.py +3`` for a batch."""
    names = ["/".join(PurePath(path).parts[-2:]) for path in files[:limit]]
    extra = len(files) - limit
    return ", ".join(names) + (f" +{extra}" if extra > 0 else "") if names else "-"


class ReloadsTable(LiveTable):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "reloads--restarted", "reloads--handled", "reloads--ignored",
        "reloads--failed", "reloads--restarting", "reloads--error",
    }


class ReloadsPanel(FollowsTheme, Vertical):
    """Time, changed files, decision, how long the restart took, the error."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Autoreload"
        self._seq = 0

    def compose(self) -> ComposeResult:
        table = ReloadsTable(id="reloads-table")
        table.add_keyed_columns(
            [
                ("time", "Time", 10),
                ("files", "Changed", 36),
                ("decision", "Decision", 19),
                ("took", "Took", 7),
                ("error", "Error", None),
            ]
        )
        yield table

    def on_mount(self) -> None:
        self._subscribe_theme()

    def on_resize(self) -> None:
        self.call_after_refresh(self.table.fit_column, "error", 12)

    @property
    def table(self) -> ReloadsTable:
        return self.query_one(ReloadsTable)

    def _cells(self, row: ReloadRow) -> tuple[object, ...]:
        table = self.table
        decision = table.style(f"reloads--{row.decision}") if row.decision in DECISION_LABELS else ""
        error = table.style("reloads--error")
        return (
            cell(fmt.clock_time(row.ts, millis=False)),
            cell(short_files(row.files)),
            cell(DECISION_LABELS.get(row.decision, row.decision), decision),
            cell(fmt.duration_ms(row.duration_ms), "", "right"),
            cell(row.error or "", error),
        )

    def refresh_from_state(self, state: ServerState) -> None:
        if self.take_theme_stale():
            self.table.forget_styles()
            self.table.clear_rows()
            self._seq = 0
        rows = state.reloads_since(self._seq)
        table = self.table
        if rows:
            self._seq = rows[-1].seq
            follow = table.at_tail()
            with self.app.batch_update():
                for row in rows:
                    table.sync_row(str(row.seq), self._cells(row))
                # The state keeps the last 500; so does the table.
                for key in table.keys()[: max(table.row_count - 500, 0)]:
                    table.drop_row(key)
                if follow:
                    table.move_cursor(row=table.row_count - 1, animate=False)
        watch = state.watch or {}
        roots = watch.get("roots") or []
        parts = [f"{len(state.reloads)} events" if state.reloads else "no changes yet"]
        if roots:
            parts.append(f"watching {len(roots)} dirs")
        set_border_subtitle(self, " · ".join(parts))
