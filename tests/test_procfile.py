"""Reading side-process declarations: Procfile.dev, pyproject's table, .env."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devconsole.console.procfile import (
    ProcessSpec,
    ProcfileError,
    apply_pyproject,
    expand_port,
    find_file,
    load,
    parse_dotenv,
    parse_procfile,
)
from devconsole.console.sideprocs import process_env, virtualenv_bin

BASE = Path("/srv/project")


def process_names(processes: list[ProcessSpec]) -> list[str]:
    return [spec.name for spec in processes]


def test_procfile_lines_comments_blanks_and_web_skipped() -> None:
    text = """
# the stack
web: python manage.py runserver 0.0.0.0:$PORT
css:   npx tailwindcss -i in.css -o out.css --watch
worker: celery -A proj worker -l info   # a comment stays part of the shell command

mail: python -m aiosmtpd -n -l localhost:${PORT}1
"""
    processes, skipped = parse_procfile(text, base=BASE)
    assert skipped == ["web"]
    assert process_names(processes) == ["css", "worker", "mail"]
    assert processes[0] == ProcessSpec("css", "npx tailwindcss -i in.css -o out.css --watch", BASE)
    assert processes[2].command == "python -m aiosmtpd -n -l localhost:${PORT}1"
    assert all(spec.restart == "on-failure" and not spec.restart_on_change for spec in processes)


@pytest.mark.parametrize(
    "command",
    ["devconsole 127.0.0.1:$PORT", "./manage.py runserver", "python /app/manage.py runserver $PORT", "devconsole"],
)
def test_web_lines_running_the_server_are_skipped(command: str) -> None:
    assert parse_procfile(f"web: {command}", base=BASE) == ([], ["web"])


def test_a_web_line_running_something_else_is_kept() -> None:
    processes, skipped = parse_procfile("web: gunicorn proj.wsgi", base=BASE)
    assert skipped == [] and process_names(processes) == ["web"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("css: npm run watch\njust a line\n", "Procfile.dev:2: expected 'name: command', got 'just a line'"),
        ("\n\nworker:\n", "Procfile.dev:3: process 'worker' has no command"),
        ("a: x\nb: y\na: z\n", "Procfile.dev:3: process 'a' is declared twice"),
        ("bad$name: x\n", "Procfile.dev:1: 'bad$name' is not a process name (letters, digits, _ . -)"),
    ],
)
def test_a_malformed_procfile_is_one_line_with_its_number(text: str, message: str) -> None:
    with pytest.raises(ProcfileError) as error:
        parse_procfile(text, base=BASE)
    assert str(error.value) == message
    assert "\n" not in str(error.value)


def test_pyproject_adds_options_and_processes() -> None:
    processes, _ = parse_procfile("worker: celery -A proj worker\ncss: npm run watch\n", base=BASE)
    table = {
        "worker": {"restart": "always", "restart_on_change": True, "env": {"LEVEL": "debug", "N": 2}},
        "css": {"cwd": "frontend"},
        "mail": {"command": "  mailpit  ", "restart": "never"},
    }
    result = apply_pyproject(processes, table, base=BASE)
    assert process_names(result) == ["worker", "css", "mail"]
    worker, css, mail = result
    assert worker.command == "celery -A proj worker" and worker.restart == "always" and worker.restart_on_change
    assert dict(worker.env) == {"LEVEL": "debug", "N": "2"}
    assert css.cwd == BASE / "frontend" and css.restart == "on-failure"
    assert mail == ProcessSpec("mail", "mailpit", BASE, restart="never")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"x": {"command": "y", "restart": "sometimes"}}, "x.restart: expected one of never, on-failure, always"),
        ({"x": {"cwd": "a"}}, "x: no command (and no Procfile.dev line)"),
        ({"x": {"command": ""}}, "x: command must be a non-empty string"),
        ({"x": {"command": "y", "ready": "port"}}, "x: unknown option 'ready'"),
        ({"x": {"command": "y", "env": {"A": True}}}, "x.env.A: expected a string"),
        ({"x": {"command": "y", "restart_on_change": "yes"}}, "x.restart_on_change: expected true or false"),
        ({"x": "y"}, "x: expected a table of options"),
    ],
)
def test_a_malformed_pyproject_table_is_one_line(table: dict[str, object], message: str) -> None:
    with pytest.raises(ProcfileError) as error:
        apply_pyproject([], table, base=BASE)
    assert str(error.value) == "pyproject.toml: tool.devconsole.processes." + message


def test_dotenv_as_honcho_reads_it() -> None:
    text = """
