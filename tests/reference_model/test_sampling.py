from __future__ import annotations

import math

import pytest
import torch

from reference_model.sampling import (
    DIALECTS,
    SamplingParams,
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    make_generator,
    process_logits,
    processed_probs,
    raw_logprobs,
    sample,
)


@pytest.fixture(scope="module")
def lp():
    return pytest.importorskip("transformers.generation.logits_process")


def _random_logits(seed: int, rows: int = 4, vocab: int = 200) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def _input_ids(seed: int, rows: int = 4, length: int = 30, vocab: int = 200) -> torch.Tensor:
    return torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(seed))


HF_CASES = {
    "repetition-1.3": (
        lambda lp: lp.RepetitionPenaltyLogitsProcessor(1.3),
        lambda x, ids: apply_repetition_penalty(x, ids, 1.3),
    ),
    "repetition-0.7": (
        lambda lp: lp.RepetitionPenaltyLogitsProcessor(0.7),
        lambda x, ids: apply_repetition_penalty(x, ids, 0.7),
    ),
    "temperature-0.7": (
        lambda lp: lp.TemperatureLogitsWarper(0.7),
        lambda x, ids: apply_temperature(x, 0.7),
    ),
    "top-k-5": (
        lambda lp: lp.TopKLogitsWarper(5),
        lambda x, ids: apply_top_k(x, 5, keep_ties=True),
    ),
    "top-p-0.8": (
        lambda lp: lp.TopPLogitsWarper(0.8),
        lambda x, ids: apply_top_p(x, 0.8, rule="ascending"),
    ),
    "top-p-0.3": (
        lambda lp: lp.TopPLogitsWarper(0.3),
        lambda x, ids: apply_top_p(x, 0.3, rule="ascending"),
    ),
    "min-p-0.1": (
        lambda lp: lp.MinPLogitsWarper(0.1),
        lambda x, ids: apply_min_p(x, 0.1, log_space=False),
    ),
}


@pytest.mark.parametrize("case", list(HF_CASES), ids=list(HF_CASES))
@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_hf_processor_equals_transformers(lp, case, seed):
    make_theirs, ours = HF_CASES[case]
    scores, ids = _random_logits(seed), _input_ids(seed)
    expected = make_theirs(lp)(ids, scores.clone())
    for row in range(scores.shape[0]):
        got = ours(scores[row], ids[row].tolist())
        torch.testing.assert_close(got, expected[row], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1], ids=["seed0", "seed1"])
def test_hf_chain_equals_transformers(lp, seed):
    params = SamplingParams(
        temperature=0.8, top_k=20, top_p=0.9, min_p=0.05, repetition_penalty=1.2
    )
    chain = lp.LogitsProcessorList(
        [
            lp.RepetitionPenaltyLogitsProcessor(1.2),
            lp.TemperatureLogitsWarper(0.8),
            lp.TopKLogitsWarper(20),
            lp.TopPLogitsWarper(0.9),
            lp.MinPLogitsWarper(0.05),
        ]
    )
    scores, ids = _random_logits(seed), _input_ids(seed)
    expected = chain(ids, scores.clone())
    for row in range(scores.shape[0]):
        got = process_logits(scores[row], params, prompt_ids=ids[row].tolist(), dialect="hf")
        torch.testing.assert_close(got, expected[row], atol=1e-6, rtol=1e-6)


def _log(probs):
    return torch.tensor([math.log(p) for p in probs])


def _kept(probs: torch.Tensor) -> list[float]:
    return sorted((p for p in probs.tolist() if p > 0), reverse=True)


BASE = [0.1, 0.2, 0.3, 0.4]
LLAMACPP_GOLDEN = {
    "top-k-3": (BASE, {"top_k": 3}, [0.44444, 0.33333, 0.22222]),
    "top-k-0": (BASE, {"top_k": 0}, [0.4, 0.3, 0.2, 0.1]),
    "top-p-0.7": (BASE, {"top_p": 0.7}, [0.571429, 0.428571]),
    "top-p-0.8": (BASE, {"top_p": 0.8}, [0.4 / 0.9, 0.3 / 0.9, 0.2 / 0.9]),
    "top-p-0": (BASE, {"top_p": 0.0}, [1.0]),
    "min-p-0.24": (BASE, {"min_p": 0.24}, [0.4, 0.3, 0.2, 0.1]),
    "min-p-0.26": (BASE, {"min_p": 0.26}, [0.4 / 0.9, 0.3 / 0.9, 0.2 / 0.9]),
    "min-p-0.51": (BASE, {"min_p": 0.51}, [0.4 / 0.7, 0.3 / 0.7]),
    "min-p-0.76": (BASE, {"min_p": 0.76}, [1.0]),
}


