"""The sampler of record: pure functions over logits, composed per engine *dialect*.

Dialects, each from its engine's own code:

- ``vllm`` (default; vllm-project/vllm ``vllm/v1/sample/sampler.py``, the order in its
  docstring; ``vllm/v1/sample/ops/topk_topp_sampler.py``; ``vllm/sampling_params.py`` for the
  clamps): logit_bias (clamped to [-100, 100]) -> repetition penalty over prompt and output ->
  frequency/presence over output counts -> greedy below T = 1e-5 -> temperature (0 < T < 0.01
  clamped to 0.01) -> min_p -> top_k (ties kept) -> top_p (ascending cumsum, drop mass <= 1 - p)
  -> exponential race (Gumbel-max equivalent).
- ``hf`` (huggingface/transformers ``src/transformers/generation/utils.py``
  ``_get_logits_processor`` with do_sample; the processors in ``generation/logits_process.py``):
  logit_bias (as SequenceBiasLogitsProcessor, unclamped) -> RepetitionPenalty over all input ids
  -> greedy below T = 1e-5 (do_sample=False) -> Temperature -> TopK (ties kept) -> TopP -> MinP
  -> ``torch.multinomial``. transformers has no frequency/presence penalty: they are ignored.
  An unset top_k here is off; transformers makes it 50 (``GenerationConfig``
  ``_get_default_generation_params``) unless the model's generation_config.json sets one.
- ``llamacpp`` (ggml-org/llama.cpp ``common/sampling.cpp`` ``common_sampler_init``, the default
  chain of ``common/common.h``; the samplers in ``src/llama-sampling.cpp``): logit_bias ->
  penalties over the last ``penalty_last_n`` (64) tokens of prompt + output -> top_k (exactly k)
  -> top_p (first prefix with cumsum >= p) -> min_p (logit >= max + log p) -> temperature LAST
  -> inverse-CDF draw with one uniform double. Greedy below T = 1e-5 (llama.cpp: T <= 0 keeps
  the argmax). The penalty window holds the prompt because llama-server replays it into the
  sampler (``tools/server/server.cpp``: "Process all prompt tokens through sampler system").
- ``llama-cpp-python`` (abetlen/llama-cpp-python ``llama_cpp/llama.py`` ``Llama._init_sampler``,
  a fresh chain per request in ``Llama.generate``): the ``llamacpp`` chain over the same
  library (logit_bias as its first, custom sampler -> penalties -> top_k -> typical (1: off) ->
  top_p -> min_p -> temperature -> dist), but the penalty window is the last
  ``last_n_tokens_size`` (64) OUTPUT tokens only: the prompt is never accepted into the chain
  (only ``llama_sampler_sample`` accepts, the sampled token), so the first token is never
  penalised.

All functions take float logits ``[..., V]`` and return new tensors (inputs are not modified);
masked tokens are ``-inf``. Logprobs are always those of the RAW distribution
(``log_softmax`` of the logits before any processor; vLLM's default ``raw_logprobs``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DIALECTS",
    "GREEDY_TEMPERATURE",
    "Dialect",
    "Sample",
    "SamplingParams",
    "apply_frequency_presence",
    "apply_logit_bias",
    "apply_min_p",
    "apply_repetition_penalty",
    "apply_temperature",
    "apply_top_k",
    "apply_top_p",
    "make_generator",
    "penalty_tokens",
    "process_logits",
    "processed_probs",
    "raw_logprobs",
    "sample",
    "sample_from_probs",
    "top_logprobs",
]

Dialect = Literal["vllm", "hf", "llamacpp", "llama-cpp-python"]
DIALECTS: tuple[Dialect, ...] = ("vllm", "hf", "llamacpp", "llama-cpp-python")
GREEDY_TEMPERATURE = 1e-5  # vLLM _SAMPLING_EPS: below this temperature, sampling is argmax
_VLLM_MIN_TEMPERATURE = 1e-2  # vLLM _MAX_TEMP: 0 < T < 0.01 is clamped to 0.01
_NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplingParams:
    """Request sampling parameters; the defaults are the neutral (disabled) values."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1: disabled
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    penalty_last_n: int = 64  # llama.cpp dialects only: window of the penalised ids (-1: all)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_TEMPERATURE


