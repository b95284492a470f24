"""Management commands: the catalogue read from a child, forms built from it,
and runs as subprocesses of the project's ``manage.py``."""
