"""The defect registry: names, stages, and no knowledge of the suite in the mock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mockserver
from chatcompat import schemas
from conformance import CHECKS
from mockserver._defects import DEFECTS, STAGES, ActiveDefects, Defect, _registry

MOCKSERVER = Path(mockserver.__file__).parent


def _properties(schema, found):
    """Every name under a "properties" keyword of ``schema``, at any depth."""
    if isinstance(schema, dict):
        found |= set(schema.get("properties") or {})
        for value in schema.values():
            _properties(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _properties(value, found)
    return found


def test_the_mock_names_no_check():
    # Which checks catch a defect is the suite's knowledge (tests/conformance/kill_matrix.toml).
    # Three check ids are also request fields (stop, logit_bias, max_completion_tokens): the
    # mock names the fields.
    fields = _properties(schemas.load("chat-completion-request", "compatible"), set())
    ids = sorted(set(CHECKS) - fields)
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, ids)) + r")(?!\w)")
    named = {
        f"{path.relative_to(MOCKSERVER)}: {match.group()}"
        for path in MOCKSERVER.rglob("*")
        if path.is_file() and path.suffix in {".py", ".json", ".sse", ".md", ".txt"}
        for match in pattern.finditer(path.read_text("utf-8"))
    }
    assert named == set()


def test_every_hook_is_at_a_known_stage():
    for defect in DEFECTS.values():
        hooks = {**defect.hooks, **(defect.stateful() if defect.stateful else {})}
        assert hooks, defect.name
        assert set(hooks) <= set(STAGES), defect.name


def test_every_defect_has_a_one_line_doc():
    for defect in DEFECTS.values():
        assert defect.doc and "\n" not in defect.doc, defect.name


def test_a_hook_at_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage"):
        Defect("typo", "A hook at a stage nobody calls.", {"completions": lambda body: body})


def test_a_name_given_twice_is_refused():
    twice = (DEFECTS["missing-done"], DEFECTS["missing-done"])
    with pytest.raises(ValueError, match="'missing-done' defined twice"):
        _registry(twice)


def test_active_defects_chain_their_hooks_in_the_order_given():
    active = ActiveDefects(["missing-done", "null-event"])
    assert active
    assert not ActiveDefects()
    events = [b"data: {}\n\n", b"data: [DONE]\n\n"]
    assert active.apply("events", events) == [b"data: null\n\n", b"data: {}\n\n"]
    assert active.apply("chunks", [{"id": "x"}]) == [{"id": "x"}]  # no hook at that stage
