"""Widgets the screens share: the status line, command forms, borders, theming."""
