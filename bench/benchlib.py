"""Shared pieces of the devconsole benchmarks: wrk, the servers compared, /proc readings, tables.

Every benchmark compares devconsole with ``manage.py runserver`` (and, for
throughput, a bare threaded WSGIServer with TCP_NODELAY as the ceiling)
*in the same run*: machines are noisy, so only medians of interleaved
repetitions and the ratios between them mean anything; absolute numbers from
different runs must not be compared.

Nothing here imports Django or Textual: the servers run in their own
processes, started the way a user starts them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
#: Ports the benchmarks may use (free ones are picked from this range).
DEFAULT_PORTS = (8841, 8859)
PING = "/ping/"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """Something the user must fix before the benchmark can run; one line."""


# ----------------------------------------------------------------- arguments
def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that only checks the script works (numbers mean nothing)"
    )
    parser.add_argument(
        "--ports",
        default=f"{DEFAULT_PORTS[0]}-{DEFAULT_PORTS[1]}",
        metavar="LO-HI",
        help="the range free ports are taken from (default %(default)s)",
    )
    return parser


def port_range(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)-(\d+)", text.strip())
    if not match or not 0 < int(match[1]) <= int(match[2]) < 65536:
        raise BenchError(f"--ports {text!r}: expected LO-HI, e.g. 8841-8859")
    return int(match[1]), int(match[2])


class Ports:
    """Hands out ports of a range that nothing is listening on right now."""

    def __init__(self, span: tuple[int, int]) -> None:
        self._next = span[0]
        self._last = span[1]

    def take(self) -> int:
        while self._next <= self._last:
            port = self._next
            self._next += 1
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise BenchError("no free port left in the --ports range; give a wider one")


def main_guard(run: Callable[[], int]) -> None:
    """Run ``run()`` and turn a :class:`BenchError` into one line and status 2."""
    try:
        code = run()
    except BenchError as exc:
        sys.stderr.write(f"bench: error: {exc}\n")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(code or 0)


# ----------------------------------------------------------------------- wrk
WRK_MISSING = (
    "wrk is not installed; it is the load generator of these benchmarks. Install it with "
    "'sudo apt-get install wrk' (Debian/Ubuntu), 'sudo dnf install wrk' (Fedora) or "
    "'brew install wrk' (macOS), then run this again"
)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(WRK_MISSING)
    return path


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return match[1] if match else "?"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    #: connect + write + timeout errors (the ones that mean something went wrong).
    socket_errors: int
    #: wrk counts each connection the server closes as a read error: with
    #: ``Connection: close`` they equal the responses and are expected.
    read_errors: int
    non_2xx: int
    #: Requests sent and responses received, when the counting script was used.
    sent: int | None = None
    received: int | None = None
    #: Seconds from the first response to the last (count.lua only).
    active: float | None = None

    @property
    def served_rps(self) -> float:
        """Responses per second while the load ran (excludes an idle tail)."""
        if self.received and self.active:
            return self.received / self.active
        return self.rps


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """The numbers of a ``wrk --latency`` report."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if done is None:
        raise BenchError(f"cannot read wrk's report: {output.strip()[-300:]!r}")
    seconds = _latency_ms(done[2] + done[3]) / 1000
    requests = int(done[1])
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    counted = re.search(r"devconsole-bench sent=(\d+) received=(\d+) active=([\d.]+)", output)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=float(rps[1]) if rps else requests / seconds,
        p50_ms=_latency_ms(p50[1]) if p50 else float("nan"),
        p99_ms=_latency_ms(p99[1]) if p99 else float("nan"),
        socket_errors=int(errors[1]) + int(errors[3]) + int(errors[4]) if errors else 0,
        read_errors=int(errors[2]) if errors else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        sent=int(counted[1]) if counted else None,
        received=int(counted[2]) if counted else None,
        active=float(counted[3]) if counted else None,
    )


