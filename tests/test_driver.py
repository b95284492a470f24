"""The terminal driver's writer when the terminal is gone: a real pty whose
other side closed, so every write fails (EIO) as after a hangup."""

from __future__ import annotations

import contextlib
import os
import threading

from textual.drivers._writer_thread import MAX_QUEUED_WRITES, WriterThread

from devconsole.ui.driver import _TerminalOut


def test_the_writer_outlives_a_terminal_that_is_gone() -> None:
    master, slave = os.openpty()
    os.close(master)  # hung up: the slave's writes fail with EIO
    file = open(slave, "w", encoding="utf-8")  # closed below, where its flush fails
    try:
        out = _TerminalOut(file)
        writer = WriterThread(out)  # type: ignore[arg-type]
        writer.start()
        stopped = threading.Event()

        def write_then_stop() -> None:
            # More than its queue holds: with a writer that died on the first
            # failed write, the puts past the queue's room wait forever.
            for n in range(MAX_QUEUED_WRITES * 4):
                writer.write(f"frame {n}\n")
            writer.stop()
            stopped.set()

        threading.Thread(target=write_then_stop, daemon=True).start()
        assert stopped.wait(30), "the writes and the writer's stop still wait 30 s later"
        assert out.gone
        assert not writer.is_alive()
    finally:
        with contextlib.suppress(OSError):
            file.close()  # its buffer cannot be written: EIO, the fd closed all the same
