"""A compatibility matrix: several JSON reports (v2, one endpoint each) as one table, checks by
endpoint, in Markdown or as one self-contained HTML file (``chatcompat matrix``).

Rows are the checks, by group in :data:`~conformance._registry.GROUPS` order and within a group
in registry order (checks this suite does not know, from another suite version, after them by
id); columns are the endpoints; a cell is the check's status as a symbol and a word, ``—`` when
the report has no such check (not run). A cell that did not pass carries the outcome's message:
a numbered footnote in Markdown (one per distinct status and message), a ``title`` (hover)
and a numbered list in HTML.

A report file is input the suite did not write this time: every string of it is escaped again
for the output (:func:`~conformance._shown.markdown_code` in Markdown, :func:`html.escape` of
:func:`~conformance._shown.inline` in HTML)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from conformance._registry import CHECKS, GROUPS
from conformance._report import REPORT_VERSION
from conformance._shown import cut, inline, markdown_code

__all__ = ["MatrixColumn", "read_report", "render_matrix"]

Format = Literal["markdown", "html"]
STATUSES = ("passed", "failed", "warning", "skipped", "error")
_SYMBOL = {
    "passed": "✓",
    "failed": "✗",
    "warning": "⚠",
    "skipped": "○",
    "error": "‼",
}
NOT_RUN = "—"
_REASON_CHARS = 400  # of a message in a footnote or a title (the middle elided)
_LABEL_CHARS = 60


@dataclass(frozen=True)
class MatrixColumn:
    """One endpoint of the matrix: its ``label`` (the column head), its ``base_url`` and
    ``model`` as the report says, and its checks by id (each a report's check entry: ``id``,
    ``group``, ``severity``, ``status``, ``message``, ...); ``capabilities``: those the run
    claimed, sorted (empty when the report lists none)."""

    label: str
    base_url: str
    model: str
    schema_level: str
    tool_version: str
    checks: dict[str, dict[str, Any]]
    capabilities: tuple[str, ...] = ()


def _problem(report: Any) -> str | None:
    """Why ``report`` (parsed JSON) is not a v2 report this module can read, or None."""
    if not isinstance(report, dict):
        return "not a JSON object"
    version = report.get("report_version")
    if version != REPORT_VERSION:
        return f"report_version is {json.dumps(version)[:20]}, expected {REPORT_VERSION}"
    for field in ("base_url", "model"):
        if not isinstance(report.get(field), str):
            return f"{field} is not a string"
    capabilities = report.get("capabilities", [])
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        return "capabilities is not a list of strings"
    checks = report.get("checks")
    if not isinstance(checks, list):
        return "checks is not a list"
    for at, entry in enumerate(checks):
        if not isinstance(entry, dict):
            return f"checks[{at}] is not an object"
        for field in ("id", "group", "severity"):
            if not isinstance(entry.get(field), str):
                return f"checks[{at}].{field} is not a string"
        if entry.get("status") not in STATUSES:
            return f"checks[{at}].status is not one of {', '.join(STATUSES)}"
        if not isinstance(entry.get("message", ""), str | None):
            return f"checks[{at}].message is not a string"
    return None


def read_report(path: Path, label: str | None = None) -> MatrixColumn:
    """The column of the JSON report at ``path``; ``label`` defaults to ``model @ host``.
    Raises ValueError naming the file when it cannot be read, is not JSON or not a report of
    version :data:`~conformance._report.REPORT_VERSION`."""
    name = inline(str(path))
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{name}: cannot read it ({inline(exc.strerror or str(exc))})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        why = inline(str(exc))[:200]
        raise ValueError(f"{name}: not a chatcompat JSON report (not JSON: {why})") from None
    problem = _problem(report)
    if problem:
        raise ValueError(f"{name}: not a chatcompat JSON report v{REPORT_VERSION} ({problem})")
    host = urlsplit(report["base_url"]).netloc or report["base_url"]
    return MatrixColumn(
        label=label if label is not None else f"{report['model']} @ {host}",
        base_url=report["base_url"],
        model=report["model"],
        schema_level=str(report.get("schema_level", "")),
        tool_version=str(report.get("tool_version", "")),
        checks={entry["id"]: entry for entry in report["checks"]},
        capabilities=tuple(sorted(str(c) for c in report.get("capabilities") or ())),
    )


@dataclass(frozen=True)
class _Row:
    id: str
    group: str
    severity: str


def _rows(columns: Sequence[MatrixColumn]) -> list[_Row]:
    """Every check some report ran: by group (GROUPS order, unknown groups after), then in
    registry order, then the checks the registry does not know by id."""
    seen: dict[str, dict[str, Any]] = {}
    for column in columns:
        for check_id, entry in column.checks.items():
            seen.setdefault(check_id, entry)
    order = {check_id: at for at, check_id in enumerate(CHECKS)}

    def place(row: _Row) -> tuple[int, str, int, str]:
        group = GROUPS.index(row.group) if row.group in GROUPS else len(GROUPS)
        return (group, row.group, order.get(row.id, len(order)), row.id)

    rows = []
    for check_id, entry in seen.items():
        known = CHECKS.get(check_id)
        group = known.group if known else entry["group"]
        rows.append(_Row(check_id, group, known.severity if known else entry["severity"]))
    return sorted(rows, key=place)


@dataclass(frozen=True)
class _Cell:
    status: str | None  # None: the report has no such check
    reason: str  # the message, one line, cut; "" when none
    note: int | None  # footnote number


def _cells(rows: list[_Row], columns: Sequence[MatrixColumn]) -> list[list[_Cell]]:
    """The cells row by row; every cell that did not pass and says why points to a footnote:
    one per distinct (status, reason), numbered 1, 2, ... as first met row by row, column by
    column."""
    grid: list[list[_Cell]] = []
    notes: dict[tuple[str, str], int] = {}
    for row in rows:
        line = []
        for column in columns:
            entry = column.checks.get(row.id)
            if entry is None:
                line.append(_Cell(None, "", None))
                continue
            status = entry["status"]
            reason = cut(inline(entry.get("message") or ""), _REASON_CHARS)
            note = None
            if reason and status != "passed":
                note = notes.setdefault((status, reason), len(notes) + 1)
            line.append(_Cell(status, reason, note))
        grid.append(line)
    return grid


def _notes(grid: list[list[_Cell]]) -> list[_Cell]:
    """The first cell of each footnote, by number."""
    first: dict[int, _Cell] = {}
    for cells in grid:
        for cell in cells:
            if cell.note is not None:
                first.setdefault(cell.note, cell)
    return [first[n] for n in sorted(first)]


def _word(cell: _Cell) -> str:
    return f"{NOT_RUN} not run" if cell.status is None else f"{_SYMBOL[cell.status]} {cell.status}"


def _label(column: MatrixColumn) -> str:
    return cut(inline(column.label), _LABEL_CHARS)


def _markdown(rows: list[_Row], columns: Sequence[MatrixColumn]) -> str:
    grid = _cells(rows, columns)
    heads = " | ".join(markdown_code(_label(c), cell=True) for c in columns)
    lines = [
        "# Compatibility matrix",
        "",
        "| group | check | severity | " + heads + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for row, cells in zip(rows, grid, strict=True):
        shown = [_word(c) + (f" [{c.note}]" if c.note else "") for c in cells]
        lines.append(
            f"| {markdown_code(row.group, cell=True)} | {markdown_code(row.id, cell=True)} "
            f"| {markdown_code(row.severity, cell=True)} | " + " | ".join(shown) + " |"
        )
    lines += ["", f"{NOT_RUN}: the report has no such check (another suite version).", ""]
    lines += ["Endpoints:", ""]
    for column in columns:
        lines.append(
            f"- {markdown_code(_label(column))}: {markdown_code(column.base_url)}, model "
            f"{markdown_code(column.model)}, {markdown_code(column.schema_level)} schemas, "
            f"chatcompat {markdown_code(column.tool_version)}"
        )
    notes = _notes(grid)
    if notes:
        lines += ["", "Reasons:", ""]
        lines += [f"{c.note}. {c.status}: {markdown_code(c.reason)}" for c in notes]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; white-space: nowrap; }
tr.group th { background: #eee; }
td.passed { background: #e6f4e6; } td.failed { background: #f9dcdc; }
td.warning { background: #fdf1d0; } td.skipped { color: #777; }
td.error { background: #f3d0f3; } td.not-run { color: #999; }
td[title] { cursor: help; } code { font-size: 0.95em; }
"""


