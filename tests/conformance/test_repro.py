"""Reproducible failures: the request records of the JSON report, their curl commands, the
``chatcompat repro`` command, the console's excerpt that keeps what a failure names, and
schemathesis's Reproduce curl (issue 13, item 6)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess

import pytest

from chatcompat.cli import main
from conformance._checks.schemathesis_run import _operations
from conformance._http import Exchange
from conformance._outcome import CheckFailed, Outcome, Status
from conformance._repro import curl_command, rebased, repro_of, request_record

KEY = "sk-repro-secret-0123456789"


def exchange(sent: bytes | None, **fields) -> Exchange:
    return Exchange("POST", "http://h/v1/chat/completions", sent, {}, status=500, **fields)


def test_a_json_body_is_recorded_as_sent_and_quoted_whole():
    body = json.dumps({"messages": [{"role": "user", "content": 'it\'s $HOME `x` \\\\ "q"'}]})
    sent = exchange(body.encode(), credentials=(("Authorization", "Bearer $CHATCOMPAT_API_KEY"),))
    sent.sent_headers["Content-Type"] = "application/json"
    record = request_record(sent, max_time=59.2)
    assert record["body"] == body
    assert record["body_base64"] is None
    assert record["headers"] == {
        "Content-Type": "application/json",
        "Authorization": "Bearer $CHATCOMPAT_API_KEY",
    }
    words = shlex.split(record["curl"])
    assert words[:5] == ["curl", "-sS", "-i", "--max-time", "60"]
    assert words[words.index("--data-raw") + 1] == body  # the shell gives curl the exact body
    assert "Authorization: Bearer $CHATCOMPAT_API_KEY" in words  # expanded by the shell
    assert '-H "Authorization: Bearer $CHATCOMPAT_API_KEY"' in record["curl"]


def test_a_body_that_is_not_text_goes_through_base64():
    raw = b'{"content": "\x1b[2J\x00"}\xff'
    record = request_record(exchange(raw), max_time=5)
    assert record["body"] is None
    assert base64.b64decode(record["body_base64"]) == raw
    assert record["curl"].startswith("printf %s ")
    assert "| base64 -d | curl " in record["curl"]
    sent = subprocess.run(
        ["bash", "-c", record["curl"].split(" | curl ")[0]], capture_output=True, check=True
    )
    assert sent.stdout == raw


def test_a_long_body_goes_through_stdin_and_a_stream_gets_n():
    body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "x" * 70000}]})
    record = request_record(exchange(body.encode()), max_time=5)
    assert record["stream"] is True
    assert record["curl"].startswith("printf %s '")
    command = record["curl"].split(" | curl ")[1]
    assert " -N " in f" {command} " and command.endswith("--data-binary @-")
    printed = subprocess.run(
        ["bash", "-c", record["curl"].split(" | curl ")[0]], capture_output=True, check=True
    )
    assert printed.stdout == body.encode()


def test_stream_is_what_the_body_asks_or_the_answer_is():
    assert request_record(exchange(b'{"stream":true}'), max_time=1)["stream"] is True
    assert (
        request_record(exchange(b'{"content": "\\"stream\\": true"}'), max_time=1)["stream"]
        is False
    )
    sse = exchange(b"{}", headers={"content-type": "text/event-stream"})
    assert request_record(sse, max_time=1)["stream"] is True


def test_a_get_has_no_body_and_other_credentials_are_redacted():
    listing = Exchange(
        "GET", "http://h/v1/models", None, {}, status=401, credentials=(("api-key", "<redacted>"),)
    )
    record = request_record(listing, max_time=1)
    assert record["body"] is None
    assert shlex.split(record["curl"]) == [
        "curl", "-sS", "-i", "--max-time", "1", "http://h/v1/models", "-H", "api-key: <redacted>",
    ]  # fmt: skip


def test_a_pair_records_both_requests_the_failure_first():
    plain, streamed = exchange(b"{}"), exchange(b'{"stream": true}')
    outcome = Outcome(Status.FAILED, "differs", exchange=streamed, pair=plain)
    repro = repro_of(outcome, max_time=5)
    assert repro is not None
    assert [r["body"] for r in repro["requests"]] == ['{"stream": true}', "{}"]
    assert repro_of(Outcome(Status.FAILED, "slow"), max_time=5) is None


def test_rebased_moves_only_urls_under_the_base():
    assert rebased("http://a/v1/models?x=1", "http://a/v1", "http://b:9/api/v1/") == (
        "http://b:9/api/v1/models?x=1"
    )
    assert rebased("http://a/v10/models", "http://a/v1", "http://b/v1") == "http://a/v10/models"
    record = request_record(exchange(b"{}"), max_time=5)
    assert "http://b/v1/chat/completions" in curl_command(
        record, url="http://b/v1/chat/completions"
    )


# The case: a 500 caused by a stop list that sat in the elided middle of the excerpt.
LONG_BODY = {
    "model": "m",
    "messages": [{"role": "system", "content": "You are a helpful assistant. " * 8}],
    "stop": ["a1", "b2", "c3", "d4", "e5"],
    "max_tokens": 8,
    "user": "u" * 200,
}


def test_the_sent_excerpt_keeps_what_the_failure_names_whole():
    failed = exchange(json.dumps(LONG_BODY).encode())
    plain = "\n".join(failed.describe())
    assert '"stop": ["a1", "b2", "c3", "d4", "e5"]' not in plain  # cut as before
    failure = CheckFailed("five stop strings broke the server", exchange=failed, about=("stop",))
    kept = str(failure).splitlines()[1]
    assert kept.startswith("Sent: POST http://h/v1/chat/completions {")
    assert '"stop": ["a1", "b2", "c3", "d4", "e5"]' in kept
    assert len(kept) < len(json.dumps(LONG_BODY))  # still short: the rest is cut
    assert kept.endswith('"}')  # the end of the body is still shown


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_repro_prints_a_curl_that_shows_the_500(start_mock, tmp_path, capsys):
    server = start_mock(models=("m",), defects=("500-on-bad-request",), api_key=KEY)
    report = tmp_path / "r.json"
    code, out, _ = run_cli(
        "check", "--base-url", server.base_url, "--model", "m", "--api-key", KEY,
        "--check", "stop", "--check", "resp_schema", "--report-json", str(report), capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert '"stop": ["a1", "b2", "c3", "d4", "e5"]' in out
    assert KEY not in report.read_text()
    code, out, _ = run_cli("repro", str(report), "stop", capsys=capsys)
    assert code == 0
    comment, seen, command = out.splitlines()
    assert comment == "# stop (failed): five stop strings broke the server"
    assert seen.startswith("# seen: 500 application/json: {")
    env = {"PATH": os.environ["PATH"], "CHATCOMPAT_API_KEY": KEY}
    answer = subprocess.run(["bash", "-c", command], capture_output=True, env=env, check=True)
    assert answer.stdout.startswith(b"HTTP/1.1 500 ")
    # without the key in the environment the same command is refused
    env.pop("CHATCOMPAT_API_KEY")
    refused = subprocess.run(["bash", "-c", command], capture_output=True, env=env, check=True)
    assert refused.stdout.startswith(b"HTTP/1.1 401 ")
    # --base-url: the same server elsewhere
    clean = start_mock(models=("m",), api_key=KEY)
    code, out, _ = run_cli(
        "repro", str(report), "stop", "--base-url", clean.base_url, capsys=capsys
    )
    assert clean.base_url + "/chat/completions" in out.splitlines()[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.json", "stop"), "no such file"),
        (("r.json", "no_such_check"), "the report has no check 'no_such_check'"),
        (("r.json", "resp_schema"), "resp_schema did not fail: its status is passed"),
        (("r.json", "timed_out"), "timed_out (failed) records no request to reproduce"),
    ],
    ids=["no-file", "no-check", "passed", "no-request"],
)
def test_repro_exits_2_saying_why(tmp_path, capsys, monkeypatch, args, message):
    checks = [
        {"id": "resp_schema", "status": "passed", "repro": None},
        {"id": "timed_out", "status": "failed", "repro": None},
    ]
    (tmp_path / "r.json").write_text(json.dumps({"base_url": "http://h/v1", "checks": checks}))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("repro", *args, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.startswith("chatcompat repro: ") and message in err


def test_schemathesis_masks_credentials_only():
    operation = _operations("compatible")["POST /chat/completions"]
    body = {"model": "m", "messages": [], "max_tokens": 16, "max_completion_tokens": 3}
    case = operation.Case(body=body, media_type="application/json")
    command = case.as_curl_command(
        headers={"Authorization": f"Bearer {KEY}", "api-key": KEY}, base_url="http://h/v1"
    )
    assert '"max_tokens": 16' in command and '"max_completion_tokens": 3' in command
    assert KEY not in command
    assert "Authorization: [Filtered]" in command and "api-key: [Filtered]" in command
