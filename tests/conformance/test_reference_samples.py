"""ref_sampling_fit's samples are independent draws on llama-cpp-python, whose seedless request
is seeded from the previous request's seed (llama_cpp/llama.py Llama._create_completion)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from conformance._checks.reference import _samples
from conformance._http import Exchange


def _fake_ctx(sampling: str, sent: list[dict[str, Any]]) -> Any:
    async def chat(body: dict[str, Any]) -> Exchange:
        sent.append(body)
        answer = {"choices": [{"message": {"content": "a"}, "finish_reason": "length"}]}
        return Exchange("POST", "u", None, {}, status=200, body=json.dumps(answer).encode())

    endpoint = SimpleNamespace(sampling=sampling, capabilities=frozenset({"core"}))
    return SimpleNamespace(endpoint=endpoint, chat=chat)


def test_each_llama_cpp_python_sample_carries_its_own_seed():
    sent: list[dict[str, Any]] = []
    counts, _ = asyncio.run(_samples(_fake_ctx("llama-cpp-python", sent), {"x": 1}, 50))
    assert counts == {"a": 50}
    seeds = [body["seed"] for body in sent]
    assert len(set(seeds)) == 50
    assert all(0 <= seed < 2**31 for seed in seeds)


@pytest.mark.parametrize("sampling", ["vllm", "hf", "llamacpp"])
def test_other_dialects_send_the_body_as_it_is(sampling):
    sent: list[dict[str, Any]] = []
    asyncio.run(_samples(_fake_ctx(sampling, sent), {"x": 1}, 3))
    assert sent == [{"x": 1}] * 3
