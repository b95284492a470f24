"""The command catalogue, read by real child processes from the fixture project
``tests/fixtures/catproject`` (apps alpha and beta ahead of three contrib apps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from devconsole.commands.catalogue import (
    ARGUMENT_KINDS,
    CORE_APP,
    Catalogue,
    CatalogueError,
    CommandInfo,
    format_table,
    load_catalogue,
)
from devconsole.console.project import Project

FIXTURE = Path(__file__).parent / "fixtures" / "catproject"
REPO = Path(__file__).resolve().parents[1]


def fixture_project(**kwargs: object) -> Project:
    return Project(FIXTURE / "manage.py", python=sys.executable, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(fixture_project(), timeout=60)


def write_manage_py(directory: Path, body: str) -> Project:
    manage_py = directory / "manage.py"
    manage_py.write_text(textwrap.dedent(body))
    return Project(manage_py, python=sys.executable)


# --- the fixture catalogue ----------------------------------------------------


def test_metadata(catalogue: Catalogue) -> None:
    import django

    assert catalogue.django_version == django.get_version()
    assert catalogue.settings_module == "catproject.settings"
    assert catalogue.python_version == ".".join(map(str, sys.version_info[:3]))
    assert catalogue.installed_apps == (
        "alpha",
        "beta",
        "django.contrib.staticfiles",
        "django.contrib.auth",
        "django.contrib.contenttypes",
    )
    assert {"setup", "commands", "total", "wall"} <= set(catalogue.timings)


def test_broken_command_is_listed_with_its_error(catalogue: Catalogue) -> None:
    broken = catalogue.get("broken")
    assert broken is not None
    assert broken.app == "alpha"
    assert not broken.ok
    assert broken.error == "ModuleNotFoundError: No module named 'alpha_missing_module'"
    assert broken.traceback is not None and "alpha_missing_module" in broken.traceback
    assert broken.file is not None and broken.file.endswith("alpha/management/commands/broken.py")
    # The rest loaded fine.
    failed = {c.name for c in catalogue.errors}
    assert failed == {"broken", "badargs"}
    assert all(c.class_path and c.usage for c in catalogue if c.name not in failed)


def test_command_whose_parser_fails_is_listed_with_its_error(
    catalogue: Catalogue,
) -> None:
    badargs = catalogue.get("badargs")
    assert badargs is not None
    assert badargs.error == ("ArgumentError: argument --verbosity: conflicting option string: --verbosity")
    assert badargs.traceback is not None and "add_arguments" in badargs.traceback
    # What was known before the parser failed is kept.
    assert badargs.app == "beta"
    assert badargs.class_path == "beta.management.commands.badargs.Command"
    assert badargs.summary == "Clashes with Django's own --verbosity."
    assert badargs.arguments == () and badargs.usage == ""


def test_every_command_django_knows_is_listed(catalogue: Catalogue) -> None:
    names = set(catalogue.names)
    assert {
        "hello",
        "ping",
        "broken",
        "runserver",
        "collectstatic",
        "createsuperuser",
    } <= names
    assert {"check", "migrate", "makemigrations", "shell", "dbshell", "test"} <= names
    assert catalogue.names == sorted(catalogue.names)
    assert catalogue.get("no-such-command") is None


def test_first_installed_app_wins_and_shadows_the_later(catalogue: Catalogue) -> None:
    hello = catalogue.get("hello")
    assert hello is not None
    assert hello.app == "alpha"
    assert hello.class_path == "alpha.management.commands.hello.Command"
    assert hello.shadows == ("beta",)
    assert hello.summary == "Say hello from alpha."
    ping = catalogue.get("ping")
    assert ping is not None and (ping.app, ping.shadows) == ("beta", ())


def test_runserver_override_resolves_through_staticfiles_and_core(
    catalogue: Catalogue,
) -> None:
    runserver = catalogue.get("runserver")
    assert runserver is not None
    assert runserver.app == "alpha"
    assert runserver.shadows == ("django.contrib.staticfiles", "django.core")
    assert runserver.mro == (
        "alpha.management.commands.runserver.Command",
        "django.contrib.staticfiles.management.commands.runserver.Command",
        "django.core.management.commands.runserver.Command",
        "django.core.management.base.BaseCommand",
    )
    assert runserver.summary == "Starts alpha's development server."
    # Inherited arguments: core's and staticfiles' own.
    assert {"addrport", "use_reloader", "use_static_handler", "insecure_serving"} <= {
        a.dest for a in runserver.arguments
    }
    # runserver hides --verbosity through suppressed_base_arguments.
    verbosity = runserver.argument("verbosity")
    assert verbosity is not None and verbosity.suppressed and verbosity.help is None


def test_contrib_commands_come_from_their_apps(catalogue: Catalogue) -> None:
    expected = {
        "collectstatic": "django.contrib.staticfiles",
        "findstatic": "django.contrib.staticfiles",
        "createsuperuser": "django.contrib.auth",
        "changepassword": "django.contrib.auth",
        "remove_stale_contenttypes": "django.contrib.contenttypes",
        "check": CORE_APP,
        "migrate": CORE_APP,
    }
    for name, app in expected.items():
        command = catalogue.get(name)
        assert command is not None and command.app == app, name
        assert command.shadows == ()
        assert command.mro[-1] == "django.core.management.base.BaseCommand"


# (dest, option_strings, kind, nargs, type, choices, default, required)
HELLO_ARGUMENTS: list[tuple[Any, ...]] = [
    ("name", (), "store", None, None, None, None, True),
    ("greeting", (), "store", "?", None, None, "Hello", False),
    ("extras", (), "store", "*", None, None, None, False),
    ("tags", ("--tags",), "store", "+", None, None, None, False),
    ("loud", ("--loud",), "store_true", 0, None, None, False, False),
    ("newline", ("--no-newline",), "store_false", 0, None, None, True, False),
    (
        "color",
        ("--color",),
        "store",
        None,
        None,
        ("red", "green", "blue"),
        "green",
        False,
    ),
    ("times", ("--times",), "store", None, "int", None, 1, False),
    ("ratio", ("--ratio",), "store", None, "float", None, 0.5, False),
    ("level", ("--level",), "store", None, "int", ("1", "2", "3"), None, False),
    ("include", ("--include",), "append", None, None, None, [], False),
    ("shape", ("--shape",), "store", None, "other", None, None, False),
    ("quietness", ("-q", "--quiet-level"), "count", 0, None, None, 0, False),
    ("mode", ("--mode",), "store_const", 0, None, None, None, False),
    ("flags", ("--flag",), "append_const", 0, None, None, None, False),
    ("exclude", ("--exclude",), "append", "+", None, None, None, False),
    ("pairs", ("--set",), "custom", None, None, None, {}, False),
    ("since", ("--since",), "store", None, None, None, None, True),
    ("json", ("--json",), "store_true", 0, None, None, False, False),
    (
        "interactive",
        ("--noinput", "--no-input"),
        "store_false",
        0,
        None,
        None,
        True,
        False,
    ),
    ("version", ("--version",), "version", 0, None, None, None, False),
    (
        "verbosity",
        ("-v", "--verbosity"),
        "store",
        None,
        "int",
        ("0", "1", "2", "3"),
        1,
        False,
    ),
]


@pytest.mark.parametrize(
    "dest,option_strings,kind,nargs,type_,choices,default,required",
    HELLO_ARGUMENTS,
    ids=[row[0] for row in HELLO_ARGUMENTS],
)
def test_argument_kinds(
    catalogue: Catalogue,
    dest: str,
    option_strings: tuple[str, ...],
    kind: str,
    nargs: object,
    type_: str | None,
    choices: tuple[str, ...] | None,
    default: object,
    required: bool,
) -> None:
    hello = catalogue.get("hello")
    assert hello is not None
    arg = hello.argument(dest)
    assert arg is not None
    assert arg.kind in ARGUMENT_KINDS
    assert (arg.option_strings, arg.kind, arg.nargs, arg.type, arg.choices) == (
        option_strings,
        kind,
        nargs,
        type_,
        choices,
    )
    assert (arg.default, arg.default_is_repr, arg.required) == (
        default,
        False,
        required,
    )
    assert arg.positional == (not option_strings)


def test_argument_details(catalogue: Catalogue) -> None:
    hello = catalogue.get("hello")
    assert hello is not None
    args = {a.dest: a for a in hello.arguments}
    assert "help" not in args
    assert args["color"].help == "colour (default: green)"  # %(default)s expanded
    assert args["shape"].metavar == "SHAPE"
    assert args["mode"].const == "fast" and args["flags"].const == "x"
    assert args["exclude"].action == "argparse._ExtendAction"
    assert args["pairs"].action == "alpha.management.commands.hello.KeyValueAction"
    assert args["odd_default"].default == "<class 'object'>"
    assert args["odd_default"].default_is_repr
    assert args["quietness"].flag == "--quiet-level"
    common = {a.dest for a in hello.arguments if a.common}
    assert common == {
        "version",
        "verbosity",
        "settings",
        "pythonpath",
        "traceback",
        "no_color",
        "force_color",
        "skip_checks",
    }
    assert hello.exclusive_groups == (("json", "yaml"), ("to_file", "to_stdout"))
    assert hello.required_exclusive_groups == (("to_file", "to_stdout"),)
    assert hello.usage.startswith("usage: manage.py hello [-h]")
    assert "(--to-file TO_FILE | --to-stdout)" in " ".join(hello.usage.split())
    assert "who to greet" in hello.help_text


def test_interactive_and_noinput(catalogue: Catalogue) -> None:
    interactive = {c.name for c in catalogue if c.interactive}
    assert interactive == {"shell", "dbshell", "createsuperuser", "changepassword"}
    noinput = {c.name for c in catalogue if c.accepts_noinput}
    assert {
        "migrate",
        "makemigrations",
        "flush",
        "collectstatic",
        "createsuperuser",
        "hello",
    } <= (noinput)
    assert "check" not in noinput and "shell" not in noinput


def test_django_core_commands(catalogue: Catalogue) -> None:
    check = catalogue.get("check")
    assert check is not None
    assert check.class_path == "django.core.management.commands.check.Command"
    deploy = check.argument("deploy")
    assert deploy is not None
    assert (deploy.option_strings, deploy.kind, deploy.default) == (
        ("--deploy",),
        "store_true",
        False,
    )
    tags = check.argument("tags")
    assert tags is not None and tags.kind == "append" and "--tag" in tags.option_strings
    fail_level = check.argument("fail_level")
    assert fail_level is not None and fail_level.choices is not None
    assert "ERROR" in fail_level.choices and fail_level.default == "ERROR"
    args = check.argument("args")
    assert args is not None and args.positional and args.nargs == "*" and not args.required

    migrate = catalogue.get("migrate")
    assert migrate is not None
    # Django 5.0 moved migrate's checks before handle(); 4.2 runs them inside.
    from django.core.management.commands.migrate import Command as Migrate

    assert migrate.requires_system_checks == bool(Migrate.requires_system_checks)
    app_label = migrate.argument("app_label")
    assert app_label is not None and app_label.positional and app_label.nargs == "?"
    noinput = migrate.argument("interactive")
    assert noinput is not None
    assert (noinput.kind, noinput.default) == ("store_false", True)
    assert "--noinput" in noinput.option_strings
    database = migrate.argument("database")
    assert database is not None and database.default == "default"
    plan = migrate.argument("plan")
    assert plan is not None and plan.kind == "store_true"


def test_by_app_follows_installed_apps_with_core_last(catalogue: Catalogue) -> None:
    groups = catalogue.by_app()
    assert [app for app, _ in groups] == [
        "alpha",
        "beta",
        "django.contrib.staticfiles",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        CORE_APP,
    ]
    by_app = dict(groups)
    assert [c.name for c in by_app["alpha"]] == ["broken", "hello", "runserver"]
    # beta's hello lost to alpha's.
    assert [c.name for c in by_app["beta"]] == ["badargs", "ping"]
    assert "runserver" not in [c.name for c in by_app["django.contrib.staticfiles"]]
    assert sum(len(commands) for _, commands in groups) == len(catalogue)


def test_format_table(catalogue: Catalogue) -> None:
    table = format_table(catalogue)
    lines = table.splitlines()
    assert lines[0].startswith(f"Django {catalogue.django_version} · settings catproject.settings")
    assert "(2 failed to load)" in lines[0]
    headers = [line for line in lines if line.startswith("[")]
    assert headers[0] == "[alpha]" and headers[-1] == "[django.core]"
    hello = next(line for line in lines if line.split()[:1] == ["hello"])
    assert "Say hello from alpha. (overrides beta)" in hello
    broken = next(line for line in lines if line.split()[:1] == ["broken"])
    assert "! ModuleNotFoundError: No module named 'alpha_missing_module'" in broken
    assert "A second paragraph" not in table


def test_json_round_trip(catalogue: Catalogue) -> None:
    data = json.loads(json.dumps(catalogue.to_json()))
    again = Catalogue.from_json(data)
    assert again == catalogue
    assert json.loads(json.dumps(again.to_json())) == data


def test_untrusted_text_is_sanitized() -> None:
    command = CommandInfo.from_json({"name": "x", "app": "a", "help": "red \x1b[31mtext\x1b[0m\x07 \x9b ok\r\nnext"})
    # Escapes are shown, not obeyed; line breaks survive.
    assert command.help == "red \\x1b[31mtext\\x1b[0m\\x07 \\x9b ok\nnext"
    again = CommandInfo.from_json(command.to_json())
    assert again.help == command.help


def test_error_document_raises() -> None:
    with pytest.raises(CatalogueError, match=r"^boom$") as info:
        Catalogue.from_json({"schema": 1, "error": "boom", "traceback": "tb"})
    assert info.value.traceback == "tb"
    with pytest.raises(CatalogueError, match="schema"):
        Catalogue.from_json({"schema": 999, "commands": []})


# --- the child process itself --------------------------------------------------


def test_child_cli_keeps_stdout_for_the_document() -> None:
    """``python -m devconsole.child.catalogue``: the project prints during setup
    and at command import, yet stdout holds exactly one JSON document."""
    env = fixture_project().child_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "devconsole.child.catalogue",
            *fixture_project().bootstrap_args(),
        ],
        cwd=FIXTURE,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["schema"] == 1 and len(document["commands"]) > 30
    for stray in (
        "catproject.settings: loading",
        "alpha ready (print to sys.stdout)",
        "alpha ready (write to fd 1)",
        "alpha.runserver imported",
    ):
        assert stray in proc.stderr
        assert stray not in proc.stdout


def test_parent_side_never_imports_django() -> None:
    code = (
        "import sys, devconsole.commands.catalogue as c\n"
        "assert c.Catalogue.from_json({'schema': 1, 'commands': []}).names == []\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "leaked = sorted(top & {'django', 'textual'})\n"
        "assert not leaked, leaked\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# --- failures -------------------------------------------------------------------


def assert_one_line(error: CatalogueError) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


def test_settings_module_that_fails_to_import() -> None:
    with pytest.raises(CatalogueError) as info:
        load_catalogue(fixture_project(settings="catproject.settings_broken"))
    message = assert_one_line(info.value)
    assert message == (
        "cannot load settings 'catproject.settings_broken': "
        "ModuleNotFoundError: No module named 'catproject_missing_dependency'"
    )
    assert info.value.traceback is not None
    assert "settings_broken.py" in info.value.traceback
    assert info.value.returncode == 1
    # What the project printed before failing is kept for the user.
    assert "catproject.settings_broken: loading" in info.value.stderr_tail


def test_settings_module_that_does_not_exist() -> None:
    with pytest.raises(CatalogueError) as info:
        load_catalogue(fixture_project(settings="catproject.nope"))
    assert assert_one_line(info.value) == (
        "cannot load settings 'catproject.nope': ModuleNotFoundError: No module named 'catproject.nope'"
    )


def test_no_settings_module_at_all(tmp_path: Path) -> None:
    project = write_manage_py(
        tmp_path,
        """\
        import os, sys
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
        """,
    )
    with pytest.raises(CatalogueError) as info:
        load_catalogue(project)
    message = assert_one_line(info.value)
    assert message.startswith("cannot load settings: ImproperlyConfigured: Requested setting")


def test_directory_without_manage_py(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError) as info:
        load_catalogue(Project(tmp_path / "manage.py", python=sys.executable))
    assert assert_one_line(info.value) == f"{tmp_path / 'manage.py'}: no such file"


def test_manage_py_that_is_not_django(tmp_path: Path) -> None:
    project = write_manage_py(tmp_path, 'print("just a script")\n')
    with pytest.raises(CatalogueError) as info:
        load_catalogue(project)
    message = assert_one_line(info.value)
    assert message.endswith("manage.py did not call django.core.management.execute_from_command_line")
    assert "just a script" in info.value.stderr_tail


def test_manage_py_that_exits(tmp_path: Path) -> None:
    project = write_manage_py(tmp_path, 'raise SystemExit("no database\\nconfigured")\n')
    with pytest.raises(CatalogueError) as info:
        load_catalogue(project)
    message = assert_one_line(info.value)
    assert message.endswith("manage.py failed: SystemExit: no database configured")


def test_timeout_kills_the_child(tmp_path: Path) -> None:
    project = write_manage_py(
        tmp_path,
        """\
        import subprocess, sys, time
        print("starting", flush=True)
        # A grandchild holding the pipes must not keep load_catalogue waiting.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        time.sleep(60)
        """,
    )
    with pytest.raises(CatalogueError) as info:
        load_catalogue(project, timeout=3.0)
    assert assert_one_line(info.value) == "listing the management commands timed out after 3s"
    assert "starting" in info.value.stderr_tail


def test_interpreter_that_does_not_exist(tmp_path: Path) -> None:
    project = Project(FIXTURE / "manage.py", python=str(tmp_path / "no-python"))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(project)
    assert assert_one_line(info.value).startswith(f"cannot start {tmp_path / 'no-python'}:")


def test_child_that_prints_no_document(tmp_path: Path) -> None:
    # An interpreter that dies before the catalogue runs: still a clear message.
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'fatal: broken interpreter' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    project = Project(FIXTURE / "manage.py", python=str(fake_python))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(project)
    assert assert_one_line(info.value) == (
        "the catalogue child exited with code 3 without a catalogue: fatal: broken interpreter"
    )
    assert info.value.returncode == 3