@pytest.mark.parametrize("case", list(LLAMACPP_GOLDEN), ids=list(LLAMACPP_GOLDEN))
def test_llamacpp_golden_vectors(case):
    probs, kwargs, expected = LLAMACPP_GOLDEN[case]
    got = processed_probs(_log(probs), SamplingParams(**kwargs), dialect="llamacpp")
    assert _kept(got) == pytest.approx(expected, abs=1e-5)


def test_llamacpp_golden_temperature_zero():
    got = processed_probs(_log(BASE), SamplingParams(temperature=0.0), dialect="llamacpp")
    assert got.tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "last", "expected"),
    [
        pytest.param({"repetition_penalty": 50.0}, [0], [0, 0.25, 0.25, 0.25, 0.25], id="repeat"),
        pytest.param(
            {"frequency_penalty": 5.0, "presence_penalty": 5.0},
            [0, 1, 2, 0, 0],
            [0.000000, 0.000023, 0.000023, 0.499977, 0.499977],
            id="freq-presence",
        ),
    ],
)
def test_llamacpp_golden_penalties(kwargs, last, expected):
    logits = _log([0.2] * 5)
    got = processed_probs(logits, SamplingParams(**kwargs), prompt_ids=last, dialect="llamacpp")
    assert got.tolist() == pytest.approx(expected, abs=1e-5)


# "Verified counterexamples": (logits, params, prompt, output, {dialect: expected})
COUNTEREXAMPLES = {
    "top-p-boundary": (
        _log([0.5, 0.25, 0.25]),
        SamplingParams(top_p=0.5),
        [],
        [],
        {d: [1.0, 0.0, 0.0] for d in DIALECTS},
    ),
    "top-p-min-p-order": (
        _log([0.4, 0.3, 0.2, 0.1]),
        SamplingParams(min_p=0.3, top_p=0.75),
        [],
        [],
        {
            "vllm": [4 / 7, 3 / 7, 0, 0],
            "hf": [4 / 9, 3 / 9, 2 / 9, 0],
            "llamacpp": [4 / 9, 3 / 9, 2 / 9, 0],
            "llama-cpp-python": [4 / 9, 3 / 9, 2 / 9, 0],
        },
    ),
    "temperature-position": (
        _log([0.5, 0.3, 0.2]),
        SamplingParams(temperature=0.5, top_p=0.85),
        [],
        [],
        {
            "vllm": [0.7353, 0.2647, 0],
            "hf": [0.7353, 0.2647, 0],
            "llamacpp": [0.6579, 0.2368, 0.1053],
            "llama-cpp-python": [0.6579, 0.2368, 0.1053],
        },
    ),
    "top-k-ties": (
        torch.tensor([3.0, 2.0, 2.0, 1.0]),
        SamplingParams(top_k=2),
        [],
        [],
        {
            "vllm": [*torch.tensor([3.0, 2.0, 2.0]).softmax(0).tolist(), 0],
            "hf": [*torch.tensor([3.0, 2.0, 2.0]).softmax(0).tolist(), 0],
            "llamacpp": [*torch.tensor([3.0, 2.0]).softmax(0).tolist(), 0, 0],
            "llama-cpp-python": [*torch.tensor([3.0, 2.0]).softmax(0).tolist(), 0, 0],
        },
    ),
}


@pytest.mark.parametrize("dialect", DIALECTS, ids=list(DIALECTS))
@pytest.mark.parametrize("case", list(COUNTEREXAMPLES), ids=list(COUNTEREXAMPLES))
def test_counterexamples(case, dialect):
    logits, params, prompt, output, expected = COUNTEREXAMPLES[case]
    got = processed_probs(logits, params, prompt_ids=prompt, output_ids=output, dialect=dialect)
    assert got.tolist() == pytest.approx(expected[dialect], abs=1e-4)


