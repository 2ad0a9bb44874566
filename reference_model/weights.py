"""Deterministic weights of record: a seeded init, then a short fit on the embedded corpus.

A randomly initialised transformer babbles control bytes and almost never ends. To get a model
that writes printable text and stops now and then without shipping weights, ``build_model``
fits the seeded init for ``FIT_STEPS`` Adam steps on the embedded replies rendered as chat turns
(user turn, assistant header, reply, ``<|eot_id|>``). The fit runs in float64 with a seeded
torch.Generator for the batch windows, on one torch thread, then casts to float32: the same bits
whatever the caller's thread count (with two threads they differed by up to 7e-9, and on two busy
cores two threads took 3 to 20 times as long as one). It takes a few seconds (about 4 s on a
busy 2-core machine) and is cached per (seed, args, steps).
"""

from __future__ import annotations

import functools
from dataclasses import astuple
from typing import Any, cast

import torch
import torch.nn.functional as F

from ._corpus import REPLIES
from .chat_format import encode_dialog
from .model import ModelArgs, Transformer
from .tokenizer import Tokenizer, default_tokenizer

__all__ = ["FIT_STEPS", "build_model", "corpus_token_stream", "init_model"]

# 80 since the model became dim 128 (issue 11; 150 at dim 64). The wider model fits faster: after
# 150 steps its greedy answers no longer repeat themselves and its first tokens are so sure that
# frequency/presence penalties and a default repetition_penalty of 1.3 change nothing the tests
# and the suite's penalty and reference checks can see; after 80 they do, as at dim 64.
FIT_STEPS = 80
_WINDOW, _BATCH, _LR = 48, 8, 5e-3


def corpus_token_stream(tokenizer: Tokenizer) -> list[int]:
    """The fitting text: each reply as an assistant answer to the reply three lines on."""
    ids: list[int] = []
    for i, reply in enumerate(REPLIES):
        question = REPLIES[(i + 3) % len(REPLIES)]
        dialog = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
        ids += encode_dialog(tokenizer, dialog, add_generation_prompt=False)
    return ids


def init_model(args: ModelArgs, seed: int) -> Transformer:
    """A fresh model: N(0, 0.02) for every matrix (HF's initializer_range), norms 1."""
    model = Transformer(args)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


@functools.cache
def _fitted_state(seed: int, args_key: tuple[object, ...], steps: int) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same bits whatever the caller's thread count
    try:
        return _fit(seed, ModelArgs(*cast(Any, args_key[:-2])), steps)  # the last two: derived
    finally:
        torch.set_num_threads(threads)


def _fit(seed: int, args: ModelArgs, steps: int) -> dict[str, torch.Tensor]:
    model = init_model(args, seed).double()
    data = torch.tensor(corpus_token_stream(default_tokenizer()))
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=_LR)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - _WINDOW - 1, (_BATCH,), generator=g)
        batch = torch.stack([data[s : s + _WINDOW + 1] for s in starts.tolist()])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, args.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return {k: v.detach().float().clone() for k, v in model.state_dict().items()}


def build_model(
    seed: int = 0, args: ModelArgs | None = None, *, fit_steps: int = FIT_STEPS
) -> Transformer:
    """The reference model for ``seed``: seeded init + ``fit_steps`` steps; float32, eval mode."""
    args = args or ModelArgs()
    assert args.vocab_size == default_tokenizer().vocab_size, "the fit uses the default tokenizer"
    model = Transformer(args)
    model.load_state_dict(_fitted_state(seed, astuple(args), fit_steps))
    return model.eval()
