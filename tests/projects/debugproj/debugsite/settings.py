"""A project whose views stop in the debugger (tests/test_debugger.py)."""

SECRET_KEY = "debugger-test"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["pauses"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "debugsite.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
