from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest


def isort_style(name):
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize(
    "package",
    ["conformance", "mockserver", "chatcompat.schemas"],
    ids=["conformance", "mockserver", "schemas"],
)
def test_all_is_sorted_and_importable(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__, key=isort_style)
    for name in module.__all__:
        assert hasattr(module, name), name


def _imported(path):
    """(module, name) of every ``from X import name`` in the Python file ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    ]


BENCH = sorted((Path(__file__).parent.parent / "bench").glob("*.py"))


OURS = ("mockserver", "conformance", "reference_model")


@pytest.mark.parametrize("path", BENCH, ids=[p.name for p in BENCH])
def test_bench_imports_only_public_names(path):
    found = [(m, n) for m, n in _imported(path) if m.split(".")[0] in OURS]
    private = [
        (m, n) for m, n in found if m not in OURS or n not in importlib.import_module(m).__all__
    ]
    assert private == []


def test_the_mock_exports_flavours_not_dialects():
    mockserver = importlib.import_module("mockserver")
    assert {"FLAVOURS", "Flavour"} <= set(mockserver.__all__)
    assert not {"DIALECTS", "Dialect"} & set(dir(mockserver))
