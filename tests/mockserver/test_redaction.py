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
    redact_text,
    redact_url,
    redact_writes,
    request_secrets,
    secret_patterns,
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
        "code",  # Azure Functions, the twin of the x-functions-key header
        "X-Amz-Signature",  # AWS SigV4 presigned URLs
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "AWSAccessKeyId",  # AWS SigV2 query auth, with Signature
        "Signature",
        "X-Goog-Signature",  # GCS signed URLs
        "X-Goog-Credential",
        "GoogleAccessId",
    ],
)
def test_credential_parameters_are_redacted_in_urls(name):
    url = f"https://h/v1/chat/completions?a=1&{name}=K%2Fey&b=2#frag"
    assert redact_url(url) == f"https://h/v1/chat/completions?a=1&{name}={REDACTED}&b=2#frag"
    assert set(query_secrets(url.partition("?")[2].partition("#")[0])) == {"K/ey", "K%2Fey"}


def test_other_parameters_and_urls_without_a_query_stay():
    assert redact_url("/v1/models?limit=2&order=asc") == "/v1/models?limit=2&order=asc"
    # an Azure SAS: only sig is secret; its version, expiry and permissions are public
    sas = "/c/b.txt?sv=2024-08-04&se=2026-12-01T00%3A00%3A00Z&sp=r&sig=SIGVALUE%2Bx%3D"
    assert (
        redact_url(sas) == f"/c/b.txt?sv=2024-08-04&se=2026-12-01T00%3A00%3A00Z&sp=r&sig={REDACTED}"
    )
    assert query_secrets(sas.partition("?")[2]) == ["SIGVALUE+x=", "SIGVALUE%2Bx%3D"]
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


MYSECRET = "MYSECRETvalue123"


def quoted(text, levels, ensure_ascii=True):
    """``text`` inside a JSON string ``levels`` times (the upstream quoting a raw body)."""
    for _ in range(levels):
        text = json.dumps(text, ensure_ascii=ensure_ascii)
    return text


@pytest.mark.parametrize("levels", [0, 1, 2, 3, 5])
def test_a_secret_is_found_under_any_number_of_json_escaping_levels(levels):
    sent = '{"user":"\\u004d' + MYSECRET[1:] + '"}'  # as the red-team client sent it
    data = quoted(f"before {sent} after", levels).encode()
    out = redact(data, [MYSECRET])
    assert b"YSECRETvalue123" not in out
    assert REDACTED.encode() in out
    text = out.decode()
    for _ in range(levels):
        text = json.loads(text)  # still valid JSON at every level
    assert text == 'before {"user":"' + REDACTED + '"} after'


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_a_non_ascii_secret_sent_by_json_dumps_is_found_quoted_again(levels):
    secret = "clé-secrète-ü-😀-/path"
    for ensure_ascii in (True, False):
        data = quoted(json.dumps({"k": secret}), levels, ensure_ascii).encode()
        out = redact(data, [secret])
        assert b"secr" not in out and b"\\u00e8" not in out.lower()
        assert REDACTED.encode() in out


def test_escapes_in_either_case_and_the_escaped_slash_are_found():
    secret = "abc/def+ghi"
    for form in (
        "\\u0061bc\\/def+ghi",
        "\\u0061bc\\u002Fdef\\u002bghi",
        "\\\\u0061bc\\\\/def+ghi",
        "".join(f"\\u{ord(c):04X}" for c in secret),
    ):
        assert redact(f'"{form}"'.encode(), [secret]) == f'"{REDACTED}"'.encode()
        assert redact_text(form, [secret]) == REDACTED


def test_a_secret_decoded_once_is_found_in_text():
    assert redact_text("say \\u004dYSECRETvalue123!", [MYSECRET]) == f"say {REDACTED}!"
    assert redact_text("say \\\\u004dYSECRETvalue123", [MYSECRET]) == f"say {REDACTED}"


@pytest.mark.parametrize(
    "form",
    [
        "PCT%2FKEY%2Bjjjjjj%3D%3D",
        "PCT%2fKEY%2bjjjjjj%3d%3d",
        "%50%43%54/KEY+jjjjjj==",
    ],
)
def test_a_secret_is_found_percent_encoded(form):
    secret = "PCT/KEY+jjjjjj=="
    data = f'{{"pct": ["{form}"]}}'.encode()
    assert redact(data, [secret]) == f'{{"pct": ["{REDACTED}"]}}'.encode()
    assert redact_text(form, [secret]) == REDACTED


def test_a_space_is_found_as_plus_or_percent_20():
    for form in ("pass word here", "pass+word+here", "pass%20word%20here"):
        assert redact(f"<{form}>".encode(), ["pass word here"]) == f"<{REDACTED}>".encode()


def test_escape_look_alikes_are_not_secrets():
    # a \U escape is no JSON escape; a secret's characters elsewhere stay
    data = b'"\\U004dYSECRETvalue123" "YSECRETvalue123" "\\u004dYSECRET"'
    assert redact(data, [MYSECRET]) == data


def test_backslash_runs_are_matched_from_their_start():
    run = b"\\" * 100_000
    assert redact(run + b"u004d" + MYSECRET[1:].encode() + run, [MYSECRET]) == (
        REDACTED.encode() + run
    )
    assert redact(run, [MYSECRET]) == run


def test_the_patterns_of_a_secret_are_compiled_once():
    assert secret_patterns(MYSECRET) is secret_patterns(MYSECRET)