@pytest.mark.parametrize(
    ("dialect", "params", "expected"),
    [
        pytest.param("vllm", SamplingParams(repetition_penalty=2, frequency_penalty=0.5,
                     presence_penalty=0.5), [1, -1, -3], id="vllm"),
        pytest.param("vllm", SamplingParams(frequency_penalty=0.5, presence_penalty=0.5),
                     [2, -0.5, -2], id="openai-formula"),
        pytest.param("llamacpp", SamplingParams(repetition_penalty=2, frequency_penalty=0.5,
                     presence_penalty=0.5), [0, -1, -3], id="llamacpp"),
        pytest.param("hf", SamplingParams(repetition_penalty=2, frequency_penalty=0.5,
                     presence_penalty=0.5), [1, 0.5, -2], id="hf-rep-only"),
    ],
)  # fmt: skip
def test_penalty_counterexample(dialect, params, expected):
    logits = torch.tensor([2.0, 1.0, -1.0])
    got = process_logits(logits, params, prompt_ids=[0], output_ids=[1, 1, 2], dialect=dialect)
    assert got.tolist() == pytest.approx(expected)


def test_llamacpp_penalty_window_is_64_tokens():
    logits = torch.zeros(3)
    params = SamplingParams(presence_penalty=1.0)
    prompt = [0] + [2] * 64  # token 0 falls out of the last-64 window
    got = process_logits(logits, params, prompt_ids=prompt, dialect="llamacpp")
    assert got.tolist() == [0.0, 0.0, -1.0]
    assert process_logits(logits, params, prompt_ids=prompt, dialect="vllm").tolist() == [0, 0, 0]


def test_llama_cpp_python_penalises_the_output_only():
    # llama_cpp/llama.py Llama.generate: a fresh chain per request that accepts only the
    # sampled tokens, so the prompt is outside the window and the first token is unpenalised.
    logits = torch.zeros(4)
    params = SamplingParams(repetition_penalty=2.0, presence_penalty=1.0)
    first = process_logits(logits, params, prompt_ids=[1, 2], dialect="llama-cpp-python")
    assert first.tolist() == [0.0, 0.0, 0.0, 0.0]
    output = [3] + [0] * 64  # token 3 falls out of the last-64 window of the output
    later = process_logits(
        logits, params, prompt_ids=[1, 2], output_ids=output, dialect="llama-cpp-python"
    )
    assert later.tolist() == [-1.0, 0.0, 0.0, 0.0]
    assert process_logits(logits, params, prompt_ids=[1, 2], dialect="llamacpp").tolist() == [
        0.0,
        -1.0,
        -1.0,
        0.0,
    ]


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [pytest.param("vllm", 100.0, id="vllm-clamps"), pytest.param("hf", 500.0, id="hf-as-given")],
)
def test_logit_bias_clamp(dialect, expected):
    got = process_logits(torch.zeros(3), SamplingParams(logit_bias={1: 500.0}), dialect=dialect)
    assert got[1].item() == expected


@pytest.mark.parametrize("dialect", DIALECTS, ids=list(DIALECTS))
def test_greedy_below_eps(dialect):
    logits = torch.tensor([0.0, 3.0, 3.0, 1.0])
    params = SamplingParams(temperature=1e-6, logit_bias={3: 5.0})
    g = make_generator(0)
    state = g.get_state()
    s = sample(logits, params, g, dialect=dialect)
    assert s.token == 3
    assert torch.equal(g.get_state(), state)  # greedy draws no random numbers


def test_vllm_temperature_clamped_to_0_01():
    logits = torch.tensor([0.0, 0.01])
    got = processed_probs(logits, SamplingParams(temperature=0.001), dialect="vllm")
    assert got.tolist() == pytest.approx(torch.tensor([0.0, 1.0]).softmax(0).tolist())


@pytest.mark.parametrize("dialect", DIALECTS, ids=list(DIALECTS))
def test_sample_is_seeded_and_reports_raw_logprobs(dialect):
    logits = _random_logits(5, rows=1, vocab=50)[0]
    params = SamplingParams(temperature=0.7, top_k=10, seed=123)

    def run(choice: int) -> list[int]:
        g = make_generator(params.seed, choice)
        return [sample(logits, params, g, dialect=dialect).token for _ in range(30)]

    assert run(0) == run(0)
    assert run(0) != run(1)
    s = sample(logits, params, make_generator(1), dialect=dialect, n_top_logprobs=3,
               return_probs=True)  # fmt: skip
    raw = raw_logprobs(logits)
    assert s.logprob == pytest.approx(raw[s.token].item())
    assert [t for t, _ in s.top_logprobs] == raw.topk(3).indices.tolist()
    assert s.probs is not None
    assert s.probs[s.token] > 0
    assert int((s.probs > 0).sum()) == 10