def _text(value: str) -> str:
    """Any string of a report as HTML text or attribute value: one line, escaped."""
    return html.escape(inline(value), quote=True)


def _html_cell(cell: _Cell) -> str:
    kind = cell.status or "not-run"
    title = f' title="{_text(cell.reason)}"' if cell.reason else ""
    note = f' <a href="#note-{cell.note}"><sup>{cell.note}</sup></a>' if cell.note else ""
    return f'<td class="{kind}"{title}>{html.escape(_word(cell))}{note}</td>'


def _html(rows: list[_Row], columns: Sequence[MatrixColumn]) -> str:
    grid = _cells(rows, columns)
    heads = "".join(
        f'<th title="{_text(c.base_url)}"><code>{_text(_label(c))}</code></th>' for c in columns
    )
    body: list[str] = []
    group = None
    for row, cells in zip(rows, grid, strict=True):
        if row.group != group:
            group = row.group
            span = len(columns) + 2
            body.append(f'<tr class="group"><th colspan="{span}">{_text(group)}</th></tr>')
        body.append(
            f"<tr><td><code>{_text(row.id)}</code></td><td>{_text(row.severity)}</td>"
            + "".join(_html_cell(c) for c in cells)
            + "</tr>"
        )
    endpoints = "".join(
        f"<li><code>{_text(_label(c))}</code>: <code>{_text(c.base_url)}</code>, model "
        f"<code>{_text(c.model)}</code>, {_text(c.schema_level)} schemas, chatcompat "
        f"{_text(c.tool_version)}</li>"
        for c in columns
    )
    details = "".join(
        f'<li id="note-{c.note}" value="{c.note}">{_text(c.status or "")}: '
        f"<code>{_text(c.reason)}</code></li>"
        for c in _notes(grid)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>chatcompat compatibility matrix</title>\n<style>{_CSS}</style>\n</head>\n"
        "<body>\n<h1>Compatibility matrix</h1>\n<table>\n"
        f"<thead><tr><th>check</th><th>severity</th>{heads}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>\n"
        f"<p>{NOT_RUN}: the report has no such check (another suite version).</p>\n"
        f"<h2>Endpoints</h2>\n<ul>{endpoints}</ul>\n"
        + (f"<h2>Reasons</h2>\n<ol>{details}</ol>\n" if details else "")
        + "</body>\n</html>\n"
    )


def render_matrix(columns: Sequence[MatrixColumn], fmt: Format = "markdown") -> str:
    """The matrix of ``columns`` (:func:`read_report`, one per endpoint) as Markdown (a GFM
    table, then the endpoints and the numbered reasons) or as one HTML document (inline CSS,
    no script; reasons on hover and in a list). Raises ValueError for another ``fmt`` or no
    column."""
    if not columns:
        raise ValueError("a matrix needs at least one report")
    if fmt == "markdown":
        return _markdown(_rows(columns), columns)
    if fmt == "html":
        return _html(_rows(columns), columns)
    raise ValueError(f"unknown format {fmt!r}; expected markdown or html")
