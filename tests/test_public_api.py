from __future__ import annotations

import importlib

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
