"""The runner's bounds: budget, 429 retries, deadline, capabilities and profiles."""

from __future__ import annotations

import argparse
import asyncio
import time

import pytest
from aiohttp import web

from conformance import CHECKS, Endpoint, run
from conformance._context import Budget, retry_after
from conformance._http import Exchange
from conformance._profiles import PROFILES, load_profile
from conformance._registry import CAPABILITIES
from conformance.cli import _profile

from .test_broken_endpoints import RawServer


def test_budget_exhausted_skips_the_rest(mock):
    result = run(
        Endpoint(mock.base_url, "m", timeout=10), budget=Budget(max_requests=3), concurrency=1
    )
    assert result.requests == 3
    skipped = [r for r in result.results if r.status == "skipped" and r.check.capability == "core"]
    assert skipped
    # err_context_length skips first when the context length is not known
    assert all(
        "budget of 3 requests is spent" in r.message or "context length is not known" in r.message
        for r in skipped
    )


def test_tokens_are_counted_from_usage(mock):
    result = run(Endpoint(mock.base_url, "m", timeout=10), ["resp_schema", "sse_done"])
    assert result.tokens > 0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "x"}, None),
        ({}, None),
    ],
    ids=["ms", "seconds", "garbage", "absent"],
)
def test_retry_after(headers, wait):
    exchange = Exchange("POST", "u", None, {}, status=429, headers=headers)
    assert retry_after(exchange) == wait


def test_429_is_retried_after_the_wait_it_asks_for():
    attempts = []

    async def handler(request: web.Request) -> web.Response:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            return web.json_response(
                {
                    "error": {
                        "message": "slow down",
                        "type": "rate_limit_exceeded",
                        "param": None,
                        "code": None,
                    }
                },
                status=429,
                headers={"retry-after-ms": "200"},
            )
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "m", "object": "model", "created": 1, "owned_by": "x"}],
            }
        )

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handler)
    with RawServer(app) as server:
        result = run(
            Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=5), ["models_list"]
        )
    assert result.retries >= 2
    assert attempts[2] - attempts[0] >= 0.4


def test_deadline_fails_what_is_still_running():
    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", stall)
    with RawServer(app) as server:
        started = time.monotonic()
        result = run(Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=20), deadline=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 10
    # what runs before the deadline may be skipped: an unclaimed capability, no context length
    assert {r.status for r in result.results} - {"skipped"} == {"failed"}
    assert "deadline of 1 s passed" in result.results[0].message


def test_unclaimed_capability_is_skipped_with_a_reason(mock):
    wanting = [c.id for c in CHECKS.values() if c.capability != "core"]
    if not wanting:
        pytest.skip("no capability-tagged check registered yet")
    result = run(Endpoint(mock.base_url, "m", timeout=10), wanting[:1])
    assert result.results[0].status == "skipped"
    assert "does not claim capability" in result.results[0].message


@pytest.mark.parametrize("name", PROFILES, ids=PROFILES)
def test_builtin_profiles_load(name):
    profile = load_profile(name)
    assert "core" in profile.capabilities
    assert profile.capabilities <= set(CAPABILITIES)
    assert profile.context_length


def test_profile_file_and_flags(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('capabilities = ["tools"]\ncontext_length = 4096\n')
    profile = load_profile(str(path))
    assert profile.capabilities == {"core", "tools"}
    changed = profile.with_changes(add=("logprobs",), remove=("tools", "core"))
    assert changed.capabilities == {"core", "logprobs"}
    with pytest.raises(ValueError, match="unknown capability"):
        profile.with_changes(add=("telepathy",))
    path.write_text('capabilities = ["telepathy"]\n')
    with pytest.raises(ValueError, match="unknown capability"):
        load_profile(str(path))


def test_cli_profile_defaults():
    args = argparse.Namespace(
        profile=None, base_url=None, api_key="k", capability=[], without=[], reference=None
    )
    assert "auth" in _profile(args).capabilities  # the embedded mock then requires the key
    args.base_url = "http://x/v1"
    assert _profile(args).capabilities == {"core"}
