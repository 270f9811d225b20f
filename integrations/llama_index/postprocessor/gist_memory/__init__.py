"""LlamaIndex node postprocessor that compresses nodes into gist caches: ``pip install "gist-memory[llamaindex]"``."""

from llama_index.postprocessor.gist_memory.base import GistMemoryPostprocessor

__all__ = ["GistMemoryPostprocessor"]
