"""docs/compatibility.md, which the engines tier writes, is current: it has a row for every
check of the suite, and each engine's column says what tests/engines/expectations/ENGINE.toml
expects (the tier fails when an engine's outcome differs from those, so a column that agrees
with them is the last tier run's truth)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance import CHECKS, load_profile

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "compatibility.md"
sys.path.insert(0, str(ROOT / "tests" / "engines"))

from engine_harness import (  # noqa: E402
    claimed_capabilities,
    expected_statuses,
    load_expectations,
    load_specs,
)

SPECS = load_specs()


def matrix_rows() -> tuple[list[str], dict[str, list[str]]]:
    """The doc's matrix: its column heads and, by check id, the status word of each cell."""
    heads: list[str] = []
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[:3] == ["group", "check", "severity"]:
            heads = [cell.strip("`") for cell in cells[3:]]
        elif heads and len(cells) == 3 + len(heads) and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = [([*cell.split(), "not-run"])[1] for cell in cells[3:]]
    return heads, rows


def test_the_doc_has_a_row_for_every_check() -> None:
    heads, rows = matrix_rows()
    assert set(SPECS) <= set(heads)
    assert sorted(rows) == sorted(CHECKS)


@pytest.mark.parametrize("engine", list(SPECS))
def test_each_engine_column_agrees_with_its_expectations(engine: str) -> None:
    heads, rows = matrix_rows()
    column = heads.index(engine)
    expectations = load_expectations(engine)
    claimed = claimed_capabilities(SPECS[engine], load_profile(SPECS[engine].profile).capabilities)
    capability = {check_id: check.capability for check_id, check in CHECKS.items()}
    differences = {}
    for check_id, cells in rows.items():
        wanted = expected_statuses(check_id, capability[check_id], claimed, expectations)
        if cells[column] not in wanted:
            differences[check_id] = (cells[column], wanted)
    assert not differences, f"re-run `tox -e engines`: (doc, expected) {differences}"
