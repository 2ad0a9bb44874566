"""A secret as it may appear in an answer or a log: itself, inside JSON strings quoted any
number of times (``\\u004d``, ``\\\\u004d`` ..., ``\\/``, a surrogate pair past U+FFFF),
percent-encoded (``%2F``, ``%2f``, ``+`` for a space), or any mix of these, character by
character (RFC 8259 section 7; RFC 3986 section 2.1). Stdlib only: the recorder
(``mockserver._redaction``) and the suite's outputs (``conformance._shown``) both redact with it.
"""

from __future__ import annotations

import functools
import re

__all__ = ["char_forms", "secret_patterns", "secret_source"]

# Backslashes before an escape: one per JSON string level the text was quoted in, doubled at
# each (so any number). At a secret's first character the run is matched from its first
# backslash only (a backslash not preceded by one): a match cannot begin inside a run, so a
# run costs its length once, not its square; and each alternative begins with a literal, which
# keeps the expression's fast scan for its possible first characters.
_BACKSLASHES = r"\\+"
_FIRST_BACKSLASHES = r"\\(?<!\\\\)\\*"
# JSON's two-character escapes (RFC 8259 section 7), by the character they stand for
_SHORT_ESCAPES = {
    '"': '"',
    "\\": "",  # the backslashes themselves: one, two, four ...
    "/": "/",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}


def char_forms(char: str, backslashes: str = _BACKSLASHES) -> list[str]:
    """The regular expressions (text) of ``char`` in its encodings other than itself: a
    ``\\uXXXX`` escape (a surrogate pair past U+FFFF) behind ``backslashes``, JSON's short
    escapes (``\\"``, ``\\\\``, ``\\/``, ``\\n`` ...), and percent-encoding of its UTF-8 bytes
    (either case of hex; ``+`` for a space)."""
    units = char.encode("utf-16-be", "surrogatepass")
    forms = [
        "".join(
            rf"{backslashes}u(?i:{units[i]:02x}{units[i + 1]:02x})" for i in range(0, len(units), 2)
        )
    ]
    if char in _SHORT_ESCAPES:
        forms.append(backslashes + re.escape(_SHORT_ESCAPES[char]))
    forms.append("".join(f"%(?i:{b:02x})" for b in char.encode("utf-8", "surrogatepass")))
    if char == " ":
        forms.append(r"\+")
    return forms


def secret_source(secret: str, *, raw: bool) -> str:
    """The regular expression of ``secret`` with each character as itself or in any form of
    :func:`char_forms`; with ``raw``, one to compile as bytes, written in latin-1 (one
    character per byte: a character as itself is its UTF-8 bytes)."""
    parts = []
    for index, char in enumerate(secret):
        itself = char.encode("utf-8", "surrogatepass").decode("latin-1") if raw else char
        forms = char_forms(char, _FIRST_BACKSLASHES if index == 0 else _BACKSLASHES)
        parts.append(f"(?:{'|'.join([re.escape(itself), *forms])})")
    return "".join(parts)


@functools.lru_cache(maxsize=256)
def secret_patterns(secret: str) -> tuple[re.Pattern[bytes], re.Pattern[str]]:
    """The compiled expressions of ``secret`` in any encoding, for bytes and for text.
    Cached: a recorder's secrets (its ``--redact`` ones, the keys of its clients) are compiled
    once each; matching one over an 8 MiB body is one linear pass (about 25 ms for JSON text,
    under 200 ms for a body made of backslashes or percent signs)."""
    raw = re.compile(secret_source(secret, raw=True).encode("latin-1"), re.DOTALL)
    return raw, re.compile(secret_source(secret, raw=False), re.DOTALL)
