"""LlamaIndex LLM over gist-memory: ``pip install "gist-memory[llamaindex]"``."""

from llama_index.llms.gist_memory.base import GistMemoryLLM

__all__ = ["GistMemoryLLM"]
