"""The oracle of reference mode: the exported reference model, loaded back, tells the exact
distribution an endpoint serving it must sample from (needs torch: the ``reference`` extra)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from reference_model import Dialect, SamplingParams

__all__ = ["PARTIAL", "STOP", "Oracle", "chi_square_pvalue", "load_oracle"]

STOP = "<STOP>"  # the category of a choice that ended before its first token (an end token)
PARTIAL = "<PARTIAL>"  # a token that is not a whole UTF-8 character: shown as "" or U+FFFD


def chi_square_pvalue(observed: Sequence[int], expected: Sequence[float]) -> float:
    """P(X >= statistic) for Pearson's chi-square with len - 1 degrees of freedom."""
    import torch

    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    dof = len(observed) - 1
    if dof < 1:
        return 1.0
    q = torch.special.gammaincc(
        torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(statistic / 2, dtype=torch.float64)
    )
    return float(q) if not math.isnan(float(q)) else 0.0


class Oracle:
    """The model and tokenizer of one export, with the questions the checks ask of them."""

    def __init__(self, directory: str) -> None:
        from reference_model import load_hf

        self.directory = directory
        self.model, self.tokenizer = load_hf(directory)

    def sampling_params(self, request: Mapping[str, Any]) -> SamplingParams:
        """The reference sampler's SamplingParams for the sampling fields of ``request``: the
        mock's own (``reference_model.sampling_params``, by ``chatcompat.request_rules``)."""
        from reference_model import sampling_params

        return sampling_params(request, self.tokenizer.vocab_size)

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """The prompt ids the Llama 3 chat format makes of ``messages``."""
        from reference_model import encode_dialog

        ids: list[int] = encode_dialog(self.tokenizer, messages)
        return ids

    def category(self, token: int) -> str:
        """What a one-token answer shows of ``token``: its text, or STOP for an end token."""
        if token in self.tokenizer.stop_ids:
            return STOP
        try:
            text: str = self.tokenizer.token_bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            return PARTIAL  # servers hold such a byte back ("") or show U+FFFD
        return text

    def first_token_distribution(
        self, request: Mapping[str, Any], dialect: str
    ) -> dict[str, float]:
        """Probability of each one-token answer to ``request`` under ``dialect``'s sampler."""
        import torch

        from reference_model import processed_probs

        prompt = self.prompt_ids(request["messages"])
        with torch.no_grad():
            logits = self.model(torch.tensor([prompt]))[0, -1].float()
        probs = processed_probs(
            logits,
            self.sampling_params(request),
            prompt_ids=prompt,
            output_ids=(),
            dialect=cast("Dialect", dialect),
        )
        distribution: dict[str, float] = {}
        for token in torch.nonzero(probs > 0).flatten().tolist():
            name = self.category(token)
            distribution[name] = distribution.get(name, 0.0) + float(probs[token])
        return distribution

    def _greedy_steps(self, request: Mapping[str, Any], max_tokens: int, dialect: str) -> list[Any]:
        """Greedy decoding of ``request`` under ``dialect``, its logit_bias and penalties applied
        (stop strings not)."""
        from dataclasses import replace

        from reference_model import GenerationRequest, generate

        return list(
            generate(
                GenerationRequest(
                    messages=request["messages"],
                    sampling=replace(self.sampling_params(request), temperature=0.0),
                    max_tokens=max_tokens,
                    dialect=cast("Dialect", dialect),
                ),
                model=self.model,
                tokenizer=self.tokenizer,
            )
        )

    def greedy_text(self, request: Mapping[str, Any], max_tokens: int, dialect: str) -> str:
        """The text greedy decoding gives for ``request`` under ``dialect``, its logit_bias and
        penalties applied (stop strings not)."""
        return "".join(step.text for step in self._greedy_steps(request, max_tokens, dialect))

    def greedy_ids(self, request: Mapping[str, Any], max_tokens: int, dialect: str) -> list[int]:
        """The token ids of the greedy chain for ``request``, its end token included."""
        return [step.token for step in self._greedy_steps(request, max_tokens, dialect)]

    def raw_logprobs(self, request: Mapping[str, Any], answer: Sequence[int]) -> list[list[float]]:
        """log_softmax of the raw logits at each answer position (teacher forcing)."""
        import torch

        prompt = self.prompt_ids(request["messages"])
        ids = torch.tensor([[*prompt, *answer]])
        with torch.no_grad():
            logits = self.model(ids)[0, len(prompt) - 1 : len(prompt) - 1 + len(answer)]
        rows: list[list[float]] = torch.log_softmax(logits.double(), dim=-1).tolist()
        return rows

    def token_id(self, data: bytes) -> int | None:
        """The id of the token whose bytes are ``data``, or of the special token whose text they
        are (vLLM lists an end token as "<|eot_id|>"), or None if there is none."""
        token: int | None = self.tokenizer.bytes_to_id.get(data)
        if token is None:
            token = self.tokenizer.special_ids.get(data.decode("utf-8", "replace"))
        return token


@functools.cache
def load_oracle(directory: str) -> Oracle:
    """The oracle of export ``directory``, loaded once per process."""
    return Oracle(directory)