def wrk_argv(
    url: str,
    *,
    duration: float,
    connections: int = 8,
    threads: int = 2,
    keepalive: bool = True,
    count: bool = False,
    limit: int = 0,
    stop_after: float = 0.0,
) -> list[str]:
    """The wrk command line.

    ``count`` adds ``count.lua``, which counts what was sent (for exact
    totals); ``limit`` stops after about that many responses and
    ``stop_after`` after that many seconds of load, leaving the sockets open
    so requests in flight are still answered: give a longer ``duration`` and
    interrupt wrk once the server is idle (see ``headless.run_wrk_async``).
    """
    threads = min(threads, connections)
    argv = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(round(duration), 1)}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if not keepalive:
        argv += ["-H", "Connection: close"]
    if count or limit or stop_after:
        argv += ["-s", str(BENCH_DIR / "count.lua"), url, "--", str(-(-limit // threads)), f"{stop_after:.3f}"]
    else:
        argv.append(url)
    return argv


def run_wrk(url: str, **options: object) -> WrkResult:
    argv = wrk_argv(url, **options)  # type: ignore[arg-type]
    duration = float(options.get("duration", 10))  # type: ignore[arg-type]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 60:.0f} s") from exc
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-300:]}")
    return parse_wrk(out.stdout)


# --------------------------------------------------------------- processes
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        raw = handle.read().decode()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        raw = handle.read().decode()
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def first_child_delay(pid: int) -> float | None:
    """Seconds from ``pid``'s start to the start of its first child process
    (10 ms resolution), or None if it has none."""
    kids = []
    for child in descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            kids.append(start_ticks(child))
    if not kids:
        return None
    return (min(kids) - start_ticks(pid)) / CLK_TCK


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size in MB, from ``/proc/PID/status`` (VmRSS)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes, their children, and so on."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as handle:
                    kids = [int(p) for p in handle.read().split()]
            except OSError:
                continue
            found += kids
            stack += kids
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and each of its descendants (those still alive)."""
    out: dict[int, float] = {}
    for each in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[each] = cpu_seconds(each)
    return out


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 8.0) -> None:
    """Ask politely (``sig`` to its process group), then terminate, then kill."""
    if proc.poll() is None:
        for each, wait in ((sig, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, each)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


def get_status(port: int, path: str = PING, timeout: float = 30.0) -> int | None:
    """One GET; the status, or None if nothing answers (connection refused)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_for_200(port: int, *, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll until ``GET /ping/`` answers 200; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_status(port, timeout=max(deadline - time.monotonic(), 0.1)) == 200:
            return time.monotonic()
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"the server on port {port} exited with status {proc.returncode} before answering")
        time.sleep(0.005)
    raise BenchError(f"nothing answered 200 on 127.0.0.1:{port}{PING} within {timeout:.0f} s")


# ------------------------------------------------------------------ the demo
@contextlib.contextmanager
def demo_database() -> Iterator[Path]:
    """The demo database every process started meanwhile uses.

    ``$DEVCONSOLE_BENCH_DB`` names one to reuse (prepared if needed: the
    smoke test shares one between scripts); otherwise a freshly migrated one
    in a temporary directory. Either way it is exported as
    ``DEVCONSOLE_DEMO_DB``, never the user's own demo database.
    """
    sys.path.insert(0, str(REPO_ROOT))
    from devconsole.demo import DemoError, ensure_demo_database

    previous = os.environ.get("DEVCONSOLE_DEMO_DB")
    shared = os.environ.get("DEVCONSOLE_BENCH_DB")
    with contextlib.ExitStack() as stack:
        if shared:
            path = Path(shared).resolve()
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="devconsole-bench-"))
            path = Path(tmp) / "demo.sqlite3"
        os.environ["DEVCONSOLE_DEMO_DB"] = str(path)
        try:
            try:
                ensure_demo_database(sys.executable)
            except DemoError as exc:
                raise BenchError(str(exc)) from exc
            yield path
        finally:
            if previous is None:
                os.environ.pop("DEVCONSOLE_DEMO_DB", None)
            else:
                os.environ["DEVCONSOLE_DEMO_DB"] = previous


def demo_dir() -> Path:
    from devconsole.demo import DEMO_DIR

    return DEMO_DIR


def demo_env() -> dict[str, str]:
    from devconsole.demo import demo_env as env

    merged = dict(os.environ)
    merged.update(env())
    merged["PYTHONUNBUFFERED"] = "1"
    return merged


