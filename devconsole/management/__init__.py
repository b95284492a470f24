"""Django integration: with ``"devconsole"`` in INSTALLED_APPS,
``python manage.py devconsole`` starts the console."""
