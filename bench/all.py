"""Every benchmark of the performance targets, one after the other, as one
Markdown report on stdout, ending with one summary table.

Runs throughput (instrumentation cost), console (saturation), memory (PSS
of every process, and the console staying flat), startup, idle, keepalive
(reloads under keep-alive load), reload (the minimal project, then the large
one), browser reload, insight (request capture) and command output, with
their defaults (or ``--quick``), sequentially so they do not disturb each
other, and prints their tables in order; this is what ``docs/benchmarks.md``
is made from. Every target a script judges (its ``PASS``/``FAIL`` lines) is
also a row of the summary table at the end: figure, runserver's, devconsole's,
the target, met or not. A script that cannot run here (no wrk, no Chromium,
Wagtail not installed, a mode this checkout lacks) is one row saying why, not
the end of the run. Progress goes to stderr. The full run takes about an hour.

    python bench/all.py > results.md
    python bench/all.py --quick                      # checks every script runs
    python bench/all.py --only idle.py,memory.py     # some of them
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from benchlib import SUMMARY_ENV, table  # noqa: E402

#: Longest a script may run (its own default run; ``--quick`` runs take seconds).
SCRIPT_TIMEOUT = 45 * 60


@dataclass(frozen=True)
class Step:
    """One run of one script: ``label`` in the summary, ``args`` after the
    script; ``mode``, when given, is a flag the script must offer (a
    checkout without it gets a row saying so); ``judged``: the script
    judges targets, so a run of it that judged none failed."""

    label: str
    script: str
    args: tuple[str, ...] = ()
    mode: str | None = None
    judged: bool = True


ORDER = (
    Step("throughput", "throughput.py"),
    Step("console under saturation", "console.py"),
    Step("memory", "memory.py"),
    Step("startup", "startup.py", judged=False),
    Step("idle", "idle.py"),
    Step("reloads under keep-alive load", "keepalive.py"),
    Step("reload, minimal project", "reload.py"),
    Step("reload, large project", "reload.py", ("--large",), mode="--large"),
    Step("browser reload", "browser_reload.py"),
    Step("request insight", "insight.py"),
    Step("command output", "commands.py"),
)


def offers(script: Path, flag: str) -> bool:
    """Whether ``script --help`` lists ``flag``."""
    try:
        run = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in run.stdout


def run_step(step: Step, quick: bool) -> list[dict[str, object]]:
    """Run one step, print its report; the summary rows it produced."""
    script = BENCH / step.script
    if not script.exists():
        return [_missing(step, f"bench/{step.script} is not in this checkout")]
    if step.mode is not None and not offers(script, step.mode):
        return [_missing(step, f"bench/{step.script} has no {step.mode} mode in this checkout")]
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", prefix="bench-summary-", delete=False) as handle:
        summary = handle.name
    env = dict(os.environ, **{SUMMARY_ENV: summary})
    argv = [sys.executable, str(script), *step.args, *(["--quick"] if quick else [])]
    started = time.monotonic()
    sys.stderr.write(f"== {step.label}: {' '.join(argv[1:])} ...\n")
    sys.stderr.flush()
    out, err, code = _run(argv, env)
    sys.stdout.write(out.rstrip() + "\n\n")
    sys.stdout.flush()
    sys.stderr.write(f"== {step.label}: exit {code} after {time.monotonic() - started:.0f} s\n")
    try:
        with open(summary, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    finally:
        os.unlink(summary)
    for row in rows:
        row["figure"] = f"{step.label}: {row['figure']}"
    # Exit 1 with a missed target among its rows: it finished and said so.
    # Any other non-zero exit (a crash, an error, a timeout), or a judging
    # script that judged nothing, is a failure of the run, not a row to skip.
    finished = code == 0 or (code == 1 and any(row.get("met") is False for row in rows))
    if not finished:
        lines = [line for line in err.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {code}"
        rows.append(_missing(step, f"did not finish (exit {code}): {reason}", failed=True))
    elif not rows and step.judged:
        rows.append(_missing(step, "finished without judging any target", failed=True))
    elif not rows:
        rows.append({"figure": f"{step.label}: ran (no target; see its tables)", "met": None})
    return rows


def _run(argv: list[str], env: dict[str, str], timeout: float | None = None) -> tuple[str, str, int]:
    """Run a script: its stdout, its stderr (also shown as it comes: the
    progress lines) and its exit status (-1 when it timed out). Each pipe
    has its own reading thread and nothing else reads it: every line kept."""
    timeout = SCRIPT_TIMEOUT if timeout is None else timeout
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    err: list[str] = []

    def tee(stream: IO[str]) -> None:
        for line in stream:
            err.append(line)
            sys.stderr.write(line)
            sys.stderr.flush()

    def gather(stream: IO[str]) -> None:
        out.append(stream.read())

    readers = [
        threading.Thread(target=tee, args=(proc.stderr,), daemon=True),
        threading.Thread(target=gather, args=(proc.stdout,), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # its own clean-up stops its servers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.append(f"timed out after {timeout / 60:g} min\n")
        code = -1
    for reader in readers:
        reader.join(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    return "".join(out), "".join(err), code


def _missing(step: Step, why: str, *, failed: bool = False) -> dict[str, object]:
    """A row of what was not measured; ``failed``: a failure of the run (a
    script that crashed), not something this checkout lacks."""
    sys.stderr.write(f"== {step.label}: not run: {why}\n")
    return {"figure": f"{step.label}: not measured — {why}", "met": None, "unmeasured": True, "failed": failed}


def verdict_line(rows: list[dict[str, object]]) -> tuple[str, bool]:
    """The last line of the report, and whether the run failed."""
    missed = sum(1 for r in rows if r.get("met") is False)
    met = sum(1 for r in rows if r.get("met") is True)
    crashed = sum(1 for r in rows if r.get("failed"))
    unmeasured = sum(1 for r in rows if r.get("unmeasured"))
    text = (
        f"{len(rows)} rows: {met} met their target, {missed} missed it, {unmeasured} not measured"
        f" ({crashed} of them because a script failed).\n"
    )
    return text, bool(missed or crashed)


def summary_table(rows: list[dict[str, object]]) -> str:
    def cell(value: object) -> str:
        return "–" if value in (None, "") else str(value).replace("|", "/")

    met = {True: "yes", False: "**no**", None: "–"}
    return table(
        "Summary: every target, from this run",
        ["figure", "runserver", "devconsole", "target", "met?"],
        [
            [
                cell(r["figure"]),
                cell(r.get("runserver")),
                cell(r.get("devconsole")),
                cell(r.get("target")),
                met[r.get("met")],
            ]  # type: ignore[index]
            for r in rows
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each script's --quick run (numbers mean nothing)")
    parser.add_argument(
        "--only",
        metavar="SCRIPTS",
        help="comma-separated script names, e.g. idle.py,memory.py ('reload.py --large' for a mode's run)",
    )
    args = parser.parse_args()
    steps = list(ORDER)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        steps = [step for step in steps if (f"{step.script} {step.mode}" if step.mode else step.script) in wanted]
        if not steps:
            parser.error(f"--only {args.only!r} names none of {', '.join(sorted({s.script for s in ORDER}))}")
    rows: list[dict[str, object]] = []
    for step in steps:
        rows += run_step(step, args.quick)
    sys.stdout.write(summary_table(rows) + "\n")
    text, failed = verdict_line(rows)
    sys.stdout.write(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
