"""The reports read the typed outcome: console, JSON (version 2), JUnit and Markdown, one run
with a check of each status."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conformance import (
    REPORT_VERSION,
    Check,
    Crash,
    Endpoint,
    Exchange,
    Outcome,
    Result,
    RunResult,
    Status,
    console_text,
    json_report,
    junit_xml,
    markdown_summary,
)


async def nothing(ctx):
    """Does nothing."""


def a_check(check_id, severity="must"):
    return Check(check_id, "stream", severity, "core", f"{check_id} is right.", nothing)


EXCHANGE = Exchange(
    "POST",
    "http://h/v1/chat/completions",
    b'{"stream": true}',
    {},
    status=200,
    headers={"content-type": "text/event-stream", "x-request-id": "req-1"},
    body=b"data: {}\n\n",
)
CRASH = Crash("KeyError", "'choices'", "/src/conformance/_checks/stream.py:12 in broken")
OUTCOMES = {
    "passes": Outcome(Status.PASSED),
    "fails": Outcome(
        Status.FAILED, "the last event is not [DONE]", "data: [DONE]", "data: {}", EXCHANGE
    ),
    "warns": Outcome(Status.WARNING, "a SHOULD is not met", received="42"),
    "skips": Outcome(Status.SKIPPED, "the endpoint does not claim capability 'n'"),
    "crashes": Outcome(
        Status.ERROR, "the check could not complete: KeyError: 'choices'", crash=CRASH
    ),
}


@pytest.fixture
def run_result():
    results = [
        Result(a_check(name), outcome, 0.5, requests=1, tokens=10)
        for name, outcome in OUTCOMES.items()
    ]
    return RunResult(Endpoint("http://h/v1", "m"), results, 0.0, 2.5, 5, "compatible", tokens=50)


def test_counts_and_ok_count_every_status(run_result):
    assert run_result.counts == {"passed": 1, "failed": 1, "warning": 1, "skipped": 1, "error": 1}
    assert run_result.ok is False


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        (Status.PASSED, True),
        (Status.WARNING, True),
        (Status.SKIPPED, True),
        (Status.FAILED, False),
        (Status.ERROR, False),
    ],
    ids=["passed", "warning", "skipped", "failed", "error"],
)
def test_a_run_is_ok_unless_a_check_failed_or_crashed(status, ok):
    result = Result(a_check("one"), Outcome(status, "x"), 0.1)
    run = RunResult(Endpoint("http://h/v1", "m"), [result], 0.0, 0.1, 0, "compatible")
    assert run.ok is ok


def test_console_shows_each_outcome_with_its_fields(run_result):
    text = console_text(run_result)
    assert "5 checks: 1 passed, 1 failed, 1 warning, 1 skipped, 1 error in 2.5 s" in text
    details = text.split("\n\n", 3)[3]
    assert details.splitlines() == [
        "[ERROR] crashes: crashes is right.",
        "    the check could not complete: KeyError: 'choices'",
        "    At: /src/conformance/_checks/stream.py:12 in broken",
        "",
        "[FAIL] fails: fails is right.",
        "    the last event is not [DONE]",
        "    Expected: data: [DONE]",
        "    Received: data: {}",
        '    Sent: POST http://h/v1/chat/completions {"stream": true}',
        "    Seen: 200 text/event-stream request-id req-1",
        "    Body: data: {}\\n\\n",  # the body's own line breaks, escaped: one line
        "",
        "[SKIP] skips: skips is right.",
        "    the endpoint does not claim capability 'n'",
        "",
        "[WARN] warns: warns is right.",
        "    a SHOULD is not met",
        "    Received: 42",
    ]


def test_json_report_version_2_carries_the_outcome_fields(run_result):
    report = json_report(run_result)
    assert report["report_version"] == REPORT_VERSION == 2
    assert report["summary"] == {
        "passed": 1,
        "failed": 1,
        "warning": 1,
        "skipped": 1,
        "error": 1,
    }
    assert report["ok"] is False
    assert report["redirects"] == []
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["fails"] == {
        "id": "fails",
        "group": "stream",
        "severity": "must",
        "capability": "core",
        "description": "fails is right.",
        "status": "failed",
        "message": "the last event is not [DONE]",
        "expected": "data: [DONE]",
        "received": "data: {}",
        "exchange": {
            "request": {
                "method": "POST",
                "url": "http://h/v1/chat/completions",
                "body": '{"stream": true}',
            },
            "response": {
                "status": 200,
                "content_type": "text/event-stream",
                "request_id": "req-1",
                "body": "data: {}\n\n",
                "error": None,
                "redirects": [],
            },
        },
        "error": None,
        "duration_s": 0.5,
        "requests": 1,
        "tokens": 10,
        "repro": {
            "requests": [
                {
                    "method": "POST",
                    "url": "http://h/v1/chat/completions",
                    # aiohttp's type for a bytes body (the exchange recorded no header)
                    "headers": {"Content-Type": "application/octet-stream"},
                    "body": '{"stream": true}',
                    "body_base64": None,
                    "stream": True,
                    "redirects": False,
                    "max_time_s": 60,
                    "seen": {
                        "status": 200,
                        "content_type": "text/event-stream",
                        "body": "data: {}\n\n",
                        "error": None,
                    },
                    "curl": "curl -sS -i -N --max-time 60 http://h/v1/chat/completions "
                    "-H 'Content-Type: application/octet-stream' --data-raw '{\"stream\": true}'",
                }
            ]
        },
    }
    assert checks["crashes"]["status"] == "error"
    assert checks["crashes"]["error"] == {
        "type": "KeyError",
        "message": "'choices'",
        "where": "/src/conformance/_checks/stream.py:12 in broken",
    }
    assert (checks["passes"]["message"], checks["passes"]["exchange"]) == ("", None)
    assert [c["status"] for c in report["checks"]] == [
        "error",
        "failed",
        "passed",
        "skipped",
        "warning",
    ]


def test_junit_counts_errors_apart_from_failures(run_result):
    suite = ET.fromstring(junit_xml(run_result).split("\n", 1)[1])
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    cases = {case.get("name"): case for case in suite}
    assert [child.tag for child in cases["passes"]] == []
    (error,) = cases["crashes"]
    assert (error.tag, error.get("type"), error.get("message")) == (
        "error",
        "KeyError",
        "the check could not complete: KeyError: 'choices'",
    )
    assert error.text.splitlines()[-1] == "At: /src/conformance/_checks/stream.py:12 in broken"
    (failure,) = cases["fails"]
    assert (failure.tag, failure.get("message")) == ("failure", "the last event is not [DONE]")
    assert failure.text.splitlines()[1:3] == ["Expected: data: [DONE]", "Received: data: {}"]
    assert [child.tag for child in cases["skips"]] == ["skipped"]
    (out,) = cases["warns"]
    assert (out.tag, out.text) == ("system-out", "WARNING: a SHOULD is not met\nReceived: 42")


def test_markdown_lists_what_crashed_failed_or_warned(run_result):
    assert markdown_summary(run_result).splitlines() == [
        "### chatcompat FAILED: `m` at `http://h/v1`",
        "",
        "1 passed, 1 failed, 1 warning, 1 skipped, 1 error in 2.5 s "
        "(5 requests (0 retried after 429), 50 tokens)",
        "",
        "| check | group | status | what was seen |",
        "|---|---|---|---|",
        # what the server may control: code spans
        "| `crashes` | stream | error | `the check could not complete: KeyError: 'choices'` |",
        "| `fails` | stream | failed | `the last event is not [DONE]` (received: `data: {}`) |",
        "| `warns` | stream | warning | `a SHOULD is not met` (received: `42`) |",
    ]
