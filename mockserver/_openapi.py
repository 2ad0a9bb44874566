"""GET /openapi.json: schemas/openapi.yaml as one self-contained JSON document.

Each ``./compatible/<name>.json`` reference becomes ``#/components/schemas/<Name>`` holding that
schema, and each schema's ``$defs`` entry ``X`` becomes the component ``<Name>_X`` (its
``#/$defs/X`` references rewritten), so that tools which resolve references only against the
document root read it."""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

from chatcompat import schemas

__all__ = ["openapi_document"]


def _component_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _bundle(node: Any, found: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("./"):
            level, _, file = ref[2:].partition("/")
            name = file.removesuffix(".json")
            found[name] = level
            return {**node, "$ref": f"#/components/schemas/{_component_name(name)}"}
        return {k: _bundle(v, found) for k, v in node.items()}
    if isinstance(node, list):
        return [_bundle(v, found) for v in node]
    return node


@functools.cache
def _bundled() -> dict[str, Any]:
    found: dict[str, str] = {}
    document: dict[str, Any] = _bundle(yaml.safe_load(schemas.openapi_text()), found)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, level in sorted(found.items()):
        schema = schemas.load(name, level)  # type: ignore[arg-type]
        component = _component_name(name)
        for key in ("$schema", "$id", "$comment"):
            schema.pop(key, None)
        definitions = schema.pop("$defs", {})
        for def_name, definition in definitions.items():
            components[f"{component}_{def_name}"] = _rename_defs(definition, component)
        components[component] = _rename_defs(schema, component)
    return document


def _rename_defs(node: Any, component: str) -> Any:
    """``node`` with each ``#/$defs/X`` reference pointing at the component ``<component>_X``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        renamed = {k: _rename_defs(v, component) for k, v in node.items()}
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            renamed["$ref"] = f"#/components/schemas/{component}_{ref.removeprefix('#/$defs/')}"
        return renamed
    if isinstance(node, list):
        return [_rename_defs(v, component) for v in node]
    return node


def openapi_document(base_url: str) -> dict[str, Any]:
    """The bundled OpenAPI document with this server as its only server."""
    document = copy.deepcopy(_bundled())
    document["servers"] = [{"url": base_url, "description": "this chatcompat mock"}]
    return document
