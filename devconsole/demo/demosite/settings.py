"""Settings of the devconsole demo project (development only).

The SQLite database lives outside the package, in a user-writable cache
directory: ``$DEVCONSOLE_DEMO_DB`` when set (devconsole always sets it for its
children), otherwise the same default path ``devconsole.demo`` computes. This
module must not import devconsole, so the fallback is a small copy of that logic.
"""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent


def _default_database() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    major, minor = django.VERSION[:2]
    path = root / "devconsole" / f"demo-{major}.{minor}.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


_database = os.environ.get("DEVCONSOLE_DEMO_DB") or ""
DEMO_DATABASE = Path(os.path.abspath(os.path.expanduser(_database))) if _database else _default_database()

# A fixed key: this project only ever runs on a developer's machine.
SECRET_KEY = "django-insecure-devconsole-demo-not-a-secret-0123456789"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "shop",
    "blog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demosite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demosite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DEMO_DATABASE,
    }
}

AUTH_PASSWORD_VALIDATORS = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
