"""Every benchmark, one after the other, as one Markdown report on stdout.

Runs throughput, console (saturation), memory, startup, idle and keepalive
(reloads under keep-alive load) with their
defaults (or ``--quick``), sequentially so they do not disturb each other,
and prints their tables in order; this is what ``docs/benchmarks.md`` is
made from. Progress goes to stderr. The full run takes about 19 minutes.

    python bench/all.py > results.md
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ORDER = ("throughput.py", "console.py", "memory.py", "startup.py", "idle.py", "keepalive.py")


def main() -> int:
    extra = sys.argv[1:]
    if extra not in ([], ["--quick"]):
        sys.stderr.write("usage: all.py [--quick]  (run a script on its own for its options)\n")
        return 2
    failed = []
    for name in ORDER:
        started = time.monotonic()
        sys.stderr.write(f"== {name} ...\n")
        sys.stderr.flush()
        run = subprocess.run([sys.executable, str(BENCH / name), *extra], stdout=subprocess.PIPE, text=True)
        sys.stdout.write(run.stdout.rstrip() + "\n\n")
        sys.stdout.flush()
        sys.stderr.write(f"== {name}: exit {run.returncode} after {time.monotonic() - started:.0f} s\n")
        if run.returncode != 0:
            failed.append(name)
    if failed:
        sys.stderr.write(f"failed: {', '.join(failed)}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
