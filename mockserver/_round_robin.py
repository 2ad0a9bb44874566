"""One worker thread that runs jobs in turns: each job is a generator that does one small piece
of its work (generate mode: one token) per ``next``, and the jobs in progress take one piece
each, round-robin, so that a long job delays a short one by one piece per turn, not by its
whole length.

Policy: a job joins at the end of the round when it is submitted; a job whose ``cancel`` event
is set is closed at its next turn (its future fails with :class:`Stopped`);
:meth:`RoundRobin.close`, or the end of the main thread, stops every job at its next turn the
same way and ends the thread. The thread is not a daemon: a piece still running when the
interpreter exits (a torch call) would abort it ("terminate called without an active
exception"), so the exit waits for that piece instead.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["RoundRobin", "Stopped"]

T = TypeVar("T")


class Stopped(Exception):
    """The job was stopped before its end: it was cancelled, or the worker is closing."""


@dataclass(eq=False)
class _Job:
    work: Generator[None, None, Any]  # one piece per next(); returns the result
    cancel: threading.Event  # set (from any thread): stop at the next turn
    future: Future[Any]


IDLE_CHECK = 0.5  # seconds between looks at the main thread while no job runs


class RoundRobin:
    """Jobs on one thread (``name``), a piece each in turn; the thread starts with the first
    job and ends with :meth:`close` or the main thread. :meth:`submit` may be called from any
    thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: wake up
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(
        self, work: Generator[None, None, T], cancel: threading.Event | None = None
    ) -> Future[T]:
        """Run ``work`` in turns with the other jobs; its future has what it returns or
        raises (:class:`Stopped` when ``cancel`` is set or the worker closes first)."""
        future: Future[T] = Future()
        self._inbox.put(_Job(work, cancel or threading.Event(), future))
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name)
                self._thread.start()
        if self._closing.is_set():
            self._stop_queued()  # the thread may have ended before the job came
        return future

    def close(self, timeout: float) -> bool:
        """Stop every job at its next turn and wait up to ``timeout`` seconds for the thread
        to end; whether it ended (it has not while one piece still runs, such as a model
        build: it ends after that piece)."""
        self._closing.set()
        self._inbox.put(None)
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        active: deque[_Job] = deque()
        main = threading.main_thread()
        while not self._closing.is_set() and main.is_alive():
            if not active or not self._inbox.empty():
                self._take(active, wait=not active)
            if active:
                self._turn(active)
        for job in active:
            _stop(job)
        self._stop_queued()

    def _take(self, active: deque[_Job], *, wait: bool) -> None:
        """Move the jobs submitted into the round (waiting for one when ``wait``)."""
        with contextlib.suppress(queue.Empty):
            job = self._inbox.get(timeout=IDLE_CHECK) if wait else self._inbox.get_nowait()
            while True:
                if job is not None and job.future.set_running_or_notify_cancel():
                    active.append(job)
                job = self._inbox.get_nowait()

    def _turn(self, active: deque[_Job]) -> None:
        """One piece of the first job of the round, which then goes to the end of it."""
        job = active.popleft()
        if job.cancel.is_set():
            _stop(job)
            return
        try:
            next(job.work)
        except StopIteration as done:
            job.future.set_result(done.value)
        except BaseException as exc:  # the job's own failure: its future carries it
            job.future.set_exception(exc)
        else:
            active.append(job)

    def _stop_queued(self) -> None:
        """Stop the jobs submitted but not taken into the round (the worker is closing)."""
        with contextlib.suppress(queue.Empty):
            while True:
                job = self._inbox.get_nowait()
                if job is not None and job.future.set_running_or_notify_cancel():
                    _stop(job)


def _stop(job: _Job) -> None:
    """Close ``job``'s generator and fail its future with :class:`Stopped`."""
    with contextlib.suppress(Exception):
        job.work.close()
    job.future.set_exception(Stopped())