@dataclass(frozen=True)
class Sample:
    """One sampled token, its raw logprob, the raw top logprobs and (on request) the oracle."""

    token: int
    logprob: float
    top_logprobs: tuple[tuple[int, float], ...]
    probs: Tensor | None = None  # the processed distribution the token was drawn from


def apply_logit_bias(logits: Tensor, logit_bias: Mapping[int, float], *, clamp: bool) -> Tensor:
    """Add ``logit_bias[token]`` to each token's logit.

    Edge rule: with ``clamp`` (vLLM ``SamplingParams.from_optional``) biases are clamped to
    [-100, 100], not rejected; HF's SequenceBiasLogitsProcessor and llama.cpp add them as given.
    """
    out = logits.clone()
    for token, bias in logit_bias.items():
        out[..., int(token)] += min(100.0, max(-100.0, bias)) if clamp else bias
    return out


def apply_repetition_penalty(logits: Tensor, token_ids: Sequence[int], penalty: float) -> Tensor:
    """CTRL repetition penalty: each distinct token in ``token_ids`` once, whatever its count.

    Edge rule: logit > 0 -> logit / penalty, else logit * penalty (vLLM, HF ``score < 0`` and
    llama.cpp ``logit <= 0`` agree, since 0 maps to 0). Which ids count is the dialect's choice
    (see ``penalty_tokens``). penalty == 1 is a no-op.
    """
    if penalty == 1.0 or not token_ids:
        return logits.clone()
    idx = torch.tensor(sorted(set(token_ids)), dtype=torch.long)
    out = logits.clone()
    score = out[..., idx]
    out[..., idx] = torch.where(score > 0, score / penalty, score * penalty)
    return out


def apply_frequency_presence(
    logits: Tensor, token_ids: Sequence[int], frequency: float, presence: float
) -> Tensor:
    """OpenAI penalties: logit[j] -= count[j] * frequency + (count[j] > 0) * presence.

    Edge rule: ``count`` is over ``token_ids`` — the output only for vLLM/OpenAI, the last-64
    window of prompt + output for llama.cpp (see ``penalty_tokens``).
    """
    out = logits.clone()
    if (frequency == 0.0 and presence == 0.0) or not token_ids:
        return out
    counts = Counter(token_ids)
    idx = torch.tensor(sorted(counts), dtype=torch.long)
    c = torch.tensor([counts[i] for i in sorted(counts)], dtype=out.dtype)
    out[..., idx] -= c * frequency + (c > 0).to(out.dtype) * presence
    return out


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """logits / T. Edge rule: T must be > 0 here; T < 1e-5 is greedy and handled by callers."""
    assert temperature > 0, "temperature <= 0 means greedy; use process_logits"
    return logits / temperature


def apply_top_k(logits: Tensor, k: int, *, keep_ties: bool) -> Tensor:
    """Keep the k largest logits. k <= 0 or k >= V: no-op.

    Edge rule: ``keep_ties`` (vLLM, HF TopKLogitsWarper) masks only logits strictly below the
    k-th largest value, so ties at the threshold are kept and more than k may survive;
    otherwise (llama.cpp) exactly k survive, ties broken towards the lower token id
    (llama.cpp's own order among ties is that of its partial sort, i.e. unspecified).
    """
    vocab = logits.shape[-1]
    if k <= 0 or k >= vocab:
        return logits.clone()
    if keep_ties:
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, _NEG_INF)
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices
    drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order[..., k:], True)
    return logits.masked_fill(drop, _NEG_INF)


