"""A tiny GistMemory for the integration tests: a 2-layer random model, a hashing embedder, made-up documents."""

from __future__ import annotations

import functools

from tiny import HashEmbedder, tiny_documents, tiny_gist_model


def tiny_memory(n_docs: int = 4, **kwargs):
    """A fresh in-memory GistMemory holding ``n_docs`` made-up documents (ids doc0, doc1, ...)."""
    from gist_memory import GistMemory

    gm = tiny_gist_model()
    # The byte-level tokenizer spends a token per character: ReAct's system prompt alone is ~2300
    # tokens, past tiny.py's 2048 positions. RoPE extends to any position, so widen the window.
    gm.model.config.max_position_embeddings = 8192
    memory = GistMemory(model=gm, embedder=HashEmbedder(), **kwargs)
    if n_docs:
        memory.add(tiny_documents(n_docs, sentences=4), progress=False)
    return memory


@functools.cache
def shared_memory():
    """One tiny memory for a whole test session (the standard suites build many models from params)."""
    return tiny_memory()
