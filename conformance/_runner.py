"""Running checks against an endpoint: each bounded in time, none able to crash the run; each
check's end becomes a :class:`Result` holding its typed :class:`~conformance._outcome.Outcome`."""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import aiohttp

from chatcompat import schemas
from conformance import _checks  # noqa: F401  (registers the checks)
from conformance._context import CHECK_SPEND, Budget, Context, Spend
from conformance._http import Endpoint
from conformance._outcome import Outcome, Status, outcome_of
from conformance._redirects import Redirect, distinct, watching
from conformance._registry import CHECKS, Check

__all__ = [
    "FailOn",
    "Progress",
    "Result",
    "RunResult",
    "failing",
    "run",
    "run_checks",
    "selected_ids",
]

# what fails a run: a failed or crashed check ("failure"), or a warning too ("warning")
FailOn = Literal["failure", "warning"]


@dataclass(frozen=True)
class Result:
    """One check's run: how it ended, how long it took and what it spent."""

    check: Check
    outcome: Outcome
    duration: float  # seconds
    requests: int = 0  # sent by this check (a shared exchange counts for its first asker)
    tokens: int = 0  # by the endpoint's usage

    @property
    def status(self) -> Status:
        """The outcome's status."""
        return self.outcome.status

    @property
    def message(self) -> str:
        """The outcome's message ("" when passed; the reason of a skip)."""
        return self.outcome.message


@dataclass
class RunResult:
    endpoint: Endpoint
    results: list[Result]
    started: float
    duration: float
    requests: int
    schema_level: str
    tokens: int = 0  # as reported by the endpoint's usage
    retries: int = 0  # 429s waited out
    preflight_requests: int = 0  # the command's preflight's, included in requests
    counts: dict[str, int] = field(default_factory=dict)  # status value -> checks, all five
    # followed in the run (and in the command around it: preflight, probe), each once
    redirects: list[Redirect] = field(default_factory=list)
    fail_on: FailOn = "failure"  # "warning": a warning fails the run too (--fail-on warning)

    def __post_init__(self) -> None:
        self.counts = {status.value: 0 for status in Status}
        for result in self.results:
            self.counts[result.status.value] += 1

    @property
    def ok(self) -> bool:
        """True when no check failed or crashed (skips allowed; warnings too, unless
        ``fail_on`` is ``"warning"``)."""
        return not any(self.counts[status] for status in failing(self.fail_on))


def failing(fail_on: FailOn) -> frozenset[Status]:
    """The statuses that fail a run (and stop it, with ``fail_fast``)."""
    statuses = {Status.FAILED, Status.ERROR}
    return frozenset(statuses | {Status.WARNING} if fail_on == "warning" else statuses)


