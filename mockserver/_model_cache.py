"""The reference model's weights built once and kept on disk, so that a generate-mode mock
starts in a second instead of the fit's 15 to 40 s (issue 14).

An entry is the fitted ``state_dict`` of ``reference_model.build_model(seed)``, kept in
``models/`` under the cache folder (:func:`cache_root`) in a file named by a key over everything
the weights depend on: the seed, the model's args (``ModelArgs()``), the fit's steps, the torch
version, and the source of the modules that make them (``weights``, ``model``, ``_corpus``,
``tokenizer``, ``chat_format``): a change to any of them is another key, so a stale entry is
never read. A file holds the SHA-256 of its payload (``torch.save`` bytes) on its first line;
it is written to a temporary file in the same folder and renamed over the entry (atomic on
POSIX), so a reader sees a whole entry or none. An entry that does not read back (a bad digest,
a payload torch cannot load, weights of the wrong shapes) is rebuilt and written again, with a
warning; a folder that cannot be written leaves the model built, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reference_model import Transformer

__all__ = ["CACHE_VARIABLE", "LoadedModel", "cache_root", "entry_path", "load_model"]

CACHE_VARIABLE = "CHATCOMPAT_CACHE"  # the cache folder; else $XDG_CACHE_HOME/chatcompat
# the modules whose source decides the weights (reference_model.<name>)
WEIGHT_SOURCES = ("weights", "model", "_corpus", "tokenizer", "chat_format")

log = logging.getLogger("mockserver")


@dataclass(frozen=True)
class LoadedModel:
    """The model and how it came: ``source`` "cache" (read from ``path``) or "built" (then
    written to ``path``, None when that failed); ``seconds`` it took (wall clock)."""

    model: Transformer
    source: str
    seconds: float
    path: Path | None


def cache_root() -> Path:
    """The cache folder: ``$CHATCOMPAT_CACHE``, else ``$XDG_CACHE_HOME/chatcompat``, else
    ``~/.cache/chatcompat`` (the XDG Base Directory default)."""
    explicit = os.environ.get(CACHE_VARIABLE)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "chatcompat"


def _key(seed: int) -> str:
    """The hex SHA-256 over what the weights of ``seed`` depend on (see the module's doc)."""
    import torch

    from reference_model import ModelArgs
    from reference_model.weights import FIT_STEPS

    digest = hashlib.sha256()
    what = {"seed": seed, "args": astuple(ModelArgs()), "fit_steps": FIT_STEPS}
    digest.update(json.dumps({**what, "torch": torch.__version__}, default=str).encode())
    for name in WEIGHT_SOURCES:
        module = importlib.import_module(f"reference_model.{name}")
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def entry_path(seed: int, root: Path | None = None) -> Path:
    """The file of ``seed``'s weights under ``root`` (default :func:`cache_root`)."""
    return (root or cache_root()) / "models" / f"reference-seed{seed}-{_key(seed)[:20]}.pt"


def _read(path: Path) -> Transformer:
    """The model in the entry at ``path``; raises ValueError (or torch's errors) when the
    entry is not whole or not these weights, FileNotFoundError when there is none."""
    import torch

    from reference_model import ModelArgs, Transformer

    digest, _, payload = path.read_bytes().partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError("its digest does not match its content")
    model = Transformer(ModelArgs())
    model.load_state_dict(torch.load(io.BytesIO(payload), weights_only=True))
    return model.eval()


def _write(path: Path, model: Transformer) -> None:
    """Write ``model``'s weights to ``path`` atomically (a temporary file renamed over it)."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    payload = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load_model(seed: int, root: Path | None = None) -> LoadedModel:
    """``reference_model.build_model(seed)``, read from the cache under ``root`` (default
    :func:`cache_root`) when an entry is there and reads back whole, else built (15 to 40 s
    on 2 busy cores) and written there. Never raises for the cache: a bad entry is rebuilt,
    a folder that cannot be written only logged."""
    from reference_model import build_model

    started = time.monotonic()
    path = entry_path(seed, root)
    try:
        model = _read(path)
        return LoadedModel(model, "cache", time.monotonic() - started, path)
    except FileNotFoundError:
        log.info("building the reference model (seed %d): not in the cache %s", seed, path)
    except Exception as exc:  # a torn or foreign file: any error torch or the digest raises
        log.warning("the cached model %s does not read back (%s): building it again", path, exc)
    model = build_model(seed)
    written: Path | None = path
    try:
        _write(path, model)
    except OSError as exc:
        log.warning(
            "could not cache the model in %s (%s): the next start builds it again", path, exc
        )
        written = None
    return LoadedModel(model, "built", time.monotonic() - started, written)
