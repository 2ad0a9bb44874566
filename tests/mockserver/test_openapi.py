"""GET /openapi.json: one self-contained OpenAPI 3.1 document describing the mock."""

from __future__ import annotations

import json
from importlib import resources
from urllib.request import urlopen

from jsonschema import Draft202012Validator

SEED = resources.files("mockserver") / "data" / "seed"


def refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_openapi_json_is_self_contained_and_validates_the_seed(mock):
    with urlopen(f"http://127.0.0.1:{mock.port}/openapi.json", timeout=10) as response:
        document = json.load(response)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": mock.base_url, "description": "this chatcompat mock"}]
    assert set(document["paths"]) == {"/chat/completions", "/models", "/models/{model}"}
    components = document["components"]["schemas"]
    for ref in set(refs(document)):
        assert ref.startswith("#/components/"), ref
        kind, name = ref.removeprefix("#/components/").split("/")
        assert name in document["components"][kind], ref

    def validator(name):
        return Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        )

    assert validator("ChatCompletion").is_valid(json.loads((SEED / "response.json").read_text()))
    assert validator("ChatCompletionRequest").is_valid(
        json.loads((SEED / "request.json").read_text())
    )
    assert not validator("ChatCompletion").is_valid({"object": "chat.completion"})
    assert "Error" in components