def selected_ids(patterns: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> list[str]:
    """The ids of the checks to run: those ``patterns`` name (ids or :mod:`fnmatch` globs, in
    their order, each id once; None: every check, in registry order) but those ``exclude``
    names. Raises ValueError naming every pattern that matches no check (``--check`` or
    ``--exclude``), or when no check is left."""
    unmatched: list[str] = []

    def matching(pattern: str, flag: str) -> list[str]:
        ids = fnmatch.filter(CHECKS, pattern)
        if not ids:
            unmatched.append(f"{flag} {pattern}")
        return ids

    chosen = (
        list(CHECKS) if patterns is None else [i for p in patterns for i in matching(p, "--check")]
    )
    dropped = {i for p in exclude for i in matching(p, "--exclude")}
    if unmatched:
        raise ValueError(
            f"unknown check id(s) or pattern(s) matching no check: {', '.join(unmatched)} "
            "(see chatcompat check --list)"
        )
    ids = [i for i in dict.fromkeys(chosen) if i not in dropped]
    if not ids:
        raise ValueError("no check is left to run: --exclude removes every check --check selects")
    return ids


def _unclaimed(check: Check, endpoint: Endpoint) -> Result | None:
    """The skip of ``check`` when ``endpoint`` does not claim its capability, else None (decided
    before any check is scheduled, so that neither the deadline nor the budget can touch it)."""
    if check.capability in endpoint.capabilities:
        return None
    reason = (
        f"the endpoint does not claim capability {check.capability!r} "
        f"(--capability {check.capability} or a profile that has it)"
    )
    return Result(check, Outcome(Status.SKIPPED, reason), 0.0)


async def _run_one(ctx: Context, check: Check, check_timeout: float) -> Result:
    started = time.monotonic()
    spend = Spend()
    CHECK_SPEND.set(spend)  # this task's context: what the check sends is counted for it
    try:
        await asyncio.wait_for(check.func(ctx), check_timeout)
        outcome = outcome_of(None, check.severity)
    except TimeoutError:  # the endpoint's slowness, not a crash of the check
        outcome = Outcome(Status.FAILED, f"the check did not finish within {check_timeout:.0f} s")
    except Exception as exc:  # a check must never take the run down
        outcome = outcome_of(exc, check.severity)
    outcome = outcome.redacted(ctx.endpoint.api_key)
    return Result(check, outcome, time.monotonic() - started, spend.requests, spend.tokens)


Progress = Callable[[Result, int, int], None]  # (result, finished, total)


class _FailFast:
    """``--fail-fast``: once a check ends with a status in ``stop_on``, the checks not started
    yet are skipped, saying after which check (those running finish)."""

    _VERB: ClassVar[dict[Status, str]] = {
        Status.FAILED: "failed",
        Status.ERROR: "crashed",
        Status.WARNING: "warned",
    }

    def __init__(self, stop_on: frozenset[Status]) -> None:
        self.stop_on = stop_on
        self.after: Result | None = None

    def saw(self, result: Result) -> None:
        if self.after is None and result.status in self.stop_on:
            self.after = result

    def skip(self, check: Check) -> Result | None:
        """The skip of ``check`` once the run stopped, else None (it runs)."""
        if self.after is None:
            return None
        why = f"not run: --fail-fast after {self.after.check.id} {self._VERB[self.after.status]}"
        return Result(check, Outcome(Status.SKIPPED, why), 0.0)


async def _scheduled(
    ctx: Context,
    checks: list[Check],
    *,
    limit: float,
    concurrency: int,
    wait: float | None,
    finished: Callable[[Result], None],
    fail_fast: _FailFast | None = None,
) -> dict[str, asyncio.Task[Result]]:
    """Run ``checks`` at most ``concurrency`` at a time, each within ``limit`` seconds, for at
    most ``wait`` seconds in all (those still running or waiting then are cancelled); their
    tasks by check id. ``finished`` is told of each result as it comes; with ``fail_fast``,
    those that had not started when it stopped the run are skipped."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(check: Check) -> Result:
        async with gate:
            skipped = fail_fast.skip(check) if fail_fast is not None else None
            result = skipped or await _run_one(ctx, check, limit)
            if fail_fast is not None:
                fail_fast.saw(result)
        finished(result)
        return result

    tasks = {check.id: asyncio.ensure_future(gated(check)) for check in checks}
    if tasks:
        _, pending = await asyncio.wait(tasks.values(), timeout=wait)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return tasks


async def run_checks(
    endpoint: Endpoint,
    checks: Iterable[Check],
    *,
    schema_level: schemas.Level = "compatible",
    concurrency: int = 4,
    check_timeout: float | None = None,
    deadline: float | None = None,
    started: float | None = None,
    budget: Budget | None = None,
    progress: Progress | None = None,
    fail_fast: bool = False,
    fail_on: FailOn = "failure",
) -> RunResult:
    """Run ``checks`` against ``endpoint``, at most ``concurrency`` at a time, each within
    ``check_timeout`` and all within ``deadline`` seconds of ``started`` (a ``time.monotonic()``
    instant, default now: what ran before, a probe, counts); checks still running then fail.
    A check whose capability the endpoint does not claim is skipped before any is scheduled.
    ``fail_fast``: after a check that fails the run (``fail_on``) none starts (skipped)."""
    checks = list(checks)
    started_wall, started = time.time(), time.monotonic() if started is None else started
    skips = {check.id: _unclaimed(check, endpoint) for check in checks}
    done: list[Result] = []

    def finished(result: Result) -> None:
        done.append(result)
        if progress is not None:
            progress(result, len(done), len(checks))

    for skip in skips.values():
        if skip is not None:
            finished(skip)
    wait = None if deadline is None else max(0.0, started + deadline - time.monotonic())
    connector = aiohttp.TCPConnector(limit=concurrency * 2, force_close=False)
    with watching() as seen:
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            ctx = Context(endpoint, session, schema_level, budget or Budget())
            scheduled = [check for check in checks if skips[check.id] is None]
            tasks = await _scheduled(
                ctx,
                scheduled,
                limit=check_timeout or endpoint.timeout * 3,
                concurrency=concurrency,
                wait=wait,
                finished=finished,
                fail_fast=_FailFast(failing(fail_on)) if fail_fast else None,
            )
    results = [_result_of(c, skips[c.id], tasks.get(c.id), deadline, started) for c in checks]
    return RunResult(
        endpoint,
        results,
        started_wall,
        time.monotonic() - started,
        ctx.budget.requests,
        schema_level,
        tokens=ctx.budget.tokens,
        retries=ctx.budget.retries,
        redirects=distinct(seen),
        fail_on=fail_on,
    )


def _result_of(
    check: Check,
    skip: Result | None,
    task: asyncio.Task[Result] | None,
    deadline: float | None,
    started: float,
) -> Result:
    """How ``check`` ended: its ``skip``, its task's result, or failed by the run's deadline."""
    if skip is not None:
        return skip
    if task is not None and task.done() and not task.cancelled():
        return task.result()
    message = f"the run's deadline of {deadline or 0:.0f} s passed before the check finished"
    return Result(check, Outcome(Status.FAILED, message), time.monotonic() - started)


def run(
    endpoint: Endpoint,
    ids: Iterable[str] | None = None,
    *,
    schema_level: schemas.Level = "compatible",
    concurrency: int = 4,
    check_timeout: float | None = None,
    deadline: float | None = None,
    started: float | None = None,
    budget: Budget | None = None,
    progress: Progress | None = None,
    fail_fast: bool = False,
    fail_on: FailOn = "failure",
) -> RunResult:
    """Run the checks named by ``ids`` (default: all; see :func:`selected_ids` for globs)
    against ``endpoint`` and wait; the keywords are :func:`run_checks`' (``check_timeout``
    defaults to 3 request timeouts, ``deadline`` counts from ``started``)."""
    unknown = sorted(set(ids or ()) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check id(s) {unknown}; see chatcompat check --list")
    selected = [CHECKS[i] for i in ids] if ids is not None else list(CHECKS.values())
    return asyncio.run(
        run_checks(
            endpoint,
            selected,
            schema_level=schema_level,
            concurrency=concurrency,
            check_timeout=check_timeout,
            deadline=deadline,
            started=started,
            budget=budget,
            progress=progress,
            fail_fast=fail_fast,
            fail_on=fail_on,
        )
    )
