"""LlamaIndex memory block holding old conversation as gist caches: ``pip install "gist-memory[llamaindex]"``."""

from llama_index.memory.gist_memory.base import GistMemoryBlock

__all__ = ["GistMemoryBlock"]
