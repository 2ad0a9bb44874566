"""Approximate token counts (Llama 3 pre-tokenizer pieces) for the replayed answers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["count_prompt_tokens", "pieces"]

# Llama 3's pre-tokenizer split, in Python's re dialect (letters: [^\W\d_], numbers: \d{1,3}).
_PIECE = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|[^\r\n\w]?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?[^\s\w]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)
_PER_MESSAGE = 5  # <|start_header_id|> role <|end_header_id|> "\n\n" ... <|eot_id|>
_PER_PROMPT = 1 + 4  # <|begin_of_text|> + the assistant header that opens the answer


def pieces(text: str) -> list[str]:
    """``text`` split into pieces of about one token each; joined they give ``text`` back."""
    return _PIECE.findall(text)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def count_prompt_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """About how many tokens the Llama 3 chat format makes of ``messages``."""
    total = _PER_PROMPT
    for message in messages:
        total += _PER_MESSAGE + len(pieces(_text_of(message.get("content"))))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            total += len(pieces(str(function.get("name", "")) + str(function.get("arguments", ""))))
    return total
