"""LangChain integration of gist-memory: a chat model, a retriever, a document compressor and
agent middleware, all over one ``gist_memory.GistMemory``.

    pip install "gist-memory[langchain]"
"""

from langchain_gist_memory.chat_models import ChatGistMemory
from langchain_gist_memory.compressors import GistMemoryCompressor
from langchain_gist_memory.middleware import GistMemoryMiddleware
from langchain_gist_memory.retrievers import GistMemoryRetriever, format_gist_refs

__all__ = [
    "ChatGistMemory",
    "GistMemoryCompressor",
    "GistMemoryMiddleware",
    "GistMemoryRetriever",
    "format_gist_refs",
]
