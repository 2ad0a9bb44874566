"""The preflight of `chatcompat check` (conformance/_preflight.py): the real command against
`chatcompat mock` on a free port or a broken variant of it (an aiohttp app on 127.0.0.1:0),
every server stopped; and the model listing's shapes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conformance._http import Endpoint
from conformance._preflight import _guesses, first_listed_model, listed_models

from ..test_cli import mock_process
from .test_broken_endpoints import RawServer

ROUTE_HINT = "the base URL should include the API prefix, e.g. /v1"


def check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``chatcompat check ARGS`` as a process, without $CHATCOMPAT_API_KEY."""
    env = {k: v for k, v in os.environ.items() if k != "CHATCOMPAT_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "chatcompat", "check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stopped(done: subprocess.CompletedProcess[str], message: str) -> None:
    """``done`` exited 2 with ``message`` as its one line on stderr, before any check ran."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"chatcompat check: {message}\n"
    assert done.stdout == ""


def test_a_wrong_prefix_exits_2_with_the_hint_and_the_base_that_serves(tmp_path):
    with mock_process() as url:
        origin = url.removesuffix("/v1")
        done = check("--base-url", f"{origin}/wrong/prefix", "--model", "m",
                     "--report-json", str(tmp_path / "r.json"))  # fmt: skip
    stopped(
        done,
        f"no chat completions at {origin}/wrong/prefix/chat/completions; {ROUTE_HINT}; "
        f"did you mean {origin}/v1?",
    )
    assert not (tmp_path / "r.json").exists()


def test_a_chat_404_without_a_base_that_serves_says_the_hint_alone():
    app = web.Application()  # answers 404 to everything
    with RawServer(app) as server:
        base = f"http://127.0.0.1:{server.port}/api"
        done = check("--base-url", base, "--model", "m")
    stopped(done, f"no chat completions at {base}/chat/completions; {ROUTE_HINT}")


def test_an_unreachable_port_exits_2():
    port = free_port()
    done = check("--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m")
    assert done.returncode == 2
    assert done.stderr.startswith(f"chatcompat check: cannot connect to 127.0.0.1:{port}: ")
    assert done.stdout == ""


def test_no_tls_where_https_was_asked_exits_2():
    with mock_process() as url:
        done = check("--base-url", url.replace("http://", "https://"), "--model", "m")
    assert done.returncode == 2
    assert done.stderr.startswith("chatcompat check: cannot reach the endpoint: ")
    assert "SSL" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ([], "the endpoint requires an API key: set $CHATCOMPAT_API_KEY or --api-key"),
        (["--api-key", "sk-wrong-key"], "the endpoint refused the API key"),
    ],
    ids=["no-key", "wrong-key"],
)
def test_a_401_exits_2_saying_what_to_do_about_the_key(key, said):
    with mock_process("--api-key", "sk-right-key", "--model", "m") as url:
        done = check("--base-url", url, "--model", "m", *key)
    stopped(done, f"{said} (POST {url}/chat/completions answered 401)")
    assert "sk-wrong-key" not in done.stderr


def test_a_401_on_the_listing_without_model_is_about_the_key_too():
    with mock_process("--api-key", "sk-right-key", "--model", "m") as url:
        done = check("--base-url", url)
    stopped(
        done,
        "the endpoint requires an API key: set $CHATCOMPAT_API_KEY or --api-key "
        f"(GET {url}/models answered 401)",
    )


def test_a_model_not_served_exits_2_with_the_models_listed():
    with mock_process("--model", "a", "--model", "b") as url:
        done = check("--base-url", url, "--model", "x")
    stopped(done, "model x not found; GET /models lists: a, b")


def serving(listing: Any, chat_status: int = 200) -> web.Application:
    """A broken variant: GET /v1/models answers ``listing``, the chat route ``chat_status``
    with a minimal completion naming the model it was asked for."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response(listing)

    async def chat(request: web.Request) -> web.Response:
        model = (await request.json())["model"]
        choice = {"index": 0, "message": {"role": "assistant", "content": "OK"},
                  "finish_reason": "length"}  # fmt: skip
        answer = {"id": "c", "object": "chat.completion", "created": 1, "model": model,
                  "choices": [choice]}  # fmt: skip
        return web.json_response(answer, status=chat_status)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.parametrize(
    ("listing", "first"),
    [
        ({"models": [{"name": "x.gguf", "model": "x.gguf"}], "data": [{"id": "x"}]}, "x"),
        ([{"id": "bare", "object": "model"}], "bare"),
        ({"data": [{"object": "model"}, {"id": "second"}]}, "second"),
    ],
    ids=["data-not-first", "bare-list", "first-without-id"],
)
def test_without_model_the_first_listed_in_any_shape_is_tested(listing, first):
    with RawServer(serving(listing)) as server:
        done = check("--base-url", f"http://127.0.0.1:{server.port}/v1", "--check", "resp_schema")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"model: {first} (the first listed by GET /models)"


def test_without_model_an_empty_listing_exits_2_saying_what_was_seen():
    with RawServer(serving({"object": "list", "data": []})) as server:
        base = f"http://127.0.0.1:{server.port}/v1"
        done = check("--base-url", base)
    stopped(
        done,
        f'no --model given, and GET {base}/models lists no model id: {{"object": "list", '
        '"data": []}; pass --model ID',
    )


def test_a_500_on_the_preflight_chat_warns_and_the_run_goes_on(tmp_path):
    fault = "fail-first=1;status=500;path=/chat/completions"
    with mock_process("--fault", fault, "--model", "m") as url:
        done = check("--base-url", url, "--model", "m", "--check", "resp_schema",
                     "--report-json", str(tmp_path / "r.json"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"warning: preflight: POST {url}/chat/completions answered 500: ")
    assert done.stdout.splitlines()[0].endswith("; the checks go on and judge it")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["passed"] == 1
    assert report["preflight_requests"] == 2
    assert report["requests"] == report["checks"][0]["requests"] + 2
    assert "3 requests (2 preflight, 0 retried after 429)" in done.stdout


def test_the_preflight_does_not_count_against_max_requests():
    with mock_process("--model", "m") as url:
        done = check("--base-url", url, "--model", "m", "--check", "resp_schema",
                     "--max-requests", "1")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.parametrize(
    ("data", "ids"),
    [
        ({"object": "list", "data": [{"id": "a"}, {"id": "b"}]}, ["a", "b"]),
        ({"has_more": False, "data": [{"id": "a"}], "object": "list"}, ["a"]),
        ([{"id": "together"}], ["together"]),
        (["plain", "strings"], ["plain", "strings"]),
        ({"id": "tgi", "object": "model"}, ["tgi"]),
        ({"models": [{"name": "ollama:7b", "model": "ollama:7b"}]}, ["ollama:7b"]),
        ({"data": [{"name": "m"}]}, ["m"]),
        ({"data": [], "models": [{"name": "cohere"}]}, ["cohere"]),
        ({"data": [{"id": ""}, {"id": 3}, {"id": "ok"}, {"id": "ok"}]}, ["ok"]),
        ({"object": "list", "data": []}, []),
        ({"error": {"message": "no"}}, []),
        ("text", []),
        (None, []),
    ],
    ids=["openai", "data-last", "bare-list", "strings", "one-object", "ollama", "name",
         "models-when-data-empty", "unusable-ids", "empty", "error", "string", "null"],
)  # fmt: skip
def test_listed_models_reads_the_shapes_servers_send(data, ids):
    assert listed_models(data) == ids


def test_first_listed_model_is_the_first_id(start_mock):
    server = start_mock(api_key="sk-list", models=("first", "second"))
    endpoint = Endpoint(server.base_url, "", "sk-list", timeout=5)
    assert asyncio.run(first_listed_model(endpoint)) == "first"


@pytest.mark.parametrize(
    ("status", "body", "seen"),
    [
        (
            200,
            b'{"object": "list", "data": []}',
            'lists no model id: {"object": "list", "data": []}',
        ),
        (
            200,
            b'{"data": [{"object": "model"}]}',
            'lists no model id: {"data": [{"object": "model"}]}',
        ),
        (200, b"<html>", "lists no model id: <html>"),
        (500, b"oops", "answered 500: oops"),
    ],
    ids=["empty", "no-id", "not-json", "500"],
)
def test_first_listed_model_says_what_was_seen(status, body, seen):
    async def listing(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("GET", "/v1/models", listing)
    with RawServer(app) as server:
        base = f"http://127.0.0.1:{server.port}/v1"
        with pytest.raises(ValueError) as caught:
            asyncio.run(first_listed_model(Endpoint(base, "", timeout=5)))
    assert str(caught.value) == f"GET {base}/models {seen}"


def test_first_listed_model_without_an_answer():
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ValueError, match=rf"^GET {base}/models got no answer \(\w+"):
        asyncio.run(first_listed_model(Endpoint(base, "", timeout=5)))


def test_the_listing_follows_pages_while_they_list_nothing():
    asked: list[str] = []

    async def models(request: web.Request) -> web.Response:
        asked.append(request.query_string)
        if request.query.get("after") == "z":
            return web.json_response({"data": [{"id": "page-2"}], "has_more": False})
        return web.json_response({"data": [], "has_more": True, "last_id": "z"})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    with RawServer(app) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/v1", "", timeout=5)
        assert asyncio.run(first_listed_model(endpoint)) == "page-2"
    assert asked == ["", "after=z"]


def test_guessed_bases_most_likely_first():
    assert _guesses("http://h:1/wrong/prefix") == [
        "http://h:1/wrong/prefix/v1",
        "http://h:1/v1",
        "http://h:1/wrong",
        "http://h:1",
    ]
    assert _guesses("http://h/v1/chat/completions")[0] == "http://h/v1"
    assert "http://h/v1" not in _guesses("http://h/v1")


def test_the_readme_documents_the_preflight():
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    assert "### Preflight" in readme
