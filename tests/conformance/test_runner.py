"""The runner's bounds: budget, 429 retries, deadline, capabilities and profiles."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from conformance import (
    CAPABILITIES,
    CHECKS,
    PROFILES,
    Budget,
    Check,
    CheckFailed,
    Crash,
    Endpoint,
    Exchange,
    Profile,
    Status,
    console_text,
    endpoint_claiming,
    load_profile,
    run,
    run_checks,
    write_reports,
)
from conformance._context import BASE_MESSAGES, retry_after
from conformance.cli import _profile

from .test_broken_endpoints import RawServer


def test_budget_exhausted_skips_the_rest(mock):
    result = run(
        Endpoint(mock.base_url, "m", timeout=10), budget=Budget(max_requests=3), concurrency=1
    )
    assert result.requests == 3
    core = {
        r.check.id: (r.status, r.message) for r in result.results if r.check.capability == "core"
    }
    spent = ("skipped", "the run's budget of 3 requests is spent")
    # The first checks spend the 3 requests and are then skipped themselves; the context
    # length checks skip before sending anything when the context length is not known.
    unknown = (
        "skipped",
        "inconclusive: the context length is not known (--context-length or a profile)",
    )
    assert core == {
        **{c.id: spent for c in CHECKS.values() if c.capability == "core"},
        "err_context_length": unknown,
        "err_context_length_code": unknown,
    }


def usage_of_the_basic_request(base_url):
    """total_tokens of the mock's answer to the run's basic request (Context.request())."""
    body = {"model": "m", "messages": BASE_MESSAGES, "max_tokens": 64}
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(
            "POST",
            f"{url.path}/chat/completions",
            json.dumps(body),
            {"Content-Type": "application/json"},
        )
        return json.loads(connection.getresponse().read())["usage"]["total_tokens"]
    finally:
        connection.close()


def test_tokens_are_counted_from_usage(mock):
    result = run(Endpoint(mock.base_url, "m", timeout=10), ["resp_schema", "sse_done"])
    total = usage_of_the_basic_request(mock.base_url)
    # the basic stream does not ask for the usage chunk, so it reports no tokens
    assert {r.check.id: r.tokens for r in result.results} == {"resp_schema": total, "sse_done": 0}
    assert result.tokens == total


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
    assert result.retries == 2
    assert attempts[2] - attempts[0] >= 0.4


async def stall(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


def stalling_server() -> RawServer:
    """A server whose every answer takes 30 s (stopped at the end of the with block)."""
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", stall)
    return RawServer(app)


def test_deadline_fails_what_is_still_running():
    with stalling_server() as server:
        started = time.monotonic()
        result = run(Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=20), deadline=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 25, elapsed  # well before the 30 s stall ends (a margin for a busy machine)
    # what runs before the deadline may be skipped: an unclaimed capability, no context length
    assert {r.status for r in result.results} - {"skipped"} == {"failed"}
    assert result.results[0].message == "the run's deadline of 1 s passed before the check finished"


def test_unclaimed_capability_is_skipped_with_a_reason(mock):
    result = run(Endpoint(mock.base_url, "m", timeout=10), ["n_nonstream"])
    assert [(r.status, r.message) for r in result.results] == [
        (
            "skipped",
            "the endpoint does not claim capability 'n' (--capability n or a profile that has it)",
        )
    ]


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


def test_no_profile_is_core_only():
    assert load_profile(None) == Profile.core() == Profile("core", "core only", frozenset({"core"}))


def test_endpoint_claiming_a_profile():
    profile = load_profile("vllm")
    endpoint = endpoint_claiming(profile, "http://h/v1/", "m", "k", timeout=10)
    assert endpoint == Endpoint(
        "http://h/v1",
        "m",
        "k",
        timeout=10,
        read_timeout=10,
        capabilities=profile.capabilities,
        context_length=profile.context_length,
    )
    wider = endpoint_claiming(
        Profile.core(), "http://h/v1", "m", None, context_length=4096, sampling="hf"
    )
    assert (wider.timeout, wider.read_timeout, wider.context_length, wider.sampling) == (
        60.0,
        30.0,
        4096,
        "hf",
    )


def one_check(func, check_id="one", severity="must"):
    """A check that is not registered (the registry stays as it is)."""
    return Check(check_id, "stream", severity, "core", "A check made by a test.", func)


async def crashes(ctx):
    """Raises what no check should."""
    return {}["choices"]


async def stalls(ctx):
    """Takes longer than its time limit."""
    await asyncio.sleep(30)


def test_a_check_that_crashes_is_an_error_and_the_run_not_ok(mock):
    endpoint = Endpoint(mock.base_url, "m", timeout=10)
    result = asyncio.run(run_checks(endpoint, [one_check(crashes)]))
    (one,) = result.results
    assert (one.status, one.message) == (
        Status.ERROR,
        "the check could not complete: KeyError: 'choices'",
    )
    line = crashes.__code__.co_firstlineno + 2
    assert one.outcome.crash == Crash("KeyError", "'choices'", f"{__file__}:{line} in crashes")
    assert result.counts == {"passed": 0, "failed": 0, "warning": 0, "skipped": 0, "error": 1}
    assert result.ok is False


def test_a_check_past_its_time_limit_fails_it_does_not_crash(mock):
    endpoint = Endpoint(mock.base_url, "m", timeout=10)
    result = asyncio.run(run_checks(endpoint, [one_check(stalls)], check_timeout=0.2))
    assert [(r.status, r.message, r.outcome.crash) for r in result.results] == [
        (Status.FAILED, "the check did not finish within 0 s", None)
    ]


KEY = "sk-runner-secret"


async def echo(request: web.Request) -> web.Response:
    """Answers with everything it was sent, the bearer key included."""
    seen = f"{request.headers.get('Authorization')} {request.query_string} {await request.text()}"
    return web.Response(status=401, text=seen, headers={"X-Seen": seen})


async def leaks_the_key(ctx):
    """Fails with the key in every field (as a careless check might)."""
    exchange = await ctx.send("POST", f"/chat/completions?key={KEY}", body={"user": KEY})
    raise CheckFailed(f"refused {KEY}", expected=KEY, received=KEY, exchange=exchange)


async def crashes_with_the_key(ctx):
    """Crashes with the key in its message."""
    raise ValueError(f"cannot parse {KEY}")


def test_the_api_key_is_in_no_report_field(tmp_path):
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", echo)
    with RawServer(app) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", KEY, timeout=5)
        checks = [one_check(leaks_the_key, "leaks"), one_check(crashes_with_the_key, "crashes")]
        result = asyncio.run(run_checks(endpoint, checks))
    assert [r.status for r in result.results] == [Status.FAILED, Status.ERROR]
    write_reports(
        result,
        json_path=tmp_path / "r.json",
        junit_path=tmp_path / "r.xml",
        markdown_path=tmp_path / "r.md",
    )
    texts = [repr(result.results), console_text(result)]
    texts += [(tmp_path / name).read_text() for name in ("r.json", "r.xml", "r.md")]
    for text in texts:
        assert KEY not in text
    leaks = {c["id"]: c for c in json.loads(texts[2])["checks"]}["leaks"]
    assert leaks["exchange"]["response"]["body"] == (
        'Bearer <redacted> key=<redacted> {"user": "<redacted>"}'
    )
    assert (leaks["message"], leaks["expected"]) == ("refused <redacted>", "<redacted>")
    # the reproduction: the key is a placeholder the curl reads from the environment
    (request,) = leaks["repro"]["requests"]
    assert request["headers"]["Authorization"] == "Bearer $CHATCOMPAT_API_KEY"
    assert request["url"].endswith("/chat/completions?key=<redacted>")
    assert request["body"] == '{"user": "<redacted>"}'
    assert '-H "Authorization: Bearer $CHATCOMPAT_API_KEY"' in request["curl"]


def test_deadline_leaves_unclaimed_capabilities_skipped():
    """Skips are decided before scheduling: with one slot, a stalling endpoint and a deadline,
    the checks of unclaimed capabilities are skipped, never 'failed: the deadline passed'."""
    with stalling_server() as server:
        result = run(
            Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=20),
            ["resp_schema", "n_nonstream", "tool_nonstream", "lp_count"],
            concurrency=1,
            deadline=1.0,
        )
    statuses = {r.check.id: (r.status, r.message) for r in result.results}
    assert statuses["resp_schema"][0] == "failed"
    unclaimed = (("n_nonstream", "n"), ("tool_nonstream", "tools"), ("lp_count", "logprobs"))
    for check_id, capability in unclaimed:
        assert statuses[check_id][0] == "skipped", statuses[check_id]
        assert f"does not claim capability {capability!r}" in statuses[check_id][1]


def test_a_run_of_only_unclaimed_checks_skips_them_all():
    result = run(Endpoint("http://127.0.0.1:9/v1", "m", timeout=1), ["n_nonstream"], deadline=1.0)
    assert [r.status for r in result.results] == ["skipped"]
