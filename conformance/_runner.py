"""Running checks against an endpoint: each bounded in time, none able to crash the run."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from chatcompat import schemas
from conformance import _checks  # noqa: F401  (registers the checks)
from conformance._context import CHECK_SPEND, Budget, Context, Spend
from conformance._http import Endpoint
from conformance._outcome import CheckFailed, CheckSkipped, CheckWarning
from conformance._registry import CHECKS, Check

__all__ = ["Progress", "Result", "RunResult", "run", "run_checks"]


@dataclass(frozen=True)
class Result:
    check: Check
    status: str  # passed | failed | skipped | warning
    message: str  # "" when passed
    duration: float
    requests: int = 0  # sent by this check (a shared exchange counts for its first asker)
    tokens: int = 0  # by the endpoint's usage


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
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {s: 0 for s in ("passed", "failed", "skipped", "warning")}
        for result in self.results:
            self.counts[result.status] += 1

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips allowed)."""
        return self.counts["failed"] == 0


async def _run_one(ctx: Context, check: Check, check_timeout: float) -> Result:
    started = time.monotonic()
    if check.capability not in ctx.endpoint.capabilities:
        reason = (
            f"the endpoint does not claim capability {check.capability!r} "
            f"(--capability {check.capability} or a profile that has it)"
        )
        return Result(check, "skipped", reason, 0.0)
    spend = Spend()
    CHECK_SPEND.set(spend)  # this task's context: what the check sends is counted for it
    try:
        await asyncio.wait_for(check.func(ctx), check_timeout)
        status, message = "passed", ""
    except CheckSkipped as exc:
        status, message = "skipped", str(exc)
    except CheckWarning as exc:
        status, message = "warning", str(exc)
    except CheckFailed as exc:
        status = "warning" if check.severity == "should" else "failed"
        message = str(exc)
    except TimeoutError:
        status, message = "failed", f"the check did not finish within {check_timeout:.0f} s"
    except Exception as exc:  # a check must never take the run down
        where = traceback.extract_tb(exc.__traceback__)[-1]
        status = "failed"
        message = (
            f"the check could not complete: {type(exc).__name__}: {exc} "
            f"(at {where.filename}:{where.lineno})"
        )
    if ctx.endpoint.api_key:
        message = message.replace(ctx.endpoint.api_key, "<redacted>")
    return Result(check, status, message, time.monotonic() - started, spend.requests, spend.tokens)


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
            results.append(Result(check, "failed", message, time.monotonic() - started))
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
    deadline: float | None = None,
    budget: Budget | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run the checks named by ``ids`` (default: all) against ``endpoint`` and wait."""
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
            deadline=deadline,
            budget=budget,
            progress=progress,
        )
    )
