"""GistMemoryRetriever: a LlamaIndex retriever over a GistMemory's vector index."""

from __future__ import annotations

from typing import Any, Optional

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

#: Metadata gist-memory adds to each node; kept from the LLM's and the embedder's view of the node.
CHUNK_KEYS = ["doc_id", "chunk_id", "chunk_index", "cache_id"]


class GistMemoryRetriever(BaseRetriever):
    """Retriever over a ``GistMemory``: the ``similarity_top_k`` chunks nearest to the query.

    Each node's text is the chunk's text, so any LLM can read it; its metadata carries the chunk's
    gist cache (``cache_id``), so ``GistMemoryPostprocessor`` swaps the text for the cache without
    compressing again, and ``GistMemoryLLM`` reads the cache: gist-memory's hybrid mode.

    Setup:
        .. code-block:: python

            from gist_memory import GistMemory
            from llama_index.retrievers.gist_memory import GistMemoryRetriever

            memory = GistMemory(persist_dir="./my_memory")
            retriever = GistMemoryRetriever(memory, similarity_top_k=4)

    Retrieve:
        .. code-block:: python

            nodes = retriever.retrieve("vault code")
            nodes[0].score, nodes[0].node.metadata["cache_id"]

    Args:
        memory: a GistMemory, or the path of a memory directory.
        similarity_top_k: nodes to return.
        where: a Chroma metadata filter on the chunks, e.g. ``{"file_name": "notes.txt"}``.
    """

    def __init__(self, memory: Any, similarity_top_k: int = 4, where: Optional[dict] = None,
                 callback_manager: Optional[CallbackManager] = None, verbose: bool = False) -> None:
        from gist_memory.memory import as_memory

        if not isinstance(similarity_top_k, int) or similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be a positive integer, got {similarity_top_k!r}")
        self._memory = as_memory(memory)
        self.similarity_top_k = similarity_top_k
        self.where = where
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        sources = self._memory.retrieve(query_bundle.query_str, top_k=self.similarity_top_k, where=self.where)
        return [NodeWithScore(node=TextNode(id_=s.chunk_id, text=s.text,
                                            metadata={**s.metadata, "doc_id": s.doc_id, "chunk_id": s.chunk_id,
                                                      "chunk_index": s.chunk_index, "cache_id": s.cache_id},
                                            excluded_llm_metadata_keys=CHUNK_KEYS,
                                            excluded_embed_metadata_keys=CHUNK_KEYS),
                              score=s.score)
                for s in sources]
