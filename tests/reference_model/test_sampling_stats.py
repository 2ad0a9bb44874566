"""Statistical: 20k seeded draws per case fit the oracle distribution, never leave its support."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_model.sampling import (
    DIALECTS,
    SamplingParams,
    make_generator,
    processed_probs,
    sample,
    sample_from_probs,
)

stats = pytest.importorskip("scipy.stats")

N_SAMPLES = 20_000
VOCAB = 24
PROMPT = [0, 1, 2, 3, 3]
OUTPUT = [1, 4, 4, 4, 5]
CASES = {
    "temperature-0.5": SamplingParams(temperature=0.5),
    "temperature-1.5": SamplingParams(temperature=1.5),
    "top-k-5": SamplingParams(top_k=5),
    "top-p-0.7": SamplingParams(top_p=0.7),
    "min-p-0.1": SamplingParams(min_p=0.1),
    "repetition-1.5": SamplingParams(repetition_penalty=1.5),
    "frequency-presence": SamplingParams(frequency_penalty=0.8, presence_penalty=0.5),
    "logit-bias": SamplingParams(logit_bias={6: 3.0, 7: -100.0}),
    "combined": SamplingParams(temperature=0.8, top_k=12, top_p=0.9, min_p=0.05,
                               repetition_penalty=1.2, frequency_penalty=0.3),
}  # fmt: skip
N_TESTS = len(CASES) * len(DIALECTS)
ALPHA = 0.001 / N_TESTS  # Bonferroni: family-wise false-alarm rate 0.1 %


def _logits() -> torch.Tensor:
    return torch.randn(VOCAB, generator=torch.Generator().manual_seed(7)) * 1.5


@pytest.mark.parametrize("dialect", DIALECTS, ids=list(DIALECTS))
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_samples_fit_oracle(case, dialect):
    params = CASES[case]
    logits = _logits()
    probs = processed_probs(logits, params, prompt_ids=PROMPT, output_ids=OUTPUT, dialect=dialect)
    if not (case == "frequency-presence" and dialect == "hf"):  # hf has no such processor
        assert not torch.allclose(probs, logits.softmax(0), atol=1e-3), "parameter had no effect"
    draws = sample_from_probs(probs, make_generator(1000), dialect=dialect, num_samples=N_SAMPLES)
    counts = np.bincount(draws.numpy(), minlength=VOCAB)
    assert counts[(probs == 0).numpy()].sum() == 0, "drew a token outside the allowed set"
    expected = probs.double().numpy() * N_SAMPLES
    big = expected >= 5
    f_obs = np.append(counts[big], counts[~big].sum())
    f_exp = np.append(expected[big], expected[~big].sum())
    if f_exp[-1] == 0:
        f_obs, f_exp = f_obs[:-1], f_exp[:-1]
    f_exp *= f_obs.sum() / f_exp.sum()
    if len(f_obs) > 1:
        assert stats.chisquare(f_obs, f_exp).pvalue > ALPHA


@pytest.mark.parametrize("dialect", ["vllm", "llamacpp"], ids=["vllm", "llamacpp"])
def test_bulk_draws_equal_step_by_step_draws(dialect):
    logits, params = _logits(), SamplingParams(temperature=0.9)
    probs = processed_probs(logits, params, dialect=dialect)
    bulk = sample_from_probs(probs, make_generator(5), dialect=dialect, num_samples=50).tolist()
    g = make_generator(5)
    steps = [sample(logits, params, g, dialect=dialect).token for _ in range(50)]
    assert bulk == steps
