"""What ``chatcompat record`` never writes in clear: credential headers, credentials in a query
string, and secrets in bytes and in text, as sent or encoded: inside JSON strings quoted any
number of times (``\\u004d``, ``\\\\u004d`` ..., ``\\/``), and percent-encoded (``%2F``, ``%2f``,
``+`` for a space).

Every function here is pure: secrets in, redacted copies out, each secret replaced by
``[REDACTED]`` (:data:`mockserver._cassettes.REDACTED`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from chatcompat.encoded_secrets import secret_patterns
from mockserver._cassettes import REDACTED, SECRET_HEADERS, Write

__all__ = [
    "CREDENTIAL_PARAMETERS",
    "MIN_HEADER_SECRET",
    "query_secrets",
    "redact",
    "redact_json",
    "redact_text",
    "redact_url",
    "redact_writes",
    "request_secrets",
    "secret_patterns",
]

MIN_HEADER_SECRET = 8  # shorter key values are redacted in headers only, not searched in bodies
# Query parameters that carry credentials, compared lower-case without '-' and '_' (so that
# X-Amz-Signature reads xamzsignature). Their values are redacted in URLs (the access log, the
# "upstream failed" warning) and, when at least MIN_HEADER_SECRET long, wherever else written.
CREDENTIAL_PARAMETERS = frozenset(
    {
        # API keys: api-key / api_key / apikey (Azure OpenAI, many gateways), key (Google APIs),
        # subscription-key (Azure API Management)
        "apikey",
        "xapikey",
        "key",
        "subscriptionkey",
        "ocpapimsubscriptionkey",
        # OAuth 2.0: bearer tokens in the query (RFC 6750 section 2.3) and the authorization
        # code (RFC 6749 section 4.1.2); code is also the Azure Functions key, the twin of the
        # x-functions-key header (learn.microsoft.com/azure/azure-functions/function-keys-how-to)
        "accesstoken",
        "token",
        "idtoken",
        "refreshtoken",
        "code",
        "clientsecret",
        # AWS Signature Version 4 presigned URLs (docs.aws.amazon.com/AmazonS3/latest/API/
        # sigv4-query-string-auth.html): X-Amz-Credential holds the access key id,
        # X-Amz-Security-Token an STS session token; version 2 query auth: AWSAccessKeyId,
        # Signature (docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html)
        "xamzsignature",
        "xamzcredential",
        "xamzsecuritytoken",
        "awsaccesskeyid",
        "signature",
        # Google Cloud Storage signed URLs, V4 and V2 (cloud.google.com/storage/docs/
        # authentication/signatures): X-Goog-Signature, X-Goog-Credential (the service
        # account), GoogleAccessId with Signature
        "xgoogsignature",
        "xgoogcredential",
        "googleaccessid",
        # Azure Storage SAS: sig, the signature, is the secret (learn.microsoft.com/rest/api/
        # storageservices/create-service-sas); sv, se, sp ... are a version, an expiry and
        # permissions, public: a date such as sv=2024-08-06 would be hunted in every answer
        "sig",
        # plain names
        "secret",
        "password",
        "auth",
        "authorization",
    }
)
# Stored as [REDACTED] but not credentials: not searched for in bodies (the OpenAI organization
# and project ids name the account; answers may quote them harmlessly).
_IDENTIFYING_HEADERS = frozenset({"openai-organization", "openai-project"})

Span = tuple[int, int, bytes]  # start, end, the bytes that replace data[start:end]


def _credential_parameter(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in CREDENTIAL_PARAMETERS


def query_secrets(query: str) -> list[str]:
    """The values of credential parameters in a query string (``a=1&api-key=K``), each as it
    is sent (percent-encoded) and decoded, so that either form is found when written."""
    found = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _credential_parameter(name) and value:
            found.append(value)
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if value and _credential_parameter(unquote_plus(name)):
            found.append(value)
    return list(dict.fromkeys(found))


def redact_url(url: str) -> str:
    """``url`` (or a path with a query) with the value of every credential parameter of its
    query replaced by ``[REDACTED]``; the rest as it was."""
    head, mark, rest = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = rest.partition("#")
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if value and _credential_parameter(unquote_plus(name)):
            part = f"{name}{equals}{REDACTED}"
        parts.append(part)
    return f"{head}?{'&'.join(parts)}{hash_mark}{fragment}"


def request_secrets(headers: Mapping[str, str], query: str = "") -> list[str]:
    """Key values the client sent (long enough to be searched for in bodies): those of the
    credential headers (the token of ``Authorization: <scheme> <token>``) and of the query."""
    found = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("authorization", "proxy-authorization"):
            value = value.partition(" ")[2] or value
        keyed = lower in SECRET_HEADERS - {"cookie", "set-cookie"} - _IDENTIFYING_HEADERS
        if keyed and len(value.strip()) >= MIN_HEADER_SECRET:
            found.append(value.strip())
    found += [s for s in query_secrets(query) if len(s) >= MIN_HEADER_SECRET]
    return found


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (longest first) replaced by ``[REDACTED]``, in any of the
    encodings :func:`secret_patterns` matches (a string decoded once may still hold one)."""
    for secret in _ordered(secrets):
        text = secret_patterns(secret)[1].sub(REDACTED, text)
    return text


