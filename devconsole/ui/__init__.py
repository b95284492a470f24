"""The Textual UI on top of :mod:`devconsole.core`."""
