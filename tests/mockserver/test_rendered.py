"""Rendered answers: kept per request body, bounded, stamped with a fresh id and time."""

from __future__ import annotations

import http.client
import json

from mockserver._rendered import AnswerCache, Rendered

MESSAGES = [{"role": "user", "content": "Cache me."}]  # no built-in cassette matches


def _rendered(cache, text=b"x", events=2):
    event = b'data: {"id":"%s","created":%d,"c":"%s"}\n\n' % (
        cache.completion_id.encode(),
        cache.created,
        text,
    )
    return Rendered("m", True, (event,) * events, "text/event-stream", 1)


def test_stamp_replaces_the_sentinels_kept_or_not():
    cache = AnswerCache()
    rendered = _rendered(cache, text=b"100% sure")
    cache.put(b"body", rendered)
    assert cache.get(b"body") is rendered
    kept = cache.stamp(rendered.body, "chatcmpl-abc", 1234)
    loose = cache.stamp(bytes(rendered.body), "chatcmpl-abc", 1234)  # not a kept body
    assert kept == loose == b'data: {"id":"chatcmpl-abc","created":1234,"c":"100% sure"}\n\n' * 2


def test_stamp_without_a_regular_pattern_formats():
    cache = AnswerCache()
    sentinel_id = cache.completion_id.encode()
    events = [
        b'data: {"id":"%s-%d","n":%d,"created":%d}\n\n' % (sentinel_id, i, i, cache.created)
        for i in range(3)
    ]
    events.append(b'data: {"id":"%s"}\n\n' % sentinel_id)
    rendered = Rendered("m", True, tuple(events), "text/event-stream", 1)
    cache.put(b"irregular", rendered)
    expected = rendered.body.replace(cache.completion_id.encode(), b"chatcmpl-x").replace(
        str(cache.created).encode(), b"7"
    )
    assert cache.stamp(rendered.body, "chatcmpl-x", 7) == expected


def test_cache_is_bounded_by_count_and_bytes():
    cache = AnswerCache(capacity=2)
    for key in (b"a", b"b", b"c"):
        cache.put(key, _rendered(cache))
    assert (len(cache), cache.get(b"a")) == (2, None)
    small = AnswerCache(max_bytes=16 * 200)
    small.put(b"big", _rendered(small, events=40))  # over max_bytes / 16: not kept
    assert small.get(b"big") is None
    for key in map(bytes, ([i] for i in range(40))):
        small.put(key, _rendered(small))
    assert 0 < len(small) < 40


def post(server, body, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            json.dumps(body),
            {"Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def chunks_of(raw):
    return [json.loads(e[6:]) for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]


def test_the_same_body_gets_fresh_ids_and_the_same_answer(mock):
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    answers = [chunks_of(post(mock, body)[1]) for _ in range(3)]
    ids = [{c["id"] for c in chunks} for chunks in answers]
    assert all(len(i) == 1 for i in ids) and len(set.union(*ids)) == 3
    assert all(chunks[0]["created"] < 9 * 10**12 for chunks in answers)  # stamped, not sentinel
    drop = {"id", "created"}
    assert [[{k: v for k, v in c.items() if k not in drop} for c in a] for a in answers] == [
        [{k: v for k, v in c.items() if k not in drop} for c in answers[0]]
    ] * 3
    status, raw = post(mock, {**body, "stream": False})
    second = json.loads(post(mock, {**body, "stream": False})[1])
    assert status == 200 and json.loads(raw)["id"] != second["id"]


def test_faults_still_apply_to_a_kept_answer(mock):
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    post(mock, body)  # now kept
    assert not post(mock, body, {"X-Chatcompat-Fault": "no-done"})[1].endswith(b"[DONE]\n\n")
    assert post(mock, body, {"X-Chatcompat-Fault": "status=503"})[0] == 503
    _, raw = post(mock, body, {"X-Chatcompat-Fault": "split-utf8"})
    assert "你好" in raw.decode()
    assert "你好" not in post(mock, body)[1].decode()  # the multi-byte answer was not kept


def test_invalid_bodies_are_validated_every_time(mock):
    body = {"model": "m", "messages": MESSAGES, "temperature": 3}
    assert [post(mock, body)[0] for _ in range(2)] == [400, 400]
