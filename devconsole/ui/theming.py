"""Follow Textual's theme switching.

Cells carry styles resolved from component classes when they are built, so
rows built under the old theme keep its colours. Widgets that cache styled
content mix this in: on a theme change they are told once, and rebuild what
they show on their next refresh, with the new theme's styles.
"""

from __future__ import annotations

from typing import Any


class FollowsTheme:
    """Sets ``theme_stale`` when the app's theme changes."""

    theme_stale: bool = False

    def _subscribe_theme(self: Any) -> None:
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: Any) -> None:
        self.theme_stale = True

    def take_theme_stale(self) -> bool:
        """True once after each theme change."""
        stale, self.theme_stale = self.theme_stale, False
        return stale
