"""Generation API for the mock server: chat messages in, an iterator of token steps out.

What is done: the Llama 3 chat prompt (``encode_dialog``), KV-cached decoding, the sampler of
record in the chosen dialect, ``n`` choices with generators seeded ``seed + i`` (run one after
the other), raw logprobs and top logprobs per token, stop tokens (``<|eot_id|>``,
``<|eom_id|>``, ``<|end_of_text|>``: finish ``stop``, counted in usage, no text), stop strings
(matched on decoded text, so across tokens; excluded from the text; text that could still
begin a stop string is held back until it cannot), UTF-8 split across tokens (an incremental
decoder; a step never carries half a character; invalid bytes become U+FFFD; bytes of an
unfinished character at the very end are dropped), ``max_tokens`` and the context end (finish
``length``). Usage counts real tokens: prompt ids and every generated (sampled or forced) token.

What is approximated (the model is tiny and untrained for this), by a *template* of forced
text and constrained free segments; forced tokens are fed to the model and counted, and their
logprob is the raw logprob of the forced token:

- ``response_format`` ``json_object`` (and ``json_schema`` without ``properties``): output is
  ``{"text": "<free>"}``; the free string allows only printable-ASCII tokens without ``"`` or
  ``\\``, ends when the model draws a stop token (that draw is discarded: not output, not
  counted) or after 24 tokens, and always leaves room in ``max_tokens`` for the closing ``"}``
  if it can. ``json_schema`` with ``properties``: the object of its required properties, filled
  as tool parameters are (below; nested objects likewise, arrays ``[]``); string lengths,
  patterns and formats are not followed.
- ``tool_choice`` ``"required"`` or a named function: the output is one call, rendered as the
  chat format renders assistant tool calls, ``{"name": NAME, "parameters": {...}}``: each
  required parameter gets a free string (type string), a free 1-3 token number
  (integer/number), ``true`` (boolean), its first enum value (enum), an object of its own
  required properties (object), ``[]`` (array) or ``null``; finish
  ``tool_calls``; the call is on the final step and no content text is streamed.
  ``tool_choice`` ``"auto"``/``None``/``"none"`` generate plain text (never a call).
- Stop strings apply to plain text only.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from .chat_format import encode_dialog
from .model import Transformer
from .sampling import Dialect, SamplingParams, make_generator, raw_logprobs, sample, top_logprobs
from .tokenizer import Tokenizer, default_tokenizer
from .weights import build_model

__all__ = ["Generation", "GenerationRequest", "Step", "ToolCall", "Usage", "generate"]

FinishReason = Literal["stop", "length", "tool_calls"]
_STRING_TOKENS = 24  # longest free string segment


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None  # none | auto | required | named
    response_format: Mapping[str, Any] | None = None  # {"type": "json_object"} etc.
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None  # None: up to the end of the context
    stop: Sequence[str] = ()
    n: int = 1
    top_logprobs: int = 0  # how many raw top logprobs each step carries
    dialect: Dialect = "vllm"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text (truncated if the choice finished on ``length``)


@dataclass(frozen=True)
class Step:
    """One generated token of choice ``index``, and the text it releases (may be empty)."""

    index: int
    token: int
    text: str
    logprob: float
    top_logprobs: tuple[tuple[int, float], ...]
    finish_reason: FinishReason | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class _TextStream:
    """Bytes in, releasable text out: whole characters only, stop strings held back."""

    def __init__(self, stops: Sequence[str]) -> None:
        assert all(stops), "a stop string cannot be empty"
        self.stops = list(stops)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted = 0

    def push(self, data: bytes) -> tuple[str, bool]:
        """Feed bytes; return (text to release now, whether a stop string was hit)."""
        self.text += self.decoder.decode(data)
        hits = [i for i in (self.text.find(s, self.emitted) for s in self.stops) if i >= 0]
        if hits:
            out, self.emitted = self.text[self.emitted : min(hits)], len(self.text)
            return out, True
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        end = max(self.emitted, len(self.text) - hold)
        out, self.emitted = self.text[self.emitted : end], end
        return out, False

    def flush(self) -> str:
        out, self.emitted = self.text[self.emitted :], len(self.text)
        return out


# A template segment: ("forced", text) or ("string" | "digits", "").
_Segment = tuple[str, str]


def _value_template(prop: Mapping[str, Any], head: str, depth: int) -> list[_Segment]:
    """Segments writing ``head`` then a value for schema ``prop``: its first enum value, a free
    string, a free number, ``true``, an object (``_object_template``), ``[]`` or ``null``."""
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "enum" in prop:
        return [("forced", head + json.dumps(prop["enum"][0]))]
    if kind == "string":
        return [("forced", head + '"'), ("string", ""), ("forced", '"')]
    if kind in ("integer", "number"):
        return [("forced", head), ("digits", "")]
    if kind == "boolean":
        return [("forced", head + "true")]
    if kind == "object" and depth < 4:
        return _object_template(prop, head, "", depth + 1)
    if kind == "array":
        return [("forced", head + "[]")]
    return [("forced", head + "null")]


def _object_template(
    schema: Mapping[str, Any], prefix: str, suffix: str, depth: int = 0
) -> list[_Segment]:
    """``prefix{...}suffix``: the required properties of object ``schema`` in order."""
    props: Mapping[str, Any] = schema.get("properties") or {}
    segs: list[_Segment] = [("forced", prefix + "{")]
    for i, key in enumerate(schema.get("required") or []):
        head = (", " if i else "") + json.dumps(key) + ": "
        segs += _value_template(props.get(key, {}), head, depth)
    return [*segs, ("forced", "}" + suffix)]


def _tool_template(tool: Mapping[str, Any]) -> list[_Segment]:
    f = tool.get("function", tool)
    head = '{"name": ' + json.dumps(f["name"]) + ', "parameters": '
    return _object_template(f.get("parameters") or {}, head, "}")


def _format_template(response_format: Mapping[str, Any]) -> list[_Segment]:
    """json_schema with properties: that object; else ``{"text": "<free>"}``."""
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    if response_format.get("type") == "json_schema" and schema.get("properties"):
        return _object_template(schema, "", "")
    return [("forced", '{"text": "'), ("string", ""), ("forced", '"}')]


def _pick_tool(request: GenerationRequest) -> Mapping[str, Any] | None:
    """The function tool to call: the first for "required", else the named one; None (text)
    for every other tool_choice, objects that name no function (allowed_tools, custom) too."""
    choice = request.tool_choice
    tools = [t for t in request.tools or [] if t.get("type", "function") == "function"]
    by_name = isinstance(choice, Mapping) and choice.get("type") == "function"
    if not tools or not (choice == "required" or by_name):
        return None
    if choice == "required":
        return tools[0]
    assert isinstance(choice, Mapping)
    name = choice["function"]["name"]
    return next(t for t in tools if t.get("function", t)["name"] == name)


class _Masks:
    def __init__(self, tokenizer: Tokenizer) -> None:
        v = tokenizer.vocab_size
        safe = torch.zeros(v, dtype=torch.bool)
        digit = torch.zeros(v, dtype=torch.bool)
        lead = torch.zeros(v, dtype=torch.bool)
        for i in range(tokenizer.n_base):
            b = tokenizer.token_bytes(i)
            safe[i] = all(0x20 <= c < 0x7F and c not in b'"\\' for c in b)
            digit[i] = b.isdigit()
            lead[i] = digit[i] and not b.startswith(b"0")
        stop = torch.zeros(v, dtype=torch.bool)
        stop[sorted(tokenizer.stop_ids)] = True
        self.string, self.digits, self.lead, self.stop = safe | stop, digit | stop, lead, stop


class Generation:
    """Iterator of ``Step`` for all choices (choice 0 first); ``usage`` grows as it runs."""

    def __init__(
        self, request: GenerationRequest, model: Transformer, tokenizer: Tokenizer
    ) -> None:
        assert request.n >= 1, "n must be at least 1"
        self.request, self.model, self.tokenizer = request, model, tokenizer
        self.prompt_ids = encode_dialog(tokenizer, request.messages, request.tools)
        assert len(self.prompt_ids) < model.args.max_seq_len, "prompt longer than the context"
        self.usage = Usage(prompt_tokens=len(self.prompt_ids))
        self._steps = (s for i in range(request.n) for s in self._choice(i))

    def __iter__(self) -> Iterator[Step]:
        return self._steps

    def __next__(self) -> Step:
        return next(self._steps)

    @torch.inference_mode()
    def _choice(self, index: int) -> Iterator[Step]:
        req, tok, model = self.request, self.tokenizer, self.model
        prompt = self.prompt_ids
        room = model.args.max_seq_len - len(prompt)
        budget = room if req.max_tokens is None else min(req.max_tokens, room)
        model.setup_caches(1, len(prompt) + budget)
        logits = model(torch.tensor([prompt]), torch.arange(len(prompt)))[0, -1]
        gen = make_generator(req.sampling.seed, index)
        tool = _pick_tool(req)
        fmt = (req.response_format or {}).get("type", "text")
        plan: list[_Segment] | None = None
        if tool is not None:
            plan = _tool_template(tool)
        elif fmt in ("json_object", "json_schema"):
            plan = _format_template(req.response_format or {})
        masks = _Masks(tok) if plan else None
        stream = _TextStream(req.stop if plan is None else ())
        out: list[int] = []
        # forced token ids still to come: [segment] -> ids; free segments are []
        queue = [tok.encode(t) if kind == "forced" else [] for kind, t in plan or []]
        seg, seg_len = 0, 0

        def feed(token: int) -> Tensor:
            out.append(token)
            self.usage.completion_tokens += 1
            pos = torch.tensor([len(prompt) + len(out) - 1])
            step_logits: Tensor = model(torch.tensor([[token]]), pos)[0, -1]
            return step_logits

        while True:
            if plan is not None:
                while (
                    seg < len(plan)
                    and plan[seg][0] != "forced"
                    and self._free_done(
                        plan[seg][0], seg_len, budget - len(out), sum(map(len, queue[seg + 1 :]))
                    )
                ):
                    seg, seg_len = seg + 1, 0
                if seg < len(plan) and plan[seg][0] == "forced" and not queue[seg]:
                    seg, seg_len = seg + 1, 0
                    continue
            done_plan = plan is not None and seg >= len(plan)
            if done_plan or len(out) >= budget:
                return  # (the step that ended it has already been yielded with its finish)
            kind = "text" if plan is None else plan[seg][0]
            raw = raw_logprobs(logits)
            if kind == "forced":
                token = queue[seg].pop(0)
                logprob, top = float(raw[token]), top_logprobs(raw, req.top_logprobs)
            else:
                allowed = None
                if masks is not None:
                    allowed = masks.string if kind == "string" else masks.digits
                    if kind == "digits" and seg_len == 0:
                        allowed = masks.lead
                s = sample(
                    logits, req.sampling, gen, prompt_ids=prompt, output_ids=out,
                    dialect=req.dialect, n_top_logprobs=req.top_logprobs, allowed=allowed,
                )  # fmt: skip
                token, logprob, top = s.token, s.logprob, s.top_logprobs
                if plan is not None and token in tok.stop_ids:
                    seg, seg_len = seg + 1, 0  # the model ended the free segment
                    continue
                seg_len += 1
            logits = feed(token)
            if plan is None and token in tok.stop_ids:
                yield Step(index, token, stream.flush(), logprob, top, "stop")
                return
            text, hit = stream.push(tok.token_bytes(token))
            finish: FinishReason | None = "stop" if hit else None
            if plan is not None:
                ends_plan = seg == len(plan) - 1 and plan[seg][0] == "forced" and not queue[seg]
                finish = ("tool_calls" if tool else "stop") if ends_plan else None
            if finish is None and len(out) >= budget:
                finish = "length"
            if finish is not None and not hit:
                text += stream.flush()
            if tool is not None:
                calls = (self._tool_call(tool, stream.text),) if finish else ()
                yield Step(index, token, "", logprob, top, finish, calls)
            else:
                yield Step(index, token, text, logprob, top, finish)
            if finish is not None:
                return

    @staticmethod
    def _free_done(kind: str, seg_len: int, left: int, reserve: int) -> bool:
        if kind == "digits" and seg_len == 0:
            return left <= reserve  # a number needs one digit, unless the budget is gone
        limit = _STRING_TOKENS if kind == "string" else 3
        return seg_len >= limit or left <= reserve

    @staticmethod
    def _tool_call(tool: Mapping[str, Any], text: str) -> ToolCall:
        name = tool.get("function", tool)["name"]
        head = '{"name": ' + json.dumps(name) + ', "parameters": '
        args = text[len(head) :]
        return ToolCall(name, args[:-1] if args.endswith("}}") else args)


def generate(
    request: GenerationRequest,
    *,
    model: Transformer | None = None,
    tokenizer: Tokenizer | None = None,
) -> Generation:
    """Run ``request`` on ``model`` (default: ``build_model(0)``); iterate the result for steps.

    The model's KV caches are (re)allocated per choice, so one model must not serve two
    generations at the same time.
    """
    return Generation(request, model or build_model(0), tokenizer or default_tokenizer())
