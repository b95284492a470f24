"""Select loop: ``serve_forever`` made visible."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from devconsole.model.state import ServerState
from devconsole.ui import formatting as fmt
from devconsole.ui.widgets.borders import set_border_subtitle
from devconsole.ui.widgets.sparkline import CachedSparkline
from devconsole.ui.widgets.theming import FollowsTheme, component_style

#: What the panel says when the server has no select loop to show (Daphne).
NO_SELECT_LOOP = "Daphne (Twisted) serves this project: no select loop to show"


class LoopStatsView(Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"loop--label", "loop--value"}


class LoopPanel(FollowsTheme, Vertical):
    """Iterations/s, ready vs timeout, time blocked in select, poll interval,
    and accepts/s over the last minute as a sparkline.

    runserver's ``serve_forever`` calls ``selector.select(poll_interval)`` in
    a loop: idle, it times out twice a second. The server child's loop waits
    for a connection (or a stop) instead, so an idle one shows no iterations
    and is blocked ~100% of the time; a busy one is mostly "ready" and spends
    its time accepting.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Select loop"
        self._last: tuple[object, ...] | None = None
        self._drawn = False
        #: The stats last drawn: the accepts move every second, the stats rarely.
        self._stats: Text | None = None
        self._styles: tuple[Style, Style] | None = None

    def compose(self) -> ComposeResult:
        yield LoopStatsView(id="loop-stats")
        yield Label("accepts/s, last 60 s", id="loop-spark-label")
        yield CachedSparkline([0.0] * 60, id="loop-spark")

    def on_mount(self) -> None:
        self._subscribe_theme()

    def refresh_from_state(self, state: ServerState) -> None:
        if self.take_theme_stale():
            self._last = None
            self._styles = None
            self._stats = None
        loop = state.loop
        accepts = state.accepts_per_second(60)
        key = (state.server_kind, loop.iterations_total, loop.poll_interval, state.status, tuple(accepts))
        if key == self._last:
            return
        self._last = key
        stats = self.query_one(LoopStatsView)
        if self._styles is None:  # resolved once per theme, not on every change
            self._styles = (component_style(stats, "loop--label"), component_style(stats, "loop--value"))
        label, value = self._styles
        text = Text(no_wrap=True, overflow="ellipsis")
        accepts_now = ("accepts/s", f"{accepts[-1]:.0f} now, {max(accepts):.0f} peak")
        if state.server_kind == "asgi":
            # Twisted's reactor has no select loop we instrument: say so
            # instead of six rows of zeros; accepts are still counted.
            text.append(NO_SELECT_LOOP, value)
            rows = [accepts_now]
        else:
            rows = [
                ("iterations/s", f"{loop.iterations_per_s:.1f}"),
                (
                    "ready / timeout",
                    f"{fmt.percent(loop.ready_share)} / {fmt.percent(1 - loop.ready_share) if loop.iterations_total else '0%'}",
                ),
                ("blocked in select", fmt.percent(loop.blocked_share)),
                ("poll interval", f"{loop.poll_interval:g} s"),
                ("iterations", str(loop.iterations_total)),
                accepts_now,
            ]
        for name, shown in rows:
            if text.plain:
                text.append("\n")
            text.append(f"{name:<18} ", label)
            text.append(shown, value)
        # Always six lines, cut to the width: no layout after the first.
        if text != self._stats:
            stats.update(text, layout=not self._drawn)
            self._stats = text
            self._drawn = True
        self.query_one(CachedSparkline).data = accepts
        set_border_subtitle(self, state.status)
