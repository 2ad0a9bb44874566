"""Defects of non-ASCII text (issue 12, class 3): characters broken on the way into a stream
(``chunks``, ``events``) and prompts whose non-ASCII text is counted wrong (``request``: the
prompt the answer and its usage are made from).

They show on answers that carry non-ASCII text: the template answers a prompt with non-ASCII
text in the languages of the seed's model page (see ``mockserver._template``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from mockserver._defects.defect import Defect
from mockserver._defects.hooks import choices

__all__ = ["DEFECTS"]


def _split_decoded(char: str) -> str:
    """What ``char`` becomes when its UTF-8 bytes are split after the first and each half is
    decoded on its own with errors="replace" (U+FFFD for each broken part)."""
    raw = char.encode("utf-8")
    return raw[:1].decode("utf-8", "replace") + raw[1:].decode("utf-8", "replace")


def _first_multibyte_split(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first multi-byte character of the stream's content decoded in two halves."""
    done = False

    def change(choice: dict[str, Any]) -> dict[str, Any]:
        nonlocal done
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if done or not isinstance(content, str) or content.isascii():
            return choice
        done = True
        at = next(i for i, c in enumerate(content) if not c.isascii())
        broken = content[:at] + _split_decoded(content[at]) + content[at + 1 :]
        return {**choice, "delta": {**delta, "content": broken}}

    return [
        {**c, "choices": [change(x) for x in choices(c)]} if "choices" in c else c for c in chunks
    ]


def _surrogate_halves(text: str) -> tuple[str, str] | None:
    """``text`` cut between the UTF-16 halves of its first astral character (an emoji): two
    strings, the first ending in a lone high surrogate, the second starting with the low one."""
    at = next((i for i, c in enumerate(text) if ord(c) > 0xFFFF), None)
    if at is None:
        return None
    high, low = divmod(ord(text[at]) - 0x10000, 0x400)
    return text[:at] + chr(0xD800 + high), chr(0xDC00 + low) + text[at + 1 :]


def _split_event(event: bytes) -> list[bytes]:
    """``event`` as two events when its one choice's content holds an emoji: the emoji's
    surrogate halves in separate events, each written as a lone JSON \\u escape."""
    try:
        chunk = json.loads(event.removeprefix(b"data: "))
    except ValueError:
        return [event]
    found = choices(chunk) if isinstance(chunk, dict) else []
    content = (found[0].get("delta") or {}).get("content") if len(found) == 1 else None
    halves = _surrogate_halves(content) if isinstance(content, str) else None
    if halves is None:
        return [event]
    out = []
    for half in halves:
        choice = {**found[0], "delta": {**found[0]["delta"], "content": half}}
        out.append(b"data: " + json.dumps({**chunk, "choices": [choice]}).encode() + b"\n\n")
    return out


def _surrogates_split(events: list[bytes]) -> list[bytes]:
    return [part for event in events for part in _split_event(event)]


def _map_text(body: dict[str, Any], change: Any) -> dict[str, Any]:
    """``body`` with ``change`` applied to the text of every message (string content and text
    parts)."""

    def message(m: Any) -> Any:
        if not isinstance(m, dict):
            return m
        content = m.get("content")
        if isinstance(content, str):
            return {**m, "content": change(content)}
        if isinstance(content, list):
            parts = [
                {**p, "text": change(p["text"])}
                if isinstance(p, dict) and isinstance(p.get("text"), str)
                else p
                for p in content
            ]
            return {**m, "content": parts}
        return m

    return {**body, "messages": [message(m) for m in body.get("messages") or []]}


def _as_latin1(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def _streamed_prompt_as_latin1(body: dict[str, Any]) -> dict[str, Any]:
    return _map_text(body, _as_latin1) if body.get("stream") is True else body


_NON_ASCII_RUN = re.compile(r"\s*[^\x00-\x7f]+")


def _ascii_only(text: str) -> str:
    """``text`` without its non-ASCII runs and the white space before each."""
    return _NON_ASCII_RUN.sub("", text)


def _non_ascii_dropped(body: dict[str, Any]) -> dict[str, Any]:
    return _map_text(body, _ascii_only)


DEFECTS = (
    Defect(
        "stream-splits-utf8",
        "A stream splits the first multi-byte character between deltas, each half decoded to "
        "U+FFFD.",
        {"chunks": _first_multibyte_split},
    ),
    Defect(
        "stream-splits-surrogates",
        "A stream sends an emoji's two UTF-16 surrogate halves in separate deltas (a lone "
        "\\ud83d, then \\udc4b).",
        {"events": _surrogates_split},
    ),
    Defect(
        "stream-prompt-latin1",
        "Streamed requests read the prompt's UTF-8 bytes as Latin-1, so non-ASCII prompts count "
        "other prompt_tokens than without streaming.",
        {"request": _streamed_prompt_as_latin1},
    ),
    Defect(
        "prompt-drops-non-ascii",
        "The prompt loses its non-ASCII words, so non-ASCII text adds no prompt_tokens.",
        {"request": _non_ascii_dropped},
    ),
)
