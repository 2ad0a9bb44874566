"""``chatcompat export-model``: write the reference model as a HF directory or a GGUF file."""

from __future__ import annotations

import argparse

__all__ = ["export_main"]


def export_main(argv: list[str] | None = None) -> int:
    """Parse ``--format hf DIR`` / ``--format gguf FILE`` (and ``--seed``), export, return 0."""
    parser = argparse.ArgumentParser(
        prog="chatcompat export-model",
        description="Export the seeded reference model (Llama 3 architecture, small).",
    )
    parser.add_argument("--format", choices=("hf", "gguf"), required=True)
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    parser.add_argument("path", help="output directory (hf) or file (gguf)")
    ns = parser.parse_args(argv)

    from .export import export_gguf, export_hf
    from .tokenizer import default_tokenizer
    from .weights import build_model

    model, tok = build_model(ns.seed), default_tokenizer()
    out = export_hf(model, tok, ns.path) if ns.format == "hf" else export_gguf(model, tok, ns.path)
    print(f"wrote {ns.format} export of seed {ns.seed} to {out}")
    return 0