def apply_top_p(logits: Tensor, p: float, *, rule: Literal["ascending", "llamacpp"]) -> Tensor:
    """Nucleus truncation on softmax(logits). p >= 1: no-op.

    Edge rules: ``ascending`` (vLLM ``apply_top_k_top_p``, HF TopPLogitsWarper): sort
    ascending, drop every token whose cumulative mass (itself and all smaller) is <= 1 - p;
    the largest always survives. ``llamacpp``: sort descending, keep the shortest prefix whose
    cumulative mass is >= p (float32 running sum, like llama.cpp). Both keep exactly one token
    for probs [0.5, 0.25, 0.25], p = 0.5 (Meta's reference ``sample_top_p`` keeps two).
    """
    if p >= 1.0:
        return logits.clone()
    if rule == "ascending":
        sorted_logits, idx = torch.sort(logits, dim=-1, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= 1 - p
        drop_sorted[..., -1] = False
        drop = drop_sorted.scatter(-1, idx, drop_sorted)
        return logits.masked_fill(drop, _NEG_INF)
    sorted_logits, idx = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = sorted_logits.float().softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    cum_np = np.cumsum(flat.numpy(), axis=-1, dtype=np.float32)  # sequential float32: llama.cpp
    reached = cum_np >= np.float32(p)
    keep_n = np.where(reached.any(axis=-1), reached.argmax(axis=-1) + 1, flat.shape[-1])
    pos = torch.arange(logits.shape[-1]).expand_as(flat)
    drop_sorted = (pos >= torch.from_numpy(keep_n)[:, None]).reshape(logits.shape)
    drop = drop_sorted.scatter(-1, idx, drop_sorted)
    return logits.masked_fill(drop, _NEG_INF)


def apply_min_p(logits: Tensor, p: float, *, log_space: bool) -> Tensor:
    """Drop tokens with prob < p * max prob. p <= 0: no-op.

    Edge rule: a token exactly at p * max survives. vLLM (MinPLogitsProcessor) and HF
    (MinPLogitsWarper) compare probabilities; llama.cpp (``log_space``) compares
    logit >= max_logit + log(p). min_p commutes with top_k (a ratio to the max) but not with
    top_p, so its position in the chain matters (vLLM: before top_k/top_p; HF, llama.cpp: after).
    """
    if p <= 0.0:
        return logits.clone()
    if log_space:
        max_logit = logits.max(dim=-1, keepdim=True).values
        return logits.masked_fill(logits < max_logit + math.log(p), _NEG_INF)
    probs = logits.softmax(dim=-1)
    return logits.masked_fill(probs < p * probs.amax(dim=-1, keepdim=True), _NEG_INF)


def penalty_tokens(
    prompt_ids: Sequence[int],
    output_ids: Sequence[int],
    dialect: Dialect,
    *,
    last_n: int = 64,
) -> tuple[list[int], list[int]]:
    """(ids the repetition penalty sees, ids frequency/presence count), per dialect.

    vllm: prompt + output, output only. hf: prompt + output (all ``input_ids``), none.
    llamacpp: the last ``last_n`` of prompt + output for both (the server replays the prompt
    into the sampler); llama-cpp-python: the last ``last_n`` of the output only (the prompt is
    not accepted into its chain). last_n == 0 disables penalties, -1 means the whole window.
    """
    if dialect == "vllm":
        return [*prompt_ids, *output_ids], list(output_ids)
    if dialect == "hf":
        return [*prompt_ids, *output_ids], []
    if last_n == 0:
        return [], []
    window = [*prompt_ids, *output_ids] if dialect == "llamacpp" else list(output_ids)
    window = window if last_n < 0 else window[-last_n:]
    return window, window


def process_logits(
    logits: Tensor,
    params: SamplingParams,
    *,
    prompt_ids: Sequence[int] = (),
    output_ids: Sequence[int] = (),
    dialect: Dialect = "vllm",
) -> Tensor:
    """The dialect's whole processor chain over ``logits`` [..., V] (float32 result).

    Greedy (T < 1e-5): everything but the argmax of the biased, penalised logits is -inf
    (the first index wins a tie, as ``torch.argmax``).
    """
    x = logits.float()
    rep_ids, count_ids = penalty_tokens(
        prompt_ids, output_ids, dialect, last_n=params.penalty_last_n
    )
    x = apply_logit_bias(x, params.logit_bias, clamp=dialect == "vllm")
    x = apply_repetition_penalty(x, rep_ids, params.repetition_penalty)
    x = apply_frequency_presence(x, count_ids, params.frequency_penalty, params.presence_penalty)
    if params.greedy:
        top = x.argmax(dim=-1, keepdim=True)
        return torch.full_like(x, _NEG_INF).scatter(-1, top, 0.0)
    t = params.temperature
    if dialect == "vllm":
        x = apply_temperature(x, max(t, _VLLM_MIN_TEMPERATURE))
        x = apply_min_p(x, params.min_p, log_space=False) if params.min_p > 1e-5 else x
        x = apply_top_k(x, params.top_k, keep_ties=True)
        return apply_top_p(x, params.top_p, rule="ascending")
    if dialect == "hf":
        x = apply_temperature(x, t) if t != 1.0 else x
        x = apply_top_k(x, params.top_k, keep_ties=True)
        x = apply_top_p(x, params.top_p, rule="ascending")
        return apply_min_p(x, params.min_p, log_space=False)
    x = apply_top_k(x, params.top_k, keep_ties=False)
    x = apply_top_p(x, params.top_p, rule="llamacpp")
    x = apply_min_p(x, params.min_p, log_space=True)
    return apply_temperature(x, t)


def processed_probs(
    logits: Tensor,
    params: SamplingParams,
    *,
    prompt_ids: Sequence[int] = (),
    output_ids: Sequence[int] = (),
    dialect: Dialect = "vllm",
) -> Tensor:
    """The oracle: the distribution a token is drawn from, softmax of ``process_logits``."""
    return process_logits(
        logits, params, prompt_ids=prompt_ids, output_ids=output_ids, dialect=dialect
    ).softmax(dim=-1)


def make_generator(seed: int | None, choice: int = 0) -> torch.Generator:
    """A per-request CPU generator; choice i of n > 1 uses ``seed + i``; None seeds randomly."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed + choice)
    return g


def sample_from_probs(
    probs: Tensor, generator: torch.Generator, *, dialect: Dialect = "vllm", num_samples: int = 1
) -> Tensor:
    """Draw ``num_samples`` token ids from one distribution ``probs`` [V] (vectorised).

    vllm: argmax(probs / q), q ~ Exp(1) (exponential race). hf: ``torch.multinomial``.
    llamacpp: one uniform double per draw, inverse CDF (linear scan order). A zero-probability
    token is never drawn.
    """
    assert probs.dim() == 1, "one distribution at a time"
    if dialect == "vllm":
        q = torch.empty((num_samples, probs.shape[0])).exponential_(generator=generator)
        return (probs[None, :] / q).argmax(dim=-1)
    if dialect == "hf":
        return torch.multinomial(probs, num_samples, replacement=True, generator=generator)
    cdf = probs.double().cumsum(dim=0)
    u = torch.rand(num_samples, dtype=torch.float64, generator=generator) * cdf[-1]
    last = int(torch.nonzero(probs > 0)[-1])
    return torch.searchsorted(cdf, u, right=True).clamp(max=last)


def raw_logprobs(logits: Tensor) -> Tensor:
    """log_softmax of the raw logits in float32 (vLLM ``raw_logprobs``)."""
    return torch.log_softmax(logits.float(), dim=-1)


def top_logprobs(logprobs: Tensor, n: int) -> tuple[tuple[int, float], ...]:
    """The n most likely (token, logprob) of a [V] logprob vector; ties: lower id first."""
    if n <= 0:
        return ()
    order = torch.sort(logprobs, descending=True, stable=True).indices[:n]
    return tuple((int(i), float(logprobs[i])) for i in order)


def sample(
    logits: Tensor,
    params: SamplingParams,
    generator: torch.Generator,
    *,
    prompt_ids: Sequence[int] = (),
    output_ids: Sequence[int] = (),
    dialect: Dialect = "vllm",
    n_top_logprobs: int = 0,
    return_probs: bool = False,
    allowed: Tensor | None = None,
) -> Sample:
    """Choose one token from ``logits`` [V]; logprobs come from the raw distribution.

    Greedy (T < 1e-5) consumes no random numbers. The draw uses ``sample_from_probs`` on the
    oracle ``processed_probs`` — the same code path the statistical tests use in bulk.
    ``allowed`` (bool [V]) masks the rest to -inf after the raw logprobs are taken and before
    every processor, like vLLM's ``allowed_token_ids`` (used for constrained output).
    """
    x = logits if allowed is None else logits.float().masked_fill(~allowed, _NEG_INF)
    probs = processed_probs(
        x, params, prompt_ids=prompt_ids, output_ids=output_ids, dialect=dialect
    )
    lp = raw_logprobs(logits)
    if not bool(torch.isfinite(probs).all()) or not bool((probs > 0).any()):
        # Degenerate parameters (a repetition_penalty like 1e-300 overflows the logits to inf)
        # leave no distribution: fall back to the raw argmax rather than fail.
        token = int(torch.nan_to_num(lp, nan=-math.inf).argmax())
    elif params.greedy:
        token = int(probs.argmax())
    else:
        token = int(sample_from_probs(probs, generator, dialect=dialect)[0])
    return Sample(
        token=token,
        logprob=float(lp[token]),
        top_logprobs=top_logprobs(lp, n_top_logprobs),
        probs=probs if return_probs else None,
    )
