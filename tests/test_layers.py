"""Each side imports only what it may: the console never imports the project's
code (nor Django), and the child-side package imports neither Textual nor the
console's modules, so it runs in a project interpreter that has only Django."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import devconsole


def _modules(package: str) -> list[str]:
    module = __import__(package, fromlist=["__path__"])
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(module.__path__))


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_console_side_imports_neither_textual_nor_django() -> None:
    modules = [
        *_modules("devconsole.console"),
        *_modules("devconsole.model"),
        *_modules("devconsole.commands"),
        *_modules("devconsole.wire"),
    ]
    assert "devconsole.console.supervisor" in modules and "devconsole.model.state" in modules
    loaded = _imported_after([*modules, "devconsole.cli"])
    assert sorted(m for m in loaded if m.split(".")[0] in ("textual", "django")) == []


def test_child_side_imports_only_the_standard_library_django_and_the_wire() -> None:
    modules = _modules("devconsole.child")
    assert "devconsole.child.server" in modules and "devconsole.child.forkserver" in modules
    loaded = _imported_after(modules)
    ours = sorted(
        m for m in loaded if m.startswith("devconsole.") and not m.startswith(("devconsole.child", "devconsole.wire"))
    )
    assert ours == []
    assert sorted(m for m in loaded if m.split(".")[0] in ("textual", "rich", "watchfiles")) == []
    assert devconsole.__name__ == "devconsole"


def test_every_class_name_in_the_package_is_unique() -> None:
    """One name, one class: a reader (and a traceback) never has to ask which
    ``Recorder`` or which fork-server handle. The demo project inside the
    package is a Django project of its own (its ``Meta``/``Migration``
    classes follow Django's conventions) and is left out."""
    import ast
    from collections import defaultdict
    from pathlib import Path

    root = Path(devconsole.__file__).parent
    where: defaultdict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "demo":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(f"{relative}:{node.lineno}")
    assert len(where) > 50  # the walk found the package's classes
    assert {name: places for name, places in where.items() if len(places) > 1} == {}
