"""The suite against real engines serving the exported reference model: each engine's outcomes
match its expectations (a check that fails where the engine is right is a false alarm: fix the
check, never the expectation), each expected deviation shows on its smallest request, and the
greedy answer is the reference model's, token for token, on every engine and on the mock."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from engine_harness import (
    EngineRun,
    http_send,
    load_expectations,
    outcome_differences,
    replay,
    seen_differences,
)

from mockserver import MockConfig, MockServer

# A request whose greedy answer runs past 32 tokens, so the comparison covers all 32.
GREEDY_REQUEST = {
    "messages": [{"role": "user", "content": "Explain how a model reads a reply."}],
    "temperature": 0,
    "max_tokens": 32,
}


def test_suite_outcomes_match_the_expectations(engine: EngineRun) -> None:
    report = engine.suite_report()
    expectations = load_expectations(engine.server.spec.name)
    differences = outcome_differences(report, expectations)
    assert not differences, (
        f"{engine.server.spec.name}: outcomes that differ from "
        f"tests/engines/expectations/{engine.server.spec.name}.toml "
        f"(report: {engine.report_path}):\n" + "\n".join(differences)
    )
    assert report["summary"]["error"] == 0


def test_each_expected_deviation_shows_on_its_request(engine: EngineRun) -> None:
    expectations = load_expectations(engine.server.spec.name)
    problems = []
    for expectation in expectations.values():
        if expectation.request is None and expectation.method == "POST":
            continue
        status, body = replay(expectation, engine.server.base_url, engine.server.model_id)
        found = seen_differences(expectation, status, body)
        problems += [f"{expectation.check}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def mock_greedy() -> Iterator[dict[str, object]]:
    """The mock's generate-mode answer to GREEDY_REQUEST (the same seeded model)."""
    server = MockServer(MockConfig(mode="generate")).start()
    try:
        status, body = http_send(
            "POST",
            f"{server.base_url}/chat/completions",
            json.dumps({"model": "ref", **GREEDY_REQUEST}).encode(),
            timeout=900,
        )
        assert status == 200, body[:500]
        yield json.loads(body)
    finally:
        server.stop()


def test_greedy_32_tokens_equal_the_mock(engine: EngineRun, mock_greedy: dict) -> None:
    status, body = http_send(
        "POST",
        f"{engine.server.base_url}/chat/completions",
        json.dumps(
            {"model": engine.server.model_id, **GREEDY_REQUEST, **engine.server.spec.neutral}
        ).encode(),
    )
    assert status == 200, body[:500]
    answer = json.loads(body)
    expected = mock_greedy["choices"][0]  # type: ignore[index]
    assert expected["finish_reason"] == "length"
    assert mock_greedy["usage"]["completion_tokens"] == 32  # type: ignore[index]
    choice = answer["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (
        expected["message"]["content"],
        "length",
    )
    assert answer["usage"]["completion_tokens"] == 32
