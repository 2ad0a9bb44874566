"""Running checks against an endpoint: each bounded in time, none able to crash the run; each
check's end becomes a :class:`Result` holding its typed :class:`~conformance._outcome.Outcome`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from chatcompat import schemas
from conformance import _checks  # noqa: F401  (registers the checks)
from conformance._context import CHECK_SPEND, Budget, Context, Spend
from conformance._http import Endpoint
from conformance._outcome import Outcome, Status, outcome_of
from conformance._registry import CHECKS, Check

__all__ = ["Progress", "Result", "RunResult", "run", "run_checks"]


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
    counts: dict[str, int] = field(default_factory=dict)  # status value -> checks, all five

    def __post_init__(self) -> None:
        self.counts = {status.value: 0 for status in Status}
        for result in self.results:
            self.counts[result.status.value] += 1

    @property
    def ok(self) -> bool:
        """True when no check failed or crashed (warnings and skips allowed)."""
        return self.counts[Status.FAILED] == 0 and self.counts[Status.ERROR] == 0


async def _run_one(ctx: Context, check: Check, check_timeout: float) -> Result:
    started = time.monotonic()
    if check.capability not in ctx.endpoint.capabilities:
        reason = (
            f"the endpoint does not claim capability {check.capability!r} "
            f"(--capability {check.capability} or a profile that has it)"
        )
        return Result(check, Outcome(Status.SKIPPED, reason), 0.0)
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


async def run_checks(
    endpoint: Endpoint,
    checks: Iterable[Check],
    *,
    schema_level: schemas.Level = "compatible",
    concurrency: int = 4,
    check_timeout: float | None = None,
    deadline: float | None = None,
    budget: Budget | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``checks`` against ``endpoint``, at most ``concurrency`` at a time, each within
    ``check_timeout`` and all within ``deadline`` seconds (checks still running then fail)."""
    checks = list(checks)
    limit = check_timeout or endpoint.timeout * 3
    started_wall, started = time.time(), time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency * 2, force_close=False)
    done: list[Result] = []
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        ctx = Context(endpoint, session, schema_level, budget or Budget())

        async def gated(check: Check) -> Result:
            async with gate:
                result = await _run_one(ctx, check, limit)
            done.append(result)
            if progress is not None:
                progress(result, len(done), len(checks))
            return result

        tasks = {check.id: asyncio.ensure_future(gated(check)) for check in checks}
        _, pending = await asyncio.wait(tasks.values(), timeout=deadline)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    results = []
    for check in checks:
        task = tasks[check.id]
        if task.cancelled() or not task.done():
            message = f"the run's deadline of {deadline:.0f} s passed before the check finished"
            outcome = Outcome(Status.FAILED, message)
            results.append(Result(check, outcome, time.monotonic() - started))
        else:
            results.append(task.result())
    return RunResult(
        endpoint,
        results,
        started_wall,
        time.monotonic() - started,
        ctx.budget.requests,
        schema_level,
        tokens=ctx.budget.tokens,
        retries=ctx.budget.retries,
    )


def run(
    endpoint: Endpoint,
    ids: Iterable[str] | None = None,
    *,
    schema_level: schemas.Level = "compatible",
    concurrency: int = 4,
    check_timeout: float | None = None,
    deadline: float | None = None,
    budget: Budget | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run the checks named by ``ids`` (default: all) against ``endpoint`` and wait; the
    keywords are :func:`run_checks`' (``check_timeout`` defaults to 3 request timeouts)."""
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
            budget=budget,
            progress=progress,
        )
    )
