"""Loader for the JSON Schemas in ``schemas/`` (shipped in the wheel as ``chatcompat/schemas``)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

__all__ = ["LEVELS", "NAMES", "Level", "load", "openapi_text", "root", "validator"]

Level = Literal["strict", "compatible"]
LEVELS: tuple[Level, ...] = ("strict", "compatible")
NAMES = (
    "chat-completion-request",
    "chat-completion",
    "chat-completion-chunk",
    "error",
    "model",
    "model-list",
)


@functools.cache
def root() -> Traversable:
    """The schemas directory: packaged data in a wheel, ``./schemas`` in a source checkout."""
    packaged = resources.files("chatcompat") / "schemas"
    if packaged.is_dir():
        return packaged
    # Editable installs do not map force-included data; read the checkout's folder.
    return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def _load_text(level: Level, name: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown schema level {level!r}; expected one of {LEVELS}")
    if name not in NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of {NAMES}")
    return (root() / level / f"{name}.json").read_text(encoding="utf-8")


def load(name: str, level: Level = "compatible") -> dict[str, Any]:
    """A fresh copy of schema ``name`` at ``level``."""
    data: dict[str, Any] = json.loads(_load_text(level, name))
    return data


@functools.cache
def validator(name: str, level: Level = "compatible") -> Draft202012Validator:
    """A cached 2020-12 validator for schema ``name`` at ``level``."""
    return Draft202012Validator(load(name, level))


def openapi_text() -> str:
    """The OpenAPI 3.1 document (YAML) describing the chat-completions API."""
    return (root() / "openapi.yaml").read_text(encoding="utf-8")
