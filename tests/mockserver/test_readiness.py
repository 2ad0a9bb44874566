"""Generate mode's ready signal (GET /health 503 "loading", then 200), the reference model's
disk cache (a second start reads it; a damaged entry is built again) and the context length
GET /models advertises (read by ``chatcompat check --probe``)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import reference_model
from chatcompat import schemas
from chatcompat.cli import main
from mockserver import DEFAULT_MODEL, MockConfig, MockServer, _generate
from mockserver._app import STATE
from mockserver._model_cache import entry_path, load_model

READY_WAIT = 600.0  # seconds a test waits for a model build on a busy machine (a bound only)


def get(url: str) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of GET ``url`` (no proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def health(server: MockServer) -> tuple[int, dict[str, str], Any]:
    return get(f"http://{server.host}:{server.port}/health")


def wait_ready(server: MockServer) -> list[int]:
    """The statuses GET /health answered, polled until 200 (at most READY_WAIT seconds)."""
    statuses = []
    deadline = time.monotonic() + READY_WAIT
    while time.monotonic() < deadline:
        statuses.append(health(server)[0])
        if statuses[-1] == 200:
            return statuses
        time.sleep(0.05)
    raise AssertionError(f"not ready within {READY_WAIT} s: {statuses[-5:]}")


def model_source(server: MockServer) -> str:
    """How the ready server's model came: "built" or "cache"."""
    assert server.app is not None
    model = server.app[STATE].model
    assert model is not None and model.loaded is not None
    return model.loaded.source


def test_health_says_loading_until_the_model_can_answer_then_ok(monkeypatch):
    gate = threading.Event()  # the model's load waits for it: the loading state lasts
    load = _generate.load_model

    def gated(seed: int, root: Path | None = None) -> Any:
        gate.wait(READY_WAIT)
        return load(seed, root)

    monkeypatch.setattr(_generate, "load_model", gated)
    with MockServer(MockConfig(mode="generate")) as server:
        status, headers, body = health(server)
        assert (status, body) == (503, {"status": "loading"})
        assert int(headers["Retry-After"]) >= 1
        assert headers["Content-Type"].startswith("application/json")
        gate.set()
        statuses = wait_ready(server)
        # 503 while it loads, then 200 and nothing else: never back to 503
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {503}
        assert health(server)[:3:2] == (200, {"status": "ok"})


def test_health_is_ok_at_once_without_the_model(start_mock):
    status, _, body = health(start_mock())
    assert (status, body) == (200, {"status": "ok"})


def test_a_second_start_reads_the_model_from_the_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CHATCOMPAT_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO, logger="mockserver")
    with MockServer(MockConfig(mode="generate")) as first:
        wait_ready(first)
        assert model_source(first) == "built"
    assert entry_path(0, tmp_path).exists()
    assert "built in" in caplog.text and f"cached in {entry_path(0, tmp_path)}" in caplog.text

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was built again")

    monkeypatch.setattr(reference_model, "build_model", no_build)
    caplog.clear()
    with MockServer(MockConfig(mode="generate")) as second:
        wait_ready(second)
        assert model_source(second) == "cache"
        request = urllib.request.Request(
            f"{second.base_url}/chat/completions",
            data=json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=60) as response:
            assert response.status == 200
    assert "the reference model is ready" in caplog.text
    assert f"read from the cache {entry_path(0, tmp_path)}" in caplog.text


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def _flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2000] ^= 0xFF  # a byte of the weights: torch would load it, the digest does not match
    path.write_bytes(bytes(data))


def _foreign(path: Path) -> None:
    path.write_bytes(b"not a cache entry")


def _wrong_weights(path: Path) -> None:  # a whole entry of other shapes: torch refuses them
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    payload = buffer.getvalue()
    path.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


@pytest.mark.parametrize(
    "damage",
    [_truncated, _flipped, _foreign, _wrong_weights],
    ids=["truncated", "byte-flipped", "foreign", "wrong-weights"],
)
def test_a_damaged_cache_entry_is_built_again(tmp_path, caplog, damage: Callable[[Path], None]):
    first = load_model(0, tmp_path)
    assert first.source == "built" and first.path == entry_path(0, tmp_path)
    damage(entry_path(0, tmp_path))
    with caplog.at_level(logging.WARNING, logger="mockserver"):
        again = load_model(0, tmp_path)
    assert again.source == "built"
    assert "does not read back" in caplog.text and "building it again" in caplog.text
    cached = load_model(0, tmp_path)  # written whole again
    assert cached.source == "cache"
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, cached.model.state_dict()[name]), name


def test_a_cache_folder_that_cannot_be_written_leaves_the_model_built(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    with caplog.at_level(logging.WARNING, logger="mockserver"):
        loaded = load_model(0, blocked)
    assert (loaded.source, loaded.path) == ("built", None)
    assert "could not cache the model" in caplog.text


def test_the_cache_key_follows_the_seed_and_the_folder(tmp_path, monkeypatch):
    assert entry_path(0, tmp_path) != entry_path(1, tmp_path)
    assert entry_path(0, tmp_path).parent == tmp_path / "models"
    monkeypatch.setenv("CHATCOMPAT_CACHE", str(tmp_path / "here"))
    assert entry_path(0).parent == tmp_path / "here" / "models"
    monkeypatch.delenv("CHATCOMPAT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert entry_path(0).parent == tmp_path / "xdg" / "chatcompat" / "models"


CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window")


def test_models_advertise_the_context_length(start_mock):
    server = start_mock(context_length=4096, models=("a", "b"))
    status, _, listing = get(f"{server.base_url}/models")
    assert status == 200
    schemas.validator("model-list", "strict").validate(listing)
    assert [[entry[f] for f in CONTEXT_FIELDS] for entry in listing["data"]] == [[4096] * 3] * 2
    status, _, card = get(f"{server.base_url}/models/a")
    schemas.validator("model", "strict").validate(card)
    assert [card[f] for f in CONTEXT_FIELDS] == [4096] * 3


def test_probe_reads_the_generate_mocks_context_and_err_context_length_runs(tmp_path, capsys):
    with MockServer(MockConfig(mode="generate")) as server:
        wait_ready(server)
        _, _, card = get(f"{server.base_url}/models/{DEFAULT_MODEL}")
        assert [card[f] for f in CONTEXT_FIELDS] == [2048] * 3  # the model's max_seq_len
        report = tmp_path / "report.json"
        checks = ["--check", "err_context_length", "--check", "err_context_length_code"]
        reports = ["--report-json", str(report), "--timeout", "300", "--deadline", "900"]
        code = main(["check", "--base-url", server.base_url, "--probe", *checks, *reports])
    out = capsys.readouterr().out
    assert "context  2048" in out
    outcomes = {c["id"]: c["status"] for c in json.loads(report.read_text())["checks"]}
    assert outcomes == {"err_context_length": "passed", "err_context_length_code": "passed"}
    assert code == 0
