"""What a query returns: the answer, the chunks it came from, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .generate import TokenStream


@dataclass
class Source:
    """A chunk an answer was drawn from.

    Attributes:
        chunk_id: ``doc_id::index``.
        score: cosine similarity to the question, or None for a chunk that was not retrieved
            (gist and full modes use every chunk of a document).
        cache_id: the content address of the chunk's gist cache in the store.
        chunk_index: the chunk's position in its document.
    """

    chunk_id: str
    doc_id: str
    text: str
    metadata: dict
    score: float | None
    cache_id: str
    chunk_index: int = 0


@dataclass
class Answer:
    """An answer, where it came from, and what it cost.

    Attributes:
        timings: seconds: ``retrieval_s`` (vector search), ``memory_s`` (reading gist caches or
            texts), ``ttft_s`` (from the query to the first answer token, all of the above
            included), ``generation_s`` (prefill and decoding) and ``total_s``.
        kv_entries: KV entries per layer the model holds when it starts answering: the memory
            (gist entries, or context tokens for rag and full) plus the prefilled prompt.
        kv_bytes: their size at the model's dtype, over all layers.
        prompt_tokens: tokens actually prefilled: the question alone in gist and hybrid modes,
            context and question in rag and full modes.
        output_tokens: tokens generated.
    """

    text: str
    mode: str
    sources: list[Source]
    timings: dict
    kv_entries: int
    kv_bytes: int
    prompt_tokens: int
    output_tokens: int


class AnswerStream(TokenStream):
    """Iterator of answer text pieces; once it is exhausted ``.answer`` holds the Answer (and
    ``.generation``, as in the engine's TokenStream, the Generation)."""

    def __init__(self, pieces: Iterator[str]):
        super().__init__(pieces)
        self.answer: Answer | None = None
