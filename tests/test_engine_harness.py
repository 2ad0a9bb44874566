"""The engines tier's harness (tests/engines/engine_harness.py) on a stand-in engine that is
always at hand, `chatcompat mock` started as a process: it starts on a free port, is stopped
with its whole process group, and a server that cannot start is reported with its log; the
comparison of outcomes with expectations."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "engines"))

from engine_harness import (
    EngineServer,
    EngineSpec,
    Expectation,
    http_get,
    load_expectations,
    outcome_differences,
    seen_differences,
)


def spec(command: tuple[str, ...], start_timeout: float = 60.0) -> EngineSpec:
    return EngineSpec(
        name="stand-in",
        description="chatcompat mock as a process",
        requirements=(),
        model="hf",
        command=command,
        model_id="ref",
        profile="mock",
        sampling="vllm",
        start_timeout=start_timeout,
    )


MOCK = ("{python}", "-m", "chatcompat", "mock", "--port", "{port}", "--model", "{name}")


def port_is_free(port: int) -> bool:
    """No listener holds ``port`` (connections in TIME_WAIT may remain)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_server_starts_on_a_free_port_and_stops_with_its_group(tmp_path):
    server = EngineServer(spec(MOCK), Path(sys.executable), tmp_path, tmp_path / "log")
    with server:
        status, body = http_get(f"{server.base_url}/models")
        assert status == 200 and b'"ref"' in body
        process = server.process
        assert process is not None
    assert process.poll() is not None
    assert port_is_free(server.port)
    server.stop()  # twice is harmless


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    command = ("{python}", "-c", "import sys; print('no such model'); sys.exit(3)")
    server = EngineServer(spec(command), Path(sys.executable), tmp_path, tmp_path / "log")
    with pytest.raises(RuntimeError, match="no such model"):
        server.start()
    assert server.process is None


def test_a_server_that_never_answers_is_stopped_at_its_start_timeout(tmp_path):
    command = ("{python}", "-c", "import time; time.sleep(600)")
    server = EngineServer(
        spec(command, start_timeout=2), Path(sys.executable), tmp_path, tmp_path / "log"
    )
    with pytest.raises(RuntimeError, match="did not start"):
        server.start()
    assert server.process is None


def report(*checks: tuple[str, str, str]) -> dict:
    return {
        "capabilities": ["core", "tools"],
        "checks": [
            {"id": i, "status": s, "capability": c, "message": f"{i} said so"} for i, s, c in checks
        ],
    }


def test_outcomes_are_compared_with_the_expectations():
    expected = {
        "models_list": Expectation("models_list", "failed", "404", "GET", "/models/{model}"),
        "gone": Expectation("gone", "warning", "old", request="{}"),
    }
    got = outcome_differences(
        report(
            ("models_list", "failed", "core"),
            ("sse_done", "failed", "core"),
            ("tool_nonstream", "passed", "tools"),
            ("n_stream", "skipped", "n"),
            ("seed_repro", "passed", "seed"),
        ),
        expected,
    )
    assert got == [
        "sse_done: expected passed, got failed: sse_done said so",
        "seed_repro: expected skipped, got passed: seed_repro said so",
        "gone: expected warning, not run",
    ]


def test_a_deviation_that_shows_only_sometimes_may_have_either_status(tmp_path):
    (tmp_path / "e.toml").write_text(
        '[chunk_meta_stable]\nstatus = ["failed", "passed"]\nreason = "when a stream crosses '
        'a second"\nrequest = "{}"\n'
    )
    expected = load_expectations("e", tmp_path)
    assert expected["chunk_meta_stable"].status == ("failed", "passed")
    for status in ("failed", "passed"):
        assert outcome_differences(report(("chunk_meta_stable", status, "core")), expected) == []
    assert outcome_differences(report(("chunk_meta_stable", "warning", "core")), expected)


def test_what_a_replayed_request_shows_is_compared():
    expectation = Expectation(
        "x", "failed", "why", request="{}", seen={"status": 200, "body_contains": '"role"'}
    )
    assert seen_differences(expectation, 200, '{"role": "robot"}') == []
    assert seen_differences(expectation, 400, "{}") == [
        "status 400, expected 200",
        "body lacks '\"role\"': '{}'",
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('[a]\nstatus = "failed"\nrequest = "{}"\n', "status and reason are required"),
        ('[a]\nstatus = "broken"\nreason = "r"\n', "status and reason are required"),
        ('[a]\nstatus = "failed"\nreason = "r"\n', "needs its request"),
        ('[a]\nstatus = "skipped"\nreason = "r"\ncolour = 1\n', "unknown keys"),
        ('[a]\nstatus = "passed"\nreason = "r"\n', "status and reason are required"),
        ('[a]\nstatus = ["failed", "passed"]\nreason = "r"\n', "needs its request"),
    ],
)
def test_a_malformed_expectation_is_refused_by_name(tmp_path, entry, problem):
    (tmp_path / "e.toml").write_text(entry)
    with pytest.raises(ValueError, match=problem):
        load_expectations("e", tmp_path)
