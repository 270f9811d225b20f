"""Ingest for GistMemory: documents in, chunked, embedded and compressed once, committed atomically."""

from __future__ import annotations

from .compress import compress_chunks, split_tokens, tokenize
from .documents import Document, chunk_text, to_documents
from .errors import InputError
from .store import cache_key, chunk_id


class Ingest:
    """The ingest half of :class:`~gist_memory.memory.GistMemory` (a mixin: it uses the memory's
    ``gm``, ``store``, ``index``, ``embedder``, chunking settings and gate)."""

    def add(self, items, metadata: dict | list[dict] | None = None, batch_size: int = 8,
            progress: bool = True) -> list[str]:
        """Chunk, embed and compress documents once; returns their ids.

        Args:
            items: a text, a document, or a list of them: strings, dicts ``{"text", "metadata", "id"}``,
                LangChain-like (``.page_content``) or LlamaIndex-like (``.text`` / ``.get_content()``) objects.
            metadata: one dict for every item, or one per item; an item's own metadata wins.
            batch_size: chunks compressed per forward pass.
            progress: show a progress bar over the chunks to compress.

        A document already stored with the same text is skipped, so re-running an interrupted
        ``add`` resumes it; an id already stored with another text is an error (delete it first).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        docs = to_documents(items, metadata)
        with self.store.writing():
            new = []
            for doc in docs:
                stored = self.store.document(doc.doc_id)
                if stored is None:
                    new.append(doc)
                elif stored["text_sha256"] != doc.text_sha256:
                    raise InputError(f"document {doc.doc_id!r} is already stored with another text; delete it first "
                                     f"(memory.delete({doc.doc_id!r})) or give the new text another id")
            self._ingest(new, batch_size, progress)
        return [doc.doc_id for doc in docs]

    def _ingest(self, docs: list[Document], batch_size: int, progress: bool, replace: bool = False) -> None:
        """Compress missing chunk caches in batches across documents; a document is committed as
        soon as all of its caches are on disk, so an interruption loses at most one batch of work."""
        from tqdm.auto import tqdm

        ident = self.gm.cache_identity
        planned = []
        for doc in docs:
            chunks = chunk_text(self.gm.tokenizer, doc.text, self.chunk_tokens, self.chunk_overlap)
            planned.append((doc, chunks, [cache_key(ident, c.token_ids) for c in chunks]))
        missing = {cid: c.token_ids for _, chunks, cids in planned for c, cid in zip(chunks, cids)
                   if not self.store.has_cache(cid)}
        bar = tqdm(total=len(missing), desc="compressing", unit="chunk", disable=not progress)
        batch: dict[str, list[int]] = {}
        ready: list = []
        for doc, chunks, cids in planned:
            for cid in cids:
                if cid in missing and cid not in batch:
                    batch[cid] = missing.pop(cid)
                if len(batch) == batch_size:
                    self._compress(batch, bar)
            ready.append((doc, chunks, cids))
            if not batch:
                self._commit(ready, replace)
        self._compress(batch, bar)
        self._commit(ready, replace)
        bar.close()

    def _compress(self, batch: dict[str, list[int]], bar) -> None:
        if not batch:
            return
        with self._gate.exclusive():
            caches = compress_chunks(self.gm, list(batch.values()), batch_size=len(batch))
        for cid, cache in zip(batch, caches):
            self.store.save_cache(cid, cache)
        bar.update(len(batch))
        batch.clear()

    def _commit(self, ready: list, replace: bool) -> None:
        """Vectors first, then the catalogue: a document is listed only once everything it needs is stored."""
        if not ready:
            return
        ids, texts, metas = [], [], []
        for doc, chunks, cids in ready:
            scalars = {k: v for k, v in doc.metadata.items() if isinstance(v, (str, int, float, bool))}
            for c, cid in zip(chunks, cids):
                ids.append(chunk_id(doc.doc_id, c.index))
                texts.append(doc.text[c.start:c.end])
                metas.append({**scalars, "doc_id": doc.doc_id, "chunk_index": c.index, "cache_id": cid,
                              "n_tokens": len(c.token_ids)})
            if replace:
                self.index.delete(doc.doc_id)
        self.index.upsert(ids, self.embedder(texts), texts, metas)
        for doc, chunks, cids in ready:
            self.store.put_document(doc, chunks, cids, self._built_with)
        ready.clear()

    def compress_texts(self, texts, batch_size: int = 8, progress: bool = False) -> list[str]:
        """Compress arbitrary texts (say, documents another vector store retrieved) into gist caches
        kept in this store, one per text; returns their cache ids for ``answer_from_caches``."""
        from .cache import GistCache

        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise InputError("compress_texts() got an empty list; pass at least one text")
        ident, limit = self.gm.cache_identity, self.gm.gist.chunk_tokens
        tokens = [tokenize(self.gm.tokenizer, t) for t in texts]
        ids = [cache_key(ident, t) for t in tokens]
        with self.store.writing():
            todo = {cid: split_tokens(t, limit) for cid, t in zip(ids, tokens) if not self.store.has_cache(cid)}
            if todo:
                with self._gate.exclusive():
                    caches = iter(compress_chunks(self.gm, [c for chunks in todo.values() for c in chunks],
                                                  batch_size=batch_size, progress=progress))
                for cid, chunks in todo.items():
                    self.store.save_cache(cid, GistCache.concat([next(caches) for _ in chunks]))
            for cid, t in zip(ids, tokens):
                self.store.register_text(cid, len(t))
        return ids

    def caches_for(self, texts, cache_ids=None, batch_size: int = 8) -> list[str]:
        """Cache ids for retrieved texts: where ``cache_ids[i]`` names a cache this store holds it is
        reused, and the other texts are compressed (:meth:`compress_texts`). The integrations'
        compressor and postprocessor call this with what a retriever returned."""
        texts = list(texts)
        given = list(cache_ids) if cache_ids is not None else [None] * len(texts)
        if len(given) != len(texts):
            raise InputError(f"caches_for() got {len(texts)} texts but {len(given)} cache ids")
        known = {i: cid for i, cid in enumerate(given) if cid and self.store.has_cache(cid)}
        todo = [i for i in range(len(texts)) if i not in known]
        if todo:
            known.update(zip(todo, self.compress_texts([texts[i] for i in todo], batch_size=batch_size)))
        return [known[i] for i in range(len(texts))]
