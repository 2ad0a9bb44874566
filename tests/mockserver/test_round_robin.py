"""The model thread's scheduler: jobs take turns a piece each; a cancelled job, or every job at
close, stops at its next turn with ``Stopped``; one job's failure is its own."""

from __future__ import annotations

import threading

import pytest

from mockserver._round_robin import RoundRobin, Stopped

SAFETY = 60  # seconds: a safety net for what takes milliseconds


def job(name, pieces, log, gate=None):
    """A job of ``pieces`` pieces that logs each and returns its name; waits for ``gate``
    before its first piece when given one."""
    if gate is not None:
        gate.wait(SAFETY)
    for i in range(pieces):
        log.append((name, i))
        yield
    return name


@pytest.fixture
def turns():
    scheduler = RoundRobin("test-turns")
    yield scheduler
    assert scheduler.close(SAFETY)


def test_jobs_take_turns_a_piece_each_and_return_their_results(turns):
    log, gate = [], threading.Event()
    first = turns.submit(job("first", 1, [], gate))  # holds the thread until all are queued
    futures = [turns.submit(job(name, n, log)) for name, n in (("a", 3), ("b", 1), ("c", 2))]
    gate.set()
    assert first.result(SAFETY) == "first"
    assert [f.result(SAFETY) for f in futures] == ["a", "b", "c"]
    assert log == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("c", 1), ("a", 2)]


def test_a_cancelled_job_stops_at_its_next_turn_and_the_others_go_on(turns):
    log, cancel, gate = [], threading.Event(), threading.Event()
    turns.submit(job("gate", 1, [], gate))
    endless = turns.submit(job("endless", 10**9, log), cancel)
    short = turns.submit(job("short", 3, log))
    gate.set()
    assert short.result(SAFETY) == "short"
    cancel.set()
    with pytest.raises(Stopped):
        endless.result(SAFETY)


def test_a_failing_job_fails_alone(turns):
    def failing():
        yield
        raise ValueError("broken")

    broken, fine = turns.submit(failing()), turns.submit(job("fine", 3, []))
    with pytest.raises(ValueError, match="broken"):
        broken.result(SAFETY)
    assert fine.result(SAFETY) == "fine"


def test_close_stops_every_job_and_ends_the_thread():
    turns = RoundRobin("test-close")
    started = threading.Event()

    def endless():
        started.set()
        while True:
            yield

    running = turns.submit(endless())
    assert started.wait(SAFETY)
    assert turns.close(SAFETY)
    with pytest.raises(Stopped):
        running.result(SAFETY)
    with pytest.raises(Stopped):  # submitted after close: stopped, never run
        turns.submit(job("late", 1, [])).result(SAFETY)
