"""WSGI entry point of the devconsole demo project."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")

application = get_wsgi_application()
