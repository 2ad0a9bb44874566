"""The recording proxy: forwards and streams as it goes, writes cassettes that replay byte for
byte, and redacts keys and secrets (also one split across two writes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import openai
import pytest
from aiohttp import web

from chatcompat.cli import main
from mockserver import RecordConfig, Write, create_record_app, load_directory, start_site
from mockserver._cassettes import REDACTED
from mockserver._record import redact, redact_writes
from reference_model import build_model  # noqa: F401 -- import torch before a server thread does

from ..conftest import captured_logs

KEY = "sk-live-0123456789abcdef"
SECRET = "hunter2-very-secret"
BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 6,
    "seed": 5,
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
async def serve():
    """Start aiohttp apps on free loopback ports of this loop; all are cleaned up after."""
    runners = []

    async def start(app):
        runner, port = await start_site(app, "127.0.0.1", 0)
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


async def post(url, body, headers=None):
    """POST JSON; (status, content type, body bytes)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, response.content_type, await response.read()


def events(data):
    return [e for e in data.split(b"\n\n") if e]


def test_redact_cuts_the_joined_bytes_at_the_recorded_boundaries():
    writes = [Write(0.0, b"data: hun"), Write(0.1, b"ter2-very-sec"), Write(0.2, b"ret!\n\n")]
    redacted = redact_writes(writes, [SECRET])
    assert [w.data for w in redacted] == [b"data: " + REDACTED.encode(), b"", b"!\n\n"]
    assert [w.delay for w in redacted] == [0.0, 0.1, 0.2]


def test_redact_keeps_boundaries_around_the_secret():
    writes = [Write(0.0, b"a "), Write(0.0, f"{SECRET} b".encode()), Write(0.0, b" c")]
    redacted = redact_writes(writes, [SECRET])
    assert [w.data for w in redacted] == [b"a ", f"{REDACTED} b".encode(), b" c"]


def test_redact_also_finds_the_secret_escaped_in_json():
    secret = 'pa"ss/word'
    assert redact(json.dumps({"k": secret}).encode(), [secret]) == b'{"k": "[REDACTED]"}'


async def test_recorded_stream_replays_with_identical_bytes_and_events(start_mock, serve, tmp_path):
    upstream = start_mock(mode="generate", api_key=KEY)
    recorder = await serve(create_record_app(RecordConfig(upstream.base_url, str(tmp_path))))
    headers = {"Authorization": f"Bearer {KEY}"}
    status, content_type, sent = await post(f"{recorder}/v1/chat/completions", BODY, headers)
    assert (status, content_type) == (200, "text/event-stream")
    assert events(sent)[-1] == b"data: [DONE]"
    (cassette,) = load_directory(tmp_path)
    assert cassette.content == sent
    assert cassette.path == "/chat/completions"
    assert cassette.request_headers["Authorization"] == REDACTED
    assert KEY not in "".join(p.read_text() for p in tmp_path.iterdir())
    for speed in (0.0, 1.0):
        replayer = start_mock(cassettes=(str(tmp_path),), on_miss="error", speed=speed)
        status, content_type, replayed = await post(f"{replayer.base_url}/chat/completions", BODY)
        assert (status, content_type) == (200, "text/event-stream")
        assert replayed == sent
        assert events(replayed) == events(sent)


