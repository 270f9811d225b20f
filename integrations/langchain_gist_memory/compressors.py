"""GistMemoryCompressor: retrieved documents -> gist caches, for ContextualCompressionRetriever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import Field, field_validator


class GistMemoryCompressor(BaseDocumentCompressor):
    """Compresses documents from any retriever into gist caches kept in a ``GistMemory``'s store.

    Each returned document's ``page_content`` is a gist tag (``<gist id="..." sig="..."/>``) and its metadata
    gains ``cache_id``, so a prompt built the usual way (joining ``page_content``) hands
    ``ChatGistMemory`` the caches instead of the text. Compression is content-addressed: a text
    seen before, or a document from ``GistMemoryRetriever`` (it has a ``cache_id``), costs nothing.

    Setup:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from langchain_gist_memory import GistMemoryCompressor

            retriever = ContextualCompressionRetriever(
                base_compressor=GistMemoryCompressor(memory=memory),
                base_retriever=any_vector_store.as_retriever())

    Invoke:
        .. code-block:: python

            docs = retriever.invoke("vault code")
            docs[0].page_content   # '<gist id="3f2a..." sig="9c1e..."/>'
            context = "\\n".join(d.page_content for d in docs)   # for ChatGistMemory
    """

    memory: Any = Field(description="The GistMemory whose model compresses and whose store keeps the caches, "
                                    "or the path of a memory directory.", exclude=True)
    scope: str | None = Field(default=None, description="Binds the gist tags to readers of this scope (a tenant "
                              "or user id): a ChatGistMemory with another scope reads them as plain text.")

    @field_validator("memory", mode="before")
    @classmethod
    def _open_memory(cls, value: Any) -> Any:
        from gist_memory.memory import as_memory

        return as_memory(value)

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """The documents, in order, each standing for its gist cache (the query does not change them)."""
        if not documents:
            return []
        known = self.memory.caches_for([d.page_content for d in documents],
                                       [d.metadata.get("cache_id") for d in documents])
        tags = [self.memory.gist_tag(c, self.scope) for c in known]
        return [Document(page_content=tags[i], id=d.id, metadata={**d.metadata, "cache_id": known[i], "gist_tag": tags[i]})
                for i, d in enumerate(documents)]
