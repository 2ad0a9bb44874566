"""Record modes (vcrpy's none / once / new_episodes / all) of a mock in front of an upstream:
the upstream is another mock on a free loopback port (a real socket), never the network; its
own request log counts what reached it. The plugin's side is in test_pytest_plugin.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

UPSTREAM_KEY = "sk-upstream-0123456789"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
OTHER = {"model": "m", "messages": [{"role": "user", "content": "Something else"}]}


@pytest.fixture
def upstream(start_mock):
    """The upstream: a mock wanting UPSTREAM_KEY, its control routes on."""
    return start_mock(api_key=UPSTREAM_KEY, control=True)


def reached(upstream) -> list[str]:
    """The paths of the requests that reached the upstream."""
    url = f"http://127.0.0.1:{upstream.port}/_chatcompat/requests"
    logged = httpx.get(url, headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}).json()["data"]
    return [entry["path"] for entry in logged]


def recorder(start_mock, upstream, folder: Path, mode: str):
    """A mock in ``mode`` recording ``upstream`` into ``folder``, sending the upstream key."""
    return start_mock(
        record_mode=mode,
        upstream=upstream.base_url,
        upstream_key=UPSTREAM_KEY,
        cassettes=(str(folder),),
    )


def ask(server, body=CHAT) -> httpx.Response:
    """POST body to the chat route of ``server`` with the client's own (wrong) key."""
    headers = {"Authorization": "Bearer sk-client-key-999"}
    return httpx.post(server.base_url + "/chat/completions", json=body, headers=headers)


def test_none_replays_only_and_a_miss_is_an_error(start_mock, upstream, tmp_path):
    ask_once = ask(recorder(start_mock, upstream, tmp_path / "a", "once"))
    assert ask_once.status_code == 200
    replaying = start_mock(record_mode="none", cassettes=(str(tmp_path / "a"),))
    replayed = ask(replaying)
    assert replayed.content == ask_once.content
    missed = ask(replaying, OTHER)
    assert missed.status_code == 404
    assert missed.json()["error"]["code"] == "cassette_not_found"
    assert reached(upstream) == ["/v1/chat/completions"]


def test_once_records_a_new_folder_then_replays_only(start_mock, upstream, tmp_path):
    folder = tmp_path / "new" / "folder"
    first = recorder(start_mock, upstream, folder, "once")
    assert ask(first).status_code == 200
    assert ask(first, OTHER).status_code == 200  # a new folder: everything is recorded
    assert len(list(folder.glob("*.json"))) == 2
    second = recorder(start_mock, upstream, folder, "once")
    assert ask(second).status_code == 200  # replayed
    assert ask(second, {**OTHER, "seed": 1}).status_code == 404  # the folder exists: no record
    assert len(reached(upstream)) == 2


def test_new_episodes_replays_known_and_records_new(start_mock, upstream, tmp_path):
    ask(recorder(start_mock, upstream, tmp_path, "once"))
    episodes = recorder(start_mock, upstream, tmp_path, "new_episodes")
    assert ask(episodes).status_code == 200  # known
    assert ask(episodes, OTHER).status_code == 200  # new
    assert len(reached(upstream)) == 2
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_all_always_records(start_mock, upstream, tmp_path):
    ask(recorder(start_mock, upstream, tmp_path, "once"))
    everything = recorder(start_mock, upstream, tmp_path, "all")
    assert ask(everything).status_code == 200
    assert len(reached(upstream)) == 2
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_recorded_cassettes_are_redacted_and_streams_replay(start_mock, upstream, tmp_path):
    stream = {**CHAT, "stream": True}
    live = ask(recorder(start_mock, upstream, tmp_path, "once"), stream)
    assert live.status_code == 200
    text = "".join(path.read_text() for path in tmp_path.glob("*.json"))
    assert UPSTREAM_KEY not in text and "sk-client-key-999" not in text
    assert json.loads(text)["request"]["headers"]["Authorization"] == "[REDACTED]"
    replayed = ask(start_mock(record_mode="none", cassettes=(str(tmp_path),)), stream)
    assert replayed.content == live.content
    assert replayed.headers["content-type"].startswith("text/event-stream")


def test_the_cli(upstream, tmp_path):
    folder = tmp_path / "cassettes"
    command = [
        *(sys.executable, "-m", "mockserver", "--port", "0", "--upstream", upstream.base_url),
        *("--record-mode", "once", "--cassettes", str(folder), "--upstream-key-env", "KEY_VAR"),
    ]
    env = {"KEY_VAR": UPSTREAM_KEY, "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("chatcompat mock listening on "), line
        answer = httpx.post(line.split()[-1] + "/chat/completions", json=CHAT)
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
    assert len(list(folder.glob("*.json"))) == 1
    assert reached(upstream) == ["/v1/chat/completions"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--record-mode", "none"), "needs --cassettes", id="no-folder"),
        pytest.param(
            ("--record-mode", "all", "--cassettes", "x"), "needs --upstream", id="no-upstream"
        ),
        pytest.param(
            ("--upstream", "ftp://x", "--cassettes", "x"), "http(s) URL", id="bad-upstream"
        ),
    ],
)
def test_the_cli_refuses_a_record_mode_that_cannot_work(args, message, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_none_creates_no_folder(start_mock, tmp_path):
    missing = tmp_path / "missing"
    answer = ask(start_mock(record_mode="none", cassettes=(str(missing),)))
    assert answer.status_code == 404
    assert "No cassette in" in answer.json()["error"]["message"]
    assert not missing.exists()
