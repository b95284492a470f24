"""Colours resolved from component classes, and following theme switches.

Widgets that build styled content ahead of drawing it (the status line, the
loop stats, Anatomy) mix :class:`FollowsTheme` in: on a theme change they are
told at once and rebuild on their next refresh. The line tables resolve their
styles when they draw, and drop them on any style update (theme or focus).
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.widget import Widget


def component_style(widget: Widget, name: str) -> Style:
    """The Rich style of ``widget``'s component class ``name``, with its
    colour as it is drawn.

    Textual's ``get_component_rich_style(partial=True)`` hands over a
    component's colour as an opaque Rich colour: ``$text-muted`` (``auto
    60%``) or ``$text-disabled`` (``auto 38%``) come out as plain white, so
    "dim" text would be the brightest on screen. Here an automatic colour is
    the background's contrasting text at its alpha, and any translucent
    colour is blended over the widget's background.
    """
    styles = widget.get_component_styles(name)
    style = styles.partial_rich_style
    if styles.has_rule("color"):
        background = widget.background_colors[1]
        if styles.has_rule("background"):
            background = background + styles.background
        color = styles.color
        if styles.auto_color:
            color = background.get_contrast_text(color.a)
        style += Style(color=(background + color).rich_color)
    return style


class FollowsTheme:
    """Sets ``theme_stale`` when the app's theme changes."""

    theme_stale: bool = False

    def _subscribe_theme(self: Any) -> None:
        # Immediate: marked stale before the app's own handler refreshes the views.
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed, immediate=True)

    def _on_theme_changed(self, _theme: Any) -> None:
        self.theme_stale = True

    def take_theme_stale(self) -> bool:
        """True once after each theme change."""
        stale, self.theme_stale = self.theme_stale, False
        return stale
