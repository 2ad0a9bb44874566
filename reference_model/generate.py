"""Generation API for the mock server: chat messages in, an iterator of token steps out.

The decode loop is gpt-fast's (pytorch-labs/gpt-fast ``generate.py``) in small named steps:
:func:`prefill` -> :func:`decode_one_token` -> :func:`decode_n_tokens` -> :func:`generate`; what
the next token may be, and what a token writes, is the choice's rule (``constraints``: plain
text, or a template for JSON output and forced tool calls).

What is done: the Llama 3 chat prompt (``encode_dialog``), KV-cached decoding, the sampler of
record in the chosen dialect, ``n`` choices with generators seeded ``seed + i`` (run one after
the other), raw logprobs and top logprobs per token, stop tokens (``<|eot_id|>``,
``<|eom_id|>``, ``<|end_of_text|>``: finish ``stop``, counted in usage, no text), stop strings
(plain text only), UTF-8 split across tokens (an incremental decoder; a step never carries half
a character; invalid bytes become U+FFFD; bytes of an unfinished character at the very end are
dropped), ``max_tokens`` and the context end (finish ``length``). Token counts are real: prompt
ids and every generated (sampled or forced) token. ``response_format`` json_object /
json_schema and forced tool calls (``chatcompat.request_rules.forced_tools``: a named function,
or ``"required"``: every tool, the first only when ``parallel_tool_calls`` is false) follow a
template (``constraints.Template``); ``tool_choice`` ``"auto"``/``None``/``"none"`` generate
plain text (never a call).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from chatcompat.request_rules import forced_tools

from .chat_format import encode_dialog
from .constraints import (
    CallPiece,
    FinishReason,
    PlainText,
    Rule,
    Template,
    ToolCall,
    calls_template,
    format_template,
)
from .model import KVCache, Transformer
from .sampling import Dialect, SamplingParams, make_generator, raw_logprobs, sample, top_logprobs
from .tokenizer import Tokenizer, default_tokenizer
from .weights import build_model

__all__ = [
    "CallPiece",
    "Generation",
    "GenerationRequest",
    "Step",
    "ToolCall",
    "decode_n_tokens",
    "decode_one_token",
    "generate",
    "prefill",
]


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[Mapping[str, Any]]
    # OpenAI tool entries ({"type": "function", "function": {...}}), rendered in the prompt
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None  # none | auto | required | named
    response_format: Mapping[str, Any] | None = None  # {"type": "json_object"} etc.
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None  # None: up to the end of the context
    stop: Sequence[str] = ()  # non-empty strings
    n: int = 1
    top_logprobs: int = 0  # how many raw top logprobs each step carries
    dialect: Dialect = "vllm"
    parallel_tool_calls: bool | None = None  # False: "required" calls the first tool only


@dataclass(frozen=True)
class Step:
    """One generated token of choice ``index``, and the text it releases (may be empty)."""

    index: int
    token: int
    text: str  # forced tool calls: the calls' text, as the chat format renders them
    logprob: float
    top_logprobs: tuple[tuple[int, float], ...]
    finish_reason: FinishReason | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # the whole calls, on the step finishing "tool_calls"
    call: CallPiece | None = None  # forced tool calls: the call this step writes


def prefill(model: Transformer, prompt: Sequence[int], budget: int) -> Tensor:
    """Logits [V] after ``prompt``, with KV caches for it and ``budget`` more tokens."""
    model.setup_caches(1, len(prompt) + budget)
    logits: Tensor = model(torch.tensor([prompt]), torch.arange(len(prompt)))[0, -1]
    return logits


def decode_one_token(model: Transformer, token: int, position: int) -> Tensor:
    """Logits [V] after ``token`` at ``position`` (the caches hold what came before)."""
    logits: Tensor = model(torch.tensor([[token]]), torch.tensor([position]))[0, -1]
    return logits


def decode_n_tokens(
    model: Transformer,
    logits: Tensor,
    request: GenerationRequest,
    prompt: Sequence[int],
    budget: int,
    rule: Rule,
    index: int = 0,
) -> Iterator[Step]:
    """The steps of choice ``index`` after ``prompt`` (``logits`` [V] from :func:`prefill`):
    up to ``budget`` tokens, each chosen as ``rule`` says (forced, or sampled with ``request``'s
    parameters and ``seed + index``); the last step has the finish reason."""
    generator = make_generator(request.sampling.seed, index)
    out: list[int] = []
    while len(out) < budget:
        pick = rule.pick(budget - len(out))
        if pick is None:
            return
        if pick.forced is None:
            s = sample(
                logits, request.sampling, generator, prompt_ids=prompt, output_ids=out,
                dialect=request.dialect, n_top_logprobs=request.top_logprobs,
                allowed=pick.allowed,
            )  # fmt: skip
            if not rule.drawn(s.token):
                continue
            token, logprob, top = s.token, s.logprob, s.top_logprobs
        else:
            raw = raw_logprobs(logits)
            token, logprob = pick.forced, float(raw[pick.forced])
            top = top_logprobs(raw, request.top_logprobs)
        out.append(token)
        w = rule.wrote(token, budget - len(out))
        yield Step(index, token, w.text, logprob, top, w.finish, w.tool_calls, w.call)
        if w.finish is not None:
            return
        logits = decode_one_token(model, token, len(prompt) + len(out) - 1)


class Generation:
    """Iterator of ``Step`` for all choices (choice 0 first). ``prompt_tokens`` counts the
    prompt ids; ``completion_tokens`` every step made so far (it grows as the steps are
    taken); ``context`` is the tokens prompt and completion share (the model's
    ``max_seq_len``, or ``context_length`` when smaller). The prompt must leave room for one
    token (asserted when the first step is taken).

    A generation keeps its own KV caches: it puts them into the model for each step and takes
    them back after it, so generations on one model may be stepped in turns (from one thread)
    and each makes the steps it makes alone."""

    def __init__(
        self,
        request: GenerationRequest,
        model: Transformer,
        tokenizer: Tokenizer,
        context_length: int | None = None,
    ) -> None:
        assert request.n >= 1, "n must be at least 1"
        self.request, self.model, self.tokenizer = request, model, tokenizer
        self.context = model.args.max_seq_len
        if context_length is not None:
            self.context = min(self.context, context_length)
        self.prompt_ids = encode_dialog(tokenizer, request.messages, request.tools)
        self.prompt_tokens = len(self.prompt_ids)
        self.completion_tokens = 0
        self._steps = (s for i in range(request.n) for s in self._choice(i))
        self._attentions = [block.attention for block in model.blocks]
        self._caches: list[KVCache | None] = [None] * len(self._attentions)  # its own, per layer

    def __iter__(self) -> Iterator[Step]:
        return self

    def __next__(self) -> Step:
        attentions, caches = self._attentions, self._caches
        if attentions[0].kv_cache is not caches[0]:  # another generation stepped in between
            for attention, cache in zip(attentions, caches, strict=True):
                attention.kv_cache = cache
        try:
            return next(self._steps)
        finally:
            if attentions[0].kv_cache is not caches[0]:  # a choice's prefill made new ones
                self._caches = [attention.kv_cache for attention in attentions]

    def _rule(self) -> Rule:
        """The rule of each choice: forced calls, JSON output, else plain text."""
        req, tok = self.request, self.tokenizer
        tools = forced_tools(req.tools, req.tool_choice, req.parallel_tool_calls)
        if tools:
            names = [str(t["function"]["name"]) for t in tools]
            return Template(tok, calls_template(tools), "tool_calls", names)
        if (req.response_format or {}).get("type") in ("json_object", "json_schema"):
            return Template(tok, format_template(req.response_format or {}), "stop")
        return PlainText(tok, req.stop)

    @torch.inference_mode()
    def _choice(self, index: int) -> Iterator[Step]:
        room = self.context - self.prompt_tokens
        assert room > 0, "prompt longer than the context"
        max_tokens = self.request.max_tokens
        budget = room if max_tokens is None else min(max_tokens, room)
        logits = prefill(self.model, self.prompt_ids, budget)
        rule = self._rule()
        for step in decode_n_tokens(
            self.model, logits, self.request, self.prompt_ids, budget, rule, index
        ):
            self.completion_tokens += 1
            yield step


def generate(
    request: GenerationRequest,
    *,
    model: Transformer | None = None,
    tokenizer: Tokenizer | None = None,
    context_length: int | None = None,
) -> Generation:
    """Run ``request`` on ``model`` (default: ``build_model(0)``); iterate the result for steps.
    ``context_length`` (tokens) shortens the model's context for prompt and completion.

    The KV caches are allocated per choice and belong to the generation, so generations on
    one model may be stepped in turns, one thread at a time (never two threads at once).
    """
    model, tokenizer = model or build_model(0), tokenizer or default_tokenizer()
    return Generation(request, model, tokenizer, context_length)
