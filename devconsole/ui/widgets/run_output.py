"""The output of a command run: the newest lines, drawn only when on screen.

Why not a ``RichLog``: it renders every line through Rich as it is written,
re-slices its whole buffer once full, and asks to scroll after every write.
A command that prints a hundred thousand lines a second spent most of its
time there (and, holding the interpreter, slowed the command itself: its
pipe was not read). Here lines are kept as the cleaned text they are
(:func:`devconsole.model.sanitize.clean_colour_line`: SGR colours and
nothing else), appended a batch at a time, and turned into styled strips
only when they are on screen (``Text.from_ansi``: never parsed as markup),
like Textual's own ``Log``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.cells import cell_len
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from devconsole.model.sanitize import strip_sgr


class RunOutput(ScrollView, can_focus=True):
    """Lines of a run's output, at most ``max_lines`` of them (the oldest go first)."""

    DEFAULT_CSS = """
    RunOutput {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        &:focus {
            background-tint: $foreground 5%;
        }
    }
    """

    def __init__(self, *, max_lines: int, min_width: int = 78, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.min_width = min_width
        #: Cleaned lines (str, SGR kept) or notes of the console's own (Text).
        self._lines: deque[str | Text] = deque(maxlen=max_lines)
        #: How many lines were ever written before ``_lines[0]`` (cache keys stay valid as old ones go).
        self._start = 0
        self._widest = 0
        self._strips: LRUCache[int, Strip] = LRUCache(1024)

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def lines(self) -> list[Strip]:
        """Every kept line, rendered (for tests and copying; the screen renders only what it shows)."""
        return [self._strip(index) for index in range(len(self._lines))]

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def clear(self) -> None:
        self._lines.clear()
        self._start = 0
        self._widest = 0
        self._strips.clear()
        self.virtual_size = Size(0, 0)
        self.refresh()

    def write_note(self, text: str, style: str = "dim") -> None:
        """A line of the console's own (``… 12 earlier lines dropped``)."""
        self._add([Text(text, style=style)], cell_len(text))

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append cleaned lines (one layout update, one scroll for the batch)."""
        batch = list(lines)
        if not batch:
            return
        if len(batch) > self.max_lines:  # only the newest would stay anyway
            self._start += len(batch) - self.max_lines
            batch = batch[-self.max_lines :]
        joined = "".join(batch)  # one pass in C for the common case: plain ASCII
        if joined.isascii() and "\x1b" not in joined:
            widest = max(map(len, batch))
        else:
            widest = max(cell_len(strip_sgr(line)) for line in batch)
        self._add(batch, widest)

    def _add(self, batch: list[str] | list[Text], widest: int) -> None:
        follow = self.is_vertical_scroll_end
        overflow = len(self._lines) + len(batch) - self.max_lines
        if overflow > 0:
            self._start += overflow
        self._lines.extend(batch)
        self._widest = max(self._widest, widest)
        self.virtual_size = Size(max(self._widest, self.min_width), len(self._lines))
        if follow and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _strip(self, index: int) -> Strip:
        key = self._start + index
        strip = self._strips.get(key)
        if strip is None:
            line = self._lines[index]
            text = line if isinstance(line, Text) else Text.from_ansi(line, no_wrap=True)
            text.end = ""
            strip = Strip(list(text.render(self.app.console)))
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, style)
        return self._strip(index).crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
