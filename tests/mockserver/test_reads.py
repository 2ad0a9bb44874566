"""How a read is fed to aiohttp's parser (mockserver._reads): whole when it holds one request,
else cut after each header block."""

from __future__ import annotations

import pytest

from mockserver._reads import MAX_PIECES, one_request, pieces

BODY = b'{"model":"m"}'
POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\n"
GET = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "whole"),
    [
        (POST + BODY, True),
        (GET, True),
        (b"POST /v1/chat/comp", True),  # no header block ends: one request at most
        (POST + BODY[:5], False),  # the body still on its way: fed in pieces
        (POST + BODY + b"G", False),  # the next request begins
        (GET + GET, False),
        (GET + b"x", False),
        (POST.replace(b"13", b"13\r\nContent-Length: 13") + BODY, False),
        (POST.replace(b"Content-Length: 13", b"Transfer-Encoding: chunked"), False),
        (POST.replace(b"Content-Length", b"content-LENGTH") + BODY, True),
        (POST.replace(b"13", b"0" * 5000 + b"13") + BODY, True),  # leading zeros: the same
        (POST.replace(b"13", b"9" * 5000) + BODY, False),  # past any read, and int() refuses it
    ],
    ids=["post", "get", "partial-head", "partial-body", "next-begins", "two-gets", "extra",
         "two-lengths", "chunked", "case", "leading-zeros", "5000-digits"],
)  # fmt: skip
def test_one_request_says_whether_a_read_ends_within_its_first_request(data: bytes, whole: bool):
    assert one_request(data) is whole


def test_pieces_end_after_each_header_block_and_lose_nothing():
    data = GET + POST + BODY + GET + b"GET /par"
    assert pieces(data) == [GET, POST, BODY + GET, b"GET /par"]
    assert pieces(b"") == [b""]
    many = GET * (MAX_PIECES + 5)
    assert len(pieces(many)) == MAX_PIECES and b"".join(pieces(many)) == many
