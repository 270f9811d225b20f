"""LlamaIndex retriever over gist-memory: ``pip install "gist-memory[llamaindex]"``."""

from llama_index.retrievers.gist_memory.base import GistMemoryRetriever

__all__ = ["GistMemoryRetriever"]
