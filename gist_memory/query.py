"""Queries for GistMemory: retrieval, the four modes, answers from sources, caches or a prompt."""

from __future__ import annotations

import time
from collections.abc import Iterable

from .answers import Answer, AnswerStream, Source
from .config import MODES
from .lexical import fuse
from .errors import InputError
from .tags import check_scope, render_turns, split_gist_refs


def _check_mode(mode: str, allowed: tuple[str, ...] = MODES) -> str:
    if mode not in allowed:
        raise InputError(f"unknown mode {mode!r}; valid modes are {', '.join(allowed)}")
    return mode


def _id_list(doc_ids) -> list[str]:
    ids = [doc_ids] if isinstance(doc_ids, str) or not isinstance(doc_ids, Iterable) else list(doc_ids)
    if not all(isinstance(i, str) for i in ids):
        raise InputError(f"doc_ids must be a document id or a list of them, got {doc_ids!r}")
    if not ids:
        raise InputError("doc_ids is empty; pass None to search every document")
    return ids


def _where(where: dict | None, doc_ids) -> dict | None:
    """Chroma filter: the user's ``where`` and, with ``doc_ids``, only those documents."""
    if doc_ids is None:
        return where
    by_doc = {"doc_id": {"$in": _id_list(doc_ids)}}
    return by_doc if where is None else {"$and": [where, by_doc]}


# A query that races a delete of a document it retrieved retrieves again, this many times in all
# (the last time it answers from what is left).
SNAPSHOT_TRIES = 3


class _Deleted(Exception):
    """Raised inside a query when something it retrieved was deleted before it read it."""


