from __future__ import annotations

import json

import pytest
import torch

from reference_model import build_model, default_tokenizer, export_hf, load_hf


def test_hf_export_loads_back_identical(tmp_path):
    model, tokenizer = build_model(0), default_tokenizer()
    export_hf(model, tokenizer, tmp_path)
    loaded, loaded_tokenizer = load_hf(tmp_path)
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode("Hello there, how are you?")]])
    assert torch.equal(loaded(ids), model(ids))
    assert loaded_tokenizer.merges == tokenizer.merges
    assert loaded_tokenizer.vocab() == tokenizer.vocab()


def test_a_tampered_vocabulary_is_refused(tmp_path):
    export_hf(build_model(0), default_tokenizer(), tmp_path)
    path = tmp_path / "tokenizer.json"
    data = json.loads(path.read_text())
    data["model"]["merges"] = data["model"]["merges"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="vocabulary"):
        load_hf(tmp_path)
