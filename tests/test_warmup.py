"""What a spare does ahead of a save (devconsole.child.warmup): project
sources without a bytecode file, compiled ahead, are used only for the very
bytes they were compiled from, and regular expressions compiled ahead are
found in ``re``'s cache."""

from __future__ import annotations

import importlib
import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from devconsole.child import warmup

from .conftest import inotify_watches, wait_for


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable folder; no bytecode files (imports compile the source, as
    under PYTHONDONTWRITEBYTECODE); the import hook undone afterwards."""
    from importlib.machinery import SourceFileLoader

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(SourceFileLoader, "source_to_code", SourceFileLoader.source_to_code)
    monkeypatch.setattr(warmup, "_sources", {})
    yield tmp_path
    for name in ("aheadmod", "changedmod"):
        sys.modules.pop(name, None)


def _function_code(code: types.CodeType) -> types.CodeType:
    return next(const for const in code.co_consts if isinstance(const, types.CodeType))


def test_a_source_compiled_ahead_is_what_its_import_runs(package: Path) -> None:
    path = package / "aheadmod.py"
    path.write_text("def version():\n    return 1\n")
    assert warmup.precompile([str(path)]) == 1
    compiled = warmup._sources[str(path)][1]
    module = importlib.import_module("aheadmod")
    assert module.version() == 1
    assert module.version.__code__ is _function_code(compiled)  # no second compile
    assert warmup._sources == {}  # used once


def test_a_source_saved_after_it_was_compiled_ahead_is_compiled_afresh(package: Path) -> None:
    path = package / "changedmod.py"
    path.write_text("def version():\n    return 1\n")
    warmup.precompile([str(path)])
    compiled = warmup._sources[str(path)][1]
    path.write_text("def version():\n    return 2\n")  # the save, after the spare compiled it
    module = importlib.import_module("changedmod")
    assert module.version() == 2
    assert module.version.__code__ is not _function_code(compiled)


def test_a_source_with_a_bytecode_file_is_left_to_the_import(package: Path) -> None:
    import py_compile

    path = package / "aheadmod.py"
    path.write_text("VERSION = 1\n")
    py_compile.compile(str(path), doraise=True)  # the import reads this: nothing to compile ahead
    assert warmup.precompile([str(path)]) == 0


def test_what_cannot_be_compiled_ahead_is_left_to_the_import(package: Path) -> None:
    broken = package / "broken.py"
    broken.write_text("def (\n")
    assert warmup.precompile([str(broken), str(package / "missing.py"), "not-python.txt"]) == 0
    assert warmup._sources == {}


def _saved_event(saved: warmup.SavedSources) -> None:
    """Wait for the watch to have something to read (a failure after 30 s)."""
    import select

    assert select.select([saved.fd], [], [], 30)[0], "no inotify event 30 s after the save"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux only")
def test_a_source_saved_while_the_spare_waits_is_compiled_before_its_import(package: Path) -> None:
    import py_compile

    path = package / "changedmod.py"
    path.write_text("def version():\n    return 1\n")
    py_compile.compile(str(path), doraise=True)  # a bytecode file, out of date after the save
    other = package / "notes.txt"
    saved = warmup.SavedSources([str(path)])
    try:
        assert saved.fd >= 0
        other.write_text("not Python")  # no source: nothing compiled
        _saved_event(saved)
        assert saved.compile_saved() == []
        # The save (an editor's write in place), while the spare waits; each of
        # another size, so that Python sees its bytecode file out of date.
        path.write_text("def version():\n    return 22\n")
        _saved_event(saved)
        assert saved.compile_saved() == [str(path)]
        compiled = warmup._sources[str(path)][1]
        # Saved again before the import: the newer bytes replace the older.
        path.write_text("def version():\n    return 333\n")
        _saved_event(saved)
        assert saved.compile_saved() == [str(path)]
        assert warmup._sources[str(path)][1] is not compiled
        compiled = warmup._sources[str(path)][1]
        module = importlib.import_module("changedmod")
        assert module.version() == 333
        assert module.version.__code__ is _function_code(compiled)  # compiled ahead, not by the import
    finally:
        saved.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux only")
def test_a_source_renamed_into_place_is_compiled_and_a_half_written_one_is_not_used(package: Path) -> None:
    path = package / "aheadmod.py"
    path.write_text("def version():\n    return 1\n")
    saved = warmup.SavedSources([str(path)])
    try:
        # An editor's rename-save: written beside, then moved into place.
        beside = package / ".aheadmod.py.swp"
        beside.write_text("def version():\n    return 2\n")
        beside.rename(path)
        _saved_event(saved)
        assert saved.compile_saved() == [str(path)]
        compiled = warmup._sources[str(path)][1]
        # What the import reads differs from what was compiled (a write
        # after the event): compiled afresh by the import.
        with open(path, "a") as handle:
            handle.write("\nLATE = True\n")
        saved.close()  # the spare was told to go: it no longer reads events
        module = importlib.import_module("aheadmod")
        assert module.version() == 2 and module.LATE is True
        assert module.version.__code__ is not _function_code(compiled)
    finally:
        saved.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify: Linux only")
def test_a_process_compiles_only_the_saved_sources_it_would_serve_until_it_is_told(package: Path) -> None:
    """A spare and its twin both wait: each compiles only the saves it would
    serve (the spare, none of the files it holds; the twin, only those of
    the modules the spare imports ahead), until its word comes."""
    import os
    import threading

    from devconsole.child.forkserver import _compile_saved_until

    mine, theirs = package / "aheadmod.py", package / "changedmod.py"
    for path in (mine, theirs):
        path.write_text("VERSION = 1\n")
    word_r, word_w = os.pipe()
    waiting = threading.Thread(
        target=_compile_saved_until, args=(word_r, [str(mine), str(theirs)], {str(mine)}.__contains__)
    )
    waiting.start()
    try:
        wait_for(lambda: inotify_watches([package]), 30)  # its watch is on: the saves are seen
        theirs.write_text("VERSION = 22\n")  # saved first: the other process's
        mine.write_text("VERSION = 333\n")
        # Compiled at its save's event, before the word; the other save's
        # event came first (read then, or in the same read) and was left.
        wait_for(lambda: str(mine) in warmup._sources, 30)
        assert warmup._sources[str(mine)][0] == b"VERSION = 333\n"
        assert str(theirs) not in warmup._sources
    finally:
        os.write(word_w, b"go")
        waiting.join(30)
        os.close(word_w)
        os.close(word_r)
    assert not waiting.is_alive()  # the word ends the wait


def test_the_files_of_modules_are_found_by_their_dotted_path() -> None:
    from devconsole.child.forkserver import _files_of_modules

    sources = [
        "/p/shop/views.py",
        "/p/shop/api/__init__.py",
        "/p/shop/api/serializers.py",
        "/p/blog/views.py",
        "/p/notes.txt",
    ]
    assert _files_of_modules(["shop.views", "shop.api"], sources) == {"/p/shop/views.py", "/p/shop/api/__init__.py"}
    assert _files_of_modules([], sources) == set()


def test_nothing_to_watch_watches_nothing() -> None:
    saved = warmup.SavedSources(["not-python.txt"])
    assert saved.fd == -1
    assert saved.compile_saved() == []


def test_patterns_compiled_ahead_are_found_in_the_cache() -> None:
    pattern = r"^devconsole-ahead/(?P<slug>[-a-zA-Z0-9_]+)/\Z"
    assert pattern not in warmup.compiled_patterns()
    warmup.compile_patterns(json.dumps([[pattern, 0], ["(", 0], "not a pair", [1, 2]]))  # the bad ones skipped
    warmup.compile_patterns("{not json")
    assert [pattern, 0] in json.loads(warmup.compiled_patterns())  # in re's cache now
    assert re.compile(pattern).match("devconsole-ahead/x/")


URL_PATTERNS = [
    r"^shop/(?P<slug>[-a-zA-Z0-9_]+)/\Z",
    r"^api/(?:v(?P<version>[0-9]+)/)?items/(?P<pk>[0-9]+)\.(?P<format>[a-z0-9]+)/?$",
    r"^blog/" + r"^(?P<year>[0-9]{4})/(?:(?P<month>[0-9]{2})/)?\Z",
    r"^(a|b)+/c*/(?P<x>.)$",
    r"",
]


def test_url_patterns_normalized_from_the_memo_are_what_django_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django's ``normalize`` is a function of the pattern's text alone: the
    memo gives each caller what the function gives, in lists of its own;
    the texts are named to the next spare, which computes them ahead so
    that its reverse tables call the function for none of them."""
    from django.urls import resolvers
    from django.utils import regex_helper

    monkeypatch.setattr(warmup, "_normalized", {})
    monkeypatch.setattr(warmup, "_used", {})
    monkeypatch.setattr(resolvers, "normalize", regex_helper.normalize)  # undone afterwards
    warmup.memoize_normalize()
    memo = resolvers.normalize
    assert memo is not regex_helper.normalize and getattr(memo, "devconsole_memo", False)
    warmup.memoize_normalize()
    assert resolvers.normalize is memo  # not wrapped twice
    for pattern in URL_PATTERNS:
        expected = regex_helper.normalize(pattern)
        first, again = memo(pattern), memo(pattern)
        assert first == again == expected
        again[0][1].append("changed by a caller")
        again.append(("x", []))
        assert memo(pattern) == expected  # a caller's changes are its own
    named = json.loads(warmup.normalized_patterns())
    assert named == URL_PATTERNS

    # The next spare: a process whose memo is empty computes them ahead.
    calls: list[str] = []

    def counted(pattern: str) -> list[tuple[str, list[str]]]:
        calls.append(pattern)
        return regex_helper.normalize(pattern)

    monkeypatch.setattr(warmup, "_normalized", {})
    monkeypatch.setattr(warmup, "_used", {})
    monkeypatch.setattr(resolvers, "normalize", counted)
    warmup.memoize_normalize()
    assert warmup.normalize_ahead(json.dumps([*named, 7, ["not text"]])) == len(URL_PATTERNS)
    assert warmup.normalize_ahead("{not json") == warmup.normalized_count() == len(URL_PATTERNS)
    assert sorted(calls) == sorted(URL_PATTERNS)
    assert warmup.normalized_patterns() == ""  # computed ahead, asked for by nothing yet
    calls.clear()
    for pattern in URL_PATTERNS[:2]:
        assert resolvers.normalize(pattern) == regex_helper.normalize(pattern)
    assert calls == []  # from the memo
    assert resolvers.normalize(r"^new/\Z") == regex_helper.normalize(r"^new/\Z") and calls == [r"^new/\Z"]
    # Named to the next spare: what this process used, not what it was told.
    assert json.loads(warmup.normalized_patterns()) == [*URL_PATTERNS[:2], r"^new/\Z"]


