"""Forms generated from real argparse parsers (the fixture project's ``hello``
has one argument of every kind), checked against what argparse itself makes
of the generated command line: the command is run for real and prints its
parsed options as JSON."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from devconsole.commands.catalogue import Catalogue, CommandInfo, load_catalogue
from devconsole.commands.forms import CommandForm, FormError, field_kind
from devconsole.commands.runner import CommandRunner, RunStatus, strip_sgr
from devconsole.console.project import Project

FIXTURE = Path(__file__).parent / "fixtures" / "catproject"


@pytest.fixture(scope="module")
def project() -> Project:
    return Project(FIXTURE / "manage.py", python=sys.executable)


@pytest.fixture(scope="module")
def catalogue(project: Project) -> Catalogue:
    return load_catalogue(project, timeout=60)


@pytest.fixture(scope="module")
def hello(catalogue: Catalogue) -> CommandInfo:
    command = catalogue.get("hello")
    assert command is not None and command.ok
    return command


@pytest.fixture(scope="module")
def form(hello: CommandInfo) -> CommandForm:
    return CommandForm.for_command(hello)


#: The smallest valid form: the required positional, option and group member.
REQUIRED: dict[str, Any] = {"name": "ann", "since": "monday", "to_stdout": True}


def parsed_options(project: Project, name: str, args: list[str]) -> dict[str, Any]:
    """Run ``manage.py name args`` and return the options argparse parsed."""
    runner = CommandRunner(project)
    try:
        run = runner.start(name, args, color=False)
        assert runner.wait(run, 60)
    finally:
        runner.close()
    output = run.output_text()
    assert run.status == RunStatus.SUCCEEDED, output
    return json.loads(output.splitlines()[-1])


# -- fields ------------------------------------------------------------------

EXPECTED_KINDS = {
    "name": "text",
    "greeting": "text",
    "extras": "list",  # nargs *
    "tags": "list",  # nargs +
    "loud": "flag",  # store_true
    "newline": "flag",  # store_false
    "color": "choice",
    "times": "int",
    "ratio": "float",
    "point": "list",  # nargs 2
    "level": "choice",  # int with choices
    "include": "list",  # append
    "shape": "text",  # a custom type callable
    "quietness": "count",
    "mode": "flag",  # store_const
    "flags": "flag",  # append_const
    "exclude": "list",  # extend
    "pairs": "text",  # a custom action
    "since": "text",  # required option
    "verbosity": "choice",
}


@pytest.mark.parametrize("dest,kind", sorted(EXPECTED_KINDS.items()))
def test_every_argparse_kind_gets_a_field(form: CommandForm, dest: str, kind: str) -> None:
    field = form.field(dest)
    assert field is not None, dest
    assert field.kind == kind
    assert field_kind(field.argument) == kind


def test_layout_positionals_then_options_then_common_folded(form: CommandForm) -> None:
    dests = [f.dest for f in form.fields]
    assert dests[:3] == ["name", "greeting", "extras"]
    assert "version" not in dests  # --version would print and exit
    advanced = {f.dest for f in form.advanced_fields}
    assert advanced == {"verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks"}
    assert all(not f.advanced for f in form.main_fields)
    assert [f.dest for f in form.fields[-len(advanced) :]] == [f.dest for f in form.advanced_fields]


def test_labels_required_marks_placeholders_and_choices(form: CommandForm) -> None:
    def field(dest: str) -> Any:
        f = form.field(dest)
        assert f is not None
        return f

    assert field("name").required and field("since").required
    assert not field("greeting").required and not field("extras").required
    assert field("quietness").label == "-q, --quiet-level"
    assert field("point").label == "--point"
    assert field("greeting").placeholder == "default: Hello"
    assert field("times").placeholder == "default: 1"
    assert field("tags").placeholder.startswith("one or more")
    assert field("point").placeholder.startswith("exactly 2")
    assert field("include").placeholder.startswith("repeatable")
    assert field("color").choices == ("red", "green", "blue")
    assert field("level").choices == ("1", "2", "3")
    assert field("color").argument.help == "colour (default: green)"


# -- validation --------------------------------------------------------------


def test_empty_form_reports_every_required_value(form: CommandForm) -> None:
    errors = form.validate(form.initial_values())
    assert errors == {
        "name": "a value is required",
        "since": "a value is required",
        "to_file": "one of --to-file, --to-stdout is required",
        "to_stdout": "one of --to-file, --to-stdout is required",
    }
    with pytest.raises(FormError) as info:
        form.arguments(form.initial_values())
    assert set(info.value.errors) == set(errors)


@pytest.mark.parametrize(
    "dest,value,message",
    [
        ("times", "three", "'three' is not an integer"),
        ("ratio", "half", "'half' is not a number"),
        ("color", "purple", "'purple' is not one of red, green, blue"),
        ("level", "7", "'7' is not one of 1, 2, 3"),
        ("point", "1", "expects exactly 2 values, got 1"),
        ("point", "1 x", "'x' is not a number"),
        ("quietness", "many", "'many' is not a whole number"),
        ("quietness", "99", "give a number from 0 to 10"),
        ("extras", 'unclosed "quote', "cannot split the values: No closing quotation"),
        ("tags", "-x", "values of an option cannot start with '-'"),
        ("verbosity", "5", "'5' is not one of 0, 1, 2, 3"),
    ],
)
def test_bad_values_are_reported_at_their_field(form: CommandForm, dest: str, value: str, message: str) -> None:
    errors = form.validate({**REQUIRED, dest: value})
    assert errors == {dest: message}


def test_mutually_exclusive_options(form: CommandForm) -> None:
    errors = form.validate({**REQUIRED, "json": True, "yaml": True})
    assert errors == {
        "json": "--json and --yaml cannot be used together",
        "yaml": "--json and --yaml cannot be used together",
    }
    both = form.validate({**REQUIRED, "to_file": "out.txt"})
    assert set(both) == {"to_file", "to_stdout"}
    assert form.validate({"name": "ann", "since": "x", "to_file": "out.txt"}) == {}


def test_preview_leaves_out_what_is_invalid(form: CommandForm) -> None:
    values = {**REQUIRED, "times": "three", "ratio": "0.25"}
    assert form.preview(values) == ["ann", "--ratio", "0.25", "--since", "monday", "--to-stdout"]


# -- the command line, checked by argparse itself ------------------------------


def test_minimal_command_line(form: CommandForm, project: Project) -> None:
    args = form.arguments(REQUIRED)
    assert args == ["ann", "--since", "monday", "--to-stdout"]
    assert form.command_line(REQUIRED) == "python manage.py hello ann --since monday --to-stdout"
    options = parsed_options(project, "hello", args)
    assert options["name"] == "ann" and options["since"] == "monday" and options["to_stdout"] is True
    assert options["greeting"] == "Hello" and options["times"] == 1  # defaults untouched


def test_every_kind_round_trips_through_argparse(form: CommandForm, project: Project) -> None:
    values: dict[str, Any] = {
        "name": "Ann Lee",
        "greeting": "Hi there",
        "extras": 'one "two words" three',
        "tags": "a b",
        "loud": True,
        "newline": True,  # --no-newline: store_false
        "color": "blue",
        "times": "3",
        "ratio": "0.25",
        "point": "1.5 -2",
        "level": "2",
        "include": "x.py 'y z.py'",
        "shape": "circle",
        "quietness": "2",
        "mode": True,
        "flags": True,
        "exclude": "m n",
        "pairs": "key=value",
        "since": "-3d",  # starts with '-': glued on as --since=-3d
        "json": True,
        "to_file": "out.txt",
        "interactive": True,  # --noinput
        "verbosity": "2",
        "skip_checks": True,
    }
    args = form.arguments(values)
    # An open-ended option (--tags, --exclude) comes before the positionals: "--" ends it.
    assert args[args.index("--") :] == ["--", "Ann Lee", "Hi there", "one", "two words", "three"]
    assert "--since=-3d" in args
    assert args.count("--include") == 2 and args.count("--quiet-level") == 2
    options = parsed_options(project, "hello", args)
    assert options == {
        "name": "Ann Lee",
        "greeting": "Hi there",
        "extras": ["one", "two words", "three"],
        "tags": ["a", "b"],
        "loud": True,
        "newline": False,
        "color": "blue",
        "times": 3,
        "ratio": 0.25,
        "point": [1.5, -2.0],
        "level": 2,
        "include": ["x.py", "y z.py"],
        "shape": "CIRCLE",
        "quietness": 2,
        "mode": "fast",
        "flags": ["x"],
        "exclude": ["m", "n"],
        "pairs": {"key": "value"},
        "since": "-3d",
        "json": True,
        "yaml": False,
        "to_file": "out.txt",
        "to_stdout": False,
        "interactive": False,
        "odd_default": "<class 'object'>",
    }


def test_positional_starting_with_a_dash_goes_after_double_dash(form: CommandForm, project: Project) -> None:
    values = {**REQUIRED, "name": "-ann"}
    args = form.arguments(values)
    assert args[-2:] == ["--", "-ann"]
    assert parsed_options(project, "hello", args)["name"] == "-ann"


def test_shell_display_quotes_what_needs_quoting(form: CommandForm) -> None:
    line = form.command_line({**REQUIRED, "name": "Ann Lee", "pairs": "a=$HOME"})
    assert line == "python manage.py hello 'Ann Lee' --set 'a=$HOME' --since monday --to-stdout"
    assert shlex.split(line)[3:] == form.arguments({**REQUIRED, "name": "Ann Lee", "pairs": "a=$HOME"})


def test_demo_report_form(project: Project) -> None:
    """The demo's own command: positional, choices, flag, int, nargs *."""
    from devconsole.demo import DEMO_MANAGE_PY, demo_env, ensure_demo_database

    ensure_demo_database(sys.executable)
    demo = Project(DEMO_MANAGE_PY, python=sys.executable, env=tuple(demo_env().items()))
    command = load_catalogue(demo).get("demo_report")
    assert command is not None
    form = CommandForm.for_command(command)
    assert [(f.dest, f.kind) for f in form.main_fields] == [
        ("section", "text"),
        ("format", "choice"),
        ("include_archived", "flag"),
        ("limit", "int"),
        ("tags", "list"),
    ]
    values = {"section": "products", "format": "csv", "include_archived": True, "limit": "2"}
    args = form.arguments(values)
    assert args == ["products", "--format", "csv", "--include-archived", "--limit", "2"]
    runner = CommandRunner(demo)
    try:
        run = runner.start("demo_report", args)
        assert runner.wait(run, 60)
    finally:
        runner.close()
    lines = [strip_sgr(line) for _, line in run.lines]
    assert run.status == RunStatus.SUCCEEDED, lines
    assert lines[0].startswith("name,price,tags,archived")
    assert lines[-1] == f"2 of {lines[-1].split()[2]} products shown"


def test_forms_and_runner_are_textual_free() -> None:
    """The core the Commands view stands on imports neither Textual nor Django."""
    import subprocess

    code = (
        "import sys, devconsole.commands.forms, devconsole.commands.runner\n"
        "leaked = sorted({m.split('.')[0] for m in sys.modules} & {'django', 'textual'})\n"
        "assert not leaked, leaked\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
