from __future__ import annotations

from dataclasses import astuple

import pytest
import torch

from reference_model import ModelArgs, Transformer, build_model, encode_dialog, init_model, weights
from reference_model.model import repeat_kv


def test_default_args_are_small_gqa():
    args = ModelArgs()
    assert (args.n_layers, args.dim, args.n_heads, args.n_kv_heads) == (2, 128, 4, 2)
    assert args.n_rep == 2
    assert args.head_dim == 32  # vLLM's CPU attention refuses 16 (issue 11)
    assert args.hidden_dim == 352


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"n_heads": 3}, "dim must be a multiple", id="dim-not-divisible"),
        pytest.param({"n_kv_heads": 3}, "n_heads must be a multiple", id="kv-not-divisor"),
    ],
)
def test_model_args_asserts(kwargs, message):
    with pytest.raises(AssertionError, match=message):
        ModelArgs(**kwargs)


def test_repeat_kv_is_repeat_interleave():
    x = torch.randn(2, 3, 5, 4)
    assert torch.equal(repeat_kv(x, 4), torch.repeat_interleave(x, 4, dim=1))


def test_weights_are_deterministic_per_seed(model):
    again = build_model(0)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = init_model(ModelArgs(), seed=1)
    assert not torch.equal(other.output.weight, model.output.weight)


def test_the_fit_runs_on_one_thread_and_restores_the_callers(monkeypatch):
    # one thread: the same bits whatever the caller's thread count (two gave up to 7e-9 apart)
    seen: list[int] = []
    monkeypatch.setattr(weights, "_fit", lambda *_: seen.append(torch.get_num_threads()) or {})
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        weights._fitted_state.__wrapped__(0, astuple(ModelArgs()), 1)
        assert (seen, torch.get_num_threads()) == ([1], 2)
    finally:
        torch.set_num_threads(before)


def test_kv_cache_decode_equals_full_forward(model):
    idx = torch.randint(
        0, model.args.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        full = model(idx)
        model.setup_caches(batch=2, max_seq_len=64)
        prefill = model(idx[:, :10], torch.arange(10))
        steps = [model(idx[:, i : i + 1], torch.tensor([i])) for i in range(10, 24)]
    cached = torch.cat([prefill, *steps], dim=1)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_gqa_heads_share_kv():
    # n_kv_heads=1 with n_heads=4 equals the same model with K/V weights copied per head (MHA)
    gqa = init_model(ModelArgs(n_kv_heads=1), seed=3)
    mha = Transformer(ModelArgs(n_kv_heads=4))
    sd = gqa.state_dict()
    for k in list(sd):
        if k.endswith(("wk.weight", "wv.weight")):
            sd[k] = sd[k].repeat(4, 1)
    mha.load_state_dict(sd)
    idx = torch.randint(0, 512, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(gqa(idx), mha(idx))


def test_greedy_output_is_printable_and_ends(model, tokenizer):
    for question in ["Hello there", "What is the capital of France?", "zzz 123 ###"]:
        ids = encode_dialog(tokenizer, [{"role": "user", "content": question}])
        out: list[int] = []
        with torch.no_grad():
            for _ in range(80):
                token = int(model(torch.tensor([ids + out]))[0, -1].argmax())
                out.append(token)
                if token in tokenizer.stop_ids:
                    break
        assert out[-1] == tokenizer.eot_id
        text = tokenizer.decode(out[:-1])
        assert text.isprintable() or text.replace("\n", "").isprintable()
        assert text.isascii()
