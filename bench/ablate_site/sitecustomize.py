"""Switch off parts of devconsole's per-request work, for ``bench/ablate.py``.

Python imports ``sitecustomize`` at start-up from ``sys.path``; ablate.py puts
this directory on ``PYTHONPATH`` of the process it starts (and so of the
server child) and names what to switch off in ``DEVCONSOLE_ABLATE``, a comma
list of:

* ``nolog``      — Django's ``log_message`` writes nothing (runserver writes
                   its per-request ``django.server`` line to stderr; devconsole
                   already skips it when no handler would write it out);
* ``noheaders``  — request events carry no headers;
* ``bufstderr``  — stderr is block-buffered and flushed every 50 ms instead of
                   written line by line;
* ``noinsight``  — request insight (SQL, exception, bodies) is not captured;
* ``nohandover`` — a keep-alive connection waits for its next request in
                   ``readline`` alone, not in ``poll`` first (a reload would
                   then drop it).

For diagnosis only: the numbers say what each part costs, never how
devconsole runs. Without ``DEVCONSOLE_ABLATE`` this module does nothing.
"""

from __future__ import annotations

import os

_parts = {p for p in os.environ.get("DEVCONSOLE_ABLATE", "").split(",") if p}

if "noheaders" in _parts:
    import devconsole.child.instrument as _instrument

    _instrument.MAX_HEADERS = 0

if "noinsight" in _parts:
    import devconsole.child.insight as _insight

    _insight.set_enabled(False)

if "nohandover" in _parts:
    from devconsole.child.handover import ConnectionHandover as _Handover

    _Handover.await_request = lambda self, handler: True  # type: ignore[method-assign]

if "nolog" in _parts:
    from django.core.servers import basehttp as _basehttp

    _basehttp.WSGIRequestHandler.log_message = lambda self, *args: None  # type: ignore[method-assign]

if "bufstderr" in _parts:
    import io
    import sys
    import threading
    import time

    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False), 65536),
        encoding="utf-8",
        errors="backslashreplace",
        write_through=False,
    )

    def _flush() -> None:
        while True:
            time.sleep(0.05)
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    threading.Thread(target=_flush, name="ablate-stderr-flush", daemon=True).start()
