"""``devconsole`` on the command line.

``devconsole [addrport] [options]`` mirrors ``manage.py runserver``;
``devconsole commands [--json]`` prints the management-command catalogue;
``devconsole replay FILE`` shows a recorded session.

Every mistake the user can make here ends with one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from devconsole import __version__
from devconsole.console.interpreter import Interpreter, InterpreterError, Probe
from devconsole.console.listen import AddressError, BindError, ListenAddress, bind, parse_addrport
from devconsole.console.processes import EXIT_SIGNALS
from devconsole.console.project import Project, ProjectError, locate_project, project_for
from devconsole.model.sanitize import clean_line
from devconsole.wire import control

if TYPE_CHECKING:
    from devconsole.console.procfile import Declared

USAGE_ERROR = 2
#: The console's thread switch interval (seconds; Python's default is 5 ms):
#: a save, a stop or a child's event is acted on within this long of the
#: thread that waits for it waking, however busy the UI is.
SWITCH_INTERVAL_S = 0.0005


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see devconsole --help)")


def fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    # Messages quote the user's words and other programs' output (the
    # project interpreter's stderr): no escape sequence reaches the terminal.
    sys.stderr.write(f"devconsole: error: {clean_line(message)}\n")
    raise SystemExit(status)


@dataclass(frozen=True)
class ServerOption:
    """One option of the server, shared by ``devconsole`` and ``manage.py
    devconsole`` (one definition: :func:`add_server_options`)."""

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    #: Passed on to the project's runserver as it was typed.
    runserver: bool = False
    #: May be given several times (a list of values).
    repeat: bool = False

    @property
    def dest(self) -> str:
        return self.flags[0].lstrip("-").replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None


SERVER_OPTIONS: tuple[ServerOption, ...] = (
    ServerOption(("--noreload",), "do not restart the server when code changes"),
    ServerOption(("--nothreading",), "serve one request at a time"),
    ServerOption(("--ipv6", "-6"), "listen on IPv6 (default [::1]:8000)"),
    ServerOption(("--nostatic",), "do not serve static files (staticfiles' runserver)", runserver=True),
    ServerOption(("--insecure",), "serve static files even with DEBUG off (staticfiles' runserver)", runserver=True),
    ServerOption(("--skip-checks",), "skip the system checks (and the migrations check)", runserver=True),
    ServerOption(
        ("--python",),
        "the interpreter that runs the project (a file, a virtualenv directory or a command); "
        "default: $VIRTUAL_ENV's, else a .venv or venv beside manage.py or above, else devconsole's own",
        metavar="PATH",
    ),
    ServerOption(
        ("--record",),
        "save the session's events to FILE, readable by you alone, with cookies, credentials and "
        "secret-named query fields masked (replay it with 'devconsole replay FILE')",
        metavar="FILE",
    ),
    ServerOption(("--record-secrets",), "with --record: keep cookies, credentials and tokens in clear"),
    ServerOption(("--no-browser-reload",), "do not make open browser pages follow the code (live reload)"),
    ServerOption(
        ("--no-processes",),
        "do not run the side processes of Procfile.dev and [tool.devconsole.processes]",
    ),
    ServerOption(
        ("--process",),
        "run a side process too, as a Procfile line would (repeatable), e.g. --process 'worker: celery -A proj worker'",
        metavar="'NAME: COMMAND'",
        repeat=True,
    ),
    ServerOption(
        ("--n-plus-one",),
        "flag a request as N+1 when one query shape runs N or more times in it (default 5)",
        metavar="N",
    ),
)

#: How the server children learn ``--n-plus-one`` (read by devconsole.child.insight).
N_PLUS_ONE_ENV = "DEVCONSOLE_N_PLUS_ONE"

PASSTHROUGH_EPILOG = (
    "Other options of your project's runserver (an override's own, e.g. Daphne's --noasgi) "
    "are passed to it; write an option that takes a value as --name=value."
)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The server's options (and ``addrport``), for the CLI and ``manage.py devconsole``."""
    parser.add_argument("addrport", nargs="?", help="optional port number, or ipaddr:port (default 127.0.0.1:8000)")
    for option in SERVER_OPTIONS:
        if option.repeat:
            parser.add_argument(
                *option.flags, dest=option.dest, metavar=option.metavar, help=option.help, action="append"
            )
        elif option.takes_value:
            parser.add_argument(*option.flags, dest=option.dest, metavar=option.metavar, help=option.help)
        else:
            parser.add_argument(*option.flags, dest=option.dest, action="store_true", help=option.help)


