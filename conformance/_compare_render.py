"""A comparison of two reports (:mod:`conformance._compare`) as text, Markdown or JSON.

Every string of a report is input the suite did not write this time: escaped again here
(:func:`~conformance._shown.inline` in text, :func:`~conformance._shown.markdown_code` in
Markdown; JSON escapes by itself)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

from conformance._compare import (
    KIND_WORDS,
    Change,
    Comparison,
    Side,
    as_json,
    reason,
    verdict,
)
from conformance._shown import inline, markdown_code

__all__ = ["CompareFormat", "render_comparison"]

CompareFormat = Literal["text", "markdown", "json"]
_REGRESSIONS_HEAD = "regressions (pass on BASE, not on OTHER)"
_IMPROVEMENTS_HEAD = "improvements (pass on OTHER, not on BASE)"
_SAME = "the same endpoint, model, capabilities, schema level, suite version and checks"


def _by_group(changes: list[Change]) -> list[tuple[str, list[Change]]]:
    """``changes`` (in row order, so a group's are together) as (group, its changes)."""
    groups: list[tuple[str, list[Change]]] = []
    for change in changes:
        if not groups or groups[-1][0] != change.group:
            groups.append((change.group, []))
        groups[-1][1].append(change)
    return groups


def _text_changes(head: str, changes: list[Change]) -> list[str]:
    lines = ["", f"{head}: {len(changes)}"]
    for group, members in _by_group(changes):
        lines.append(f"  {inline(group)}:")
        for c in members:
            lines.append(
                f"    {inline(c.id)} [{inline(c.severity)}] {KIND_WORDS[c.kind]}: "
                f"{c.base.word()} -> {c.other.word()}"
            )
            lines += [
                f"      {name}: {reason(side)}"
                for name, side in (("BASE", c.base), ("OTHER", c.other))
                if side.reason
            ]
            if c.other.status is None or c.base.status is None:
                missing = "OTHER" if c.other.status is None else "BASE"
                lines.append(f"      {missing}: the report has no such check")
    return lines


def _joined(
    comparison: Comparison,
    lines: list[str],
    changes: Callable[[str, list[Change]], list[str]],
    last: str,
) -> str:
    """``lines``, then the regressions and the improvements as ``changes`` writes them, then
    ``last``, as one text ending in a line break."""
    lines += changes(_REGRESSIONS_HEAD, comparison.regressions)
    lines += changes(_IMPROVEMENTS_HEAD, comparison.improvements)
    return "\n".join([*lines, "", last]) + "\n"


def _text(comparison: Comparison) -> str:
    lines = [
        f"chatcompat compare: BASE {inline(str(comparison.base_path))} -> OTHER "
        f"{inline(str(comparison.other_path))}",
    ]
    differences = [
        f"  {d.what}: BASE {inline(d.base)}; OTHER {inline(d.other)}"
        for d in comparison.differences
    ]
    lines += ["the runs differ in:", *differences] if differences else [f"the runs: {_SAME}"]
    return _joined(comparison, lines, _text_changes, verdict(comparison))


def _code(value: str) -> str:
    """A report's string as a code span in a table cell."""
    return markdown_code(value, cell=True)


def _cell(side: Side) -> str:
    """A side as a Markdown table cell: the status, then the reason in a code span."""
    if side.status is None:
        return f"{side.word()} (no such check)"
    return side.word() + (f": {markdown_code(reason(side), cell=True)}" if side.reason else "")


def _markdown_changes(head: str, changes: list[Change]) -> list[str]:
    lines = ["", f"## {head[0].upper()}{head[1:]}: {len(changes)}", ""]
    if not changes:
        return [*lines, "None."]
    lines += [
        "| group | check | severity | change | BASE | OTHER |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_code(c.group)} | {_code(c.id)} | {_code(c.severity)} | {KIND_WORDS[c.kind]} "
        f"| {_cell(c.base)} | {_cell(c.other)} |"
        for c in changes
    ]
    return lines


def _markdown(comparison: Comparison) -> str:
    lines = [
        "# chatcompat compare",
        "",
        f"BASE: {markdown_code(str(comparison.base_path))}, OTHER: "
        f"{markdown_code(str(comparison.other_path))}",
        "",
        "## What differs in the runs",
        "",
    ]
    rows = [f"| {d.what} | {_code(d.base)} | {_code(d.other)} |" for d in comparison.differences]
    lines += ["| | BASE | OTHER |", "|---|---|---|", *rows] if rows else [f"Nothing: {_SAME}."]
    return _joined(comparison, lines, _markdown_changes, f"**{verdict(comparison)}**")


def render_comparison(comparison: Comparison, fmt: CompareFormat = "text") -> str:
    """``comparison`` as plain text (one line per change, reasons indented under it), Markdown
    (a table of the runs' differences, a table per direction) or JSON
    (:func:`~conformance._compare.as_json`, indented). Raises ValueError for another ``fmt``."""
    if fmt == "text":
        return _text(comparison)
    if fmt == "markdown":
        return _markdown(comparison)
    if fmt == "json":
        return json.dumps(as_json(comparison), indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected text, markdown or json")
