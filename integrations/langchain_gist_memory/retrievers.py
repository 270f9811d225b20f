"""GistMemoryRetriever: a LangChain retriever over a GistMemory's vector index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, field_validator


def format_gist_refs(documents: Sequence[Document]) -> str:
    """Documents as gist-cache tags for a prompt: ``ChatGistMemory`` reads their caches, not their text.

    The hybrid path in LCEL: ``{"context": retriever | format_gist_refs, "question": ...} | prompt | llm``.
    Documents need a ``gist_tag`` in their metadata: the memory's signed tag for their cache
    (``GistMemoryRetriever`` and ``GistMemoryCompressor`` set it; a tag typed by anyone else is
    plain text to the model).
    """
    missing = [i for i, d in enumerate(documents) if not d.metadata.get("gist_tag")]
    if missing:
        raise ValueError(f"documents {missing} have no 'gist_tag' in their metadata, so they have no gist cache; "
                         "retrieve them with GistMemoryRetriever or pass them through GistMemoryCompressor")
    return "\n".join(d.metadata["gist_tag"] for d in documents)


class GistMemoryRetriever(BaseRetriever):
    """Retriever over a ``GistMemory``: the ``k`` chunks nearest to the query.

    Each document's text is the chunk's text, so any chat model can read it; its metadata carries
    the chunk's gist cache (``cache_id``), so ``ChatGistMemory`` can read the cache instead
    (``format_gist_refs``), which is gist-memory's hybrid mode inside an LCEL chain.

    Setup:
        .. code-block:: python

            from gist_memory import GistMemory
            from langchain_gist_memory import GistMemoryRetriever

            memory = GistMemory(persist_dir="./my_memory")
            retriever = GistMemoryRetriever(memory=memory, k=4)

    Invoke:
        .. code-block:: python

            docs = retriever.invoke("vault code", k=2)   # k per call, too
            docs[0].metadata  # {..., 'doc_id', 'chunk_id', 'chunk_index', 'cache_id', 'score'}

    Hybrid chain:
        .. code-block:: python

            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnablePassthrough
            from langchain_gist_memory import ChatGistMemory, format_gist_refs

            prompt = ChatPromptTemplate.from_messages([("human", "{context}\\n{question}")])
            chain = ({"context": retriever | format_gist_refs, "question": RunnablePassthrough()}
                     | prompt | ChatGistMemory(memory=memory) | StrOutputParser())
            chain.invoke("What is the vault code?")
    """

    memory: Any = Field(description="The GistMemory to search, or the path of a memory directory.", exclude=True)
    k: int = Field(default=4, ge=1, description="Documents to return.")
    where: dict[str, Any] | None = Field(default=None, description="A Chroma metadata filter on the chunks, "
                                         "e.g. {'source': 'notes.txt'}.")
    scope: str | None = Field(default=None, description="Binds the gist tags to readers of this scope (a tenant "
                              "or user id): a ChatGistMemory with another scope reads them as plain text.")

    @field_validator("memory", mode="before")
    @classmethod
    def _open_memory(cls, value: Any) -> Any:
        from gist_memory.memory import as_memory

        return as_memory(value)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        sources = self.memory.retrieve(query, top_k=kwargs.get("k", self.k), where=kwargs.get("where", self.where))
        return [Document(page_content=s.text, id=s.chunk_id,
                         metadata={**s.metadata, "doc_id": s.doc_id, "chunk_id": s.chunk_id,
                                   "chunk_index": s.chunk_index, "cache_id": s.cache_id, "score": s.score,
                                   "gist_tag": self.memory.gist_tag(s.cache_id, self.scope)})
                for s in sources]
