from __future__ import annotations

import reference_model


def _isort_style(name):
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_importable():
    assert reference_model.__all__ == sorted(reference_model.__all__, key=_isort_style)
    for name in reference_model.__all__:
        assert hasattr(reference_model, name), name


def test_generation_api_is_public():
    for name in ["GenerationRequest", "Step", "generate", "generation_request", "export_model"]:
        assert name in reference_model.__all__
    assert "Usage" not in reference_model.__all__  # the token counts are Generation's own
