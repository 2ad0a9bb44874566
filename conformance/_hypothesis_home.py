"""Where hypothesis keeps its files during ``chatcompat check``: a cache directory of the user's,
never a ``.hypothesis/`` folder in the directory the command was started from.

The property checks and schemathesis keep no example database, but hypothesis still writes a
cache of the constants it reads from local source modules (``.hypothesis/constants/``,
hypothesis/internal/constants_ast.py) and of its character tables, under its home directory,
which defaults to ``./.hypothesis``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hypothesis import configuration

__all__ = ["hypothesis_home", "hypothesis_home_outside_cwd"]


def hypothesis_home() -> Path:
    """``$XDG_CACHE_HOME/chatcompat/hypothesis``, else ``~/.cache/chatcompat/hypothesis``
    (the XDG base directory rule); the directory is not created here."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "chatcompat" / "hypothesis"


@contextlib.contextmanager
def hypothesis_home_outside_cwd() -> Iterator[None]:
    """Point hypothesis's home at :func:`hypothesis_home` while the block runs, then back.

    ``$HYPOTHESIS_STORAGE_DIRECTORY``, when set, wins (hypothesis reads it itself). Hypothesis
    skips its cache when it cannot write there, so an unwritable home costs only speed.
    """
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    # hypothesis.configuration keeps the home in a module global, set by
    # set_hypothesis_home_dir or fixed at its first use (./.hypothesis); None means "not yet".
    previous = vars(configuration).get("__hypothesis_home_directory")
    configuration.set_hypothesis_home_dir(hypothesis_home())
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(previous)
