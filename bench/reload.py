"""Reload: from saving a views.py edit to the new code being served,
devconsole against ``manage.py runserver``, in the same run.

Both run as a user runs them (in a terminal: a pty, 160×48) with autoreload
on, each on its own copy of the demo project (same code, same database
content). The same edit is saved into each copy in turn (the ``/ping/`` view
returns a new 4-byte body); after each save the page is polled every
``--poll`` ms with a new connection until the new body comes back. Counted:
the time from the save (the file closed) to the first new body; polls that
were refused (ECONNREFUSED), failed (reset, timeout, status other than 200).
Then ``--model-reloads`` saves of ``shop/models.py`` (imported during
``django.setup()``: devconsole rebuilds its level-1 fork server for them), with
``/ping/`` answering a constant of that module.
After the reloads, the CPU of each process tree is read over ``--idle``
seconds with no changes (the console with its watcher, fork servers and server;
runserver with its autoreloader's polling).

    python bench/reload.py                 # 10 reloads each, 30 s idle
    python bench/reload.py --reloads 20 --idle 60
    python bench/reload.py --quick         # checks the script works
    python bench/reload.py --heavy         # the demo plus Wagtail and DRF
    python bench/reload.py --large         # wagtail start + DRF + 30 apps (see below)

``--heavy`` adds Wagtail's apps (and their dependencies: modelcluster,
taggit, treebeard...) and Django REST framework to both copies' settings:
a project whose ``django.setup()`` imports much more, which runserver
pays on every reload and devconsole's fork server once. Those packages must be
importable by the interpreter that runs this script (e.g. a separate
virtualenv with ``pip install wagtail djangorestframework`` and devconsole).

``--large`` builds a real large project from the package index alone:
``wagtail start`` (from the installed wagtail), Django REST framework, 30
generated apps (a model, a serializer, a viewset, ten URL patterns each), and
a URLconf with Wagtail's admin, documents and API and a DRF router over every
app: a view edit there pays for that URLconf under runserver, and for the
project's own modules alone under devconsole (level 1 holds the libraries).
Same requirements as ``--heavy`` (the bench says what to install).
"""

from __future__ import annotations

import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    DEVCONSOLE_QUIT,
    BenchError,
    Launch,
    Ports,
    base_parser,
    demo_database,
    demo_dir,
    devconsole_argv,
    fmt,
    main_guard,
    median,
    port_range,
    ratio,
    table,
    tree_cpu,
    verdict,
)

#: How long one reload may take before the run is declared broken.
RELOAD_TIMEOUT = 30.0
#: Save → new code served, median: the demo, and --large.
TARGET_MS = 15.0
TARGET_LARGE_MS = 30.0
TARGET_RATIO = 6.0
#: A models.py edit on --large: at least this many times faster than runserver.
TARGET_LARGE_MODELS_RATIO = 5.0

VIEW = """    response = HttpResponse(b"pong", content_type="text/plain")"""


@dataclass
class Result:
    name: str
    times_ms: list[float] = field(default_factory=list)
    refused: int = 0
    failed: int = 0
    polls: int = 0
    idle_cpu_s: float = float("nan")
    idle_console_cpu_s: float = float("nan")


