"""devconsole: a terminal console for Django's development server."""

__version__ = "0.1.0"
