"""README.md's generated tables match the registries (scripts/readme_tables.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conformance import CHECKS
from mockserver import DEFECTS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SPEC = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts/readme_tables.py")
assert SPEC and SPEC.loader
readme_tables = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(readme_tables)


def first_cells(table):
    """The first cell of every row of a generated table, backticks off."""
    return [line.split(" | ")[0].removeprefix("| `").removesuffix("`") for line in table[2:]]


def test_readme_tables_match_the_registries():
    assert readme_tables.drift(README) == "", "README.md drifted: python scripts/readme_tables.py"


def test_the_prose_counts_the_checks_by_severity():
    text = README.read_text("utf-8")
    must = sum(c.severity == "must" for c in CHECKS.values())
    assert f"Each of\nthe {len(CHECKS)} checks" in text
    assert f"a MUST ({must} checks:" in text
    assert f"a SHOULD ({len(CHECKS) - must}:" in text


def test_every_check_and_every_defect_has_a_row():
    tables = readme_tables.tables()
    assert sorted(first_cells(tables["checks"].splitlines())) == sorted(CHECKS)
    assert sorted(first_cells(tables["defects"].splitlines())) == sorted(DEFECTS)


def test_check_prints_the_drift_and_exits_1_then_a_rewrite_fixes_it(tmp_path, capsys):
    readme = tmp_path / "README.md"
    row = f"| `missing-done` | {DEFECTS['missing-done'].doc} |"
    assert README.read_text("utf-8").count(row) == 1
    readme.write_text(README.read_text("utf-8").replace(row, "| `missing-done` | old text |"))
    assert readme_tables.main(["--check", "--readme", str(readme)]) == 1
    diff = capsys.readouterr().out
    assert "-| `missing-done` | old text |" in diff
    assert f"+{row}" in diff
    assert readme_tables.main(["--readme", str(readme)]) == 0
    assert readme.read_text("utf-8") == README.read_text("utf-8")
    assert readme_tables.main(["--check", "--readme", str(readme)]) == 0
    assert capsys.readouterr().out == ""


def test_a_block_without_its_markers_is_an_error():
    with pytest.raises(ValueError, match="0 'checks' blocks"):
        readme_tables.render("# A README without markers\n", {"checks": "| id |"})


def test_a_defect_without_a_row_is_an_error():
    with pytest.raises(ValueError, match="defects without a row"):
        readme_tables.defects_table({})
