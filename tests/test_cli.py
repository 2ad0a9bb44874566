"""The chatcompat command as a user runs it: real processes, real sockets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from conformance import CHECKS, Check, load_profile
from mockserver import DEFECTS

from .conformance.test_broken_endpoints import RawServer

MOCK_CAPABILITIES = load_profile("mock").capabilities
# defect -> {mode, caught_by: [the check it was made for, then the others], why}
KILL_MATRIX = tomllib.loads(
    (Path(__file__).parent / "conformance" / "kill_matrix.toml").read_text("utf-8")
)


def chatcompat(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "chatcompat", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def mock_process(*args):
    """``chatcompat mock --port 0 ARGS`` in a child process; yields its base URL; always
    stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("chatcompat mock listening on "), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_check_against_the_embedded_mock_passes_and_writes_reports(tmp_path):
    done = chatcompat(
        "check", "--report-json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for check_id in CHECKS:
        assert check_id in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["report_version"] == 2
    assert report["ok"] is True
    unclaimed = {c.id for c in CHECKS.values() if c.capability not in MOCK_CAPABILITIES}
    assert report["summary"] == {
        "passed": len(CHECKS) - len(unclaimed),
        "failed": 0,
        "skipped": len(unclaimed),
        "warning": 0,
        "error": 0,
    }
    assert report["capabilities"] == sorted(MOCK_CAPABILITIES)
    assert sorted(c["id"] for c in report["checks"]) == sorted(CHECKS)
    for entry in report["checks"]:
        assert set(entry) == {
            "id",
            "group",
            "severity",
            "capability",
            "description",
            "status",
            "message",
            "expected",
            "received",
            "exchange",
            "error",
            "duration_s",
            "requests",
            "tokens",
            "repro",  # None here: every check passed or was skipped
        }
        assert entry["repro"] is None
        assert entry["status"] == ("skipped" if entry["id"] in unclaimed else "passed")
        assert (entry["expected"], entry["received"], entry["exchange"], entry["error"]) == (
            None,
            None,
            None,
            None,
        )
    # the run's requests: the checks' and the preflight's (GET /models and one chat request)
    assert report["preflight_requests"] == 2
    assert sum(c["requests"] for c in report["checks"]) + 2 == report["requests"]
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.tag == "testsuite"
    assert suite.get("tests") == str(len(CHECKS))
    assert suite.get("failures") == "0"
    assert suite.get("errors") == "0"


def test_check_against_a_separate_mock_passes():
    with mock_process() as url:
        done = chatcompat("check", "--base-url", url, "--model", "m")
    assert done.returncode == 0, done.stdout
    assert "0 failed" in done.stdout


@pytest.mark.parametrize(
    "defect", ["missing-done", "500-on-bad-request"], ids=["missing-done", "500-on-bad-request"]
)
def test_check_against_a_defective_mock_exits_1_naming_the_check(tmp_path, defect):
    with mock_process("--defect", defect, "--model", "m") as url:
        done = chatcompat(
            "check", "--base-url", url, "--model", "m", "--profile", "mock",
            "--report-json", str(tmp_path / "r.json"),
        )  # fmt: skip
    assert done.returncode == 1
    assert f"[FAIL] {KILL_MATRIX[defect]['caught_by'][0]}" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    failed = [c for c in report["checks"] if c["status"] == "failed"]
    caught = {c["id"] for c in report["checks"] if c["status"] in ("failed", "warning")}
    assert caught == set(KILL_MATRIX[defect]["caught_by"])  # a "should" check warns
    musts = {c["id"] for c in report["checks"] if c["severity"] == "must"}
    assert {c["id"] for c in failed} == caught & musts
    assert failed[0]["exchange"]["request"]["method"] == "POST"
    assert failed[0]["exchange"]["request"]["url"].startswith(url)
    assert "Sent: POST" in done.stdout


def test_api_key_is_used_and_never_printed(tmp_path):
    with mock_process("--api-key", "sk-secret-123", "--model", "m") as url:
        done = chatcompat(
            "check",
            "--base-url",
            url,
            "--model",
            "m",
            "--api-key",
            "sk-secret-123",
            "--report-json",
            str(tmp_path / "r.json"),
        )
        wrong = chatcompat(
            "check",
            "--base-url",
            url,
            "--model",
            "m",
            "--api-key",
            "sk-nope",
            "--report-json",
            str(tmp_path / "w.json"),
        )
    assert done.returncode == 0, done.stdout
    # a refused key stops the run at the preflight: exit 2, one message, no report
    assert wrong.returncode == 2
    assert "the endpoint refused the API key" in wrong.stderr
    assert "answered 401" in wrong.stderr
    assert not (tmp_path / "w.json").exists()
    for text in (done.stdout, wrong.stdout, wrong.stderr, (tmp_path / "r.json").read_text()):
        assert "sk-secret-123" not in text
        assert "sk-nope" not in text


def test_without_model_the_first_listed_model_is_tested():
    with mock_process("--model", "first", "--model", "second") as url:
        done = chatcompat("check", "--base-url", url, "--check", "resp_schema")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "model: first (the first listed by GET /models)"
    assert "model first" in done.stdout  # the console header names the model under test


def test_without_model_a_failed_listing_exits_2_saying_what_was_seen():
    async def listing(request: web.Request) -> web.Response:
        return web.Response(status=500, text="oops sk-listing")

    app = web.Application()
    app.router.add_get("/v1/models", listing)
    with RawServer(app) as server:
        url = f"http://127.0.0.1:{server.port}/v1"
        done = chatcompat("check", "--base-url", url, "--api-key", "sk-listing")
    assert done.returncode == 2
    assert done.stdout == ""
    message = done.stderr.strip()
    assert message.startswith(
        f"chatcompat check: no --model given, and GET {url}/models answered 500: oops"
    )
    assert message.endswith("; pass --model ID")
    assert "sk-listing" not in message


def test_check_help_says_how_the_model_is_chosen():
    done = chatcompat("check", "--help")
    assert done.returncode == 0
    assert "the first one GET /models lists" in " ".join(done.stdout.split())
    assert "--sampling {vllm,hf,llamacpp,llama-cpp-python}" in done.stdout


def test_dialect_still_sets_the_sampling_with_a_deprecation_warning(capsys):
    from chatcompat.cli import parser

    args = parser().parse_args(["check", "--dialect", "hf"])
    assert args.sampling == "hf"
    assert capsys.readouterr().err == "chatcompat check: --dialect is deprecated; use --sampling\n"
    args = parser().parse_args(["check", "--sampling", "llamacpp"])
    assert args.sampling == "llamacpp"
    assert parser().parse_args(["check"]).sampling == "vllm"
    assert capsys.readouterr().err == ""


def test_export_model_is_a_subcommand_with_its_own_help():
    done = chatcompat("export-model", "--help")
    assert done.returncode == 0
    assert "--format {hf,gguf}" in done.stdout
    assert "--seed SEED" in done.stdout
    missing = chatcompat("export-model", "out")
    assert missing.returncode == 2
    assert "the following arguments are required: --format" in missing.stderr


def test_export_model_writes_the_gguf_file(tmp_path, capsys):
    from chatcompat.cli import main

    out = tmp_path / "m.gguf"
    assert main(["export-model", "--format", "gguf", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote gguf export of seed 0 to {out}\n"
    assert out.read_bytes()[:4] == b"GGUF"


async def crashes(ctx):
    """Raises what no check should."""
    raise KeyError("choices")


def test_a_check_that_crashes_exits_1_and_is_a_junit_error(monkeypatch, capsys, tmp_path):
    from chatcompat.cli import main

    monkeypatch.setitem(
        CHECKS, "crash_now", Check("crash_now", "stream", "must", "core", "-", crashes)
    )
    code = main(["check", "--check", "crash_now", "--junit", str(tmp_path / "r.xml")])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 checks: 0 passed, 0 failed, 0 warning, 0 skipped, 1 error" in out
    assert "[ERROR] crash_now: -\n    the check could not complete: KeyError: 'choices'\n" in out
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--check", "no_such_check"],
        ["check", "--base-url", "http://127.0.0.1:{port}/v1", "--model", "m"],
        ["check", "--base-url", "ftp://example/v1", "--model", "m"],
        ["check", "--timeout", "0"],
        ["check", "--no-such-flag"],
    ],
    ids=["unknown-check", "unreachable", "not-http", "bad-timeout", "bad-flag"],
)
def test_run_that_cannot_start_exits_2(args):
    args = [a.format(port=free_port()) for a in args]
    done = chatcompat(*args)
    assert done.returncode == 2
    assert done.stderr.strip()


def test_list_prints_every_check():
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(CHECKS)


def test_mock_lists_its_defects():
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "--list-defects"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(DEFECTS)
    assert [line.split(maxsplit=1)[1] for line in done.stdout.splitlines()] == [
        d.doc for d in DEFECTS.values()
    ]


def test_single_check_runs_alone():
    done = chatcompat("check", "--check", "sse_done")
    assert done.returncode == 0
    assert "1 checks: 1 passed" in done.stdout