def server_options_argv(options: Mapping[str, Any]) -> list[str]:
    """The ``devconsole`` arguments for parsed server ``options`` (a dict or
    ``vars(namespace)``): how ``manage.py devconsole`` hands over."""
    argv: list[str] = []
    if options.get("addrport"):
        argv.append(str(options["addrport"]))
    for option in SERVER_OPTIONS:
        value = options.get(option.dest)
        if option.repeat and value:
            argv += [f"{option.flags[0]}={item}" for item in value]
        elif option.takes_value and value:
            argv.append(f"{option.flags[0]}={value}")
        elif not option.takes_value and value:
            argv.append(option.flags[0])
    return argv


def split_passthrough(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` split into what ``parser`` knows and the options it does not
    (for the project's runserver).

    An unknown option's value cannot be told from the address without the
    runserver's parser, so ``--name=value`` is the sure form; a bare word
    after an unknown option is taken as its value only when there is more
    than one bare word (``devconsole --noasgi 8001`` keeps 8001 the address).
    """
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    items: list[list[str]] = []  # [kind, token]: known, bare, unknown, pos (after --)
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            items.append(["known", token])
            items += [["pos", rest] for rest in argv[i + 1 :]]
            break
        if token.startswith("-") and token != "-" and not _is_number(token):
            action = actions.get(token.split("=", 1)[0])
            if action is None:
                items.append(["unknown", token])
            else:
                items.append(["known", token])
                if action.nargs != 0 and "=" not in token and i + 1 < len(argv):
                    i += 1
                    items.append(["known", argv[i]])
        else:
            items.append(["bare", token])
        i += 1
    bare = sum(1 for kind, _ in items if kind == "bare")
    for index, (kind, token) in enumerate(items[:-1]):
        if kind == "unknown" and "=" not in token and bare > 1 and items[index + 1][0] == "bare":
            items[index + 1][0] = "value"
            bare -= 1
    known = [token for kind, token in items if kind in ("known", "bare", "pos")]
    passthrough = [token for kind, token in items if kind in ("unknown", "value")]
    return known, passthrough


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _project_options(parser: argparse.ArgumentParser, *, python: bool) -> None:
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="the Django project (the directory holding manage.py); default: the nearest manage.py in the current directory or its parents, or one level down",
    )
    parser.add_argument("--demo", action="store_true", help="use the demo project shipped with devconsole")
    parser.add_argument(
        "--settings", help='the settings module, e.g. "myproject.settings.dev" (like manage.py --settings)'
    )
    parser.add_argument("--pythonpath", help='a directory to add to the Python path, e.g. "/home/me/myproject"')
    if python:
        parser.add_argument(
            "--python", metavar="PATH", help="the interpreter that runs the project (see devconsole --help)"
        )


def server_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="devconsole",
        description="Run Django's development server in a live terminal console. "
        "Other verbs: 'devconsole commands [--json]' lists the management commands, "
        "'devconsole replay FILE' shows a recorded session.",
        epilog=PASSTHROUGH_EPILOG,
        allow_abbrev=False,
    )
    add_server_options(parser)
    _project_options(parser, python=False)
    parser.add_argument("--version", action="version", version=f"devconsole {__version__}")
    return parser


def resolve_project(args: argparse.Namespace, own: Interpreter | None = None) -> Project:
    """The project named by ``--demo`` / ``--project`` / the current directory,
    with its interpreter chosen (``own``: the one to use when nothing else
    is asked for, e.g. the python running ``manage.py devconsole``)."""
    python = getattr(args, "python", None)
    if args.demo:
        if args.project:
            fail("--demo and --project cannot be used together")
        from devconsole.demo import DEMO_MANAGE_PY, DemoError, demo_env, ensure_demo_database

        try:
            # The demo runs with devconsole's own interpreter unless --python says otherwise.
            project = project_for(
                DEMO_MANAGE_PY,
                settings=args.settings,
                pythonpath=args.pythonpath,
                python=python,
                env=tuple(demo_env().items()),
                search=False,
            )
        except ProjectError as exc:
            fail(str(exc))
        check_interpreter(project)
        try:
            ensure_demo_database(project.python)
        except DemoError as exc:
            fail(str(exc), 1)
        return project
    try:
        project = locate_project(args.project, settings=args.settings, pythonpath=args.pythonpath, python=python)
    except ProjectError as exc:
        fail(str(exc))
    if own is not None and python is None:
        project = replace(project, python=own.path, python_origin=own.origin)
    return project


def check_interpreter(project: Project, probe: Probe | None = None) -> None:
    """Fail with one line (exit 2) when the project's interpreter cannot run it."""
    try:
        (probe or project.probe()).result()
    except InterpreterError as exc:
        fail(str(exc))


@dataclass
class Signalled:
    """Where the run is, for the signal handler of :func:`exit_on_signals`."""

    #: ``starting`` (no app yet), ``running`` (``app`` is set), ``closing``.
    phase: str = "starting"
    app: Any = None
    #: The last exit signal received, 0 for none.
    signum: int = 0


@contextmanager
def exit_on_signals() -> Iterator[Signalled]:
    """SIGTERM and SIGHUP end the run through ``finally`` (children stopped,
    port freed, recording closed), never the default handler's sudden death.

    Starting, a signal raises ``SystemExit(128 + signal)``. Running, the app
    handles them in its event loop (it exits as on ``q``, so Textual restores
    the terminal) and gives these handlers back as it ends; one that comes
    here meanwhile asks the app to exit the same way. Closing, a signal is
    only noted, so the clean-up is not cut short. The exit status is then
    128 + the signal.
    """
    signalled = Signalled()

    def handler(signum: int, _frame: object) -> None:
        signalled.signum = signum
        if signalled.phase == "starting":
            raise SystemExit(128 + signum)
        if signalled.phase == "running" and signalled.app is not None:
            signalled.app.exit(return_code=128 + signum)

    previous = {signum: signal.getsignal(signum) for signum in EXIT_SIGNALS}
    for signum in EXIT_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield signalled
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def open_record(path: str, *, keep_secrets: bool) -> IO[str]:
    """The recording's file, created for the user alone; one line and exit 2 if it cannot be."""
    from devconsole.model.recording import RecordFile

    record_path = Path(path)
    if not record_path.parent.is_dir():
        fail(f"--record {path}: directory {record_path.parent} does not exist")
    try:
        return cast("IO[str]", RecordFile(record_path, keep_secrets=keep_secrets))
    except OSError as exc:
        fail(f"--record {path}: {exc.strerror}")


def run_server(argv: list[str], own: Interpreter | None = None) -> int:
    parser = server_parser()
    known, passthrough = split_passthrough(parser, argv)
    args = parser.parse_args(known)
    try:
        address: ListenAddress = parse_addrport(args.addrport, ipv6=args.ipv6)
    except AddressError as exc:
        fail(str(exc))
    project = resolve_project(args, own)
    runserver_args = tuple(
        option.flags[0] for option in SERVER_OPTIONS if option.runserver and getattr(args, option.dest)
    )
    project = replace(project, runserver_args=runserver_args + tuple(passthrough))
    if args.record_secrets and not args.record:
        fail("--record-secrets needs --record FILE")
    if args.n_plus_one is not None:
        if not args.n_plus_one.isdigit() or int(args.n_plus_one) < 2:
            fail(f"--n-plus-one takes a whole number of 2 or more, not {args.n_plus_one!r}")
        # Inherited by every server child (and fork server) started from now on.
        os.environ[N_PLUS_ONE_ENV] = str(int(args.n_plus_one))
    declared, process_error = declared_processes(project, args)
    if args.no_browser_reload:
        os.environ[control.BROWSER_RELOAD_ENV] = "0"  # every child started from now on
    try:
        sock = bind(address)
    except BindError as exc:
        fail(exc.strerror or str(exc))
    # Opened (and so emptied) only once the port is ours: a busy port leaves
    # an old recording as it was.
    try:
        record = open_record(args.record, keep_secrets=args.record_secrets) if args.record else None
    except SystemExit:
        sock.close()
        raise
    # Started last, nothing can fail() after it and leave it running: it
    # runs while the server starts and the UI is imported; the demo's was
    # done before its database was prepared.
    probe = None if args.demo else project.probe()
    with exit_on_signals() as signalled:
        status = _serve(project, address, sock, args, probe, record, signalled, (declared, process_error))
    return status


def declared_processes(project: Project, args: argparse.Namespace) -> tuple[Declared | None, str | None]:
    """The side processes to run: the project's declaration (none with
    ``--no-processes``) plus each ``--process``; and the one line saying
    what is wrong with a malformed declaration (the console still starts).
    A malformed ``--process`` is the user's typing: one line and exit 2."""
    from devconsole.console import procfile

    extra: list[procfile.ProcessSpec] = []
    for value in args.process or ():
        try:
            specs, skipped = procfile.parse_procfile(value, base=project.root, label="--process")
        except procfile.ProcfileError as exc:
            fail(str(exc).replace("--process:1: ", "--process: "))
        if not specs and not skipped:
            fail(f"--process {value!r}: expected 'name: command'")
        extra += specs
    if len(extra) > procfile.MAX_PROCESSES:
        fail(f"--process: more than {procfile.MAX_PROCESSES} processes")
    # The --process ones run even when the project's declaration is malformed.
    declared = procfile.Declared(processes=tuple(extra))
    error: str | None = None
    if not args.no_processes:
        try:
            declared = procfile.load(project.root, extra)
        except procfile.ProcfileError as exc:
            error = str(exc)
    return declared, error


def _serve(
    project: Project,
    address: ListenAddress,
    sock: socket.socket,
    args: argparse.Namespace,
    probe: Probe | None,
    record: IO[str] | None,
    signalled: Signalled,
    processes: tuple[Declared | None, str | None] = (None, None),
) -> int:
    """Run the session and the app; the exit status (128 + a signal that ended it)."""
    from devconsole.console.debugger import DebugBroker
    from devconsole.console.session import Session

    # The console's threads (the file watcher, the children's readers, the
    # reloader) each wait for something and then have a few lines to run;
    # while the UI draws they would wait for the interpreter's lock up to the
    # default 5 ms switch interval, on every save and every stop.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Before any child starts: every generation (forked ones too) inherits its socket's path.
    broker = DebugBroker()
    try:
        broker.start()
        project = replace(project, env=project.env + tuple(broker.env.items()))
        # The server starts now: Django's start-up in the child overlaps the UI's import.
        session = Session(
            project,
            address,
            sock,
            reload=not args.noreload,
            use_threading=not args.nothreading,
            record=record,
            processes=processes[0],
            process_error=processes[1],
        )
    except BaseException:
        broker.close()
        raise
    app = None
    try:
        if probe is not None and probe.failed:
            check_interpreter(project, probe)
        session.start()
        from devconsole.ui.app import DevConsoleApp

        if probe is not None:
            check_interpreter(project, probe)  # closes the session on the way out

        app = DevConsoleApp(session=session, debug_broker=broker, own_process=True)
        signalled.app, signalled.phase = app, "running"
        app.run()
    finally:
        signalled.phase = "closing"
        broker.abort_all()  # a paused request sees EOF and finishes: its generation can stop
        session.close(say=_say)
        broker.close()
        if record is not None:
            _close_record(record)
    if signalled.signum:
        return 128 + signalled.signum
    return app.return_code or 0


def _say(line: str) -> None:
    """One line on stderr, once the terminal is the user's again."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _close_record(record: IO[str]) -> None:
    """Close the recording; if writing it failed, one line on stderr says so."""
    try:
        record.close()
    except OSError as exc:  # a file object that buffered what it could not write
        failure: str | None = exc.strerror or str(exc)
    else:
        failure = getattr(record, "failure", None)
    if failure:
        sys.stderr.write(f"devconsole: recording stopped: {failure} ({record.name}); it holds what came before\n")


def run_replay(argv: list[str]) -> int:
    parser = _Parser(prog="devconsole replay", description="Show a session recorded with --record.")
    parser.add_argument("file", help="a recording made with devconsole --record FILE")
    parser.add_argument(
        "--speed", type=float, default=0.0, help="play back at this speed (1 = real time); default: all at once"
    )
    args = parser.parse_args(argv)
    from devconsole.model.recording import RecordingError, load_recording

    try:
        recording = load_recording(Path(args.file))
    except RecordingError as exc:
        fail(str(exc))
    from devconsole.ui.app import DevConsoleApp

    app = DevConsoleApp(recording=recording, speed=args.speed, own_process=True)
    app.run()
    return app.return_code or 0


def run_commands(argv: list[str]) -> int:
    parser = _Parser(prog="devconsole commands", description="List the project's management commands.")
    _project_options(parser, python=True)
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    args = parser.parse_args(argv)
    project = resolve_project(args)
    if not args.demo:
        check_interpreter(project)
    from devconsole.commands.catalogue import CatalogueError, format_table, load_catalogue

    try:
        catalogue = load_catalogue(project)
    except CatalogueError as exc:
        fail(str(exc), 1)
    if args.json:
        import json

        sys.stdout.write(json.dumps(catalogue.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(format_table(catalogue))
    return 0


#: Options (of any verb) whose value is the next word: skipped when looking for the verb.
_VALUE_OPTIONS = frozenset({"--project", "--settings", "--pythonpath", "--python", "--record", "--speed", "--process"})


def split_verb(argv: list[str]) -> tuple[str | None, list[str]]:
    """The verb (``commands``, ``replay``) wherever it is among the words,
    and the other arguments: options may come before or after it."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            break
        if token.startswith("-"):
            if token in _VALUE_OPTIONS:
                i += 1
        else:
            if token in VERBS:
                return token, argv[:i] + argv[i + 1 :]
            break  # the first bare word is not a verb: it is the address
        i += 1
    return None, argv


def main(argv: list[str] | None = None, *, own: Interpreter | None = None) -> int:
    """``own``: the interpreter to use when neither --python nor
    ``$VIRTUAL_ENV`` nor a virtualenv says otherwise (``manage.py devconsole``
    passes the python running it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verb, rest = split_verb(argv)
    try:
        if verb == "replay":
            return run_replay(rest)
        if verb == "commands":
            return run_commands(rest)
        return run_server(rest, own)
    except KeyboardInterrupt:
        return 130


VERBS = ("replay", "commands")


if __name__ == "__main__":
    raise SystemExit(main())
