"""Border titles that are cheap and safe to set on every tick."""

from __future__ import annotations

from textual.content import Content
from textual.geometry import Region
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
    content = Content(text)
    outer = widget.outer_size
    if not (
        widget.is_mounted and outer.height and widget.styles.border_bottom[0] and hasattr(widget, "_border_subtitle")
    ):
        widget.border_subtitle = content
        return
    # The setter repaints every line of the widget; a panel whose subtitle
    # says a rate changes it on every refresh under load, and only its
    # bottom border line shows it. (What the setter stores, then that line.)
    widget._border_subtitle = widget.render_str(content).expand_tabs(4).split()[0]
    offset = widget.content_offset
    widget.refresh(Region(-offset.x, outer.height - 1 - offset.y, outer.width, 1))
