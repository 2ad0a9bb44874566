"""The reference model: a small seeded Llama 3 style transformer, its tokenizer, chat format,
sampler of record (with vLLM / HF / llama.cpp dialects), exports and generation API."""

from __future__ import annotations

from .chat_format import (
    CHAT_TEMPLATE,
    encode_dialog,
    render_dialog,
    tool_call_frame,
    tool_call_text,
)
from .export import export_gguf, export_hf, export_model
from .generate import CallPiece, Generation, GenerationRequest, Step, ToolCall, generate
from .load import load_hf
from .model import ModelArgs, Transformer
from .request import chat_messages, generation_request, sampling_params
from .sampling import (
    DIALECTS,
    Dialect,
    Sample,
    SamplingParams,
    make_generator,
    process_logits,
    processed_probs,
    sample,
    sample_from_probs,
)
from .tokenizer import SPECIAL_TOKENS, Tokenizer, default_tokenizer
from .weights import build_model, init_model

__all__ = [
    "CHAT_TEMPLATE",
    "DIALECTS",
    "SPECIAL_TOKENS",
    "CallPiece",
    "Dialect",
    "Generation",
    "GenerationRequest",
    "ModelArgs",
    "Sample",
    "SamplingParams",
    "Step",
    "Tokenizer",
    "ToolCall",
    "Transformer",
    "build_model",
    "chat_messages",
    "default_tokenizer",
    "encode_dialog",
    "export_gguf",
    "export_hf",
    "export_model",
    "generate",
    "generation_request",
    "init_model",
    "load_hf",
    "make_generator",
    "process_logits",
    "processed_probs",
    "render_dialog",
    "sample",
    "sample_from_probs",
    "sampling_params",
    "tool_call_frame",
    "tool_call_text",
]