def test_the_normalize_memo_and_its_message_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.urls import resolvers
    from django.utils import regex_helper

    monkeypatch.setattr(warmup, "_normalized", {})
    monkeypatch.setattr(warmup, "_used", {})
    monkeypatch.setattr(warmup, "MAX_NORMALIZED", 50)
    monkeypatch.setattr(resolvers, "normalize", regex_helper.normalize)
    warmup.memoize_normalize()
    texts = [f"^page{n:04d}/(?P<pk>[0-9]+)/" + "x" * 2000 for n in range(60)]
    for text in texts:
        assert resolvers.normalize(text) == regex_helper.normalize(text)
    assert len(warmup._normalized) == 50
    message = warmup.normalized_patterns()
    assert len(message) <= warmup.MAX_NORMALIZED_CHARS
    kept = json.loads(message)
    assert kept and kept == texts[50 - len(kept) : 50]  # the most recent kept


class RecordedNames(warmup.TemplateNames):
    """The names the steps took, in order."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.taken: list[str] = []

    def take(self) -> str | None:
        name = super().take()
        if name is not None:
            self.taken.append(name)
        return name


def test_names_that_join_a_warm_up_are_loaded_or_refused_never_lost() -> None:
    names = RecordedNames(["first.html"])
    steps = warmup.template_steps(names)
    next(steps)  # under way: nothing taken yet
    assert names.add(["late.html"])  # joins: the steps take it in turn
    for _step in steps:  # to their end
        pass
    assert names.taken == ["first.html", "late.html"]
    # Ended: a name now is refused (its sender starts steps of its own).
    assert not names.add(["too-late.html"])
    assert names.taken == ["first.html", "late.html"]


def test_a_warm_up_dropped_or_out_of_time_refuses_names(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped = RecordedNames(["a.html"])
    steps = warmup.template_steps(dropped)
    next(steps)
    steps.close()  # its work replaced, or the server stopped
    assert not dropped.add(["b.html"])
    monkeypatch.setattr(warmup, "TEMPLATES_BUDGET_S", 0.0)
    late = RecordedNames(["a.html"])
    assert list(warmup.template_steps(late)) == [None]  # out of time at its first name
    assert late.taken == []
    assert not late.add(["b.html"])
