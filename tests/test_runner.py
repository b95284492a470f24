"""The command runner: real ``manage.py`` subprocesses of the fixture and demo
projects, their streamed output, exit status, interruption and the
in-terminal path the console uses while suspended."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from devconsole.commands.runner import (
    CommandRunner,
    RunStatus,
    clean_output_line,
    strip_sgr,
)
from devconsole.console.project import Project

from .conftest import wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "catproject"


#: A manage.py without Django, for what does not need Django: it starts in
#: milliseconds, so these tests stay fast on a loaded machine.
SCRIPT = """
import os, signal, sys, time
args = [a for a in sys.argv[1:] if a != "--force-color"]
command, args = args[0], args[1:]
if command == "lines":
    for i in range(int(args[0])):
        print(i)
elif command == "sleep":
    print("up", flush=True)
    time.sleep(float(args[0]))
    print("woke")
elif command == "stubborn":
    # Ignores SIGINT, saying so (what the test waits for).
    signal.signal(signal.SIGINT, lambda *_: print("ignored SIGINT", flush=True))
    print("up", flush=True)
    time.sleep(60)
elif command == "write":
    sys.stdout.write(args[0].encode().decode("unicode_escape"))
elif command == "wait_for_ctrl_c":
    try:
        open(args[0], "w").close()
        time.sleep(30)
    except KeyboardInterrupt:
        print("command got it", flush=True)
elif command == "exit":
    print("bye", flush=True)
    sys.exit(int(args[0]))
