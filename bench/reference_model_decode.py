"""Decode speed of the reference model: KV cache vs full recompute, and ours vs HF generate().

Run: /work/venv/bin/python bench/reference_model_decode.py [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_model import (
    GenerationRequest,
    SamplingParams,
    build_model,
    default_tokenizer,
    encode_dialog,
    export_hf,
    generate,
)


def per_token_ms(model, position: int, steps: int, cached: bool) -> float:
    """Median ms for one decode step at ``position`` (with the cache, or recomputing all)."""
    idx = torch.randint(0, model.args.vocab_size, (1, position + steps))
    times = []
    with torch.inference_mode():
        if cached:
            model.setup_caches(1, position + steps)
            model(idx[:, :position], torch.arange(position))
        for i in range(steps):
            t = time.perf_counter()
            if cached:
                model(idx[:, position + i : position + i + 1], torch.tensor([position + i]))
            else:
                model(idx[:, : position + i + 1])
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1)")
    ns = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(ns.threads)
    model, tok = build_model(0), default_tokenizer()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    print("\n== per-token decode cost by position (median of 16 steps) ==")
    print(f"{'position':>8} | {'KV cache ms':>11} | {'recompute ms':>12} | {'KV tok/s':>8} | "
          f"{'recompute tok/s':>15} | {'speedup':>7}")  # fmt: skip
    for pos in (16, 128, 512, 1024, 1536):
        c, r = per_token_ms(model, pos, 16, True), per_token_ms(model, pos, 16, False)
        print(f"{pos:>8} | {c:>11.3f} | {r:>12.3f} | {1000 / c:>8.0f} | {1000 / r:>15.0f} | "
              f"{r / c:>6.1f}x")  # fmt: skip

    import transformers

    messages = [{"role": "user", "content": "Tell me about the weather today."}]
    prompt = encode_dialog(tok, messages)
    n = ns.new_tokens
    stop_ban = {t: -100.0 for t in tok.stop_ids}  # run the full n tokens in both engines
    with tempfile.TemporaryDirectory() as d:
        hf = transformers.LlamaForCausalLM.from_pretrained(
            export_hf(model, tok, Path(d) / "m"), local_files_only=True
        ).eval()
    hf.generation_config.pad_token_id = tok.eot_id

    def ours() -> list[int]:
        req = GenerationRequest(messages, sampling=SamplingParams(temperature=0.0,
                                logit_bias=stop_ban), max_tokens=n)  # fmt: skip
        return [s.token for s in generate(req, model=model, tokenizer=tok)]

    def theirs() -> list[int]:
        with torch.inference_mode():
            ids = torch.tensor([prompt])
            kw = {"do_sample": False, "top_k": None, "top_p": None, "temperature": None}
            out = hf.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
        return out[0, len(prompt) :].tolist()

    def best(fn) -> tuple[float, list[int]]:
        fn()  # warm up
        runs = []
        for _ in range(ns.repeats):
            t = time.perf_counter()
            toks = fn()
            runs.append(time.perf_counter() - t)
        return min(runs), toks

    t_ours, a = best(ours)
    t_hf, b = best(theirs)
    print(f"\n== greedy generate, prompt {len(prompt)} tokens, {n} new tokens, best of "
          f"{ns.repeats} ==")  # fmt: skip
    print(f"{'engine':>22} | {'seconds':>8} | {'tokens/s':>9}")
    print(f"{'reference_model':>22} | {t_ours:>8.3f} | {n / t_ours:>9.1f}")
    print(f"{'transformers generate':>22} | {t_hf:>8.3f} | {n / t_hf:>9.1f}")
    print(f"ours / transformers speed ratio: {t_hf / t_ours:.2f}x; same tokens: {a == b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
