"""The layout's promises (docs/design.md): which code may import which, and rooms of a size to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
ENGINE = {"mask", "model", "loading", "config", "compress", "cache", "generate", "errors", "units"}
PIPELINE = {"memory", "ingest", "query", "answers", "gate", "tags", "store", "manifest", "index", "embedder", "documents"}


def imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.relative_to(ROOT).parts[0] == "integrations":
        package = ".".join(path.relative_to(ROOT / "integrations").with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def module_files(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def test_the_engine_imports_neither_pipeline_nor_data_training_or_harness():
    for name in ENGINE:
        bad = {m for m in imports(ROOT / "gist_memory" / f"{name}.py")
               if m.startswith(("trainers", "evals", "gist_memory.data"))
               or m.split(".")[:2] in [["gist_memory", p] for p in PIPELINE]}
        assert not bad, f"gist_memory/{name}.py imports {sorted(bad)}"


def test_the_pipeline_never_imports_data_generation_or_training():
    for name in PIPELINE:
        bad = {m for m in imports(ROOT / "gist_memory" / f"{name}.py")
               if m.startswith(("trainers", "evals", "gist_memory.data"))}
        assert not bad, f"gist_memory/{name}.py imports {sorted(bad)}"


def test_integrations_import_only_the_pipeline_and_engine():
    for path in module_files("integrations"):
        ours = {m for m in imports(path) if m.startswith(("gist_memory", "trainers", "evals"))}
        bad = {m for m in ours if m.startswith(("trainers", "evals", "gist_memory.data"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_evals_never_import_trainers():
    for path in module_files("evals"):
        assert not {m for m in imports(path) if m.startswith("trainers")}, path


@pytest.mark.parametrize("folder", ["gist_memory", "trainers", "evals", "integrations"])
def test_no_module_over_400_lines_and_no_class_over_250(folder):
    for path in module_files(folder):
        text = path.read_text()
        assert text.count("\n") <= 400, f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                assert size <= 250, f"{path.relative_to(ROOT)}: class {node.name} is {size} lines"
