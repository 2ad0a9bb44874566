"""Cassettes: the file format, matching, the built-in seed exchanges and byte-exact replay."""

from __future__ import annotations

import http.client
import json
import time
from importlib import resources
from urllib.parse import urlsplit

import pytest

from mockserver import (
    Cassette,
    CassetteError,
    CassetteStore,
    MockConfig,
    MockServer,
    Write,
    builtin_cassettes,
    dump_cassette,
    load_cassette,
    save_cassette,
)
from mockserver._cassettes import request_key

SEED = resources.files("mockserver") / "data" / "seed"
BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True}


def post(server, body, path="/chat/completions", headers=None):
    """POST raw JSON bytes; (status, headers, body bytes, the body's reads in order)."""
    url = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(
            "POST",
            url.path + path,
            body=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        reads = []
        while chunk := response.read1(65536):
            reads.append(chunk)
        return response.status, dict(response.getheaders()), b"".join(reads), reads
    finally:
        conn.close()


def stream_cassette(writes, body=BODY, **fields):
    return Cassette(
        method="POST",
        path="/chat/completions",
        body=body,
        status=200,
        headers={"Content-Type": "text/event-stream; charset=utf-8"},
        writes=tuple(Write(delay, data) for delay, data in writes),
        stream=True,
        **fields,
    )


def write_dir(tmp_path, *cassettes, name="c"):
    folder = tmp_path / name
    for i, cassette in enumerate(cassettes):
        save_cassette(cassette, folder, f"{i:03d}.json")
    return str(folder)


def test_builtin_cassettes_are_the_seed_exchanges():
    by_stream = {c.stream: c for c in builtin_cassettes()}
    assert by_stream[True].body == json.loads((SEED / "request-stream.json").read_text())
    assert by_stream[True].content == (SEED / "stream.sse").read_bytes()
    assert len(by_stream[True].writes) == 10  # one write per event
    assert by_stream[False].body == json.loads((SEED / "request.json").read_text())
    assert by_stream[False].content == (SEED / "response.json").read_bytes()


def test_seed_stream_request_replays_the_seed_stream_byte_exact(mock):
    status, headers, body, _ = post(mock, (SEED / "request-stream.json").read_bytes())
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert body == (SEED / "stream.sse").read_bytes()


def test_seed_request_replays_the_seed_answer_byte_exact(mock):
    status, headers, body, _ = post(mock, (SEED / "request.json").read_bytes())
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == (SEED / "response.json").read_bytes()
    assert headers["x-request-id"].startswith("req_")


def test_builtin_cassettes_can_be_turned_off(start_mock):
    server = start_mock(builtin_cassettes=False)
    _, _, body, _ = post(server, (SEED / "request.json").read_bytes())
    assert json.loads(body)["id"].startswith("chatcmpl-")


def test_dump_then_load_gives_the_cassette_back():
    cassette = stream_cassette([(0.0, b"data: {}\n\n"), (0.25, "data: é\n\n".encode()[:7])])
    text = dump_cassette(cassette)
    document = json.loads(text)
    assert document["response"]["writes"][0] == {"delay": 0.0, "text": "data: {}\n\n"}
    assert set(document["response"]["writes"][1]) == {"delay", "base64"}  # half a character
    again = load_cassette(text)
    assert again.writes == cassette.writes
    assert again.body == BODY
    assert text.endswith("}\n")


def test_a_broken_cassette_names_its_file(tmp_path):
    (tmp_path / "bad.json").write_text('{"version": 1, "request": {}}')
    with pytest.raises(CassetteError, match=r"bad\.json"):
        CassetteStore.from_directories([str(tmp_path)])
    with pytest.raises(RuntimeError, match=r"bad\.json"):
        MockServer(MockConfig(cassettes=(str(tmp_path),))).start()


def test_volatile_keys_and_key_order_do_not_change_the_match():
    plain = request_key("POST", "/chat/completions", BODY)
    noisy = {"user": "u1", "metadata": {"a": "b"}, **dict(reversed(BODY.items()))}
    assert request_key("POST", "/chat/completions", noisy) == plain
    assert request_key("POST", "/chat/completions", {**BODY, "temperature": 0.5}) != plain


def test_loose_match_uses_model_messages_and_stream():
    store = CassetteStore([stream_cassette([(0, b"x")], match="loose")])
    assert store.find("POST", "/chat/completions", {**BODY, "temperature": 0.1, "seed": 4})
    assert store.find("POST", "/chat/completions", {**BODY, "stream": False}) is None
    exact = CassetteStore([stream_cassette([(0, b"x")])])
    assert exact.find("POST", "/chat/completions", {**BODY, "seed": 4}) is None
    loose = CassetteStore([stream_cassette([(0, b"x")])], loose=True)
    assert loose.find("POST", "/chat/completions", {**BODY, "seed": 4}) is not None


def test_same_request_replays_recordings_in_order_then_repeats_the_last():
    store = CassetteStore([stream_cassette([(0, b"1")]), stream_cassette([(0, b"2")])])
    found = [store.find("POST", "/chat/completions", BODY).content for _ in range(3)]
    assert found == [b"1", b"2", b"2"]


def test_user_cassettes_win_over_builtin_ones(start_mock, tmp_path):
    seed = json.loads((SEED / "request-stream.json").read_text())
    folder = write_dir(tmp_path, stream_cassette([(0, b"data: [DONE]\n\n")], body=seed))
    server = start_mock(cassettes=(folder,))
    assert post(server, seed)[2] == b"data: [DONE]\n\n"


def test_speed_zero_writes_the_stream_at_once(start_mock, tmp_path):
    writes = [(0.3, b"data: 1\n\n"), (0.3, b"data: 2\n\n"), (0.3, b"data: [DONE]\n\n")]
    server = start_mock(cassettes=(write_dir(tmp_path, stream_cassette(writes)),))
    started = time.monotonic()
    status, _, body, reads = post(server, BODY)
    assert time.monotonic() - started < 0.9  # less than the recorded delays (a safety margin)
    assert (status, body, reads) == (200, b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n", [body])


@pytest.mark.parametrize("speed", [1.0, 2.0], ids=["recorded", "twice-as-fast"])
def test_speed_replays_each_write_after_its_scaled_delay(start_mock, tmp_path, speed):
    writes = [(0.0, b"data: 1\n\n"), (0.6, b"data: 2\n\n"), (0.6, b"data: [DONE]\n\n")]
    folder = write_dir(tmp_path, stream_cassette(writes))
    server = start_mock(cassettes=(folder,), speed=speed)
    started = time.monotonic()
    _, _, _, reads = post(server, BODY)
    elapsed = time.monotonic() - started
    assert reads == [data for _, data in writes]
    assert elapsed >= 1.2 / speed
    if speed > 1:  # faster than recorded; the margin (0.6 s) is for a busy machine
        assert elapsed < 1.2


def test_recorded_errors_replay_before_validation(start_mock, tmp_path):
    bad = {"model": "m", "messages": "not a list"}
    cassette = Cassette(
        method="POST",
        path="/chat/completions",
        body=bad,
        status=422,
        headers={"Content-Type": "application/json"},
        writes=(Write(0.0, b'{"detail": "upstream said no"}'),),
        stream=False,
    )
    server = start_mock(cassettes=(write_dir(tmp_path, cassette),))
    assert post(server, bad)[::2] == (422, b'{"detail": "upstream said no"}')


def test_miss_with_on_miss_template_answers_from_the_template(start_mock):
    status, _, body, _ = post(start_mock(on_miss="template"), {**BODY, "stream": False})
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"].startswith("Hello!")


def test_miss_with_on_miss_error_is_404_cassette_not_found(start_mock):
    status, _, body, _ = post(start_mock(on_miss="error"), BODY)
    error = json.loads(body)["error"]
    assert status == 404
    assert error["code"] == "cassette_not_found"
    assert "chatcompat record --upstream" in error["message"]


def test_miss_with_on_miss_error_still_replays_hits(start_mock):
    server = start_mock(on_miss="error")
    assert post(server, (SEED / "request.json").read_bytes())[0] == 200


def test_miss_with_on_miss_generate_asks_the_reference_model(start_mock):
    server = start_mock(on_miss="generate")
    request = {**BODY, "stream": False, "max_tokens": 3, "seed": 1}
    status, _, body, _ = post(server, request)
    answer = json.loads(body)
    assert status == 200
    assert answer["usage"]["completion_tokens"] <= 3
    assert not answer["choices"][0]["message"]["content"].startswith("Hello!")
    assert post(server, (SEED / "request.json").read_bytes())[2] == (
        (SEED / "response.json").read_bytes()
    )
