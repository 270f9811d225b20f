"""Corpus collection: docstrings of the Python standard library (read with ast, never imported); training only."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from .corpus import SourceDocument
from .text import _blank_line_paragraphs, _documents_from_paragraphs, _normalize

#: Standard-library modules left out: tests, IDLE, and modules whose docstrings are mostly code.
_PYDOC_SKIP = ("test", "idlelib", "lib2to3", "pydoc_data", "turtledemo", "this", "antigravity", "ensurepip",
               "venv", "tkinter", "__future__", "__hello__", "__phello__")


def _module_paragraphs(path: Path) -> list[str]:
    """The module docstring, then ``name: docstring`` of each public class and function, as paragraphs."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    pars = _blank_line_paragraphs(_normalize(ast.get_docstring(tree) or ""))
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 80:
                body = " ".join(_normalize(doc).split("\n\n")[0].split())
                pars.append(f"{node.name}: {body}")
    return pars


def _load_pydoc() -> list[SourceDocument]:
    import sys

    docs: list[SourceDocument] = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _PYDOC_SKIP:
            continue
        try:
            spec = importlib.util.find_spec(name)  # a top-level spec is found without importing
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        pars: list[str] = []
        for f in files:
            if "test" not in f.parts[-2:] and not f.name.startswith("test"):
                pars.extend(_module_paragraphs(f))
        docs.extend(_documents_from_paragraphs(pars, id_prefix=f"pydoc-{name}", title=f"Python module {name}",
                                               language="en", source=f"pydoc:{name}"))
    return docs
