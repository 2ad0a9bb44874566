"""The suite against hostile endpoints (issue 10, items 9 to 13, and the red team's follow-up):
a server reflecting the key, one sending control bytes, one listing a model id made to forge
output lines and inject Markdown, stalling and dripping ones under --probe and --deadline, and
redirects to another server (of the checks, the model listing, the probe). Every server is on a
free loopback port and always stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conformance import Endpoint, console_text, json_report, junit_xml, markdown_summary, run
from conformance.cli import EXIT_FAILED, add_arguments, run_command

from .test_broken_endpoints import RawServer
from .test_shown import outside_code, rendered

KEY = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN/OP+QR"
# Checks whose failures quote what was received, cut at 80, 200 or 300 chars, and the
# exchange excerpt (600 chars, the middle elided): each runs against the hostile servers.
QUOTING = ["resp_schema", "sse_done", "chunk_schema", "err_envelope", "models_list"]
CONTROLS = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x00\r\x08\x7f\x9b"


def u_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def leaks(text: str) -> list[str]:
    """What ``text`` shows of KEY: runs of 6 of its chars, plain or \\u-escaped."""
    windows = [KEY[i : i + 6] for i in range(len(KEY) - 5)]
    escaped = [u_escaped(w) for w in windows]
    return [w for w in windows if w in text] + [w for w in escaped if w in text.lower()]


def hostile_app(echo: Callable[[str], str]) -> web.Application:
    """Every answer carries ``echo(key)`` (key: the bearer token sent): in a JSON body, in
    stream events, in a line that is not SSE, in an unterminated last line, in a header."""

    async def handler(request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        echoed = echo(key)
        headers = {"x-request-id": "".join(c for c in echoed if c.isprintable())[:300]}
        if b'"stream": true' not in await request.read():
            body = f'{{"echo": "{echoed}"}}'.encode("utf-8", "surrogatepass")
            return web.Response(body=body, content_type="application/json", headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = f'data: {{"echo": "{echoed}"}}\n\nnot-a-field {echoed}\n\ndata: {echoed}'
        await response.write(events.encode("utf-8", "surrogatepass"))
        return response

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handler)
    return app


def strings(value: Any) -> list[str]:
    """Every string in JSON data."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run_command(parser.parse_args(list(argv)))


def outputs(base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What `chatcompat check` writes against ``base_url`` with the key: the console (stdout
    and stderr), the JSON report's strings, junit.xml and the Markdown summary."""
    checks = [arg for check in QUOTING for arg in ("--check", check)]
    reports = ["--report-json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml")]
    reports += ["--report-md", str(tmp_path / "r.md")]
    code = cli("--base-url", base_url, "--model", "m", "--api-key", KEY, "--timeout", "10",
               *checks, *reports)  # fmt: skip
    assert code == EXIT_FAILED
    console = capsys.readouterr()
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    junit = (tmp_path / "j.xml").read_text(encoding="utf-8")
    ET.fromstring(junit.split("\n", 1)[1])  # well-formed
    return [console.out, console.err, "\n".join(strings(report)), junit,
            (tmp_path / "r.md").read_text(encoding="utf-8")]  # fmt: skip


# (chars before the key, chars after it): the key straddles each cut the reports and checks
# make (80, 200, 300, 500 and the excerpt's 300 + 300 of 600 from either end).
PLACES = [(50, 10), (170, 10), (270, 10), (470, 10), (570, 10), (10, 270)]
FORMS = {"plain": lambda key: key, "json-escaped": u_escaped}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize("place", PLACES, ids=[f"{b}-key-{a}" for b, a in PLACES])
def test_a_reflected_key_is_in_no_output(place, form, tmp_path, capsys):
    before, after = place
    app = hostile_app(lambda key: "p" * before + form(key) + "s" * after)
    with RawServer(app) as server:
        texts = outputs(f"http://127.0.0.1:{server.port}/v1", tmp_path, capsys)
    assert "<redacted>" in texts[0]
    for text in texts:
        assert leaks(text) == []


def test_a_reflected_key_is_in_no_error_message(capsys):
    """The model listing's error quotes the answer cut at 200 chars: redacted first."""

    async def listing(request: web.Request) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        return web.Response(status=500, text="x" * 170 + key + "\x1b[2J")

    app = web.Application()
    app.router.add_get("/v1/models", listing)
    with RawServer(app) as server:
        code = cli("--base-url", f"http://127.0.0.1:{server.port}/v1", "--api-key", KEY)
    out, err = capsys.readouterr()
    assert code == 2
    assert "answered 500" in err
    assert leaks(out + err) == [] and "\x1b" not in err


