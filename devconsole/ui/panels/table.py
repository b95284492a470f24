"""A DataTable that is updated in place, by key, from the state on each tick."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from ..theming import component_style


class LiveTable(DataTable[Any]):
    """Rows keyed by id; ``sync_row`` touches only the cells whose value changed.

    Clearing and rebuilding a table on every tick is what makes live Textual
    apps stutter: here a row is added once, then updated cell by cell, and
    the last values are remembered so unchanged cells cost a comparison.
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._column_keys: list[str] = []
        self._styles: dict[str, Any] = {}

    def style(self, component: str) -> Any:
        """The rich style of a component class, cached: resolving one costs
        far more than building a cell, and a busy tick builds thousands."""
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = component_style(self, component)
        return style

    def forget_styles(self) -> None:
        """After a theme change: resolve styles again."""
        self._styles.clear()

    def add_keyed_columns(self, columns: Sequence[tuple[str, str, int | None]]) -> None:
        """``(key, label, width)`` for each column; ``None`` width sizes to content."""
        for key, label, width in columns:
            self.add_column(label, key=key, width=width)
            self._column_keys.append(key)

    def has_key(self, key: str) -> bool:
        return key in self._cells

    def sync_row(self, key: str, cells: Sequence[Any]) -> bool:
        """Add the row ``key`` or update its changed cells. True when it was added."""
        old = self._cells.get(key)
        values = tuple(cells)
        if old is None:
            self.add_row(*values, key=key)
            self._cells[key] = values
            return True
        if old != values:
            for column, (before, after) in zip(self._column_keys, zip(old, values)):
                if before != after:
                    self.update_cell(key, column, after)
            self._cells[key] = values
        return False

    def add_rows_keyed(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        for key, cells in rows:
            values = tuple(cells)
            self.add_row(*values, key=key)
            self._cells[key] = values

    def drop_row(self, key: str) -> None:
        if self._cells.pop(key, None) is not None:
            self.remove_row(key)

    def fit_column(self, key: str, minimum: int = 8) -> None:
        """Give column ``key`` whatever width the other columns leave."""
        others = sum(column.get_render_width(self) for column_key, column in self.columns.items() if column_key.value != key)
        column = self.columns.get(key)  # type: ignore[call-overload]
        if column is None:
            return
        # Leave room for the vertical scrollbar, so no horizontal one appears.
        width = max(minimum, self.size.width - others - 2 * self.cell_padding - self.styles.scrollbar_size_vertical - 1)
        if column.width != width or column.auto_width:
            column.auto_width = False
            column.width = width
            self._require_update_dimensions = True
            self.refresh()

    def keys(self) -> list[str]:
        return list(self._cells)

    def clear_rows(self) -> None:
        self._cells.clear()
        self.clear()

    def at_tail(self) -> bool:
        """The cursor is on the last row (or there is none): keep following."""
        return self.row_count == 0 or self.cursor_row >= self.row_count - 1


def cell(text: str, style: Any = "", justify: str = "left") -> Text:
    """A cell from untrusted (already sanitized) text: never parsed as markup."""
    return Text(text, style=style, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
