"""The core is usable without a terminal: importing it pulls in neither
Textual nor Django (the console never imports project code)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import devconsole.core


def test_core_imports_neither_textual_nor_django() -> None:
    modules = sorted(f"devconsole.core.{m.name}" for m in pkgutil.iter_modules(devconsole.core.__path__))
    assert "devconsole.core.supervisor" in modules and "devconsole.core.state" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import devconsole.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'django'))\n"
        "print(' '.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