def test_control_bytes_are_escaped_in_every_output(tmp_path, capsys):
    app = hostile_app(lambda key: CONTROLS + "\\u001b[2J \\u0000 \\ud800 " + CONTROLS)
    with RawServer(app) as server:
        texts = outputs(f"http://127.0.0.1:{server.port}/v1", tmp_path, capsys)
    assert "\\x1b[2J" in texts[0]
    for text in texts:
        for char in "\x1b\x00\x07\x08\x7f\x9b\r":
            assert char not in text, (char, text[:200])


def test_reports_of_a_run_with_control_bytes_are_well_formed():
    app = hostile_app(lambda key: CONTROLS + "\ud800")
    with RawServer(app) as server:
        result = run(Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=10), QUOTING)
    ET.fromstring(junit_xml(result).split("\n", 1)[1])
    for text in (console_text(result), markdown_summary(result), *strings(json_report(result))):
        assert not set(text) & set("\x1b\x07\x00\r\x08\x7f\x9b\ud800"), text[:200]


async def stalling(request: web.Request) -> web.Response:
    await asyncio.sleep(120)
    return web.Response()


async def dripping(request: web.Request) -> web.StreamResponse:
    """200 at once, then one byte every 0.5 s: never stalled, never done."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the client left
        for _ in range(240):
            await response.write(b" ")
            await asyncio.sleep(0.5)
    return response


DEADLINE = 3  # seconds: the run's --deadline in the tests below
MARGIN = 60  # seconds past it a run may end in (a safety net: without the bound, minutes)


@pytest.mark.parametrize("handler", [stalling, dripping], ids=["stalling", "dripping"])
@pytest.mark.parametrize("model", [["--model", "m"], []], ids=["model", "listed-model"])
def test_the_deadline_bounds_the_whole_run_probe_included(handler, model, capsys):
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handler)
    with RawServer(app) as server:
        started = time.monotonic()
        code = cli("--base-url", f"http://127.0.0.1:{server.port}/v1", *model, "--probe",
                   "--deadline", str(DEADLINE))  # fmt: skip
        elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert elapsed < DEADLINE + MARGIN, out + err
    if not model:  # the listing is part of the run: its time is what is left of the deadline
        assert code == 2
        assert "no --model given" in err and "timed out" in err
        return
    assert code == EXIT_FAILED
    assert "the probe stopped after 1.0 s (a third of --deadline 3 s at most)" in out
    assert "tools     no   not found out: the probe's 1 s ran out" in out
    assert f"the run's deadline of {DEADLINE} s passed before the check finished" in out


MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "created": 1, "owned_by": "x"}]}


def answering(seen: list[str | None]) -> Callable[[web.Request], Any]:
    """A handler recording the Authorization header of each request; it serves model m."""

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.path.endswith("/models"):
            return web.json_response(MODELS)
        if request.path.endswith("/models/m"):
            return web.json_response(MODELS["data"][0])
        if "/models/" in request.path:
            error = {"message": "no such model", "type": "invalid_request_error"}
            return web.json_response({"error": {**error, "param": None, "code": None}}, status=404)
        return web.json_response({})

    return handler


def redirecting(to: str) -> Callable[[web.Request], Any]:
    """A handler answering 307 to ``to`` + the request's path (the /v1 prefix dropped)."""

    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(to + request.path_qs.removeprefix("/v1"))

    return handler


def test_a_redirect_to_another_server_is_reported_and_never_gets_the_key(tmp_path, capsys):
    seen_there: list[str | None] = []
    there_app = web.Application()
    there_app.router.add_route("*", "/v1/{tail:.*}", answering(seen_there))
    with RawServer(there_app) as there:
        there_url = f"http://127.0.0.1:{there.port}/v1"
        here_app = web.Application()
        here_app.router.add_route("*", "/v1/{tail:.*}", redirecting(there_url))
        with RawServer(here_app) as here:
            here_url = f"http://127.0.0.1:{here.port}/v1"
            result = run(Endpoint(here_url, "m", KEY, timeout=10), ["models_list", "resp_schema"])
            code = cli("--base-url", here_url, "--model", "m", "--api-key", KEY, "--probe",
                       "--check", "models_list", "--deadline", "60")  # fmt: skip
    assert seen_there and set(seen_there) == {None}  # the key never went to the other origin
    hop = f"307 GET {here_url}/models -> {there_url}/models"
    assert f"{hop} (another origin: the API key was not sent there)" in [
        r.describe() for r in result.redirects
    ]
    assert {(r.status, r.cross_origin) for r in result.redirects} == {(307, True)}
    console = console_text(result)
    assert len(result.redirects) >= 3  # /models, /models/m, /chat/completions, ...
    distinct = len(result.redirects)
    assert f"warning: the endpoint redirected requests ({distinct} distinct)" in console
    assert f"  {hop} (another origin" in console
    report = json_report(result)
    assert {"status": 307, "method": "GET", "from": f"{here_url}/models",
            "to": f"{there_url}/models", "cross_origin": True} in report["redirects"]  # fmt: skip
    failed = {c["id"]: c for c in report["checks"]}["resp_schema"]
    assert failed["exchange"]["response"]["redirects"][0]["to"] == f"{there_url}/chat/completions"
    assert f"Redirected: 307 POST {here_url}/chat/completions" in console
    suite = ET.fromstring(junit_xml(result).split("\n", 1)[1])
    assert hop in suite.find("system-out").text
    assert f"> 307 GET `{here_url}/models` -> `{there_url}/models`" in markdown_summary(result)
    out = capsys.readouterr().out
    assert code == 0
    assert f"  warning: redirected: {hop}" in out  # seen by the probe
    assert "warning: the endpoint redirected requests (" in out