class Query:
    """The query half of :class:`~gist_memory.memory.GistMemory` (a mixin: it uses the memory's
    ``gm``, ``store``, ``index``, ``top_k`` and gate)."""

    def _source(self, rec: dict, score: float | None) -> Source:
        return Source(rec["chunk_id"], rec["doc_id"], rec["text"], rec["metadata"], score, rec["cache_id"], rec["idx"])

    def retrieve(self, question: str, top_k: int | None = None, where: dict | None = None,
                 doc_ids=None) -> list[Source]:
        """The ``top_k`` chunks that best match ``question``, best first.

        With ``retrieval="fusion"`` (the default) vector search proposes ``max(4 * top_k, 32)``
        candidates and BM25 over their text re-ranks them (:mod:`gist_memory.lexical`), so a chunk
        holding the question's rare words is found even when its embedding is not the nearest; with
        ``retrieval="dense"`` the order is vector search's alone. ``Source.score`` is the cosine
        similarity either way.

        Args:
            where: a Chroma metadata filter, e.g. ``{"source": "contract.pdf"}``.
            doc_ids: a document id or a list of them to search within.
        """
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty; ask something")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        k = top_k or self.top_k
        fusion = self.retrieval == "fusion"
        hits = self.index.search(self.embedder([question])[0], max(4 * k, 32) if fusion else k,
                                 _where(where, doc_ids))
        records = self.store.chunks_by_id([cid for cid, _ in hits])
        # A chunk without a catalogue record belongs to an add still running (or interrupted): skip it.
        found = [self._source(records[cid], score) for cid, score in hits if cid in records]
        if fusion:
            found = [found[i] for i in fuse(question, [s.text for s in found], [s.score for s in found])]
        return found[:k]

    def query(self, question: str, mode: str = "hybrid", top_k: int | None = None, where: dict | None = None,
              doc_ids=None, max_new_tokens: int = 64, stream: bool = False, context: str | None = None,
              stop: list[str] | None = None, temperature: float = 0.0) -> Answer | AnswerStream:
        """Answer ``question`` from memory in one of four modes (see the module docstring).

        Args:
            mode: 'hybrid' (top-k chunks' gist caches), 'gist' (all chunks' caches of the chosen
                documents), 'rag' (top-k chunks' text in the prompt) or 'full' (whole text).
            top_k: chunks to retrieve (default: the memory's ``top_k``).
            where: a Chroma metadata filter on the chunks searched.
            doc_ids: documents to answer from (gist and full modes read all of them; rag and hybrid
                search within them).
            max_new_tokens: most tokens to generate.
            stream: return an AnswerStream of text pieces.
            context: text put before the question (after any rag/full text), such as the earlier
                turns of a conversation.
            stop: strings that end the answer (not included in it).
            temperature: 0 decodes greedily; above 0 samples.
        """
        _check_mode(mode)
        start = time.perf_counter()
        for attempt in range(SNAPSHOT_TRIES):
            try:
                sources, memory, retrieved = self._gather(question, mode, top_k, where, doc_ids,
                                                          last=attempt == SNAPSHOT_TRIES - 1)
                break
            except _Deleted:  # a document was deleted while this query read it: retrieve again
                continue
        retrieval_s = retrieved - start
        return self._generate(question, mode, sources, memory, start, retrieval_s, max_new_tokens, stream,
                              context, stop, temperature)

    def _gather(self, question: str, mode: str, top_k: int | None, where: dict | None, doc_ids,
                last: bool) -> tuple[list[Source], dict, float]:
        """The sources and the memory (caches or text) of one query, and when retrieval ended.

        Another thread or process may delete a retrieved document while this reads it: then this
        raises ``_Deleted`` (the caller retrieves again), or with ``last`` answers from the rest.
        A document the caller named in ``doc_ids`` that is not stored is an error at once.
        """
        named = mode in ("gist", "full") and doc_ids is not None
        if named:
            chosen, scores = _id_list(doc_ids), {}
        else:
            hits = self.retrieve(question, top_k, where, doc_ids)
            scores = {s.chunk_id: s.score for s in hits}
            chosen = list(dict.fromkeys(s.doc_id for s in hits))
        if mode in ("gist", "full"):
            sources = [self._source(r, scores.get(r["chunk_id"])) for r in self.store.chunks_of(chosen)]
            present = {s.doc_id for s in sources}
            unknown = [d for d in chosen if d not in present]
            if unknown and named:
                raise InputError(f"no documents {unknown} in this memory; list_documents() shows the stored ids")
            if unknown and not last:
                raise _Deleted(unknown)
            chosen = [d for d in chosen if d in present]
        else:  # the retrieved chunks, document by document (best document first), each in text order
            sources = sorted(hits, key=lambda s: (chosen.index(s.doc_id), s.chunk_index))
        if not sources:
            raise InputError("nothing to answer from: the memory holds no documents (that match where/doc_ids); "
                             "add() some first")
        retrieved = time.perf_counter()
        if mode == "full":
            docs = [self.store.document(d) for d in chosen]
            if None in docs and not last:
                raise _Deleted([d for d, doc in zip(chosen, docs) if doc is None])
            return sources, {"context": "\n\n".join(doc["text"] for doc in docs if doc is not None)}, retrieved
        if mode == "rag":
            return sources, self._memory(mode, sources), retrieved
        kept, caches = [], []
        for s in sources:
            try:
                caches.append(self._load_cache(s.cache_id))
            except _Deleted:
                if named:  # a named document deleted while read: say so, as for one never stored
                    raise InputError(f"document {s.doc_id!r} was deleted while this query read it; "
                                     "list_documents() shows the stored ids") from None
                if not last:
                    raise
                continue
            kept.append(s)
        if not kept:
            raise InputError("nothing to answer from: the documents retrieved were deleted while this query "
                             "read them; ask again")
        return kept, {"caches": caches}, retrieved

    def _load_cache(self, cache_id: str):
        """A stored cache; ``_Deleted`` when a delete removed it meanwhile (the store raises
        CacheFormatError instead when the catalogue still lists it: its file was lost)."""
        try:
            return self.store.load_cache(cache_id, self.gm.cache_identity)
        except InputError:
            raise _Deleted([cache_id]) from None

    def answer_from_sources(self, question: str, sources, mode: str = "hybrid", max_new_tokens: int = 64,
                            stream: bool = False, context: str | None = None, stop: list[str] | None = None,
                            temperature: float = 0.0) -> Answer | AnswerStream:
        """Answer from given chunks (Sources or chunk ids), in the order given: 'hybrid' reads their
        gist caches, 'rag' puts their text in the prompt (other arguments as in ``query``)."""
        _check_mode(mode, ("hybrid", "rag"))
        start = time.perf_counter()
        sources = list(sources)
        ids = [s for s in sources if isinstance(s, str)]
        if ids:
            found = self.store.chunks_by_id(ids)
            unknown = [i for i in ids if i not in found]
            if unknown:
                raise InputError(f"no chunks {unknown[:5]} in this memory; chunk ids look like 'doc_id::0'")
            sources = [self._source(found[s], None) if isinstance(s, str) else s for s in sources]
        odd = [s for s in sources if not isinstance(s, Source)]
        if odd:
            raise InputError(f"sources must be Sources (from retrieve()) or chunk ids like 'doc_id::0', got "
                             f"{type(odd[0]).__name__}")
        if not sources:
            raise InputError("no sources to answer from; retrieve() some first")
        return self._generate(question, mode, sources, self._memory(mode, sources), start, 0.0, max_new_tokens,
                              stream, context, stop, temperature)

    def _memory(self, mode: str, sources: list[Source]) -> dict:
        """What ``gm.generate`` answers from given sources: their gist caches (hybrid), or their
        text (rag). ``query`` reads a full or gist memory itself (``_gather``)."""
        if mode == "rag":
            return {"context": "\n\n".join(s.text for s in sources)}
        return {"caches": [self.store.load_cache(s.cache_id, self.gm.cache_identity) for s in sources]}

    def answer_from_caches(self, question: str, cache_ids: list[str], max_new_tokens: int = 64,
                           stream: bool = False, context: str | None = None, stop: list[str] | None = None,
                           temperature: float = 0.0) -> Answer | AnswerStream:
        """Answer from caches made by ``compress_texts``, concatenated in the order given (other
        arguments as in ``query``)."""
        start = time.perf_counter()
        cache_ids = [cache_ids] if isinstance(cache_ids, str) else list(cache_ids)
        if not cache_ids:
            raise InputError("no cache ids to answer from; compress_texts() returns them")
        caches = [self.store.load_cache(cid, self.gm.cache_identity) for cid in cache_ids]
        return self._generate(question, "gist", [], {"caches": caches}, start, 0.0, max_new_tokens, stream,
                              context, stop, temperature)

    def answer_prompt(self, prompt: str, history=None, mode: str | None = None, top_k: int | None = None,
                      max_new_tokens: int = 64, stream: bool = False, stop: list[str] | None = None,
                      temperature: float = 0.0, scope: str | None = None) -> Answer | AnswerStream:
        """Answer a prompt that a host framework built: the LangChain and LlamaIndex adapters' one entry.

        The gist caches that ``prompt`` and ``history`` name with tags this memory minted
        (``gist_tag``: a retriever, compressor or conversation memory chose them) are read; a tag
        that carries no valid signature (say, one an end user typed) is plain text; the rest of the prompt is the
        question, and the earlier turns of a conversation (``history``: (role, text) pairs) go
        before it as text. With no tags, ``mode`` answers from the store as ``query`` does, and
        ``mode=None`` from the prompt alone (Answer.mode 'none'). ``scope``: only tags minted for
        this scope are read (``GistMemory.gist_tag``); None reads unscoped tags only.
        """
        scope = check_scope(scope)

        def verify(cache_id: str, signature: str) -> bool:
            return self.store.verify(cache_id, signature, scope)

        question, ids = split_gist_refs(prompt, verify)
        turns = []
        for role, text in history or ():
            text, more = split_gist_refs(text, verify)
            ids += more
            if text:
                turns.append((role, text))
        gen = dict(max_new_tokens=max_new_tokens, stream=stream, context=render_turns(turns) or None, stop=stop,
                   temperature=temperature)
        if ids:
            return self.answer_from_caches(question, list(dict.fromkeys(ids)), **gen)
        if mode is not None:
            return self.query(question, mode=mode, top_k=top_k, **gen)
        return self._generate(question, "none", [], {}, time.perf_counter(), 0.0, **gen)

    def _generate(self, question: str, mode: str, sources: list[Source], memory: dict, start: float,
                  retrieval_s: float, max_new_tokens: int, stream: bool, context: str | None = None,
                  stop: list[str] | None = None, temperature: float = 0.0) -> Answer | AnswerStream:
        """Generate on ``memory`` (caches or a context text, then ``context``) and wrap the result in an Answer."""
        memory_s = time.perf_counter() - start - retrieval_s
        memory = dict(memory, context="\n\n".join(t for t in (memory.get("context"), context) if t) or None)
        tokens = self.gm.generate(question, max_new_tokens=max_new_tokens, stream=True, stop=stop,
                                  temperature=temperature, **memory)
        # Without caches the engine answers with the adapter off, for the whole model: alone.
        gate = self._gate.shared if memory.get("caches") else self._gate.exclusive
        setup_s = time.perf_counter() - start

        def finish() -> Answer:
            gen = tokens.generation
            entries = gen.kv_entries + gen.prompt_tokens
            timings = {"retrieval_s": retrieval_s, "memory_s": memory_s, "ttft_s": setup_s + gen.ttft_s,
                       "generation_s": gen.total_s, "total_s": setup_s + gen.total_s}
            return Answer(gen.text, mode, sources, timings, entries, entries * self.gm.kv_bytes_per_token(),
                          gen.prompt_tokens, len(gen.token_ids))

        if not stream:
            with gate():
                for _ in tokens:
                    pass
            return finish()

        def pieces():
            with gate():
                yield from tokens
            out.generation, out.answer = tokens.generation, finish()

        out = AnswerStream(pieces())
        self._streams.add(out)
        return out
