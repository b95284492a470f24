"""The Textual UI, in the console process: the app (``app.py``), its views
(``screens/``), the dashboard's live panels (``panels/``), shared widgets
(``widgets/``) and the Textual CSS (``styles/``). It reads the console's model
(:mod:`devconsole.model`) and drives :mod:`devconsole.console` and
:mod:`devconsole.commands`; it never imports :mod:`devconsole.child`."""