def redact_json(value: Any, secrets: Sequence[str]) -> Any:
    """A parsed JSON value with every secret replaced in its strings, keys included; lists and
    objects are changed in place. Iterative: any depth."""
    if not secrets:
        return value

    def fixed(item: Any) -> Any:
        return redact_text(item, secrets) if isinstance(item, str) else item

    root = [fixed(value)]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            node[:] = [fixed(item) for item in node]
            stack += [item for item in node if isinstance(item, (list, dict))]
        elif isinstance(node, dict):
            items = [(fixed(k), fixed(v)) for k, v in node.items()]
            node.clear()
            node.update(items)
            stack += [v for _, v in items if isinstance(v, (list, dict))]
    return root[0]


def _ordered(secrets: Iterable[str]) -> list[str]:
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def _spans(data: bytes, secrets: Sequence[str]) -> list[Span]:
    """Non-overlapping spans of the secrets in ``data`` in any encoding, left to right; of two
    that overlap, the one that begins first (at the same place, the longer) is kept."""
    found = [
        (match.start(), match.end())
        for secret in _ordered(secrets)
        for match in secret_patterns(secret)[0].finditer(data)
    ]
    spans: list[Span] = []
    mark, reached = REDACTED.encode(), 0
    for start, end in sorted(found, key=lambda span: (span[0], -span[1])):
        if start >= reached:
            spans.append((start, end, mark))
            reached = end
    return spans


def _rewrite(writes: Sequence[Write], spans: Sequence[Span]) -> tuple[Write, ...]:
    """Replace ``spans`` of the joined bytes of ``writes``, then cut them again at the recorded
    boundaries; a span split across writes goes whole into the write it began in."""
    if not spans:
        return tuple(writes)
    joined = b"".join(w.data for w in writes)
    out, cursor = b"", 0
    for start, end, replacement in spans:
        out += joined[cursor:start] + replacement
        cursor = end
    out += joined[cursor:]

    def moved(offset: int) -> int:
        shift = 0
        for start, end, replacement in spans:
            if end <= offset:
                shift += len(replacement) - (end - start)
            elif start < offset:
                return start + shift + len(replacement)
            else:
                break
        return offset + shift

    cuts, offset = [], 0
    for w in writes:
        offset += len(w.data)
        cuts.append(moved(offset))
    cuts[-1] = len(out)
    result, previous = [], 0
    for w, cut in zip(writes, cuts, strict=True):
        result.append(Write(w.delay, out[previous:cut]))
        previous = cut
    return tuple(result)


def redact_writes(writes: Sequence[Write], secrets: Sequence[str]) -> tuple[Write, ...]:
    """Redact the joined bytes of ``writes`` (JSON strings that hold a secret once decoded,
    then the secrets as sent or JSON-escaped), then cut them again at the recorded boundaries;
    a secret split across writes goes whole, as ``[REDACTED]``, into the write it began in."""
    if not writes:
        return tuple(writes)
    return _rewrite(writes, _spans(b"".join(w.data for w in writes), secrets))


def redact(data: bytes, secrets: Sequence[str]) -> bytes:
    """``data`` with every secret replaced by ``[REDACTED]``, in any JSON encoding."""
    return redact_writes([Write(0.0, data)], secrets)[0].data if data else data
