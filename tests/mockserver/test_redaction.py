"""What ``chatcompat record`` redacts: credentials in query strings, credential headers, and
secrets in any JSON encoding, in bytes, text and parsed JSON."""

from __future__ import annotations

import json

import pytest

from mockserver._cassettes import REDACTED, SECRET_HEADERS, Write
from mockserver._redaction import (
    query_secrets,
    redact,
    redact_json,
    redact_url,
    redact_writes,
    request_secrets,
)

SECRET = "hunter2-very-secret"


@pytest.mark.parametrize(
    "name",
    [
        "api-key",
        "api_key",
        "apikey",
        "API-Key",
        "key",
        "access_token",
        "token",
        "sig",
        "subscription-key",
        "client_secret",
        "x-api-key",
    ],
)
def test_credential_parameters_are_redacted_in_urls(name):
    url = f"https://h/v1/chat/completions?a=1&{name}=K%2Fey&b=2#frag"
    assert redact_url(url) == f"https://h/v1/chat/completions?a=1&{name}={REDACTED}&b=2#frag"
    assert set(query_secrets(url.partition("?")[2].partition("#")[0])) == {"K/ey", "K%2Fey"}


def test_other_parameters_and_urls_without_a_query_stay():
    assert redact_url("/v1/models?limit=2&order=asc") == "/v1/models?limit=2&order=asc"
    assert redact_url("/v1/models") == "/v1/models"
    assert redact_url("/v1/models?key=") == "/v1/models?key="  # nothing to hide


def test_every_credential_header_of_azure_and_the_openai_clients_is_secret():
    for name in (
        "authorization",
        "api-key",
        "ocp-apim-subscription-key",
        "x-api-key",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "openai-organization",
    ):
        assert name in SECRET_HEADERS


def test_request_secrets_are_the_keys_of_headers_and_query_not_the_organization():
    headers = {
        "Authorization": "Bearer sk-live-0123456789",
        "Ocp-Apim-Subscription-Key": "apim-0123456789",
        "OpenAI-Organization": "org-0123456789",
        "api-key": "short",  # under MIN_HEADER_SECRET: redacted in headers only
    }
    found = request_secrets(headers, "api-key=query-0123456789&limit=2")
    assert sorted(found) == ["apim-0123456789", "query-0123456789", "sk-live-0123456789"]


def test_a_secret_escaped_in_a_json_string_is_redacted_in_the_raw_bytes():
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)
    raw = (
        b'{"content": "say \\u0068'
        + SECRET[1:].encode()
        + b'", "other": "'
        + escaped.encode()
        + b'"}'
    )
    out = redact(raw, [SECRET])
    assert SECRET.encode() not in out
    decoded = json.loads(out)
    assert decoded == {"content": f"say {REDACTED}", "other": REDACTED}


def test_a_non_ascii_secret_is_found_escaped_or_not():
    secret = "clé-secrète-ü"
    for raw in (
        json.dumps({"k": secret}).encode(),
        json.dumps({"k": secret}, ensure_ascii=False).encode(),
    ):
        assert json.loads(redact(raw, [secret])) == {"k": REDACTED}


def test_escaped_secrets_split_across_writes_stay_in_the_write_they_began_in():
    writes = [Write(0.0, b'data: {"say": "\\u0068unt'), Write(0.1, b'er2-very-secret"}\n\n')]
    out = redact_writes(writes, [SECRET])
    # the span of the secret alone is replaced, as for one sent unescaped
    assert [w.data for w in out] == [b'data: {"say": "[REDACTED]', b'"}\n\n']
    assert [w.delay for w in out] == [0.0, 0.1]


def test_redact_json_walks_keys_and_values_at_any_depth():
    deep: object = SECRET
    for _ in range(5000):
        deep = [deep]
    value = {"a": {SECRET: [f"x{SECRET}y", 1, None]}, "deep": deep}
    out = redact_json(value, [SECRET])
    assert out["a"] == {REDACTED: [f"x{REDACTED}y", 1, None]}
    inner = out["deep"]
    while isinstance(inner, list):
        (inner,) = inner
    assert inner == REDACTED
    assert redact_json("plain " + SECRET, [SECRET]) == f"plain {REDACTED}"
