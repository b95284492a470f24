"""Command output: a management command printing fast, in a shell and in the Commands view.

A copy of the demo project gains one command, ``flood``, that prints
``--mb`` MiB of 100-byte lines through its ``self.stdout`` (Django's
``OutputWrapper``, one ``write`` per line, as commands print). It runs:

* ``shell``   — ``sh -c 'python manage.py flood --force-color | cat > /dev/null'``:
  a pipe drained by ``cat``, the way output leaves a command in a shell
  pipeline (a terminal would be slower still: it draws every line);
* ``console`` — the real ``DevConsoleApp``, headless (160×48), its Commands
  view showing the run: started through the view's runner with the options
  the view adds, timed until the run has ended *and* its last line is in the
  view's output widget.

The cells are interleaved (shell, console, shell, …); the table shows the
medians, the ratio and the console's CPU per run. Counts are checked: the
run's line total must be the number of lines the command printed, and the
widget and the runner must stay within their bounds.

    python bench/commands.py                 # 100 MiB, 3 repetitions
    python bench/commands.py --mb 20 --reps 5
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    REPO_ROOT,
    BenchError,
    Ports,
    base_parser,
    demo_database,
    fmt,
    main_guard,
    median,
    port_range,
    table,
    verdict,
    versions,
)
from headless import own_cpu, wait_until

LINE_BYTES = 100

FLOOD = f"""\
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print --mb MiB of 100-byte lines (a benchmark of command output)."

    def add_arguments(self, parser):
        parser.add_argument("--mb", type=int, default=100)

    def handle(self, *args, **options):
        lines = options["mb"] * 1024 * 1024 // {LINE_BYTES}
        write = self.stdout.write
        for i in range(lines):
            write("%09d " % i + "x" * {LINE_BYTES - 11})
"""


def flood_project(root: Path) -> Path:
    """A copy of the demo project with the ``flood`` command; its manage.py."""
    from devconsole.demo import DEMO_MANAGE_PY

    demo = DEMO_MANAGE_PY.parent
    target = root / "demo"
    shutil.copytree(demo, target, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    (target / "shop" / "management" / "commands" / "flood.py").write_text(FLOOD, encoding="utf-8")
    return target / "manage.py"


def shell_run(manage_py: Path, mb: int, env: dict[str, str]) -> float:
    """Seconds for ``python manage.py flood | cat > /dev/null`` in a shell."""
    command = f"{shlex.quote(sys.executable)} manage.py flood --mb {mb} --force-color | cat > /dev/null"
    start = time.perf_counter()
    subprocess.run(["sh", "-c", command], cwd=manage_py.parent, env=env, check=True)
    return time.perf_counter() - start


async def console_runs(manage_py: Path, port: int, mb: int, reps: int, shell: Any) -> list[tuple[float, float]]:
    """``reps`` runs of ``flood`` from the Commands view of one headless
    console, each after a shell run (``shell()``); (seconds, console CPU s) each."""
    from devconsole.console.listen import BindError, bind, parse_addrport
    from devconsole.console.project import Project
    from devconsole.demo import demo_env
    from devconsole.ui.app import DevConsoleApp
    from devconsole.ui.screens.commands import CommandsScreen, runner_for

    address = parse_addrport(f"127.0.0.1:{port}")
    try:
        sock = bind(address)
    except BindError as exc:
        raise BenchError(exc.strerror or str(exc)) from None
    project = Project(manage_py, env=tuple(demo_env().items()))
    app = DevConsoleApp(project=project, address=address, sock=sock)
    expected = mb * 1024 * 1024 // LINE_BYTES
    cells: list[tuple[float, float]] = []
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(lambda: app.state.hello is not None, 60, "the server child's hello")
            app.action_view("commands")
            screen = await wait_until(
                lambda: app.screen if isinstance(app.screen, CommandsScreen) and app.screen._ready else None,
                30,
                "the Commands view",
            )
            runner = runner_for(app)
            assert runner is not None
            for _ in range(reps):
                cells.append((shell(), float("nan")))
                cpu0 = own_cpu()
                start = time.perf_counter()
                run = runner.start("flood", ["--mb", str(mb)], color=True)
                screen.select_run(run)
                await wait_until(
                    lambda run=run: not run.running and screen._shown_seq == run.total_lines,
                    600,
                    "the run's last line in the output widget",
                    interval=0.01,
                )
                elapsed = time.perf_counter() - start
                cells.append((elapsed, own_cpu() - cpu0))
                if run.returncode != 0 or run.total_lines != expected:
                    raise BenchError(
                        f"flood: exit {run.returncode}, {run.total_lines} lines counted, {expected} printed"
                    )
                log = screen.query_one("#run-output")
                if len(run.lines) > runner.max_lines or len(log.lines) > runner.max_lines + 1:
                    raise BenchError("an output buffer went past its bound")
                await pilot.pause()
    finally:
        app.shutdown()
    return cells


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="MiB the command prints (default %(default)s)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions, interleaved (default %(default)s)")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.reps = 5, 1
    if args.mb < 1 or args.reps < 1:
        parser.error("--mb and --reps must be ≥ 1")
    ports = Ports(port_range(args.ports))
    print(
        f"# Command output: manage.py flood ({args.mb} MiB of {LINE_BYTES}-byte lines), "
        f"shell pipe vs the Commands view, {args.reps} repetitions interleaved"
    )
    print(f"Machine: {versions()}")
    print(flush=True)
    from devconsole.demo import demo_env

    with demo_database(), tempfile.TemporaryDirectory(prefix="devconsole-bench-") as tmp:
        manage_py = flood_project(Path(tmp))
        env = {**__import__("os").environ, **demo_env(), "PYTHONPATH": str(REPO_ROOT)}
        shell_run(manage_py, 1, env)  # warm the page cache and the .pyc files
        cells = asyncio.run(
            console_runs(manage_py, ports.take(), args.mb, args.reps, lambda: shell_run(manage_py, args.mb, env))
        )
    shell = [c[0] for c in cells[0::2]]
    console = [c[0] for c in cells[1::2]]
    cpu = [c[1] for c in cells[1::2]]
    ratio = median(console) / median(shell)
    rows = [
        ["shell (pipe → cat)", fmt(median(shell), 2), "1.00×", "-", " ".join(fmt(s, 2) for s in shell)],
        [
            "Commands view",
            fmt(median(console), 2),
            f"{ratio:.2f}×",
            fmt(median(cpu), 2),
            " ".join(fmt(s, 2) for s in console),
        ],
    ]
    print(table("flood", ["where", "seconds", "vs shell", "console CPU s", "per repetition"], rows))
    print(verdict(ratio <= 2, f"the Commands view runs it in {ratio:.2f}× its time in a shell (target ≤ 2×)"))
    return 0


if __name__ == "__main__":
    main_guard(run)
