"""VectorIndex: the chunks' embeddings in a Chroma collection, for top-k search with filters.

Embedded by default (``chromadb.PersistentClient`` under ``persist_dir/chroma``, telemetry off);
any chromadb client, such as an ``HttpClient`` talking to a Chroma server, can be passed instead
when one process is no longer enough (docs/design.md, "Scale beyond one machine").

An embedded Chroma directory is not made for two processes: a reader keeps the index it loaded
while the other process's writes land in the shared SQLite file, and its queries then fail with
"Error finding id". So, for the embedded client only, writes hold an exclusive lock on
``chroma.lock`` and bump a counter in it, and searches hold a shared lock and reopen the client
when the counter moved. A read-only process beside a writer thus always searches a consistent,
current index.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from .errors import CacheFormatError, InputError

LOCK = "chroma.lock"


class VectorIndex:
    """One Chroma collection of chunk vectors, ids ``doc_id::index``, metadata holding ``doc_id``.

    Args:
        embedder: the Embedder handed to Chroma (Chroma's default would download a model).
        collection: the collection name.
        path: the memory directory; the embedded index lives in ``path/chroma``.
        client: a chromadb client to use instead of the embedded one.
        read_only: never create or write the collection.
        index_text: also store the chunks' text in the collection (search never reads it).
    """

    def __init__(self, embedder, collection: str, path: str | os.PathLike, client=None, read_only: bool = False,
                 index_text: bool = False):
        self.embedder = embedder
        self.index_text = index_text
        self.name = collection
        self.read_only = read_only
        self._own_client = client is None
        self._path = Path(path)
        self._version = None
        self._client = client
        self._thread_lock = threading.Lock()
        if self._own_client:
            self._check_can_open()
            with self.locked(exclusive=False):
                self._open()
        else:
            self._collection = self._get_collection()

    def _get_collection(self):
        if self.read_only:
            return self._client.get_collection(self.name, embedding_function=self.embedder)
        return self._client.get_or_create_collection(self.name, embedding_function=self.embedder,
                                                     configuration={"hnsw": {"space": "cosine"}})

    def _open(self) -> None:
        import chromadb
        from chromadb.config import Settings
        from chromadb.errors import InternalError

        if self._client is not None:
            self._client.close()
        try:
            self._client = chromadb.PersistentClient(path=str(self._path / "chroma"),
                                                     settings=Settings(anonymized_telemetry=False))
        except InternalError as exc:  # its database is not SQLite, or is malformed: a raw Rust error otherwise
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CacheFormatError(f"the vector index in {self._path / 'chroma'} cannot be opened ({reason}); if it "
                                   "is damaged, restore the store from a copy, or build it anew in an empty "
                                   "directory") from None
        self._collection = self._get_collection()

    def _check_can_open(self) -> None:
        """Chroma writes to its database even to search it, and a failed open leaves a broken client
        behind for the rest of the process; so check first, without writing anything."""
        db = self._path / "chroma" / "chroma.sqlite3"
        try:
            if db.exists():
                os.close(os.open(db, os.O_RDWR))
            writable = os.access(db.parent if db.parent.exists() else self._path, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            raise InputError(f"the embedded vector index in {self._path} cannot be opened: Chroma writes to its own "
                             "files even to search them, so even a read-only open needs a directory this process may "
                             "write (or a Chroma server: client=chromadb.HttpClient(...))")

    @property
    def description(self) -> dict:
        """Where the vectors live, for the store manifest."""
        if self._own_client:
            return {"kind": "embedded", "path": "chroma", "collection": self.name}
        settings = self._client.get_settings()
        return {"kind": "http" if settings.chroma_server_host else "client", "host": settings.chroma_server_host,
                "port": settings.chroma_server_http_port, "collection": self.name}

    @contextlib.contextmanager
    def locked(self, exclusive: bool):
        """Hold the index for a search (shared) or a write (exclusive), across threads and, for the
        embedded index, across processes; reopen the client first if another process wrote."""
        with self._thread_lock:
            if not self._own_client:
                yield
                return
            path = self._path / LOCK
            try:
                fd = os.open(path, os.O_RDONLY if self.read_only else os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(f"cannot open the index lock {path} ({exc.strerror}); is {self._path} a gist store?") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                version = os.pread(fd, 32, 0)
                if self._version is not None and version != self._version:
                    self._open()
                self._version = version
                try:
                    yield
                finally:
                    if exclusive:
                        self._version = str(int(version or b"0") + 1).encode()
                        os.pwrite(fd, self._version, 0)
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def upsert(self, ids: list[str], embeddings, texts: list[str], metadatas: list[dict]) -> None:
        step = 1000  # well under Chroma's largest batch
        with self.locked(exclusive=True):
            for i in range(0, len(ids), step):
                self._collection.upsert(ids=ids[i:i + step], embeddings=embeddings[i:i + step],
                                        documents=texts[i:i + step] if self.index_text else None,
                                        metadatas=metadatas[i:i + step])

    @property
    def served(self) -> bool:
        """True when the vectors live behind a client the caller passed (a Chroma server)."""
        return not self._own_client

    def copy_to(self, collection: str) -> None:
        """Copy every vector (and text, if kept) into a new collection of the same client."""
        existing = {getattr(c, "name", c) for c in self._client.list_collections()}
        if collection in existing:
            raise InputError(f"the Chroma server already has a collection {collection!r}; name a new one")
        target = self._client.create_collection(collection, embedding_function=self.embedder,
                                                configuration={"hnsw": {"space": "cosine"}})
        step, offset = 1000, 0
        while True:
            page = self._collection.get(limit=step, offset=offset, include=["embeddings", "metadatas", "documents"])
            if not page["ids"]:
                break
            target.add(ids=page["ids"], embeddings=page["embeddings"], metadatas=page["metadatas"],
                       documents=page["documents"] if self.index_text else None)
            offset += len(page["ids"])

    def delete(self, doc_id: str) -> None:
        with self.locked(exclusive=True):
            self._collection.delete(where={"doc_id": doc_id})

    def search(self, embedding, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the ``k`` nearest chunks that match ``where``, best first."""
        from chromadb.errors import InvalidArgumentError

        with self.locked(exclusive=False):
            try:
                found = self._collection.query(query_embeddings=[embedding], n_results=k, where=where,
                                               include=["distances"])
            except (ValueError, InvalidArgumentError) as exc:  # Chroma checks a filter only when it runs it
                if where is None:
                    raise
                raise InputError(f"Chroma cannot search with where={where!r} ({' '.join(str(exc).split())}); a "
                                 "filter names one field, {'source': 'a.pdf'}, or joins several with "
                                 "{'$and': [{'year': {'$gte': 2020}}, {'kind': 'legal'}]}") from None
        return [(i, 1.0 - d) for i, d in zip(found["ids"][0], found["distances"][0])]

    def reset(self) -> None:
        """Drop every vector (the embedder changed, and with it the vectors' meaning and size)."""
        with self.locked(exclusive=True):
            self._client.delete_collection(self.name)
            self._collection = self._get_collection()

    def close(self) -> None:
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None
