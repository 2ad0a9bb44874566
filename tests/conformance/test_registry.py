"""The check registry: every check declares one severity and states its requirement in a
one-line description; no check raises a warning of its own (a ``should`` check's CheckFailed is
the warning)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import conformance
from conformance import CHECKS, check
from conformance import _outcome as outcome_module

CHECK_MODULES = sorted((Path(conformance.__file__).parent / "_checks").glob("*.py"))


def decorated_checks(path):
    """(function name, the keywords of its @check(...) decorator) of every check in ``path``."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "check":
                yield node.name, {k.arg: k.value for k in decorator.keywords}


def test_every_check_declares_its_severity_where_it_is_defined():
    declared = {}
    for path in CHECK_MODULES:
        for name, keywords in decorated_checks(path):
            assert isinstance(keywords.get("severity"), ast.Constant), f"{path.name}: {name}"
            declared[name] = keywords["severity"].value
    assert declared == {c.id: c.severity for c in CHECKS.values()}
    assert set(declared.values()) == {"must", "should"}


def test_a_check_without_a_severity_is_refused():
    with pytest.raises(TypeError, match="severity"):
        check(group="stream")  # type: ignore[call-arg]


def test_a_severity_other_than_must_or_should_is_refused():
    with pytest.raises(ValueError, match="unknown severity 'may'"):
        check(group="stream", severity="may")  # type: ignore[arg-type]


def test_no_check_raises_a_warning_of_its_own():
    assert not hasattr(conformance, "CheckWarning")
    assert not hasattr(outcome_module, "CheckWarning")
    for path in CHECK_MODULES:
        assert "CheckWarning" not in path.read_text("utf-8"), path.name


def test_each_description_is_one_sentence_on_the_first_line():
    for found in CHECKS.values():
        first_line = inspect.getdoc(found.func).splitlines()[0]
        assert found.doc == first_line, found.id
        assert first_line.endswith("."), found.id
        assert len(first_line) <= 96, found.id  # fits the docstring's line of 100