def poll_once(port: int, timeout: float) -> tuple[str, bytes]:
    """``("ok", body)``, ``("refused", b"")`` or ``("failed", b"")``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/ping/", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        return ("ok", body) if response.status == 200 else ("failed", b"")
    except ConnectionRefusedError:
        return "refused", b""
    except (OSError, http.client.HTTPException):
        return "failed", b""
    finally:
        conn.close()


def save_and_wait(
    launch: Launch, views: Path, body: bytes, result: Result, poll_s: float, *, new_text: str | None = None
) -> None:
    """Save the edit (the /ping/ body, or ``new_text``), then poll until ``body`` answers."""
    if new_text is None:
        text = views.read_text()
        start = text.index('HttpResponse(b"') + len('HttpResponse(b"')
        end = text.index('"', start)
        new_text = text[:start] + body.decode() + text[end:]
    views.write_text(new_text)
    saved = time.monotonic()
    deadline = saved + RELOAD_TIMEOUT
    while True:
        outcome, got = poll_once(launch.port, timeout=5.0)
        result.polls += 1
        if outcome == "refused":
            result.refused += 1
        elif outcome == "failed":
            result.failed += 1
        elif got == body:
            result.times_ms.append((time.monotonic() - saved) * 1000)
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{launch.name}: the new code was not served {RELOAD_TIMEOUT:g} s after the save")
        if launch.proc is not None and launch.proc.poll() is not None:
            raise BenchError(f"{launch.name} exited with status {launch.proc.returncode}")
        time.sleep(poll_s)


def point_ping_at_models(root: Path) -> None:
    """Make /ping/ answer ``shop.models.MARK``: a models edit becomes visible."""
    views = root / "shop" / "views.py"
    text = views.read_text()
    start = text.index('HttpResponse(b"')
    end = text.index('"', start + len('HttpResponse(b"')) + 1
    views.write_text(text[:start] + 'HttpResponse(__import__("shop.models").models.MARK.encode()' + text[end:])
    models = root / "shop" / "models.py"
    models.write_text(models.read_text().replace("\n\nclass Product", '\n\nMARK = "m000"\n\n\nclass Product', 1))


def save_model_mark(launch: Launch, root: Path, body: bytes, result: Result, poll_s: float) -> None:
    """Like save_and_wait, for the MARK in shop/models.py (imported during setup)."""
    models = root / "shop" / "models.py"
    text = models.read_text()
    start = text.index('MARK = "') + len('MARK = "')
    end = text.index('"', start)
    save_and_wait(launch, models, body, result, poll_s, new_text=text[:start] + body.decode() + text[end:])


def copy_project(into: Path) -> Path:
    shutil.copytree(demo_dir(), into, ignore=shutil.ignore_patterns("__pycache__"))
    views = into / "shop" / "views.py"
    if VIEW not in views.read_text():
        raise BenchError(f"{views}: the /ping/ view is not the one this benchmark edits")
    return into


HEAVY_APPS = [
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "rest_framework",
]
HEAVY_SETTINGS = f"""

# Added by bench/reload.py --heavy: a project with heavy third-party apps.
INSTALLED_APPS += {HEAVY_APPS!r}
MIDDLEWARE += ["wagtail.contrib.redirects.middleware.RedirectMiddleware"]
WAGTAIL_SITE_NAME = "bench"
WAGTAILADMIN_BASE_URL = "http://127.0.0.1"
"""


def make_heavy(root: Path) -> None:
    import importlib.util

    missing = [
        name
        for name in ("wagtail", "rest_framework", "modelcluster", "taggit")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise BenchError(
            f"--heavy needs {', '.join(missing)} importable by {sys.executable} (pip install wagtail djangorestframework)"
        )
    settings = root / "demosite" / "settings.py"
    settings.write_text(settings.read_text() + HEAVY_SETTINGS)


#: Apps generated on top of ``wagtail start`` by ``--large``.
LARGE_APPS = 30
LARGE_NEEDS = {"wagtail": "wagtail", "rest_framework": "djangorestframework"}
LARGE_SHOP_MODELS = """from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)
"""
LARGE_SHOP_VIEWS = """from django.http import HttpResponse


def ping(request):
    response = HttpResponse(b"pong", content_type="text/plain")
    response["Content-Length"] = "4"
    return response
"""
LARGE_APP_MODELS = """from django.db import models


class Item{n}(models.Model):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
"""
LARGE_APP_VIEWS = """from django.http import JsonResponse
from rest_framework import serializers, viewsets

from .models import Item{n}


class Item{n}Serializer(serializers.ModelSerializer):
    class Meta:
        model = Item{n}
        fields = ["id", "name", "price"]


class Item{n}ViewSet(viewsets.ModelViewSet):
    queryset = Item{n}.objects.all()
    serializer_class = Item{n}Serializer


def summary(request, pk):
    return JsonResponse({{"app": "app{n:02d}", "pk": pk}})
"""
LARGE_APP_URLS = """from django.urls import path

from . import views

urlpatterns = [
    path("<int:pk>/", views.summary, name="app{n:02d}-summary"),
] + [path(f"page{{i}}/", views.summary, {{"pk": i}}, name=f"app{n:02d}-page{{i}}") for i in range(10)]
"""
LARGE_URLS = """
# Added by bench/reload.py --large: the API, a DRF router over every
# generated app, each app's own URLs, and the view the benchmark edits.
from rest_framework import routers
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.views import PagesAPIViewSet
from wagtail.documents.api.v2.views import DocumentsAPIViewSet
from wagtail.images.api.v2.views import ImagesAPIViewSet

from shop import views as shop_views

