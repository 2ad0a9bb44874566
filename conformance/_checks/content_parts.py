"""Content the model cannot take (group "errors"): an image_url or input_audio part sent to a
model that cannot read it is refused with a 4xx envelope, and an image sent to a model claimed
to see (capability vision) is answered."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from typing import Any

from conformance._assertions import envelope_problem
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check

__all__ = ["MEDIA_PARTS", "err_content_unsupported"]

# A 1x1 PNG and 50 ms of 8 kHz silence as WAV: the smallest parts a server must read or refuse.
_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)


def _silent_wav() -> str:
    """50 ms of 8 kHz 16-bit mono silence, as base64 WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 400)
    return base64.b64encode(buffer.getvalue()).decode()


# (name, the content part): what a text-only model cannot take
MEDIA_PARTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("image_url", {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_PNG}"}}),
    (
        "input_audio",
        {"type": "input_audio", "input_audio": {"data": _silent_wav(), "format": "wav"}},
    ),
)


def _with_part(ctx: Context, part: dict[str, Any]) -> dict[str, Any]:
    text = {"type": "text", "text": "Describe what you are given in one short sentence."}
    return ctx.request(messages=[{"role": "user", "content": [text, part]}], max_tokens=16)


def _body(exchange: Exchange) -> Any:
    try:
        return exchange.json()
    except ValueError:
        return None


def _answer_problem(exchange: Exchange) -> str | None:
    """What keeps the exchange from being a chat completion with text, or None."""
    body = _body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    if exchange.status != 200 or not isinstance(choices, list) or not choices:
        return _seen(exchange)
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return None if isinstance(content, str) and content.strip() else f"content {content!r}"


def _seen(exchange: Exchange) -> str:
    """The status and, for a JSON body, whether it is an error object or a chat completion."""
    if exchange.status is None:
        return f"no answer: {exchange.error}"
    body = _body(exchange)
    seen = f"{exchange.status} {exchange.content_type}"
    if isinstance(body, dict) and "error" in body and not body.get("choices"):
        return f"{seen} whose body is an error object without choices: {json.dumps(body)[:160]}"
    if isinstance(body, dict) and body.get("choices"):
        return f"{seen}, a chat completion: the part was answered unread"
    return seen


@check(group="errors", severity="must")
async def err_content_unsupported(ctx: Context) -> None:
    """Content parts the model cannot take get a 4xx envelope; with vision, an image an answer.
    A user message of a text part and an image_url part (a 1x1 PNG data URL), and one with an
    input_audio part (50 ms of WAV silence), each get a 4xx with the error envelope; with
    capability vision the image gets a 200 chat completion with text instead.

    A client sends an image to a model it believes can see (an attachment in a chat UI); a 4xx
    tells it the model cannot, a 200 whose body is an error object without choices breaks the
    SDKs (choices[0] of nothing), and an answer that never read the image is made up."""
    vision = "vision" in ctx.endpoint.capabilities
    exchanges = await asyncio.gather(*(ctx.chat(_with_part(ctx, p)) for _, p in MEDIA_PARTS))
    for (name, _), exchange in zip(MEDIA_PARTS, exchanges, strict=True):
        if vision and name == "image_url":
            problem = _answer_problem(exchange)
            if problem:
                raise CheckFailed(
                    "an image sent to a model claimed to see (vision) got no answer",
                    expected="200 with a chat completion whose content is text",
                    received=problem,
                    exchange=exchange,
                )
            continue
        if exchange.status is None or not 400 <= exchange.status < 500:
            raise CheckFailed(
                f"an {name} part sent to a model that cannot take it was not refused with a 4xx",
                expected="400 with the error envelope (capability vision: an answer)",
                received=_seen(exchange),
                exchange=exchange,
            )
        error = envelope_problem(_body(exchange))
        if error:
            raise CheckFailed(
                f"the refusal of an {name} part is not the error envelope",
                received=error,
                exchange=exchange,
            )
