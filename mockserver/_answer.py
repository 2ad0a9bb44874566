"""The neutral answer: what a source (template, model, ...) produced, before a flavour shapes
it into the JSON of one server or another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "Choice", "Token", "Usage"]


@dataclass(frozen=True)
class Token:
    """One streamed step of one choice: a text piece and/or tool-call fragments."""

    text: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()  # delta fragments, OpenAI's stream shape
    logprobs: tuple[dict[str, Any], ...] = ()  # chat logprobs entries for this step's text
    refusal: str = ""  # a piece of a refusal (the message's "refusal", not its content)


@dataclass(frozen=True)
class Choice:
    index: int
    tokens: tuple[Token, ...]
    finish_reason: str  # stop | length | tool_calls | content_filter

    @property
    def content(self) -> str:
        """The text of the whole choice."""
        return "".join(t.text for t in self.tokens)

    @property
    def refusal(self) -> str | None:
        """The refusal of the whole choice; None when it refuses nothing."""
        return "".join(t.refusal for t in self.tokens) or None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls of the whole choice, fragments joined per call index."""
        calls: dict[int, dict[str, Any]] = {}
        for token in self.tokens:
            for fragment in token.tool_calls:
                call = calls.setdefault(
                    fragment["index"],
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = fragment.get("id") or call["id"]
                function = fragment.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
        return [calls[i] for i in sorted(calls)]

    @property
    def logprobs(self) -> list[dict[str, Any]]:
        """The logprobs entries of the whole choice."""
        return [entry for token in self.tokens for entry in token.logprobs]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """prompt + completion."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Answer:
    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    usage: Usage
    logprobs: bool = False  # the request asked for logprobs
    include_usage: bool = False  # stream_options.include_usage
