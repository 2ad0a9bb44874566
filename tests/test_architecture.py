"""ARCHITECTURE.md's import rules, read off the code: which part may import which.

Module-level imports are the layers; an import inside a function is a lazy edge, allowed only
where ARCHITECTURE.md draws one (the CLI embedding the mock, the mock and the oracle running the
reference model, the console script dispatching to each part)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("chatcompat", "conformance", "mockserver", "reference_model")

# part -> the other parts its modules may import at module level
EAGER = {
    "chatcompat": set(),
    "reference_model": {"chatcompat.request_rules"},
    "mockserver": {"chatcompat"},
    "conformance": {"chatcompat"},
}
# (module, imported part) pairs allowed inside functions only
LAZY = {
    ("chatcompat.cli", "conformance"),
    ("chatcompat.cli", "mockserver"),
    ("chatcompat.cli", "reference_model"),
    ("conformance.cli", "mockserver"),
    ("conformance._oracle", "reference_model"),
    ("mockserver._generate", "reference_model"),
    ("mockserver._model_cache", "reference_model"),
}


def _modules(part: str) -> list[tuple[str, Path]]:
    files = sorted((ROOT / part).rglob("*.py"))
    names = []
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names.append((name, path))
    return names


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every absolute import of one of the parts."""
    tree = ast.parse(path.read_text("utf-8"))
    top = {id(node) for node in tree.body}
    typing_only = set()
    for node in tree.body:  # `if TYPE_CHECKING:` blocks are types, not imports
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(n, id(node) in top) for n in names if n.split(".")[0] in PARTS]
    return found


def _allowed(module: str, imported: str, eager: bool) -> bool:
    part, target = module.split(".")[0], imported.split(".")[0]
    if target == part:
        return True
    if any(imported == a or imported.startswith(a + ".") for a in EAGER[part]):
        return True
    return not eager and (module, target) in LAZY


@pytest.mark.parametrize("part", PARTS)
def test_imports_follow_the_layers(part):
    broken = [
        f"{module} imports {imported} ({'module level' if eager else 'in a function'})"
        for module, path in _modules(part)
        for imported, eager in _imports(path)
        if not _allowed(module, imported, eager)
    ]
    assert broken == []


def test_every_lazy_edge_is_used():
    used = {
        (module, imported.split(".")[0])
        for part in PARTS
        for module, path in _modules(part)
        for imported, eager in _imports(path)
        if not eager and imported.split(".")[0] != part
    }
    assert LAZY - used == set()
