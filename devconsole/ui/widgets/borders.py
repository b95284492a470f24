"""Border titles that are cheap and safe to set on every tick."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget


def set_border_subtitle(widget: Widget, text: str) -> None:
    """Show ``text`` literally under ``widget``'s border, repainting only when it changed.

    Assigning ``border_subtitle`` repaints the widget even when the text is the
    same (an idle dashboard would redraw every tick), and a plain ``str`` there
    is parsed as markup: a filter or search term like ``[/x]`` would crash it.
    """
    if getattr(widget, "_devconsole_subtitle", None) == text:
        return
    widget._devconsole_subtitle = text  # type: ignore[attr-defined]
    widget.border_subtitle = Content(text)
