"""The greedy chain is one chain on every engine (issue 11): the reference model's greedy 32 tokens
(what generate mode answers at temperature 0) equal transformers' ``generate()`` on the HF export,
and on the GGUF export as transformers' own GGUF reader loads it."""

from __future__ import annotations

import pytest
import torch

from reference_model import GenerationRequest, SamplingParams, encode_dialog, generate

NEW_TOKENS = 32
PROMPTS = {
    "hello": [{"role": "user", "content": "Hello"}],
    "system-and-user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    "story": [{"role": "user", "content": "Tell me a story, number 3."}],
}
# "stop": the chain ends at the model's first end token (both engines stop there);
# "all-32": end tokens banned, so that every chain runs the whole 32 tokens.
RUNS = ["stop", "all-32"]


def ours(model, tokenizer, messages, run):
    banned = {t: -100.0 for t in tokenizer.stop_ids} if run == "all-32" else {}
    sampling = SamplingParams(temperature=0.0, logit_bias=banned)
    request = GenerationRequest(messages, sampling=sampling, max_tokens=NEW_TOKENS)
    return [s.token for s in generate(request, model=model, tokenizer=tokenizer)]


def theirs(hf_model, tokenizer, messages, run):
    prompt = encode_dialog(tokenizer, messages)
    options = {"do_sample": False, "top_k": None, "top_p": None, "temperature": None}
    if run == "all-32":
        options["min_new_tokens"] = NEW_TOKENS  # transformers masks the end tokens until then
    with torch.no_grad():
        out = hf_model.generate(
            torch.tensor([prompt]),
            max_new_tokens=NEW_TOKENS,
            eos_token_id=sorted(tokenizer.stop_ids),
            pad_token_id=tokenizer.eot_id,
            **options,
        )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("run", RUNS, ids=RUNS)
@pytest.mark.parametrize("prompt", list(PROMPTS), ids=list(PROMPTS))
@pytest.mark.parametrize(
    "loaded", ["hf_model", "gguf_model"], ids=["hf-export", "gguf-export-read-by-transformers"]
)
def test_greedy_32_tokens_equal_transformers_generate(request, model, tokenizer, loaded, prompt,
                                                      run):  # fmt: skip
    chain = ours(model, tokenizer, PROMPTS[prompt], run)
    assert chain == theirs(request.getfixturevalue(loaded), tokenizer, PROMPTS[prompt], run)
    if run == "all-32":
        assert len(chain) == NEW_TOKENS and not set(chain) & tokenizer.stop_ids
    else:
        assert chain[-1] == tokenizer.eot_id or len(chain) == NEW_TOKENS