"""


@pytest.fixture
def runner() -> CommandRunner:
    runner = CommandRunner(Project(FIXTURE / "manage.py", python=sys.executable))
    yield runner
    runner.close()


@pytest.fixture
def quick(tmp_path: Path) -> CommandRunner:
    """A runner for a project whose manage.py is :data:`SCRIPT`."""
    (tmp_path / "manage.py").write_text(SCRIPT)
    runner = CommandRunner(Project(tmp_path / "manage.py", python=sys.executable))
    yield runner
    runner.close()


def shell(runner: CommandRunner, code: str, **kwargs: object):  # type: ignore[no-untyped-def]
    # -v 0: no "objects imported automatically" banner before the output.
    return runner.start("shell", ["-v", "0", "-c", code], **kwargs)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_output_streams_while_the_command_runs(quick: CommandRunner) -> None:
    run = quick.start("sleep", ["1.5"])
    assert run.status == RunStatus.RUNNING and run.pid is not None
    assert shlex.split(run.command_line) == list(run.argv)
    assert run.argv == (sys.executable, "manage.py", "sleep", "1.5", "--force-color")
    wait_for(lambda: quick.lines_since(run, 0) == [(1, "up")], timeout=30)
    assert run.running, "the first line arrived only after the end"
    assert quick.wait(run, 30)
    assert run.output_text() == "up\nwoke"
    assert run.status == RunStatus.SUCCEEDED and run.returncode == 0
    assert 1.4 < run.elapsed() < 30
    assert run.status_line().startswith("succeeded · ")
    assert quick.lines_since(run, 2) == [] and quick.lines_since(run, 1) == [(2, "woke")]


def test_exit_status(quick: CommandRunner) -> None:
    run = quick.start("exit", ["3"])
    assert quick.wait(run, 30)
    assert run.status == RunStatus.FAILED and run.returncode == 3 and run.output_text() == "bye"
    assert run.status_line().startswith("failed (exit 3) · ")


def test_django_usage_error_is_a_failed_run(runner: CommandRunner) -> None:
    run = runner.start("hello", ["ann"])  # --since and --to-file/--to-stdout missing
    assert runner.wait(run, 30)
    assert run.status == RunStatus.FAILED and run.returncode == 2
    assert "the following arguments are required: --since" in run.output_text()


def test_interrupt_sends_sigint_to_the_run_only(runner: CommandRunner) -> None:
    """A real Django command (``shell -c``) stopped like Ctrl+C in a shell."""
    run = shell(runner, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    wait_for(lambda: "sleeping" in run.output_text(), timeout=30)
    assert runner.interrupt(run)
    assert runner.wait(run, 10)
    assert run.status == RunStatus.INTERRUPTED
    assert "KeyboardInterrupt" in run.output_text()
    assert run.status_line().startswith("interrupted (")
    assert not runner.interrupt(run)  # nothing left to interrupt
    assert not alive(run.pid or 0)


def test_a_run_that_ignores_sigint_is_terminated_on_the_second_interrupt(quick: CommandRunner) -> None:
    run = quick.start("stubborn")
    wait_for(lambda: "up" in run.output_text(), timeout=30)
    assert quick.interrupt(run)
    wait_for(lambda: "ignored SIGINT" in run.output_text(), timeout=30)
    assert run.running
    assert quick.interrupt(run)
    assert quick.wait(run, 10)
    assert run.status == RunStatus.INTERRUPTED and run.returncode == -signal.SIGTERM
    assert run.status_line().startswith("interrupted (SIGTERM)")


def test_several_runs_at_once(quick: CommandRunner) -> None:
    runs = [quick.start("sleep", ["0.5"]) for _ in range(3)]
    assert len(quick.running()) == 3
    for run in runs:
        assert quick.wait(run, 30)
        assert run.output_text() == "up\nwoke"
    assert quick.running() == []
    assert [r.id for r in quick.history()] == [r.id for r in runs]


def test_colours_are_kept_and_other_sequences_made_visible(quick: CommandRunner) -> None:
    text = (
        "\\x1b[31mred\\x1b[0m title:\\x1b]0;pwned\\x07 clear:\\x1b[2J bell:\\x07\\n"
        "50%\\r100%\\n"
        "\\x1b[0m\\n"  # a bare style reset (Django's, after the newline): not a line
        "after\\n"
    )
    run = quick.start("write", [text])
    assert quick.wait(run, 30)
    assert [line for _, line in run.lines] == [
        "\x1b[31mred\x1b[0m title:\\x1b]0;pwned\\x07 clear:\\x1b[2J bell:\\x07",
        "100%",
        "\x1b[0mafter",
    ]
    assert run.output_text().splitlines()[0] == "red title:\\x1b]0;pwned\\x07 clear:\\x1b[2J bell:\\x07"


def test_clean_output_line() -> None:
    assert clean_output_line("\x1b[1;32mok\x1b[0m\r\n") == "\x1b[1;32mok\x1b[0m"
    assert clean_output_line("a\tb") == "a   b"
    assert clean_output_line("\x9b31m C1 CSI") == "\\x9b31m C1 CSI"
    assert clean_output_line("\x1b[?1049h alt screen") == "\\x1b[?1049h alt screen"
    assert clean_output_line("x" * 50, limit=10) == "x" * 10 + "…"


def test_django_colours_with_force_color() -> None:
    from devconsole.demo import DEMO_MANAGE_PY, demo_env, ensure_demo_database

    ensure_demo_database(sys.executable)
    runner = CommandRunner(Project(DEMO_MANAGE_PY, python=sys.executable, env=tuple(demo_env().items())))
    try:
        coloured = runner.start("demo_report", ["posts", "--limit", "1"])
        plain = runner.start("demo_report", ["posts", "--limit", "1"], color=False)
        assert runner.wait(coloured, 30) and runner.wait(plain, 30)
    finally:
        runner.close()
    assert coloured.argv[-1] == "--force-color" and "--force-color" not in plain.argv
    last = [line for _, line in coloured.lines][-1]
    assert last.startswith("\x1b[") and strip_sgr(last).startswith("1 of ")
    assert "\x1b" not in plain.output_text() and plain.output_text() == coloured.output_text()


def test_output_buffer_and_history_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text(SCRIPT)
    runner = CommandRunner(Project(tmp_path / "manage.py", python=sys.executable), max_lines=50, max_history=3)
    try:
        run = runner.start("lines", ["500"])
        assert runner.wait(run, 30)
        assert run.total_lines == 500 and len(run.lines) == 50 and run.dropped == 450
        assert [line for _, line in run.lines][-1] == "499"
        assert runner.lines_since(run, 0)[0] == (451, "450")
        extra = []
        for _ in range(4):
            extra.append(runner.start("exit", ["0"]))
            assert runner.wait(extra[-1], 30)
        assert runner.history() == extra[1:]
        # Running runs are never dropped, even past the bound.
        sleepers = [runner.start("sleep", ["60"]) for _ in range(4)]
        assert runner.history() == sleepers
    finally:
        runner.close()


def test_interpreter_that_cannot_start_is_an_error() -> None:
    runner = CommandRunner(Project(FIXTURE / "manage.py", python="/nonexistent/python"))
    run = runner.start("check")
    assert run.status == RunStatus.ERROR and not run.running
    assert run.error is not None and run.error.startswith("cannot start /nonexistent/python")
    assert run.status_line().startswith("error: cannot start")
    assert runner.history() == [run]


def test_close_stops_every_run(quick: CommandRunner) -> None:
    runs = [quick.start("sleep", ["60"]), quick.start("stubborn")]
    for run in runs:
        wait_for(lambda run=run: "up" in run.output_text(), timeout=30)
    started = time.monotonic()
    quick.close(timeout=1)
    assert time.monotonic() - started < 5
    assert [r.status for r in runs] == [RunStatus.INTERRUPTED, RunStatus.INTERRUPTED]
    assert [r.returncode for r in runs] == [-signal.SIGINT, -signal.SIGKILL]
    assert not any(alive(r.pid or 0) for r in runs)
    with pytest.raises(RuntimeError):
        quick.start("exit", ["0"])


def test_close_without_blocking_still_stops_the_run(quick: CommandRunner) -> None:
    run = quick.start("stubborn")
    wait_for(lambda: "up" in run.output_text(), timeout=30)
    quick.close(timeout=0.5, block=False)
    closer = next(t for t in threading.enumerate() if t.name == "devconsole-runs-close")
    assert not closer.daemon  # the interpreter waits for it at exit
    closer.join(10)
    assert not run.running and run.returncode == -signal.SIGKILL


def test_run_in_terminal_uses_the_terminal_and_waits(runner: CommandRunner, capfd: pytest.CaptureFixture[str]) -> None:
    """The seam the console calls inside ``App.suspend()``: stdio inherited,
    blocking, recorded in the history, SIGINT handler restored after."""
    before = signal.getsignal(signal.SIGINT)
    run = runner.run_in_terminal("shell", ["-c", "print(6 * 7)"])
    out = capfd.readouterr().out
    assert out.splitlines()[-1] == "42"
    assert run.in_terminal and run.status == RunStatus.SUCCEEDED and run.returncode == 0
    assert "--force-color" not in run.argv and run.command_line.endswith("manage.py shell -c 'print(6 * 7)'")
    assert list(run.lines) == [] and runner.history()[-1] is run
    assert signal.getsignal(signal.SIGINT) is before
    again = runner.rerun(run)
    assert again.in_terminal and again.status == RunStatus.SUCCEEDED
    assert capfd.readouterr().out.splitlines()[-1] == "42"


CTRL_C_SCRIPT = """
import os, signal, sys, threading, time
from pathlib import Path
from devconsole.console.project import Project
from devconsole.commands.runner import CommandRunner

