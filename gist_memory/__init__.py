"""gist-memory: compress long texts into the KV cache of a few learned gist tokens.

Heavy modules (torch, transformers) load on first use of what needs them, so importing the
package and its config stays fast.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "GistConfig": ".config",
    "GistCache": ".cache",
    "GistModel": ".model",
    "Generation": ".generate",
    "GistMemoryError": ".errors",
    "CacheFormatError": ".errors",
    "CacheMismatchError": ".errors",
    "InputError": ".errors",
    "ModelLoadError": ".errors",
    "GistMemory": ".memory",
    "Answer": ".answers",
    "AnswerStream": ".answers",
    "Source": ".answers",
    "Document": ".documents",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'gist_memory' has no attribute {name!r}")