api_router = WagtailAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPIViewSet)
api_router.register_endpoint("images", ImagesAPIViewSet)
api_router.register_endpoint("documents", DocumentsAPIViewSet)
drf_router = routers.DefaultRouter()
"""


def make_large(into: Path) -> Path:
    """A large project from the package index alone: ``wagtail start``,
    Django REST framework, :data:`LARGE_APPS` generated apps (a model, a
    serializer, a viewset, ten URL patterns each) and, in the URLconf,
    Wagtail's admin, documents and API and a DRF router over every app; the
    ``shop`` app holds the ``/ping/`` view and the ``models.py`` this
    benchmark edits, as in the demo."""
    import importlib.util
    import subprocess

    missing = [package for module, package in LARGE_NEEDS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise BenchError(f"--large needs {' '.join(missing)}: pip install {' '.join(missing)}  (into {sys.prefix})")
    into.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "wagtail.bin.wagtail", "start", "benchsite", str(into)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    apps = ["shop"] + [f"app{n:02d}" for n in range(LARGE_APPS)]
    for app in apps:
        (into / app).mkdir()
        (into / app / "__init__.py").write_text("")
    (into / "shop" / "models.py").write_text(LARGE_SHOP_MODELS)
    (into / "shop" / "views.py").write_text(LARGE_SHOP_VIEWS)
    urls = into / "benchsite" / "urls.py"
    text = urls.read_text()
    head, _, tail = text.partition("urlpatterns = [\n")
    patterns = ['    path("ping/", shop_views.ping),\n', '    path("api/v2/", api_router.urls),\n']
    patterns.append('    path("api/", include(drf_router.urls)),\n')
    registrations = []
    for n in range(LARGE_APPS):
        (into / f"app{n:02d}" / "models.py").write_text(LARGE_APP_MODELS.format(n=n))
        (into / f"app{n:02d}" / "views.py").write_text(LARGE_APP_VIEWS.format(n=n))
        (into / f"app{n:02d}" / "urls.py").write_text(LARGE_APP_URLS.format(n=n))
        registrations.append(f"from app{n:02d}.views import Item{n}ViewSet\n")
        registrations.append(f'drf_router.register("app{n:02d}", Item{n}ViewSet, basename="item{n}")\n')
        patterns.append(f'    path("app{n:02d}/", include("app{n:02d}.urls")),\n')
    urls.write_text(head + LARGE_URLS + "".join(registrations) + "\nurlpatterns = [\n" + "".join(patterns) + tail)
    settings = into / "benchsite" / "settings" / "base.py"
    installed = ["rest_framework", "wagtail.api.v2", *apps]
    settings.write_text(
        settings.read_text()
        + f"\n\nINSTALLED_APPS += {installed!r}\nDEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'\n"
    )
    # The benchmark's environment names the demo's settings: this project's win.
    manage = into / "manage.py"
    manage.write_text(
        manage.read_text().replace(
            'os.environ.setdefault("DJANGO_SETTINGS_MODULE", ', 'os.environ.__setitem__("DJANGO_SETTINGS_MODULE", '
        )
    )
    return into


def settle(port: int, seconds: float) -> None:
    """Let a fresh server finish its start-up work (checks) before the next save."""
    time.sleep(seconds)
    if poll_once(port, 5.0)[0] != "ok":
        raise BenchError(f"nothing answers on port {port} after a reload")


def run() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(ports="8833-8839")
    parser.add_argument("--reloads", type=int, default=10, help="saves per server (default %(default)s)")
    parser.add_argument("--poll", type=float, default=5.0, help="ms between polls (default %(default)s)")
    parser.add_argument(
        "--gap", type=float, default=1.5, help="seconds between a reload and the next save (default %(default)s)"
    )
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idleness measured (default %(default)s)")
    parser.add_argument("--heavy", action="store_true", help="add Wagtail and DRF to the project (see above)")
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="also run devconsole imported from TREE (an earlier commit's checkout), interleaved",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="a large project: wagtail start + DRF + generated apps, Wagtail's admin/API and a DRF router in the URLconf",
    )
    parser.add_argument(
        "--model-reloads",
        type=int,
        default=3,
        help="models.py saves per server, after the views ones (default %(default)s)",
    )
    args = parser.parse_args()
    if args.heavy and args.large:
        parser.error("--heavy and --large are two different projects: pick one")
    if args.quick:
        args.reloads, args.idle, args.gap, args.model_reloads = 2, 2.0, 1.0, 1
    if args.reloads < 1 or args.poll <= 0 or args.idle <= 0:
        parser.error("--reloads ≥ 1, --poll > 0 and --idle > 0")
    print(f"# Reload: save a views.py edit, poll /ping/ every {args.poll:g} ms until the new code answers")
    print(
        f"Machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(flush=True)
    ports = Ports(port_range(args.ports))
    with demo_database(), tempfile.TemporaryDirectory(prefix="devconsole-reload-") as tmp:
        make = make_large if args.large else copy_project
        rs_root = make(Path(tmp) / "runserver")
        dc_root = make(Path(tmp) / "devconsole")
        if args.heavy:
            make_heavy(rs_root)
            make_heavy(dc_root)
        rs_port, dc_port = ports.take(), ports.take()
        servers = [
            (
                Launch(
                    "runserver",
                    [sys.executable, str(rs_root / "manage.py"), "runserver", f"127.0.0.1:{rs_port}"],
                    rs_port,
                ),
                rs_root,
            ),
            (
                Launch(
                    "devconsole",
                    [*devconsole_argv(dc_port)[:-2], "--project", str(dc_root), f"127.0.0.1:{dc_port}"],
                    dc_port,
                    quit_keys=DEVCONSOLE_QUIT,
                ),
                dc_root,
            ),
        ]
        if args.baseline:
            # The same devconsole command, importing devconsole from another
            # tree (a checkout of an earlier commit): before/after in one run.
            bl_root, bl_port = make(Path(tmp) / "baseline"), ports.take()
            argv = [*devconsole_argv(bl_port)[:-2], "--project", str(bl_root), f"127.0.0.1:{bl_port}"]
            if argv[0] != sys.executable:
                argv = [sys.executable, "-m", "devconsole", *argv[1:]]
            baseline_path = os.pathsep.join(
                p for p in (str(Path(args.baseline).resolve()), os.environ.get("PYTHONPATH", "")) if p
            )
            argv = ["env", f"PYTHONPATH={baseline_path}", *argv]
            servers.append((Launch("baseline", argv, bl_port, quit_keys=DEVCONSOLE_QUIT), bl_root))
        results = {launch.name: Result(launch.name) for launch, _ in servers}
        model_results = {launch.name: Result(launch.name) for launch, _ in servers}
        try:
            for launch, _ in servers:
                launch.start()
            for launch, _ in servers:
                launch.first_200()
            for launch, _ in servers:
                settle(launch.port, 3.0)
            # Interleaved, so both see the same noise of a shared machine.
            for n in range(1, args.reloads + 1):
                for launch, root in servers:
                    save_and_wait(
                        launch, root / "shop" / "views.py", f"v{n:03d}".encode(), results[launch.name], args.poll / 1000
                    )
                    settle(launch.port, args.gap)
                print(
                    f"reload {n}: " + ", ".join(f"{name} {fmt(r.times_ms[-1])} ms" for name, r in results.items()),
                    flush=True,
                )
            if args.model_reloads > 0:
                # /ping/ now answers models.MARK (a views reload, not counted).
                for launch, root in servers:
                    point_ping_at_models(root)
                    save_and_wait(
                        launch,
                        root / "shop" / "views.py",
                        b"m000",
                        Result("setup"),
                        args.poll / 1000,
                        new_text=(root / "shop" / "views.py").read_text(),
                    )
                    settle(launch.port, args.gap)
                for n in range(1, args.model_reloads + 1):
                    for launch, root in servers:
                        save_model_mark(
                            launch, root, f"m{n:03d}".encode(), model_results[launch.name], args.poll / 1000
                        )
                        settle(launch.port, args.gap)
                    print(
                        f"models reload {n}: "
                        + ", ".join(f"{name} {fmt(r.times_ms[-1])} ms" for name, r in model_results.items()),
                        flush=True,
                    )
            time.sleep(2.0)
            before = {launch.name: tree_cpu(launch.proc.pid) for launch, _ in servers if launch.proc}
            time.sleep(args.idle)
            for launch, _ in servers:
                assert launch.proc is not None
                after = tree_cpu(launch.proc.pid)
                results[launch.name].idle_cpu_s = sum(after.values()) - sum(
                    before[launch.name].get(pid, 0.0) for pid in after
                )
                results[launch.name].idle_console_cpu_s = after.get(launch.proc.pid, 0.0) - before[launch.name].get(
                    launch.proc.pid, 0.0
                )
        finally:
            for launch, _ in servers:
                launch.stop()
    rs, dc = results["runserver"], results["devconsole"]

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else (values[0] if values else float("nan"))

    rows = [
        [
            "median save → new code served (ms)",
            fmt(median(rs.times_ms)),
            fmt(median(dc.times_ms)),
            fmt(ratio(median(rs.times_ms), median(dc.times_ms)), 1) + "×",
        ],
        [
            "fastest / slowest (ms)",
            f"{fmt(min(rs.times_ms))} / {fmt(max(rs.times_ms))}",
            f"{fmt(min(dc.times_ms))} / {fmt(max(dc.times_ms))}",
            "",
        ],
        ["p90 (ms)", fmt(p90(rs.times_ms)), fmt(p90(dc.times_ms)), ""],
        ["polls refused", rs.refused, dc.refused, ""],
        ["polls failed (reset, timeout, not 200)", rs.failed, dc.failed, ""],
        ["polls in all", rs.polls, dc.polls, ""],
    ]
    mrs, mdc = model_results["runserver"], model_results["devconsole"]
    if mrs.times_ms and mdc.times_ms:
        rows += [
            [
                f"models.py edit: median of {len(mdc.times_ms)} (ms)",
                fmt(median(mrs.times_ms)),
                fmt(median(mdc.times_ms)),
                fmt(ratio(median(mrs.times_ms), median(mdc.times_ms)), 1) + "×",
            ],
            [
                "models.py edits: polls refused / failed",
                f"{mrs.refused} / {mrs.failed}",
                f"{mdc.refused} / {mdc.failed}",
                "",
            ],
        ]
    if "baseline" in results:
        bl, mbl = results["baseline"], model_results["baseline"]
        rows += [
            [
                "baseline devconsole (--baseline): median (ms)",
                "",
                fmt(median(bl.times_ms)),
                f"{fmt(ratio(median(bl.times_ms), median(dc.times_ms)), 1)}× (baseline ÷ devconsole)",
            ]
        ]
        if mbl.times_ms and mdc.times_ms:
            rows += [
                [
                    "baseline devconsole: models.py edit median (ms)",
                    "",
                    fmt(median(mbl.times_ms)),
                    f"{fmt(ratio(median(mbl.times_ms), median(mdc.times_ms)), 1)}× (baseline ÷ devconsole)",
                ]
            ]
    rows += [
        [f"idle CPU over {args.idle:g} s, whole tree (s)", fmt(rs.idle_cpu_s, 3), fmt(dc.idle_cpu_s, 3), ""],
        [
            f"idle CPU over {args.idle:g} s, main process (s)",
            fmt(rs.idle_console_cpu_s, 3),
            fmt(dc.idle_console_cpu_s, 3),
            "",
        ],
    ]
    print()
    print(
        table(
            f"{args.reloads} reloads each, interleaved"
            + (", demo + Wagtail + DRF" if args.heavy else "")
            + (f", large project (wagtail start + DRF + {LARGE_APPS} apps)" if args.large else ", the demo"),
            ["", "runserver", "devconsole", "runserver ÷ devconsole"],
            rows,
        )
    )
    target_ms = TARGET_LARGE_MS if args.large else TARGET_MS
    fast = median(dc.times_ms) <= target_ms
    faster = ratio(median(rs.times_ms), median(dc.times_ms)) >= TARGET_RATIO
    clean = dc.refused == 0 and dc.failed == 0 and mdc.refused == 0 and mdc.failed == 0
    print(verdict(fast, f"devconsole median ≤ {target_ms:g} ms"))
    print(verdict(faster, f"devconsole ≥ {TARGET_RATIO:g}× faster than runserver"))
    if args.large and mrs.times_ms and mdc.times_ms:
        models_faster = ratio(median(mrs.times_ms), median(mdc.times_ms)) >= TARGET_LARGE_MODELS_RATIO
        print(verdict(models_faster, f"models.py edit ≥ {TARGET_LARGE_MODELS_RATIO:g}× faster than runserver"))
        faster = faster and models_faster
    print(verdict(clean, "no refused or failed polls during devconsole's reloads"))
    print(
        f"idle: devconsole used {fmt(100 * dc.idle_cpu_s / args.idle, 2)} % of one CPU (runserver {fmt(100 * rs.idle_cpu_s / args.idle, 2)} %)"
    )
    return 0 if (fast and faster and clean) or args.quick else 1


if __name__ == "__main__":
    main_guard(run)