manage_py, ready = Path(sys.argv[1]), Path(sys.argv[2])
runner = CommandRunner(Project(manage_py, python=sys.executable))

def ctrl_c():
    while not ready.exists():  # waits for the file the command creates once it runs
        time.sleep(0.01)
    # What the terminal does on Ctrl+C: SIGINT to the whole foreground process group.
    os.killpg(os.getpgrp(), signal.SIGINT)

threading.Thread(target=ctrl_c).start()
run = runner.run_in_terminal("wait_for_ctrl_c", [str(ready)])
print("console still here:", run.status, flush=True)
"""


def test_ctrl_c_during_a_terminal_run_reaches_the_command_not_the_console(tmp_path: Path) -> None:
    """While a command has the terminal, Ctrl+C (SIGINT to the foreground
    process group) stops the command and leaves the console running. Run in a
    session of its own, so the signal cannot reach pytest."""
    import subprocess

    (tmp_path / "manage.py").write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-c", CTRL_C_SCRIPT, str(tmp_path / "manage.py"), str(tmp_path / "ready")],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["command got it", "console still here: succeeded"]


def _read_line_by_line(data: bytes) -> list[str]:
    """What a run's reader gave before it read in blocks: ``readline`` per
    line, each cleaned, SGR codes alone on a line carried to the next."""
    import io

    from devconsole.commands import runner

    stream, out, carry = io.BytesIO(data), [], ""
    for raw in iter(lambda: stream.readline(runner._READ_LIMIT), b""):
        line = carry + clean_output_line(raw.decode("utf-8", "replace"))
        if line and not strip_sgr(line):
            carry = line
            continue
        carry = ""
        out.append(line)
    return out


def test_block_reads_give_the_lines_reading_line_by_line_gave() -> None:
    """However the pipe cuts the output (one byte, a partial UTF-8
    character, 70 KB without a line end), the lines are the same."""
    import random

    from devconsole.commands.runner import _LineReader

    words = [b"a", b"\n", b"\n", b"\r", b"\t", b"\x1b[31m", b"\x1b[0m", b"\x1b]0;x\x07", "\u00e9".encode()]
    words += ["\u00e9".encode()[:1], b"\x7f", b"x" * 500, b"y" * 5000, b"z" * 70000]
    plain = [b"line 1\n", b"\n", b"\x1b[0m\n", b"q" * 4001 + b"\n"]
    rng = random.Random(17)
    for _ in range(600):
        pool = plain if rng.random() < 0.3 else words
        data = b"".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        reader, got, at = _LineReader(), [], 0
        while at < len(data):
            size = rng.choice([1, 3, 100, 4096, 70000, 300000])
            got += reader.feed(data[at : at + size])
            at += size
        got += reader.end()
        assert got == _read_line_by_line(data), data[:200]


def test_a_flood_of_output_keeps_exact_counts_and_the_last_lines(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text(SCRIPT)
    runner = CommandRunner(Project(tmp_path / "manage.py", python=sys.executable), max_lines=1000)
    run = runner.start("lines", ["200000"])
    assert runner.wait(run, 60)
    assert run.status is RunStatus.SUCCEEDED
    assert run.total_lines == 200000 and run.dropped == 199000
    assert [line for _, line in run.lines] == [str(i) for i in range(199000, 200000)]
    assert [seq for seq, _ in run.lines] == list(range(199001, 200001))
    assert [line for _, line in runner.lines_since(run, 199990)] == [str(i) for i in range(199990, 200000)]