def test_a_redirect_on_the_same_origin_keeps_the_key_and_is_reported():
    seen: list[str | None] = []
    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", answering(seen))
    app.router.add_route("*", "/v1/{tail:.*}", redirecting("/v2"))  # a relative Location
    with RawServer(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        result = run(Endpoint(f"{base}/v1", "m", KEY, timeout=10), ["models_list"])
    assert seen and set(seen) == {f"Bearer {KEY}"}
    assert result.results[0].status == "passed"
    described = [r.describe() for r in result.redirects]
    assert described[:2] == [
        f"307 GET {base}/v1/models -> {base}/v2/models",
        f"307 GET {base}/v1/models/m -> {base}/v2/models/m",
    ]
    assert not any(r.cross_origin for r in result.redirects)
    warning = f"warning: the endpoint redirected requests ({len(result.redirects)} distinct)"
    assert warning in console_text(result)


# A model id (and answers) made to forge output lines and inject Markdown / HTML: every line
# break Python knows (LF, CR, U+2028, U+2029, NEL, VT, FF, FS), format characters, a heading,
# an image, raw HTML, a mention, a link, backticks and table pipes (/tmp/rt/mdinj.py).
FORGING = (
    "mx` | injected | cell |\n\n## HEADING\n![t](http://127.0.0.1:1/track.png) "
    "<img src=x onerror=alert(1)> @everyone </details> [click](javascript:alert(1)) ``` "
    "\nFORGED-LF\rFORGED-CR\u2028FORGED-LS\u2029FORGED-PS\x85FORGED-NEL\x0bFORGED-VT"
    "\x0cFORGED-FF\x1cFORGED-FS \u200b\u200e\u202e\u2066\ufeff\xad end"
)
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def forging_app(model_id: str) -> web.Application:
    """GET /models lists ``model_id``; every other answer carries it: in a JSON body, in a
    stream, in a header (without the C0 controls and DEL, which aiohttp refuses to send)."""
    sendable = "".join(c for c in model_id if c >= " " and c != "\x7f")

    async def handler(request: web.Request) -> web.StreamResponse:
        header = {"x-request-id": sendable}
        if request.path == "/v1/models":
            data = [{"id": model_id, "object": "model", "created": 1, "owned_by": "x"}]
            return web.json_response({"object": "list", "data": data}, headers=header)
        if b'"stream": true' in await request.read():
            response = web.StreamResponse(headers={**header, "Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(f"data: {model_id}\n\nnot-a-field {model_id}".encode())
            return response
        return web.Response(text=model_id, content_type="application/json", headers=header)

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handler)
    return app


def forged_lines(text: str) -> list[str]:
    """The lines of ``text`` (split at every break Python knows, U+2028 too) that start with
    what the server sent after a line break."""
    return [line for line in text.splitlines() if line.lstrip().startswith(("FORGED", "## "))]


def test_a_listed_model_id_forges_no_line_and_no_markdown(tmp_path, capsys):
    checks = [arg for check in QUOTING for arg in ("--check", check)]
    reports = ["--report-json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml")]
    with RawServer(forging_app(FORGING)) as server:
        base_url = f"http://127.0.0.1:{server.port}/v1"
        code = cli("--base-url", base_url, "--api-key", KEY, "--timeout", "10", *checks,
                   *reports, "--report-md", str(tmp_path / "r.md"))  # fmt: skip
    assert code == EXIT_FAILED
    console = capsys.readouterr()
    raw_json = (tmp_path / "r.json").read_text(encoding="utf-8")
    report = json.loads(raw_json)
    junit = (tmp_path / "j.xml").read_text(encoding="utf-8")
    markdown = (tmp_path / "r.md").read_text(encoding="utf-8")
    ET.fromstring(junit.split("\n", 1)[1])
    assert console.out.startswith("model: mx` | injected | cell |\\n\\n## HEADING\\n![t]")
    assert "\\u2028FORGED-LS\\u2029FORGED-PS\\x85FORGED-NEL\\x0bFORGED-VT" in console.out
    assert report["model"] == console.out.split("\n", 1)[0][len("model: ") :].split(" (the")[0]
    assert raw_json.isascii()  # U+2028 and U+2029 never raw in the JSON file
    for text in (console.out, console.err, junit, markdown, raw_json, *strings(report)):
        assert {c for c in text if c != "\n" and unicodedata.category(c) in HIDDEN} == set()
    # JSON strings keep a body's LF (json.dumps escapes it); one-line fields have none
    exchanges = [check["exchange"] for check in report["checks"] if check["exchange"]]
    assert exchanges
    one_line = [report["model"], *(e["response"]["request_id"] for e in exchanges)]
    for text in (console.out, console.err, junit, markdown, raw_json, *one_line):
        assert forged_lines(text) == [], text[:300]
    html = rendered(markdown)
    for tag in ("<img", "<a ", "<h2", "</details>", "<h1"):
        assert tag not in html
    rest = outside_code(html)
    for word in ("@everyone", "HEADING", "injected", "FORGED", "track.png", "onerror"):
        assert word not in rest
    assert all(row.count("<td>") == 4 for row in re.findall(r"<tr>.*?</tr>", html, flags=re.S)[1:])


MODEL_CARD = {"id": "m", "object": "model", "created": 1, "owned_by": "x"}


def redirecting_once(to: str, method: str, path: str) -> Callable[[web.Request], Any]:
    """A handler answering the first ``method`` request to ``path`` with 307 to ``to`` (+ the
    path without /v1), and every other one as :func:`answering` does."""
    served = answering([])
    redirected: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if not redirected and (request.method, request.path) == (method, path):
            redirected.append(request.path)
            raise web.HTTPTemporaryRedirect(to + request.path_qs.removeprefix("/v1"))
        return await served(request)

    return handler


def reports_of(tmp_path: Path) -> tuple[dict[str, Any], ET.Element, str]:
    """The JSON report, the JUnit testsuite and the Markdown summary ``cli_reports`` wrote."""
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    suite = ET.fromstring((tmp_path / "j.xml").read_text(encoding="utf-8").split("\n", 1)[1])
    return report, suite, (tmp_path / "r.md").read_text(encoding="utf-8")


def cli_reports(tmp_path: Path) -> list[str]:
    return ["--report-json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml"),
            "--report-md", str(tmp_path / "r.md")]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "method", "path"),
    [([], "GET", "/v1/models"), (["--model", "m", "--probe"], "POST", "/v1/chat/completions")],
    ids=["model-listing", "probe"],
)
def test_every_request_s_redirects_are_in_every_report(options, method, path, tmp_path, capsys):
    """The model listing (no --model) and the probe (models_list sends no chat request) are
    each redirected once: the console's last warning, the JSON, JUnit and Markdown say so."""
    there_app = web.Application()
    there_app.router.add_route("*", "/v1/{tail:.*}", answering([]))
    with RawServer(there_app) as there:
        there_url = f"http://127.0.0.1:{there.port}/v1"
        here_app = web.Application()
        here_app.router.add_route("*", "/v1/{tail:.*}", redirecting_once(there_url, method, path))
        with RawServer(here_app) as here:
            here_url = f"http://127.0.0.1:{here.port}/v1"
            code = cli("--base-url", here_url, "--api-key", KEY, *options,
                       "--check", "models_list", *cli_reports(tmp_path))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    route = path.removeprefix("/v1")
    hop = f"{method} {here_url}{route} -> {there_url}{route}"
    final = out.split("\nwarning: the endpoint redirected requests (1 distinct)", 1)
    assert len(final) == 2 and f"  307 {hop} (another origin" in final[1]
    report, suite, markdown = reports_of(tmp_path)
    assert report["redirects"] == [{"status": 307, "method": method, "from": f"{here_url}{route}",
                                    "to": f"{there_url}{route}", "cross_origin": True}]  # fmt: skip
    assert f"307 {hop}" in suite.find("system-out").text
    assert f"> 307 {method} `{here_url}{route}` -> `{there_url}{route}`" in markdown


def test_a_redirected_listing_that_fails_says_it_was_redirected(capsys):
    there_app = web.Application()

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    there_app.router.add_get("/v1/models", listing)
    with RawServer(there_app) as there:
        here_app = web.Application()
        here_app.router.add_route(
            "*", "/v1/{tail:.*}", redirecting(f"http://127.0.0.1:{there.port}/v1")
        )
        with RawServer(here_app) as here:
            code = cli("--base-url", f"http://127.0.0.1:{here.port}/v1", "--api-key", KEY)
    err = capsys.readouterr().err
    assert code == 2
    assert "lists no model id" in err
    assert f"warning: redirected: 307 GET http://127.0.0.1:{here.port}/v1/models -> " in err
