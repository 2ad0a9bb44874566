"""The greedy chain is one chain on every engine (issue 11): the reference model's greedy 32 tokens
(what generate mode answers at temperature 0) equal transformers' ``generate()`` on the HF export,
and on the GGUF export as transformers' own GGUF reader loads it."""

from __future__ import annotations

import pytest
import torch

from reference_model import GenerationRequest, SamplingParams, encode_dialog, export_gguf, generate
from reference_model.export import hf_state_dict

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


@pytest.fixture(scope="module")
def gguf_model(tmp_path_factory, model, tokenizer, hf_dir):
    """transformers' LlamaForCausalLM holding the tensors that transformers' GGUF reader (its own
    reverse of the Q/K permutation) reads from the GGUF export."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = export_gguf(model, tokenizer, tmp_path_factory.mktemp("gguf") / "m.gguf")
    # The HF export's config: transformers' GGUF config reader leaves out the llama3 RoPE
    # scaling, which llama.cpp takes from the rope_freqs tensor (test_export checks that one).
    config = transformers.AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    hf_model = transformers.LlamaForCausalLM(config)
    loaded = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=hf_model)
    shape = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
             "num_key_value_heads", "head_dim", "vocab_size")  # fmt: skip
    assert {k: loaded["config"][k] for k in shape} == {k: getattr(config, k) for k in shape}
    hf_model.load_state_dict(loaded["tensors"], strict=True)
    return hf_model.eval()


def test_gguf_tensors_read_by_transformers_are_the_hf_export(model, gguf_model):
    ours_by_hf_name = hf_state_dict(model)
    theirs_by_name = gguf_model.state_dict()
    assert sorted(ours_by_hf_name) == sorted(theirs_by_name)
    for name, tensor in ours_by_hf_name.items():
        assert torch.equal(tensor, theirs_by_name[name]), name


@pytest.mark.parametrize("run", RUNS, ids=RUNS)
@pytest.mark.parametrize("prompt", list(PROMPTS), ids=list(PROMPTS))
def test_greedy_32_tokens_equal_transformers_on_the_hf_export(model, hf_model, tokenizer, prompt,
                                                              run):  # fmt: skip
    chain = ours(model, tokenizer, PROMPTS[prompt], run)
    assert chain == theirs(hf_model, tokenizer, PROMPTS[prompt], run)
    if run == "all-32":
        assert len(chain) == NEW_TOKENS and not set(chain) & tokenizer.stop_ids
    else:
        assert chain[-1] == tokenizer.eot_id or len(chain) == NEW_TOKENS


@pytest.mark.parametrize("run", RUNS, ids=RUNS)
@pytest.mark.parametrize("prompt", list(PROMPTS), ids=list(PROMPTS))
def test_greedy_32_tokens_equal_transformers_on_the_gguf_export(model, gguf_model, tokenizer,
                                                                prompt, run):  # fmt: skip
    chain = ours(model, tokenizer, PROMPTS[prompt], run)
    assert chain == theirs(gguf_model, tokenizer, PROMPTS[prompt], run)
