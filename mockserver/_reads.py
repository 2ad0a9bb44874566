"""How one read from a client is fed to aiohttp's parser: in one piece when it holds one whole
request (nothing can be lost), else cut after each header block, so that the requests parsed
before a malformed one keep their answers (aiohttp's parser raises, and the requests it parsed
in that call are lost; HTTP/1.1 answers pipelined requests in order, RFC 9112 section 9.3.2)."""

from __future__ import annotations

import re

__all__ = ["MAX_PIECES", "one_request", "pieces"]

# A data_received is fed to the parser in at most this many pieces (see pieces).
MAX_PIECES = 64


def pieces(data: bytes) -> list[bytes]:
    """``data`` cut after each ``\\r\\n\\r\\n`` (the end of a header block or of a chunked
    body), at most MAX_PIECES pieces: fed one by one, the requests parsed before a malformed
    one in the same read are kept (aiohttp's parser raises, and the requests it parsed in that
    call are lost)."""
    cut: list[bytes] = []
    start = 0
    while len(cut) < MAX_PIECES - 1 and (end := data.find(b"\r\n\r\n", start)) != -1:
        cut.append(data[start : end + 4])
        start = end + 4
    if start < len(data) or not cut:
        cut.append(data[start:])
    return cut


# A header block's Content-Length and Transfer-Encoding lines (see one_request).
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)


def one_request(data: bytes) -> bool:
    """Whether ``data`` (read at a request's start) ends within the first request it holds:
    its header block, then a Content-Length body that ends with ``data``."""
    end = data.find(b"\r\n\r\n")
    if end == -1:
        return True  # no header block ends here: the parser finds one request at most
    head = data[: end + 2]
    rest = len(data) - end - 4
    found = _CONTENT_LENGTH.findall(head)
    if not found:
        return rest == 0 and _CHUNKED.search(head) is None
    digits = found[0].lstrip(b"0") or b"0"  # int() refuses over 4,300 digits, zeros too
    if len(found) != 1 or len(digits) > len(str(len(data))):
        return False  # a length past the read: in pieces
    return int(digits) == rest and _CHUNKED.search(head) is None
