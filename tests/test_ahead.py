"""What a spare imports ahead: the serving generation's report of the
project modules it imported and what each refers to
(devconsole.child.watchlist.project_imports), and the console's choice
among them (devconsole.console.reloader.ahead_modules): none a recent save
changed, none that refers to one, directly or not."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devconsole.child.watchlist import project_imports
from devconsole.console.reloader import ahead_modules


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder on sys.path; its modules forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    held = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - held:
        del sys.modules[name]


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_report_says_what_each_project_module_refers_to(project: Path) -> None:
    write(
        project,
        {
            "shop/__init__.py": "",
            "shop/models.py": "class Item:\n    pass\n",
            "shop/views.py": "from .models import Item\n\ndef index(request):\n    return Item\n",
            "shop/helpers.py": "import json\nTOTAL = 3\n",
            "site_urls.py": "from shop import views\nfrom shop.helpers import TOTAL\n",
            "lazy.py": "class Lazy:\n    def __getattr__(self, name):\n        raise RuntimeError('read')\n\nvalue = Lazy()\n",
        },
    )
    held = set(sys.modules)
    import lazy  # noqa: F401
    import site_urls  # noqa: F401

    entries = json.loads(project_imports(project, held, 100_000))
    names = [name for name, _file, _refers in entries]
    assert sorted(names) == ["lazy", "shop", "shop.helpers", "shop.models", "shop.views", "site_urls"]
    # In the order their imports ended: a module after those it imported.
    assert names.index("shop.models") < names.index("shop.views") < names.index("site_urls")
    refers = {name: {names[i] for i in indexes} for name, _file, indexes in entries}
    # A module kept by name; an int (TOTAL) says nothing of shop.helpers: a
    # miss, which the spare's exact report of what it holds makes safe.
    assert refers["site_urls"] == {"shop.views"}
    assert refers["shop.views"] == {"shop", "shop.models"}  # its package; a class from a module
    assert refers["shop.helpers"] == {"shop"}  # an int refers to nothing; json is no project module
    assert refers["lazy"] == set()  # its own class: no lookup on the lazy object ran
    files = {name: file for name, file, _refers in entries}
    assert files["shop.views"] == str((project / "shop/views.py").resolve())
    # Within its limit: the last modules left out.
    cut = json.loads(project_imports(project, held, 200))
    assert [name for name, _file, _refers in cut] == names[: len(cut)] and len(cut) < len(names)


def report(*entries: tuple[str, str, list[int]]) -> str:
    return json.dumps([list(entry) for entry in entries])


def test_the_spare_imports_ahead_what_no_recent_save_changed_nor_reaches() -> None:
    text = report(
        ("urls", "/p/urls.py", [1, 3]),  # 0: refers to views and blog.urls
        ("views", "/p/views.py", [2]),  # 1: refers to models
        ("models", "/p/models.py", []),  # 2
        ("blog.urls", "/p/blog/urls.py", [4]),  # 3
        ("blog.views", "/p/blog/views.py", []),  # 4
        ("api", "/p/api.py", [9]),  # 5: refers to a module left out of the report
    )
    # Nothing saved yet: everything the report can vouch for.
    assert ahead_modules(text, {}) == ["urls", "views", "models", "blog.urls", "blog.views"]
    # views.py saved: neither it nor the URLconf that refers to it.
    assert ahead_modules(text, {"/p/views.py": None}) == ["models", "blog.urls", "blog.views"]
    # models.py saved: views refers to it, urls to views.
    assert ahead_modules(text, ["/p/models.py"]) == ["blog.urls", "blog.views"]
    assert ahead_modules(text, ["/p/blog/views.py", "/p/models.py"]) == []


@pytest.mark.parametrize("text", ["", "not json", "{}", json.dumps([["only", "two"], 3, [1, "/p/x.py", []]])])
def test_a_report_that_is_not_one_imports_nothing_ahead(text: str) -> None:
    assert ahead_modules(text, {}) == []
