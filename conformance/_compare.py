"""Two JSON reports (v2) side by side: what passes on BASE and not on OTHER (the regressions)
and the reverse (the improvements), grouped by check group, and what differs in the runs
themselves (``chatcompat compare``). For "what breaks if we move from endpoint A to endpoint
B" and for release-to-release regressions.

A check's change has a kind, by its statuses on BASE -> OTHER (``None``: not in the report):

- ``regressed``: passed -> failed | error (the kind that makes OTHER regress: exit 1);
- ``now_warns``: passed -> warning (a ``should`` check);
- ``no_longer_run``: passed -> skipped | not in the report;
- ``fixed``: failed | error | warning -> passed;
- ``newly_run``: skipped | not in the report -> passed.

Checks that pass on both sides, or on neither, are unchanged. The reports are read by the
matrix's reader (:func:`~conformance._matrix.read_report`); every string of them is escaped
again for the output, as the matrix does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from conformance._matrix import _SYMBOL, NOT_RUN, MatrixColumn, _rows, read_report
from conformance._shown import cut, inline

__all__ = [
    "Change",
    "Comparison",
    "Difference",
    "Side",
    "as_json",
    "compare",
    "compare_files",
    "counts",
    "reason",
    "verdict",
]

Kind = Literal["regressed", "now_warns", "no_longer_run", "fixed", "newly_run"]
REGRESSIONS: tuple[Kind, ...] = ("regressed", "now_warns", "no_longer_run")
IMPROVEMENTS: tuple[Kind, ...] = ("fixed", "newly_run")
KIND_WORDS: dict[Kind, str] = {
    "regressed": "regressed",
    "now_warns": "now warns",
    "no_longer_run": "no longer run",
    "fixed": "fixed",
    "newly_run": "newly run",
}
REASON_CHARS = 300  # of a message in the text and Markdown outputs (the middle elided)
_IDS_LISTED = 10  # check ids named in a difference of the check sets; the rest counted


@dataclass(frozen=True)
class Side:
    """One report's view of a check: its ``status`` (None: the report has no such check) and
    its ``reason`` (the outcome's message as the report holds it; "" when none)."""

    status: str | None
    reason: str

    def word(self) -> str:
        """``✓ passed``, ``✗ failed``, ... or ``— not run``."""
        return (
            f"{NOT_RUN} not run" if self.status is None else f"{_SYMBOL[self.status]} {self.status}"
        )


@dataclass(frozen=True)
class Change:
    """A check that passes on one side only: its id, group and severity, the ``kind`` of
    change (see the module's doc) and each side's view."""

    id: str
    group: str
    severity: str
    kind: Kind
    base: Side
    other: Side


@dataclass(frozen=True)
class Difference:
    """Something the two runs differ in (``what``: endpoint, model, capabilities, schema
    level, suite version, checks) and each side's value, as one line of text."""

    what: str
    base: str
    other: str


@dataclass(frozen=True)
class Comparison:
    """BASE and OTHER (the reports' paths and columns), their changes in row order (group in
    :data:`~conformance._registry.GROUPS` order, then registry order), the runs' differences
    and the number of checks on either side that did not change."""

    base_path: Path
    other_path: Path
    base: MatrixColumn
    other: MatrixColumn
    changes: tuple[Change, ...]
    differences: tuple[Difference, ...]
    unchanged: int

    @property
    def regressions(self) -> list[Change]:
        """What passes on BASE and not on OTHER."""
        return [c for c in self.changes if c.kind in REGRESSIONS]

    @property
    def improvements(self) -> list[Change]:
        """What passes on OTHER and not on BASE."""
        return [c for c in self.changes if c.kind in IMPROVEMENTS]

    @property
    def regressed(self) -> bool:
        """Whether a check that passed on BASE failed or crashed on OTHER."""
        return any(c.kind == "regressed" for c in self.changes)


def _kind(base: str | None, other: str | None) -> Kind | None:
    """The change from status ``base`` to ``other`` (None: not in the report), or None when
    both pass or neither does."""
    if base == "passed" and other != "passed":
        if other in ("failed", "error"):
            return "regressed"
        return "now_warns" if other == "warning" else "no_longer_run"
    if other == "passed" and base != "passed":
        return "fixed" if base in ("failed", "error", "warning") else "newly_run"
    return None


def _side(column: MatrixColumn, check_id: str) -> Side:
    entry = column.checks.get(check_id)
    if entry is None:
        return Side(None, "")
    return Side(entry["status"], str(entry.get("message") or ""))


def _named(ids: Sequence[str]) -> str:
    """``N only here: a, b, ...`` (at most :data:`_IDS_LISTED` ids named), or ``none``."""
    if not ids:
        return "none only here"
    named = ", ".join(ids[:_IDS_LISTED])
    more = f" and {len(ids) - _IDS_LISTED} more" if len(ids) > _IDS_LISTED else ""
    return f"{len(ids)} only here: {named}{more}"


def _differences(base: MatrixColumn, other: MatrixColumn) -> list[Difference]:
    """What the runs differ in, in this order: endpoint, model, capabilities (each side's own),
    schema level, suite version, checks (each side's own ids, in row order)."""
    found = [
        Difference(what, a, b)
        for what, a, b in (
            ("endpoint", base.base_url, other.base_url),
            ("model", base.model, other.model),
            ("schema level", base.schema_level, other.schema_level),
            ("suite version", base.tool_version, other.tool_version),
        )
        if a != b
    ]
    only_base = [c for c in base.capabilities if c not in other.capabilities]
    only_other = [c for c in other.capabilities if c not in base.capabilities]
    if only_base or only_other:
        found.insert(
            2,
            Difference(
                "capabilities",
                ", ".join(only_base) + " only here" if only_base else "none only here",
                ", ".join(only_other) + " only here" if only_other else "none only here",
            ),
        )
    rows = [row.id for row in _rows((base, other))]
    base_ids = [i for i in rows if i in base.checks and i not in other.checks]
    other_ids = [i for i in rows if i in other.checks and i not in base.checks]
    if base_ids or other_ids:
        found.append(Difference("checks", _named(base_ids), _named(other_ids)))
    return found


def compare(
    base: MatrixColumn, other: MatrixColumn, paths: tuple[Path, Path] = (Path(), Path())
) -> Comparison:
    """The comparison of two report columns (:func:`~conformance._matrix.read_report`);
    ``paths`` are the files they were read from, as the outputs name them."""
    changes, unchanged = [], 0
    for row in _rows((base, other)):
        before, after = _side(base, row.id), _side(other, row.id)
        kind = _kind(before.status, after.status)
        if kind is None:
            unchanged += 1
        else:
            changes.append(Change(row.id, row.group, row.severity, kind, before, after))
    return Comparison(
        paths[0], paths[1], base, other, tuple(changes), tuple(_differences(base, other)), unchanged
    )


def compare_files(base: Path, other: Path) -> Comparison:
    """The comparison of the JSON reports at ``base`` and ``other``. Raises ValueError naming
    the file that cannot be read, is not JSON or not a report of version 2."""
    return compare(read_report(base, str(base)), read_report(other, str(other)), (base, other))


def counts(comparison: Comparison) -> dict[str, int]:
    """How many checks changed by kind, then ``unchanged`` and ``compared`` (all checks on
    either side)."""
    found: dict[str, int] = {kind: 0 for kind in (*REGRESSIONS, *IMPROVEMENTS)}
    for change in comparison.changes:
        found[change.kind] += 1
    found["unchanged"] = comparison.unchanged
    found["compared"] = comparison.unchanged + len(comparison.changes)
    return found


def verdict(comparison: Comparison) -> str:
    """One sentence: whether OTHER regresses (and so the exit status), with the counts."""
    n = counts(comparison)
    tally = (
        f"{len(comparison.regressions)} regression(s) ({n['regressed']} failed or crashed, "
        f"{n['now_warns']} now warn, {n['no_longer_run']} no longer run), "
        f"{len(comparison.improvements)} improvement(s), {n['unchanged']} unchanged "
        f"of {n['compared']} checks"
    )
    if comparison.regressed:
        return f"OTHER regresses: {tally}"
    return f"OTHER does not regress: {tally}"


def reason(side: Side) -> str:
    """A side's reason as a text line holds it: one line, cut (the middle elided)."""
    return cut(inline(side.reason), REASON_CHARS)


def as_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON data: ``compare_version`` (1), ``base`` and ``other`` (path,
    base_url, model, capabilities, schema_level, tool_version, checks: how many), ``differences``
    ([{what, base, other}]), ``regressions`` and ``improvements`` ([{id, group, severity, kind,
    base: {status, reason}, other: {status, reason}}], status null: not in the report; reasons
    in full), ``counts`` (see :func:`counts`) and ``regressed`` (bool: the exit status 1)."""

    def run(path: Path, column: MatrixColumn) -> dict[str, Any]:
        return {
            "path": str(path),
            "base_url": column.base_url,
            "model": column.model,
            "capabilities": list(column.capabilities),
            "schema_level": column.schema_level,
            "tool_version": column.tool_version,
            "checks": len(column.checks),
        }

    def change(c: Change) -> dict[str, Any]:
        return {
            "id": c.id,
            "group": c.group,
            "severity": c.severity,
            "kind": c.kind,
            "base": {"status": c.base.status, "reason": c.base.reason},
            "other": {"status": c.other.status, "reason": c.other.reason},
        }

    return {
        "compare_version": 1,
        "base": run(comparison.base_path, comparison.base),
        "other": run(comparison.other_path, comparison.other),
        "differences": [vars(d) for d in comparison.differences],
        "regressions": [change(c) for c in comparison.regressions],
        "improvements": [change(c) for c in comparison.improvements],
        "counts": counts(comparison),
        "regressed": comparison.regressed,
    }