async def test_secrets_are_redacted_in_the_cassette_also_across_writes(serve, tmp_path):
    async def upstream_handler(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in (b'data: {"say": "hunter2-ve', b'ry-secret"}\n\n', b"data: [DONE]\n\n"):
            await response.write(part)
            await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream_handler)
    upstream = await serve(app)
    config = RecordConfig(f"{upstream}/v1", str(tmp_path), secrets=(SECRET,))
    recorder = await serve(create_record_app(config))
    body = {**BODY, "messages": [{"role": "user", "content": f"say {SECRET}"}]}
    headers = {"api-key": KEY}
    _, _, sent = await post(f"{recorder}/v1/chat/completions", body, headers)
    assert sent == f'data: {{"say": "{SECRET}"}}\n\ndata: [DONE]\n\n'.encode()  # as it was
    (cassette,) = load_directory(tmp_path)
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    assert SECRET not in text and KEY not in text
    assert [w.data for w in cassette.writes] == [
        b'data: {"say": "[REDACTED]',
        b'"}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert cassette.writes[1].delay >= 0.05
    assert cassette.body["messages"][0]["content"] == f"say {REDACTED}"
    assert cassette.request_headers["api-key"] == REDACTED


async def test_non_stream_answers_record_through_the_openai_client(start_mock, serve, tmp_path):
    upstream = start_mock()
    recorder = await serve(create_record_app(RecordConfig(upstream.base_url, str(tmp_path))))
    async with openai.AsyncOpenAI(
        base_url=f"{recorder}/v1", api_key="k", max_retries=0, timeout=30
    ) as client:
        sent = await client.chat.completions.create(
            model="m", messages=BODY["messages"], max_tokens=3
        )
        models = await client.models.list()
    cassettes = {c.path: c for c in load_directory(tmp_path)}
    assert set(cassettes) == {"/chat/completions", "/models"}
    assert not cassettes["/chat/completions"].stream
    replayer = start_mock(cassettes=(str(tmp_path),), on_miss="error")
    with openai.OpenAI(base_url=replayer.base_url, api_key="k", max_retries=0) as client:
        again = client.chat.completions.create(model="m", messages=BODY["messages"], max_tokens=3)
        assert again.model_dump() == sent.model_dump()  # same id and created: the same bytes
        assert client.models.list().model_dump() == models.model_dump()


async def test_unreachable_upstream_is_502_in_the_envelope_and_not_recorded(serve, tmp_path):
    config = RecordConfig("http://127.0.0.1:9/v1", str(tmp_path / "none"))
    recorder = await serve(create_record_app(config))
    status, _, body = await post(f"{recorder}/v1/chat/completions", BODY)
    assert status == 502
    assert "could not be reached" in json.loads(body)["error"]["message"]
    assert not Path(tmp_path / "none").exists()


def test_record_command_rejects_a_bad_upstream(tmp_path, capsys):
    assert main(["record", "--upstream", "ftp://x", "--cassettes", str(tmp_path)]) == 2
    assert "upstream must be an http(s) URL" in capsys.readouterr().err


NAMES = ("api-key", "key", "access_token", "token", "code", "X-Amz-Signature", "X-Goog-Signature")


async def test_a_key_in_the_query_is_in_no_log_warning_or_answer(tmp_path):
    """The access log, the "upstream failed" warning and the 502 never show ``?api-key=K``."""
    config = RecordConfig("http://127.0.0.1:9/v1", str(tmp_path / "none"))
    with captured_logs("aiohttp", "mockserver") as records:
        runner, port = await start_site(create_record_app(config), "127.0.0.1", 0, access_log=True)
        try:
            for name in NAMES:
                url = f"http://127.0.0.1:{port}/v1/chat/completions?{name}={KEY}&x=1"
                status, _, body = await post(url, BODY)
                assert status == 502
                assert KEY.encode() not in body
        finally:
            await runner.cleanup()
    logged = "\n".join(r.getMessage() for r in records)
    assert "upstream http://127.0.0.1:9/v1/chat/completions?api-key=[REDACTED]&x=1" in logged
    assert "upstream http://127.0.0.1:9/v1/chat/completions?code=[REDACTED]&x=1" in logged
    access = [r.getMessage() for r in records if r.name == "aiohttp.access"]
    assert len(access) == len(NAMES)
    assert all("=[REDACTED]&x=1" in line for line in access)
    assert KEY not in logged


async def test_azure_and_openai_credential_headers_are_stored_redacted(serve, tmp_path):
    async def upstream_handler(request):
        echoed = {"seen": request.headers["Ocp-Apim-Subscription-Key"]}  # an upstream echoing it
        return web.json_response(echoed, headers={"OpenAI-Organization": "org-abcdef123"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream_handler)
    upstream = await serve(app)
    recorder = await serve(create_record_app(RecordConfig(f"{upstream}/v1", str(tmp_path))))
    headers = {
        "Ocp-Apim-Subscription-Key": KEY,
        "OpenAI-Organization": "org-abcdef123",
        "x-api-key": "anthropic-0123456789",
    }
    status, _, _ = await post(f"{recorder}/v1/chat/completions", BODY, headers)
    assert status == 200
    (cassette,) = load_directory(tmp_path)
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    assert KEY not in text and "anthropic-0123456789" not in text and "org-abcdef123" not in text
    assert cassette.request_headers["Ocp-Apim-Subscription-Key"] == REDACTED
    assert cassette.request_headers["OpenAI-Organization"] == REDACTED
    assert cassette.headers["OpenAI-Organization"] == REDACTED
    assert json.loads(cassette.content) == {"seen": REDACTED}


async def test_a_secret_sent_escaped_in_json_is_not_stored(serve, tmp_path):
    async def upstream_handler(request):
        data = await request.read()
        return web.Response(body=data, content_type="application/json")  # echoes it as sent

    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream_handler)
    upstream = await serve(app)
    config = RecordConfig(f"{upstream}/v1", str(tmp_path), secrets=(SECRET,))
    recorder = await serve(create_record_app(config))
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)
    raw = b'{"model":"m","messages":[{"role":"user","content":"say ' + escaped.encode() + b'"}]}'
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{recorder}/v1/chat/completions",
            data=raw,
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        assert await response.read() == raw  # the client gets what upstream sent
    (cassette,) = load_directory(tmp_path)
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    assert SECRET not in text and escaped not in text
    assert SECRET not in json.dumps(json.loads(text), ensure_ascii=False)
    assert cassette.body["messages"][0]["content"] == f"say {REDACTED}"
    assert json.loads(cassette.content)["messages"][0]["content"] == f"say {REDACTED}"