# ------------------------------------------------------------------- servers
class Server:
    """A server process on its own port, started in its own process group."""

    name = "?"

    def __init__(self, port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        #: Extra environment for the server process (and its children).
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PING}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            self.argv(),
            cwd=demo_dir(),
            env={**demo_env(), **self.env},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> float:
        assert self.proc is not None
        return wait_for_200(self.port, timeout=timeout, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class Runserver(Server):
    """``python manage.py runserver --noreload`` on the demo project."""

    name = "runserver"

    def argv(self) -> list[str]:
        return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"]


class ServeScript(Server):
    """One of the modes of ``bench/serve.py`` (devconsole's server child, or the bare ceiling)."""

    mode = "?"

    def argv(self) -> list[str]:
        return [sys.executable, str(BENCH_DIR / "serve.py"), self.mode, str(self.port)]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.proc.stdin is not None:
            # serve.py stops cleanly (server child included) when its stdin closes.
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        super().stop()


class Devconsole(ServeScript):
    name = "devconsole"
    mode = "devconsole"


class Bare(ServeScript):
    name = "bare"
    mode = "bare"


class Tuned(ServeScript):
    name = "tuned"
    mode = "tuned"


SERVERS: dict[str, type[Server]] = {cls.name: cls for cls in (Runserver, Devconsole, Bare, Tuned)}


# -------------------------------------------------------------------- output
def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned;
    also valid Markdown, so it can be pasted into docs/benchmarks.md as is."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=False)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    out = [f"### {title}", "", line(cells[0]), rule] + [line(row) for row in cells[1:]]
    return "\n".join(out) + "\n"


#: Set by ``all.py``: the file each verdict is also written to, one JSON
#: object a line, for its summary table.
SUMMARY_ENV = "DEVCONSOLE_BENCH_SUMMARY"


def verdict(
    ok: bool,
    text: str,
    *,
    figure: str | None = None,
    runserver: str | None = None,
    devconsole: str | None = None,
    target: str | None = None,
) -> str:
    """A target's ``PASS``/``FAIL`` line. Under ``all.py`` it is also a row
    of the summary table: ``figure`` (else ``text``), runserver's and
    devconsole's figures and the target, where given."""
    record(figure or text, runserver, devconsole, target, ok)
    return f"{'PASS' if ok else 'FAIL'}  {text}"


def record(figure: str, runserver: str | None, devconsole: str | None, target: str | None, met: bool | None) -> None:
    """A row of ``all.py``'s summary table (nothing when not run from it)."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    row = {"figure": figure, "runserver": runserver, "devconsole": devconsole, "target": target, "met": met}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def versions() -> str:
    """One line: machine, date and the versions the numbers belong to."""
    try:
        from importlib import metadata

        django = metadata.version("django")
        textual = metadata.version("textual")
    except Exception:
        django = textual = "?"
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs ({cpu}); "
        f"Linux {platform.release()}; Python {platform.python_version()}; Django {django}; "
        f"Textual {textual}; wrk {wrk_version()}"
    )


# ------------------------------------------------------- as a user runs them
class Launch:
    """A command started the way a user starts it: in a terminal (a pty of
    ``size`` columns × rows, ``TERM=xterm-256color``), in the demo directory.

    The pty's output is drained by a thread and thrown away; ``stop()`` quits
    the process the way a user would (``quit_keys`` typed, else SIGINT), then
    by force.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        *,
        quit_keys: bytes = b"",
        size: tuple[int, int] = (160, 48),
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        output: Callable[[bytes], None] | None = None,
    ) -> None:
        """``cwd`` and ``env``: the demo's unless given (``TERM`` set all the
        same); ``output``: given what the pty shows, else it is thrown away."""
        self.name = name
        self.cwd = cwd
        self.env = env
        self.output = output
        self.argv = argv
        self.port = port
        self.quit_keys = quit_keys
        self.size = size
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._master = -1
        self._drain: threading.Thread | None = None

    def start(self) -> Launch:
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        cols, rows = self.size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(self.env) if self.env is not None else demo_env()
        env["TERM"] = "xterm-256color"
        env.pop("TEXTUAL", None)
        self.started_at = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd or demo_dir(),
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self._master = master
        self._drain = threading.Thread(target=self._read, name=f"pty-{self.name}", daemon=True)
        self._drain.start()
        return self

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                break
            if not data:
                break
            if self.output is not None:
                self.output(data)

    def first_200(self, timeout: float = 60.0) -> float:
        """Seconds from launch to the first 200 on /ping/."""
        assert self.proc is not None
        return wait_for_200(self.port, timeout=timeout, proc=self.proc) - self.started_at

    def first_child(self) -> float | None:
        """Seconds from launch to the start of the first child process (the
        console's server child or fork server; runserver's autoreloaded child)."""
        assert self.proc is not None
        return first_child_delay(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.quit_keys and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.write(self._master, self.quit_keys)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        stop_process(self.proc)
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1
        if self._drain is not None:
            self._drain.join(timeout=2)


def devconsole_argv(port: int, *extra: str) -> list[str]:
    """``devconsole --demo 127.0.0.1:PORT``, the installed script if there is one."""
    script = shutil.which("devconsole", path=str(Path(sys.executable).parent))
    head = [script] if script else [sys.executable, "-m", "devconsole"]
    return [*head, "--demo", f"127.0.0.1:{port}", *extra]


def runserver_argv(port: int, *extra: str) -> list[str]:
    return [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", *extra]


#: ctrl+q: devconsole's "quit now" key.
DEVCONSOLE_QUIT = b"\x11"


def launches(ports: Ports) -> list[Launch]:
    """What a user runs: runserver and devconsole, each with and without autoreload."""
    out = []
    for name, argv, keys in (
        ("runserver", runserver_argv, b""),
        ("runserver --noreload", lambda p: runserver_argv(p, "--noreload"), b""),
        ("devconsole", devconsole_argv, DEVCONSOLE_QUIT),
        ("devconsole --noreload", lambda p: devconsole_argv(p, "--noreload"), DEVCONSOLE_QUIT),
    ):
        port = ports.take()
        out.append(Launch(name, argv(port), port, quit_keys=keys))
    return out


# ------------------------------------------------- each process of a tree
def pss_mb(pid: int | str = "self") -> float:
    """Proportional set size in MB, from ``/proc/PID/smaps_rollup``: each
    page shared by n processes counts 1/n in each, so the PSS of a tree of
    forked processes adds up to the memory the tree really uses (RSS counts
    a shared page once per process)."""
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wakeups(pid: int) -> int:
    """Context switches of every thread of ``pid`` so far (voluntary and
    not): each is the process being woken or preempted."""
    total = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/status") as handle:
                for line in handle:
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
    return total


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def process_roles(root: int) -> dict[int, str]:
    """What each process of a runserver or devconsole tree is, by its place
    in the tree: runserver's autoreloader and its serving child; the
    console, its fork servers (level 0; the apps level, single-threaded with
    a single-threaded child that has children of its own, level 1), the
    server child and the spare (forked after the generation serving, waiting
    to serve: the youngest of level 1's children when it has more than
    one), and the spare's twin (its child, waiting too); a twin that serves
    is the server child, and its spare stands in for it."""
    roles = {root: "main"}
    try:
        cmdline = Path(f"/proc/{root}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return roles
    runserver = b"runserver" in cmdline
    roles[root] = "autoreloader" if runserver else "console"
    parent_of: dict[int, int] = {}
    children_of: dict[int, list[int]] = {}
    stack = [root]
    while stack:
        current = stack.pop()
        children_of[current] = _children(current)
        for child in children_of[current]:
            parent_of[child] = current
            stack.append(child)
    if runserver:
        roles.update(dict.fromkeys(parent_of, "serving child"))
        return roles

    def fork_server(pid: int) -> bool:
        return thread_count(pid) == 1 and bool(children_of.get(pid))

    def server_children(parent: int) -> None:
        for child in children_of.get(parent, []):
            roles[child] = "server child"
            # A server child's own child is its twin: waiting (one thread),
            # or serving while the spare it was forked from stands in for it.
            for twin in children_of.get(child, []):
                if thread_count(twin) > 1:
                    roles[child] = "spare (standing in)"
                    roles[twin] = "server child"
                else:
                    roles[twin] = "spare's twin"

    for level0 in children_of[root]:
        if not _is_forkserver(level0):
            # A spawned server (--noreload), or another child (a command).
            roles[level0] = "server child" if thread_count(level0) > 1 else "child"
            continue
        roles[level0] = "fork server (level 0)"
        for child in children_of.get(level0, []):
            if not fork_server(child):
                roles[child] = "server child"  # level 0 serves itself (no level 1 it can fork from)
                continue
            grandchildren = children_of.get(child, [])
            if any(fork_server(grandchild) for grandchild in grandchildren):
                roles[child] = "fork server (apps level)"
                for level1 in grandchildren:
                    roles[level1] = "fork server (level 1)"
                    server_children(level1)
            else:
                roles[child] = "fork server (level 1)"
                server_children(child)
    # Both have threads (the spare starts its event flusher before it is
    # needed): the spare is the one forked last.
    for level1 in [pid for pid, role in roles.items() if role == "fork server (level 1)"]:
        serving = [pid for pid in children_of.get(level1, []) if roles.get(pid) == "server child"]
        if len(serving) > 1:
            roles[max(serving, key=_start_time)] = "spare"
    return roles


def _start_time(pid: int) -> int:
    """When ``pid`` started (clock ticks since boot; 0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as handle:
                kids += [int(p) for p in handle.read().split()]
    return kids


def _is_forkserver(pid: int) -> bool:
    try:
        return b"devconsole.child.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
