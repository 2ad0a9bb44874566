"""Reports of a run: the console table, the JSON report (a stable shape) and JUnit XML."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from chatcompat import __version__
from conformance._registry import GROUPS
from conformance._runner import RunResult

__all__ = [
    "REPORT_VERSION",
    "console_text",
    "json_report",
    "junit_xml",
    "markdown_summary",
    "write_reports",
]

REPORT_VERSION = 1
_MARK = {"passed": "PASS", "failed": "FAIL", "warning": "WARN", "skipped": "SKIP"}


def _ordered(run: RunResult) -> list[Any]:
    return sorted(run.results, key=lambda r: (GROUPS.index(r.check.group), r.check.id))


def _spend(run: RunResult, price_per_mtok: float | None) -> str:
    text = f"{run.requests} requests ({run.retries} retried after 429), {run.tokens} tokens"
    if price_per_mtok is not None:
        text += f", about ${run.tokens * price_per_mtok / 1e6:.4f} at ${price_per_mtok}/Mtok"
    return text


def console_text(run: RunResult, *, price_per_mtok: float | None = None) -> str:
    """The table of checks by group, then the details of each one that did not pass."""
    width = max([len(r.check.id) for r in run.results] + [5])
    lines = [
        f"chatcompat {__version__}: {run.endpoint.base_url}  model {run.endpoint.model}  "
        f"({run.schema_level} schemas)",
        f"capabilities: {', '.join(sorted(run.endpoint.capabilities))}",
        "",
        f"{'group':<9} {'check':<{width}}  {'status':<6} {'time':>7}  description",
    ]
    for result in _ordered(run):
        lines.append(
            f"{result.check.group:<9} {result.check.id:<{width}}  {_MARK[result.status]:<6} "
            f"{result.duration:>6.2f}s  {result.check.doc}"
        )
    counts = run.counts
    lines += [
        "",
        f"{len(run.results)} checks: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['warning']} warning, {counts['skipped']} skipped in {run.duration:.1f} s; "
        f"{_spend(run, price_per_mtok)}",
    ]
    details = [r for r in _ordered(run) if r.status != "passed"]
    for result in details:
        lines += ["", f"[{_MARK[result.status]}] {result.check.id}: {result.check.doc}"]
        lines += [f"    {line}" for line in result.message.splitlines()]
    return "\n".join(lines)


def json_report(run: RunResult, *, price_per_mtok: float | None = None) -> dict[str, Any]:
    """The machine-readable report; its shape is documented in the README and versioned."""
    return {
        "report_version": REPORT_VERSION,
        "tool": "chatcompat",
        "tool_version": __version__,
        "base_url": run.endpoint.base_url,
        "model": run.endpoint.model,
        "schema_level": run.schema_level,
        "capabilities": sorted(run.endpoint.capabilities),
        "started": dt.datetime.fromtimestamp(run.started, dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(run.duration, 3),
        "requests": run.requests,
        "retries": run.retries,
        "tokens": run.tokens,
        "cost_usd": None if price_per_mtok is None else round(run.tokens * price_per_mtok / 1e6, 6),
        "summary": dict(run.counts),
        "ok": run.ok,
        "checks": [
            {
                "id": r.check.id,
                "group": r.check.group,
                "severity": r.check.severity,
                "capability": r.check.capability,
                "description": r.check.doc,
                "status": r.status,
                "message": r.message,
                "duration_s": round(r.duration, 3),
                "requests": r.requests,
                "tokens": r.tokens,
            }
            for r in _ordered(run)
        ],
    }


def junit_xml(run: RunResult) -> str:
    """JUnit XML: one testsuite, one testcase per check (classname = group)."""
    suite = ET.Element(
        "testsuite",
        name="chatcompat",
        tests=str(len(run.results)),
        failures=str(run.counts["failed"]),
        skipped=str(run.counts["skipped"]),
        errors="0",
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
        first_line = result.message.splitlines()[0] if result.message else ""
        if result.status == "failed":
            ET.SubElement(case, "failure", message=first_line).text = result.message
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", message=first_line)
        elif result.status == "warning":
            ET.SubElement(case, "system-out").text = f"WARNING: {result.message}"
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def markdown_summary(run: RunResult) -> str:
    """A Markdown summary for a CI comment: the verdict, counts, and a table of what did not
    pass (messages cut to their first line)."""
    counts = run.counts
    verdict = "passed" if run.ok else "FAILED"
    lines = [
        f"### chatcompat {verdict}: `{run.endpoint.model}` at `{run.endpoint.base_url}`",
        "",
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['warning']} warning, "
        f"{counts['skipped']} skipped in {run.duration:.1f} s ({_spend(run, None)})",
    ]
    shown = [r for r in _ordered(run) if r.status in ("failed", "warning")]
    if shown:
        lines += ["", "| check | group | status | what was seen |", "|---|---|---|---|"]
        for r in shown:
            first = (r.message.splitlines() or [""])[0].replace("|", "\\|")
            lines.append(f"| `{r.check.id}` | {r.check.group} | {r.status} | {first} |")
    return "\n".join(lines) + "\n"


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
            json.dumps(json_report(run, price_per_mtok=price_per_mtok), indent=2) + "\n",
            encoding="utf-8",
        )
    if junit_path is not None:
        junit_path.parent.mkdir(parents=True, exist_ok=True)
        junit_path.write_text(junit_xml(run), encoding="utf-8")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown_summary(run), encoding="utf-8")
