"""The test matrix: every supported Python x Django, with the interpreters found here.

``nox`` (the README's test command, and ``.ci/run``) runs three sessions:

* ``lint``: ruff, ruff format, mypy and the import contracts, first.

* ``smoke``: on every combination Django supports, devconsole installed the
  way a user installs it (``pip install .``, not editable) with that Django,
  and only the real-terminal smoke tests (``tests/test_tty_smoke.py``): the
  installed binary in a pty. Python 3.12+ crashed at start where headless
  tests passed, so every cell needs this.
* ``tests``: the full suite, on the newest combination and on the default
  ``python3`` of these machines.

Interpreters are looked up on PATH. pyenv's shims for ``python3.12`` etc. only
work once pyenv is told which versions to expose, and CI may not say so: when
pyenv is installed, the versions it has are exposed here. A missing
interpreter skips its cells with one line each, and the summary lists them as
skipped — never a crash, never a silent pass.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
# Skip, saying so, rather than fail: not every machine has every Python
# (nox's default on CI is to fail). Never download one: only PyPI is used.
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

#: The Django series to test and the requirement that picks its newest release.
DJANGO = {"4.2": "django~=4.2.0", "5.2": "django~=5.2.0", "6.1": "django~=6.1.0"}
#: Where Django supports the Python (4.2: 3.8-3.12; 5.2: 3.10-3.13; 6.x: 3.12+).
SUPPORTED = {
    "3.10": ("4.2", "5.2"),
    "3.11": ("4.2", "5.2"),
    "3.12": ("4.2", "5.2", "6.1"),
    "3.13": ("5.2", "6.1"),
}
#: The full suite: the newest combination, and this project's default python3.
FULL_SUITE = (("3.13", "6.1"), ("3.11", "5.2"))
#: What the smoke test itself needs besides devconsole (pytest-asyncio and
#: pytest-timeout because pyproject's pytest options name them).
SMOKE_DEPS = ("pytest>=8,<9", "pytest-asyncio>=0.23", "pytest-timeout>=2.1", "pexpect>=4.8", "pyte>=0.8")


def _expose_pyenv_versions() -> None:
    """Make pyenv's ``python3.X`` shims resolve for every installed 3.X.

    Keeps any PYENV_VERSION already set (and its order: its first entry stays
    ``python3``), else starts from pyenv's current version, then adds the
    newest installed release of each series tested here.
    """
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return
    try:
        installed = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
        current = (
            os.environ.get("PYENV_VERSION")
            or subprocess.run([pyenv, "version-name"], capture_output=True, text=True, timeout=30).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return
    exposed = [name for name in current.split(":") if name]
    releases = sorted(
        (name for name in installed if re.fullmatch(r"\d+\.\d+\.\d+", name)),
        key=lambda name: tuple(int(part) for part in name.split(".")),
    )
    for series in SUPPORTED:
        newest = [name for name in releases if name.startswith(f"{series}.")]
        if newest and not any(name.startswith(f"{series}.") for name in exposed):
            exposed.append(newest[-1])
    if exposed:
        os.environ["PYENV_VERSION"] = ":".join(exposed)


def _found(series: str) -> bool:
    """Whether ``python<series>`` on PATH runs (a pyenv shim may exist and fail)."""
    command = shutil.which(f"python{series}")
    if command is None:
        return False
    try:
        return subprocess.run([command, "-c", ""], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _full_suite_cells() -> list[tuple[str, str]]:
    """FULL_SUITE; on a machine with neither of its interpreters, the full
    suite on the Python running nox instead, so it is never silently not run."""
    if any(_found(python) for python, _ in FULL_SUITE):
        return list(FULL_SUITE)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here not in SUPPORTED:
        return list(FULL_SUITE)
    return [(here, SUPPORTED[here][-1])]


class _QuietAboutCI(logging.Filter):
    """nox adds "Missing interpreters will error by default on CI systems." to
    every skip; here skipping is the chosen behaviour on CI too, so the skip's
    own line ("... skipped: Python interpreter 3.10 not found.") is the one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will error by default on CI" not in record.getMessage()


_expose_pyenv_versions()
logging.getLogger("nox").addFilter(_QuietAboutCI())


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """The guardrails, before any test: ruff's rules and format, mypy with
    django-stubs, and the import contracts that keep each side of the pipe to
    itself (all configured in pyproject.toml). Runs in the environment nox runs
    from (the README's .venv), with the lint extra added there."""
    paths = ("devconsole", "tests", "bench", "scripts", "noxfile.py")
    session.run("python", "-m", "pip", "install", "--quiet", "-e", ".[lint]", external=True)
    session.run("ruff", "check", *paths, external=True)
    session.run("ruff", "format", "--check", *paths, external=True)
    session.run("mypy", external=True)
    session.run("lint-imports", external=True)


@nox.session
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(python, django, id=f"{python}-django{django}")
        for python, djangos in SUPPORTED.items()
        for django in djangos
    ],
)
def smoke(session: nox.Session, django: str) -> None:
    """devconsole installed as a user installs it, in a real terminal."""
    session.install(".", DJANGO[django], *SMOKE_DEPS)
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "tty",
        "--noconftest",
        "-p",
        "no:cacheprovider",
        "tests/test_tty_smoke.py",
        *session.posargs,
    )


@nox.session
@nox.parametrize(
    ("python", "django"),
    [nox.param(python, django, id=f"{python}-django{django}") for python, django in _full_suite_cells()],
)
def tests(session: nox.Session, django: str) -> None:
    """The whole test suite, with the test extras."""
    session.install("-e", ".[test]", DJANGO[django])
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)
