"""Reports of a run: the console table, the JSON report (a stable shape), JUnit XML and a
Markdown summary; each reads the typed outcome of every check (status, message, expected,
received, exchange, crash) and the redirects the run followed. Every text a report writes goes
through :func:`~conformance._shown.shown`: the API key redacted, then control characters
escaped; what the server controls (the model id, what checks quote, redirect URLs) on one line
in the console and JUnit, in code spans in Markdown (see :mod:`conformance._shown`)."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatcompat import __version__
from conformance._colour import MARKS, counts_painted, mark_painted
from conformance._outcome import Outcome, Status
from conformance._registry import GROUPS
from conformance._repro import repro_of
from conformance._runner import Result, RunResult
from conformance._shown import inline, markdown_code, shown

__all__ = [
    "REPORT_VERSION",
    "console_text",
    "json_report",
    "junit_xml",
    "markdown_summary",
    "redirect_warnings",
    "write_reports",
]

REPORT_VERSION = 2
_MARK = MARKS


def _ordered(run: RunResult) -> list[Result]:
    return sorted(run.results, key=lambda r: (GROUPS.index(r.check.group), r.check.id))


def _spend(run: RunResult, price_per_mtok: float | None) -> str:
    preflight = f"{run.preflight_requests} preflight, " if run.preflight_requests else ""
    text = (
        f"{run.requests} requests ({preflight}{run.retries} retried after 429), {run.tokens} tokens"
    )
    if price_per_mtok is not None:
        text += f", about ${run.tokens * price_per_mtok / 1e6:.4f} at ${price_per_mtok}/Mtok"
    return text


_REDIRECTS_SHOWN = 10  # distinct redirects listed in a text report; the rest are counted


def redirect_warnings(run: RunResult, quote: Callable[[str], str] = inline) -> list[str]:
    """Warning lines for the redirects the command followed (none when it followed none): the
    answers judged came from where they led; each URL written by ``quote`` (one line, control
    characters escaped, unless told otherwise: see :meth:`Redirect.describe
    <conformance._redirects.Redirect.describe>`)."""
    if not run.redirects:
        return []
    lines = [
        f"warning: the endpoint redirected requests ({len(run.redirects)} distinct); the answers "
        "judged came from where the redirects led:"
    ]
    lines += [f"  {r.describe(quote)}" for r in run.redirects[:_REDIRECTS_SHOWN]]
    if len(run.redirects) > _REDIRECTS_SHOWN:
        lines.append(f"  ... and {len(run.redirects) - _REDIRECTS_SHOWN} more")
    return lines


def console_text(
    run: RunResult, *, price_per_mtok: float | None = None, color: bool = False
) -> str:
    """The table of checks by group, the redirects followed, then the details of each check
    that did not pass; with ``color``, the status words and the summary's counts in ANSI
    colours (:mod:`conformance._colour`)."""
    painted: dict[int, Status | None] = {}  # line -> the status whose word it holds (None: counts)
    width = max([len(r.check.id) for r in run.results] + [5])
    key = run.endpoint.api_key
    lines = [
        f"chatcompat {__version__}: {shown(run.endpoint.base_url, key, inline=True)}  "
        f"model {shown(run.endpoint.model, key, inline=True)}  ({run.schema_level} schemas)",
        f"capabilities: {', '.join(sorted(run.endpoint.capabilities))}",
        "",
        f"{'group':<9} {'check':<{width}}  {'status':<6} {'time':>7}  description",
    ]
    for result in _ordered(run):
        painted[len(lines)] = result.status
        lines.append(
            f"{result.check.group:<9} {result.check.id:<{width}}  {_MARK[result.status]:<6} "
            f"{result.duration:>6.2f}s  {result.check.doc}"
        )
    painted[len(lines) + 1] = None
    lines += [
        "",
        f"{len(run.results)} checks: {_counts(run)} in {run.duration:.1f} s; "
        f"{_spend(run, price_per_mtok)}",
        *redirect_warnings(run),
    ]
    details = [r for r in _ordered(run) if r.status is not Status.PASSED]
    for result in details:
        painted[len(lines) + 1] = result.status
        lines += ["", f"[{_MARK[result.status]}] {result.check.id}: {result.check.doc}"]
        lines += [f"    {line}" for line in result.outcome.text.splitlines()]
    text = shown("\n".join(lines), key)
    return _coloured(text, painted) if color else text


def _coloured(text: str, painted: dict[int, Status | None]) -> str:
    """``text`` (already :func:`~conformance._shown.shown`: it keeps every LF, so the lines are
    where console_text put them) with the status word of each line in ``painted`` coloured, or
    its counts (None); no other line is touched."""
    lines = text.split("\n")
    for at, status in painted.items():
        lines[at] = counts_painted(lines[at]) if status is None else mark_painted(lines[at], status)
    return "\n".join(lines)


def _counts(run: RunResult) -> str:
    """``N passed, N failed, N warning, N skipped, N error``."""
    counts = run.counts
    return (
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['warning']} warning, "
        f"{counts['skipped']} skipped, {counts['error']} error"
    )


_REPRODUCED = (Status.FAILED, Status.ERROR, Status.WARNING)


def _check_entry(result: Result, max_time: float) -> dict[str, Any]:
    """One check of the JSON report (see :func:`json_report`)."""
    outcome = result.outcome
    crash = outcome.crash
    return {
        "id": result.check.id,
        "group": result.check.group,
        "severity": result.check.severity,
        "capability": result.check.capability,
        "description": result.check.doc,
        "status": outcome.status.value,
        "message": outcome.message,
        "expected": outcome.expected,
        "received": outcome.received,
        "exchange": None if outcome.exchange is None else outcome.exchange.excerpt(),
        "error": None
        if crash is None
        else {"type": crash.type, "message": crash.message, "where": crash.where},
        "duration_s": round(result.duration, 3),
        "requests": result.requests,
        "tokens": result.tokens,
        "repro": repro_of(outcome, max_time=max_time) if outcome.status in _REPRODUCED else None,
    }


def json_report(run: RunResult, *, price_per_mtok: float | None = None) -> dict[str, Any]:
    """The machine-readable report; its shape is documented in the README and versioned
    (:data:`REPORT_VERSION`). ``requests`` counts every request of the run, the
    ``preflight_requests`` of ``chatcompat check``'s preflight included. Each check: id,
    group, severity, capability, description,
    status (passed | failed | warning | skipped | error), message, expected, received,
    exchange (:meth:`Exchange.excerpt <conformance._http.Exchange.excerpt>` or None),
    error ({"type", "message", "where"} for status error, else None), duration_s, requests,
    tokens, repro (for a check that failed, warned or crashed with an exchange to show:
    ``{"requests": [...]}``, the request(s) the failure is about, whole, with a ``curl`` each:
    :mod:`conformance._repro`; else None). ``redirects``: those the run followed
    (``{"status", "method", "from", "to", "cross_origin"}``, each once, the model listing's
    and the probe's included). Every string is :func:`~conformance._shown.shown` (LF kept:
    json.dumps escapes it), and those that are one line by nature (base_url, model, URLs,
    headers) are :func:`~conformance._shown.inline` (no line break)."""
    key = run.endpoint.api_key
    report: dict[str, Any] = _shown_strings(
        {
            "report_version": REPORT_VERSION,
            "tool": "chatcompat",
            "tool_version": __version__,
            "base_url": shown(run.endpoint.base_url, key, inline=True),
            "model": shown(run.endpoint.model, key, inline=True),  # the server's, when listed
            "schema_level": run.schema_level,
            "capabilities": sorted(run.endpoint.capabilities),
            "started": dt.datetime.fromtimestamp(run.started, dt.UTC).isoformat(timespec="seconds"),
            "duration_s": round(run.duration, 3),
            "requests": run.requests,
            "preflight_requests": run.preflight_requests,
            "retries": run.retries,
            "tokens": run.tokens,
            "cost_usd": None
            if price_per_mtok is None
            else round(run.tokens * price_per_mtok / 1e6, 6),
            "summary": dict(run.counts),
            "ok": run.ok,
            "redirects": [r.as_json() for r in run.redirects],
            "checks": [_check_entry(r, run.endpoint.timeout) for r in _ordered(run)],
        },
        key,
    )
    return report


def _shown_strings(value: Any, secret: str | None) -> Any:
    """``value`` (JSON data) with every string :func:`~conformance._shown.shown`."""
    if isinstance(value, str):
        return shown(value, secret)
    if isinstance(value, dict):
        return {key: _shown_strings(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown_strings(item, secret) for item in value]
    return value


def junit_xml(run: RunResult) -> str:
    """JUnit XML: one testsuite, one testcase per check (classname = group); a failed check
    holds a ``<failure>``, a crashed one an ``<error>`` (type: the exception's), a skipped one
    ``<skipped>``, a warning ``<system-out>``; the suite counts failures, errors and skips, and
    its own ``<system-out>`` holds the redirect warnings. Every text is
    :func:`~conformance._shown.shown` (XML 1.0 allows no control character but tab and LF)."""

    def text(value: str) -> str:
        return shown(value, run.endpoint.api_key)

    def line(value: str) -> str:
        return shown(_first_line(value), run.endpoint.api_key, inline=True)

    suite = ET.Element(
        "testsuite",
        name="chatcompat",
        tests=str(len(run.results)),
        failures=str(run.counts["failed"]),
        errors=str(run.counts["error"]),
        skipped=str(run.counts["skipped"]),
        time=f"{run.duration:.3f}",
    )
    for result in _ordered(run):
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"chatcompat.{result.check.group}",
            name=result.check.id,
            time=f"{result.duration:.3f}",
        )
        outcome = result.outcome
        first_line = line(outcome.message)
        if outcome.status is Status.FAILED:
            ET.SubElement(case, "failure", message=first_line).text = text(outcome.text)
        elif outcome.status is Status.ERROR:
            kind = line(outcome.crash.type) if outcome.crash is not None else "Exception"
            error = ET.SubElement(case, "error", message=first_line, type=kind)
            error.text = text(outcome.text)
        elif outcome.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=first_line)
        elif outcome.status is Status.WARNING:
            ET.SubElement(case, "system-out").text = text(f"WARNING: {outcome.text}")
    if run.redirects:
        ET.SubElement(suite, "system-out").text = text("\n".join(redirect_warnings(run)))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


_SHOWN = (Status.ERROR, Status.FAILED, Status.WARNING)


def _first_line(text: str) -> str:
    return (text.splitlines() or [""])[0]


def _code(text: str, secret: str | None, *, cell: bool = False) -> str:
    """``text`` (the server may control it) as a Markdown code span: the key redacted, on one
    line, control characters escaped (:func:`~conformance._shown.markdown_code`)."""
    return markdown_code(shown(text, secret, inline=True), cell=cell)


def _seen(outcome: Outcome, secret: str | None) -> str:
    """A table cell: the message's first line, then the first line of what was received (up to
    200 chars), if the outcome says; each a code span."""
    seen = _code(_first_line(outcome.message), secret, cell=True)
    if outcome.received:
        seen += f" (received: {_code(_first_line(outcome.received)[:200], secret, cell=True)})"
    return seen


def markdown_summary(run: RunResult) -> str:
    """A Markdown summary for a CI comment: the verdict, counts, and a table of the checks that
    crashed, failed or warned (message and what was received, each cut to its first line).
    Every text the server may control (model id, messages, what was received, redirect URLs)
    is a code span: nothing it holds is rendered as Markdown or HTML."""
    verdict = "passed" if run.ok else "FAILED"
    key = run.endpoint.api_key
    model, base_url = _code(run.endpoint.model, key), _code(run.endpoint.base_url, key)
    lines = [
        f"### chatcompat {verdict}: {model} at {base_url}",
        "",
        f"{_counts(run)} in {run.duration:.1f} s ({_spend(run, None)})",
    ]
    if run.redirects:

        def quote(url: str) -> str:
            return _code(url, key)

        lines += ["", *(f"> {line.strip()}" for line in redirect_warnings(run, quote))]
    listed = [r for r in _ordered(run) if r.status in _SHOWN]
    if listed:
        lines += ["", "| check | group | status | what was seen |", "|---|---|---|---|"]
        for r in listed:
            lines.append(
                f"| `{r.check.id}` | {r.check.group} | {r.status.value} | {_seen(r.outcome, key)} |"
            )
    return shown("\n".join(lines), key) + "\n"


def write_reports(
    run: RunResult,
    *,
    json_path: Path | None,
    junit_path: Path | None,
    markdown_path: Path | None = None,
    price_per_mtok: float | None = None,
) -> None:
    """Write the requested report files (parent folders are created)."""
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            # ensure_ascii: no U+2028 / U+2029 (or any non-ASCII char) raw in the file
            json.dumps(json_report(run, price_per_mtok=price_per_mtok), indent=2, ensure_ascii=True)
            + "\n",
            encoding="utf-8",
        )
    if junit_path is not None:
        junit_path.parent.mkdir(parents=True, exist_ok=True)
        junit_path.write_text(junit_xml(run), encoding="utf-8")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown_summary(run), encoding="utf-8")
