"""GistMemoryPostprocessor: retrieved nodes -> gist caches (what LongLLMLinguaPostprocessor is to LLMLingua)."""

from __future__ import annotations

from typing import Any, Optional

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode


class GistMemoryPostprocessor(BaseNodePostprocessor):
    """Compresses retrieved nodes into gist caches kept in a ``GistMemory``'s store.

    Each node comes back as a copy whose text is a gist tag (``<gist id="..." sig="..."/>``, its metadata
    hidden from the LLM), so the response synthesizer's prompt names the caches and
    ``GistMemoryLLM`` reads them instead of the text: the query runs in hybrid mode whatever the
    retriever. Compression is content-addressed: a text seen before, or a node from
    ``GistMemoryRetriever`` (it has a ``cache_id``), costs nothing. Stored nodes are not changed.

    Setup:
        .. code-block:: python

            from llama_index.core import Settings, VectorStoreIndex
            from llama_index.llms.gist_memory import GistMemoryLLM
            from llama_index.postprocessor.gist_memory import GistMemoryPostprocessor

            Settings.llm = GistMemoryLLM(memory)
            index = VectorStoreIndex.from_documents(documents)   # any retriever works
            engine = index.as_query_engine(node_postprocessors=[GistMemoryPostprocessor(memory)])

    Query:
        .. code-block:: python

            response = engine.query("What is the vault code?")
            response.source_nodes[0].node.metadata["cache_id"]
    """

    scope: Optional[str] = Field(default=None, description="Binds the gist tags to readers of this scope (a "
                                 "tenant or user id): a GistMemoryLLM with another scope reads them as plain text.")
    _memory: Any = PrivateAttr()

    def __init__(self, memory: Any, **kwargs: Any) -> None:
        from gist_memory.memory import as_memory

        super().__init__(**kwargs)
        self._memory = as_memory(memory)

    @classmethod
    def class_name(cls) -> str:
        return "GistMemoryPostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> list[NodeWithScore]:
        known = self._memory.caches_for([n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
                                        [n.node.metadata.get("cache_id") for n in nodes]) if nodes else []
        out = []
        for i, n in enumerate(nodes):
            metadata = {**n.node.metadata, "cache_id": known[i]}
            node = TextNode(id_=n.node.node_id, text=self._memory.gist_tag(known[i], self.scope), metadata=metadata,
                            excluded_llm_metadata_keys=list(metadata), excluded_embed_metadata_keys=list(metadata))
            out.append(NodeWithScore(node=node, score=n.score))
        return out
