"""Stopping a foreground server on SIGINT / SIGTERM within a few seconds, whatever it is doing.

The handler is a Python signal handler, not ``loop.add_signal_handler``: that one runs only
when the event loop gets round to it, which a handler blocking the loop (a long template
build) puts off for as long as it blocks. A Python handler runs in the main thread at once
(between two bytecodes), asks the loop to stop and arms a watchdog thread: when the process
has not ended ``grace`` seconds later (the loop is still blocked, a thread holds up the exit,
such as the model's in the middle of its build), the watchdog ends it with exit status 128 +
the signal's number, as a shell reports a process the signal killed. Further signals change
nothing. Once armed, the watchdog stays armed until the process ends: a server stopped by a
signal is expected to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["STOP_GRACE", "stop_on_signals"]

STOP_GRACE = 5.0  # seconds from the first signal to a forced exit

log = logging.getLogger("mockserver")


def stop_on_signals(stop: asyncio.Event, *, grace: float = STOP_GRACE) -> Callable[[], None]:
    """Set ``stop`` (on the running loop) at SIGINT or SIGTERM, and end the process (status
    128 + the signal) if it still runs ``grace`` seconds later. Returns the function that puts
    the previous handlers back (and ends the watchdog when no signal came). Call it in the
    main thread, with the loop of ``stop`` running."""
    loop = asyncio.get_running_loop()
    signalled, done = threading.Event(), threading.Event()
    received: list[int] = []

    def watchdog() -> None:
        signalled.wait()
        if not done.wait(grace):
            log.warning("not stopped %.0f s after the signal: exiting now", grace)
            os._exit(128 + received[0])

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if received:  # asked again (a worker gets the terminal's SIGINT and the parent's SIGTERM)
            return
        received.append(signum)
        with contextlib.suppress(RuntimeError):  # the loop has closed: it is stopping anyway
            loop.call_soon_threadsafe(stop.set)
        signalled.set()

    # started now, not in the handler: starting a thread takes locks the main thread may hold
    threading.Thread(target=watchdog, name="chatcompat-stop-watchdog", daemon=True).start()
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, on_signal) for sig in sigs}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not received:
            done.set()
            signalled.set()  # the watchdog ends

    return restore