async def reflect(request):
    """An upstream that quotes back what it got: headers, the query as sent and decoded, each
    query value percent-encoded, and the raw body inside a JSON string."""
    raw = (await request.read()).decode("utf-8", "surrogatepass")
    values = list(request.query.values())
    echoed = {
        "headers": dict(request.headers),
        "query": request.rel_url.raw_query_string,
        "decoded": values,
        "pct": [quote(v, safe="") for v in values],
        "body": raw,
        "quoted again": json.dumps(raw),
    }
    return web.json_response(echoed, headers={"X-Echo": values[0] if values else "-"})


RED_TEAM = {  # the red team's secrets, each sent as its name says
    "code": "FUNCCODE-ffffffff",
    "X-Amz-Signature": "AMZSIG-iiiiiiiii",
    "X-Amz-Credential": "AKIAEXAMPLE/20261130/us-east-1/s3/aws4_request",
    "X-Amz-Security-Token": "STSTOKEN-kkkkkkkk",
    "X-Goog-Signature": "GOOGSIG-lllllllll",
    "sig": "SASSIG/mmmm+nnnn=",
    "key": "PCT/KEY+jjjjjj==",
}


async def test_a_reflecting_upstream_gets_no_credential_into_the_cassette(serve, tmp_path):
    """The red team's ``record --redact MYSECRETvalue123`` against a reflecting upstream: query
    credentials, a secret sent ``\\u``-escaped and quoted back twice, and a key with ``/+=``
    echoed percent-encoded are stored redacted in every form."""
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", reflect)
    upstream = await serve(app)
    secret = "MYSECRETvalue123"
    config = RecordConfig(f"{upstream}/v1", str(tmp_path), secrets=(secret,))
    recorder = await serve(create_record_app(config))
    query = urlencode({**RED_TEAM, "limit": "2"})
    escaped = "\\u004d" + secret[1:]
    raw = (
        '{"model":"m","messages":[{"role":"user","content":"' + escaped + " and " + secret + '"}],'
        '"metadata":{"' + escaped + '":"x"},"user":"' + escaped + '"}'
    ).encode()
    async with aiohttp.ClientSession() as session:
        for method, data in (("POST", raw), ("GET", None)):
            async with session.request(
                method,
                f"{recorder}/v1/chat/completions?{query}",
                data=data,
                headers={"Content-Type": "application/json", "x-functions-key": KEY},
            ) as response:
                assert response.status == 200
                seen = await response.json()
            assert seen["decoded"][:-1] == list(RED_TEAM.values())  # forwarded as sent
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    for value in (*RED_TEAM.values(), secret, KEY):
        for form in (value, quote(value, safe=""), quote(value, safe="").lower()):
            assert form not in text, form
    assert text.count(REDACTED) > 20
    assert "YSECRETvalue123" not in text
    assert "limit=2" in text  # the rest of the query stays


async def test_an_upstream_header_with_control_characters_is_relayed_with_spaces(serve, tmp_path):
    """A red-team upstream sent ESC, DEL, SOH and VT in header values and its reason phrase:
    aiohttp refused to send them on (a 500 and a traceback per request, nothing recorded)."""
    body = b'{"object":"list","data":[]}'

    async def upstream_handler(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = [
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ]
        if length:
            await reader.readexactly(int(length[0].split(b":")[1]))
        writer.write(
            b"HTTP/1.1 200 O\x01K\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: a\x1b[2Jb\r\nX-Odd: \x7fc\x0bd\tok\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(upstream_handler, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    try:
        config = RecordConfig(f"http://127.0.0.1:{port}/v1", str(tmp_path))
        recorder = await serve(create_record_app(config))
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{recorder}/v1/chat/completions", json=BODY) as response,
        ):
            assert (response.status, await response.read()) == (200, body)
            assert response.headers["X-Request-Id"] == "a [2Jb"
            assert response.headers["X-Odd"].strip() == "c d\tok"
    finally:
        upstream.close()
        await upstream.wait_closed()
    (cassette,) = load_directory(tmp_path)
    assert cassette.headers["X-Odd"].strip() == "c d\tok"