# settings
export DEBUG=1
SECRET_KEY='a#b $c'
GREETING="hello \\"you\\"\\nsecond"
URL=postgres://u@h/db  # the database
EMPTY=
SPACED = value
not a line
1BAD=x
"""
    assert parse_dotenv(text) == {
        "DEBUG": "1",
        "SECRET_KEY": "a#b $c",
        "GREETING": 'hello "you"\nsecond',
        "URL": "postgres://u@h/db",
        "EMPTY": "",
        "SPACED": "value",
    }


def test_environment_order_and_path() -> None:
    spec = ProcessSpec("w", "x", BASE, env=(("A", "process"), ("S", "process")))
    base = {"A": "base", "B": "base", "C": "base", "PATH": "/usr/bin:/venv/bin:/bin"}
    env = process_env(
        spec,
        base=base,
        dotenv=[("B", "dotenv"), ("A", "dotenv"), ("S", "dotenv")],
        bin_dir="/venv/bin",
        overrides={"S": "--settings"},
    )
    assert env["A"] == "process" and env["B"] == "dotenv" and env["C"] == "base"
    assert env["S"] == "--settings"  # the command line wins over .env and the process's own
    assert "PORT" not in env  # a Node tool would take it as its own port
    assert env["PATH"] == "/venv/bin:/usr/bin:/bin"


def test_colour_asked_for_unless_the_environment_says_otherwise() -> None:
    plain = process_env(ProcessSpec("w", "x", BASE), base={})
    assert (plain["FORCE_COLOR"], plain["CLICOLOR_FORCE"], plain["PY_COLORS"]) == ("1", "1", "1")
    users = process_env(ProcessSpec("w", "x", BASE), base={"FORCE_COLOR": "0"})
    assert users["FORCE_COLOR"] == "0" and users["PY_COLORS"] == "1"
    own = process_env(ProcessSpec("w", "x", BASE, env=(("PY_COLORS", "0"),)), base={})
    assert own["PY_COLORS"] == "0"
    assert "FORCE_COLOR" not in process_env(ProcessSpec("w", "x", BASE), base={"NO_COLOR": "1"})


def test_port_is_substituted_in_the_command_shell_quoted() -> None:
    assert expand_port("vite --port $PORT", 8123) == "vite --port 8123"
    assert expand_port("x --url http://localhost:${PORT}/ $PORTS $PORT_X", 80) == (
        "x --url http://localhost:80/ $PORTS $PORT_X"
    )


def test_path_gets_the_interpreter_dir_only_for_a_virtualenv(tmp_path: Path) -> None:
    system = tmp_path / "usr" / "bin"
    system.mkdir(parents=True)
    assert virtualenv_bin(str(system / "python3")) is None
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert virtualenv_bin(str(venv / "bin" / "python")) == str(venv / "bin")


def test_the_server_name_is_reserved_and_64_processes_at_most() -> None:
    with pytest.raises(ProcfileError, match=r"^Procfile\.dev:2: 'server' is the development server's name"):
        parse_procfile("a: x\nserver: y\n", base=BASE)
    with pytest.raises(ProcfileError, match=r"server' is the development server's name"):
        apply_pyproject([], {"server": {"command": "x"}}, base=BASE)
    text = "".join(f"p{number}: sleep 1\n" for number in range(64))
    assert len(parse_procfile(text, base=BASE)[0]) == 64
    with pytest.raises(ProcfileError, match=r"^Procfile\.dev:65: more than 64 processes"):
        parse_procfile(text + "one_more: sleep 1\n", base=BASE)


def test_readiness_options() -> None:
    worker = ProcessSpec("vite", "npm run dev", BASE)
    [spec] = apply_pyproject([worker], {"vite": {"ready_port": 5173, "ready_line": r"ready in \d+"}}, base=BASE)
    assert spec.ready_port == 5173 and spec.ready_line == r"ready in \d+"
    for options, message in (
        ({"ready_port": "5173"}, "ready_port: expected a port number"),
        ({"ready_port": 70000}, "ready_port: expected a port number"),
        ({"ready_line": "(unclosed"}, "ready_line: not a regular expression"),
    ):
        with pytest.raises(ProcfileError, match=message):
            apply_pyproject([worker], {"vite": options}, base=BASE)


def test_a_skipped_web_line_is_said_with_its_line_number(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "Procfile.dev").write_text("# stack\ncss: npm run watch\n\nweb: python manage.py runserver $PORT\n")
    declared = load(tmp_path)
    assert declared.skipped_lines == ("Procfile.dev:4: web runs runserver: skipped, devconsole serves",)


def test_command_line_processes_take_the_pyproject_options(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "Procfile.dev").write_text("worker: celery worker\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.devconsole.processes.worker]\nrestart = "always"\nrestart_on_change = true\ncommand = "old"\n'
    )
    if sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    extra = parse_procfile("worker: celery -A proj worker -l debug", base=tmp_path)[0]
    [worker] = load(tmp_path, extra).processes
    assert worker.command == "celery -A proj worker -l debug"
    assert worker.restart == "always" and worker.restart_on_change


def test_load_finds_files_beside_manage_py_or_at_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    project = tmp_path / "src" / "site"
    project.mkdir(parents=True)
    (project / "manage.py").write_text("")
    assert load(project).processes == ()
    (tmp_path / "Procfile.dev").write_text("web: ./manage.py runserver\ncss: npm run watch\n")
    (project / ".env").write_text("KEY=value\n")
    (tmp_path / ".env").write_text("ROOT=yes\n")
    declared = load(project)
    assert process_names(list(declared.processes)) == ["css"]
    # As honcho: a root Procfile runs its processes in its directory, with the .env beside it.
    assert declared.processes[0].cwd == tmp_path
    assert declared.skipped == ("web",) and declared.dotenv == (("ROOT", "yes"),)
    assert declared.sources == (tmp_path / "Procfile.dev",)
    (project / "Procfile.dev").write_text("js: npm run dev\n")
    assert find_file(project, "Procfile.dev") == project / "Procfile.dev"
    beside = load(project)
    assert process_names(list(beside.processes)) == ["js"]
    assert beside.processes[0].cwd == project and beside.dotenv == (("KEY", "value"),)


def test_load_reads_the_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "Procfile.dev").write_text("worker: celery worker\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.devconsole.processes.worker]\nrestart_on_change = true\n'
        '[tool.devconsole.processes.mail]\ncommand = "mailpit"\n'
    )
    declared = load(tmp_path)
    if sys.version_info < (3, 11) and declared.note is not None:
        assert declared.note.startswith("pyproject.toml: [tool.devconsole.processes] needs Python 3.11")
        return
    assert process_names(list(declared.processes)) == ["worker", "mail"]
    assert declared.processes[0].restart_on_change
    (tmp_path / "pyproject.toml").write_text("[tool.devconsole.processes\n")
    with pytest.raises(ProcfileError, match=r"^pyproject\.toml: "):
        load(tmp_path)


def test_load_reports_a_malformed_procfile(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "Procfile.dev").write_text("# ok\nworker celery\n")
    with pytest.raises(ProcfileError, match=r"^Procfile\.dev:2: expected 'name: command'"):
        load(tmp_path)
