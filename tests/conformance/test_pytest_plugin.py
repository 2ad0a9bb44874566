"""The chatcompat_conformance pytest plugin: one item per check with --chat-base-url, nothing
without it; run in a pytester session against a mock started here."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from conformance import CHECKS, Check

pytest_plugins = ["pytester"]

KEY = "sk-plugin"
INSTALLED = any(e.value == "conformance.pytest_plugin" for e in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "conformance.pytest_plugin"]
# The items the -k selections below pick (three quick stream checks, one errors check).
FAST = "sse_done or chunk_schema or err_envelope or delta_present"


def chat_args(server, *extra):
    return [*PLUGIN, "--chat-base-url", server.base_url, "--chat-model", "m", *extra]


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture(autouse=True)
def quiet_ini(pytester):
    """An ini for the inner sessions (pytest-asyncio warns without this option)."""
    pytester.makeini(INI)


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("CHATCOMPAT_API_KEY", KEY)


def test_without_base_url_the_plugin_adds_no_items(pytester):
    pytester.makepyfile("def test_own():\n    pass\n")
    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "chatcompat::" not in result.stdout.str()


def test_collects_one_item_per_check_named_by_its_id(pytester, start_mock):
    server = start_mock(models=("m",))
    result = pytester.runpytest(*chat_args(server), "--collect-only", "-q")
    ids = {line.strip() for line in result.stdout.lines if line.startswith("chatcompat::")}
    assert ids == {f"chatcompat::{check_id}" for check_id in CHECKS}


def test_k_selects_checks_and_they_pass_on_a_clean_mock(pytester, start_mock, key_env):
    server = start_mock(models=("m",), api_key=KEY)
    result = pytester.runpytest(*chat_args(server), "-k", FAST, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*chatcompat::sse_done PASSED*"])


def test_a_defect_fails_its_item_with_the_check_message(pytester, start_mock):
    server = start_mock(models=("m",), defects=("missing-done",))
    result = pytester.runpytest(*chat_args(server), "-k", FAST)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*sse_done (stream, must): the last event is not ?DONE?", "Expected: data: ?DONE?"]
    )


def test_unclaimed_capabilities_skip_and_claimed_ones_run(pytester, start_mock):
    server = start_mock(models=("m",))
    skipped = pytester.runpytest(*chat_args(server), "-k", "n_nonstream", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*does not claim capability 'n'*"])
    claimed = pytester.runpytest(*chat_args(server, "--chat-capability", "n"), "-k", "n_nonstream")
    claimed.assert_outcomes(passed=1)


def test_a_should_check_that_is_not_met_is_a_warning_skip(pytester, start_mock):
    server = start_mock(models=("m",), flavour="novita")  # finish_reason on the content chunk
    result = pytester.runpytest(*chat_args(server), "-k", "finish_empty_delta", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*warning: the finish chunk of choice 0*"])


async def crashes(ctx):
    """Raises what no check should."""
    raise KeyError("choices")


def test_a_check_that_crashes_is_an_error_of_its_item(pytester, start_mock, monkeypatch):
    monkeypatch.setitem(
        CHECKS, "crash_now", Check("crash_now", "stream", "must", "core", "-", crashes)
    )
    server = start_mock(models=("m",))
    result = pytester.runpytest(*chat_args(server), "-k", "crash_now or sse_done")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of chatcompat::crash_now*",
            "crash_now (stream, must): the check could not complete: KeyError: 'choices'",
            "At: *test_pytest_plugin.py:* in crashes",
        ]
    )


def test_missing_model_is_a_usage_error(pytester, start_mock):
    server = start_mock(models=("m",))
    result = pytester.runpytest(*PLUGIN, "--chat-base-url", server.base_url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--chat-model is required*"])


def test_the_api_key_is_never_printed(pytester, start_mock):
    server = start_mock(models=("m",), api_key=KEY, defects=("missing-done",))
    result = pytester.runpytest(*chat_args(server, "--chat-api-key", KEY), "-k", FAST, "-v")
    result.assert_outcomes(passed=3, failed=1)
    assert KEY not in result.stdout.str() + result.stderr.str()


def test_items_distribute_over_xdist_workers(tmp_path, start_mock):
    pytest.importorskip("xdist")
    (tmp_path / "pytest.ini").write_text(INI)
    server = start_mock(models=("m",), defects=("missing-done",))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *chat_args(server), "-n", "2", "-k", FAST, "-v",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "[gw0]" in out and "[gw1]" in out
    assert "3 passed" in out and "1 failed" in out
    assert "FAILED chatcompat::sse_done" in out


def test_a_hostile_endpoint_leaks_no_key_and_no_control_bytes_into_the_output(pytester):
    """A server reflecting the key (placed across the 200-char cut) amid control bytes."""
    from .test_broken_endpoints import RawServer
    from .test_hostile_endpoints import CONTROLS, hostile_app, leaks
    from .test_hostile_endpoints import KEY as LONG_KEY

    app = hostile_app(lambda key: CONTROLS + "p" * 160 + key + CONTROLS)
    with RawServer(app) as server:
        base_url = f"http://127.0.0.1:{server.port}/v1"
        result = pytester.runpytest(
            *PLUGIN, "--chat-base-url", base_url, "--chat-model", "m", "--chat-api-key",
            LONG_KEY, "-k", "resp_schema or sse_done or chunk_schema or err_envelope", "-rA",
        )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=4)
    assert "<redacted>" in output and "\\x1b[2J" in output
    assert leaks(output) == []
    assert not set(output) & set("\x1b\x00\x07\x08\x7f\x9b")
