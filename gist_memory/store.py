"""GistStore: a memory's files on disk. Gist caches are content-addressed safetensors files;
a SQLite catalogue records documents and chunks; ``store.json`` describes the whole directory.

    persist_dir/
      store.json              what made it: model, adapter, gist config, chunking, embedder, versions
      catalog.sqlite          documents (text, metadata) and chunks (span, tokens, cache id)
      caches/ab/abcd...safetensors   one GistCache per distinct chunk, named by content hash
      write.lock              held by the one process writing at a time

Nothing is lost on a crash (docs/design.md invariant 6): a cache file appears whole or not at all
(temp file, then rename), a document and its chunks enter the catalogue in one transaction,
and only after their caches and vectors are written. A document is therefore either fully
stored or absent, and re-running an interrupted ``add`` skips the caches already on disk.
Cache ids hash the model identity and the chunk's token ids, so the same text compressed by
the same model is stored once and re-ingest is idempotent.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import sqlite3
import tempfile
import threading
from pathlib import Path

from .cache import GistCache
from .errors import CacheFormatError, InputError
from .manifest import MANIFEST, write_manifest

CATALOG = "catalog.sqlite"
CACHES = "caches"
WRITE_LOCK = "write.lock"
#: The store's secret: it signs the gist tags this memory mints, so a tag an end user types is inert.
SECRET = "tag.key"
SECRET_BYTES = 32
#: A cache id is a content address: 64 lowercase hex digits (SHA-256), nothing else.
CACHE_ID = re.compile(r"[0-9a-f]{64}")
#: What a memory directory may hold besides the manifest, so an unrelated non-empty directory is refused.
OWN_NAMES = {MANIFEST, CATALOG, CATALOG + "-journal", CACHES, WRITE_LOCK, SECRET, "chroma", "chroma.lock"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT NOT NULL, text_sha256 TEXT NOT NULL,
    built_with TEXT NOT NULL, n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
    stop INTEGER NOT NULL, n_tokens INTEGER NOT NULL, cache_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (doc_id, idx);
CREATE INDEX IF NOT EXISTS chunks_by_cache ON chunks (cache_id);
CREATE TABLE IF NOT EXISTS texts (cache_id TEXT PRIMARY KEY, n_tokens INTEGER NOT NULL);
"""

#: A chunk row with its text (SQLite's substr counts characters, 1-based) and its document's metadata.
_CHUNK_SELECT = ("SELECT c.chunk_id, c.doc_id, c.idx, c.n_tokens, c.cache_id, d.metadata, "
                 "substr(d.text, c.start + 1, c.stop - c.start) AS text "
                 "FROM chunks c JOIN documents d ON d.doc_id = c.doc_id ")


def _file_in_the_way(path: Path) -> Path | None:
    """The file standing where ``path`` or one of its parents must be a directory, if any: mkdir then
    fails for root too, with a bare "Not a directory" or "File exists" that names neither it nor the fix."""
    for p in (path, *path.parents):
        try:
            if p.exists() and not p.is_dir():
                return p
        except OSError:  # a parent this process may not search: not a file in the way
            return None
    return None


def chunk_id(doc_id: str, index: int) -> str:
    return f"{doc_id}::{index}"


def cache_key(identity: dict, token_ids: list[int]) -> str:
    """Content address of a chunk's cache: the model that compresses it and its exact tokens."""
    who = {k: identity[k] for k in ("base_model", "adapter", "num_gist_tokens", "chunk_tokens")}
    return hashlib.sha256(json.dumps([who, list(token_ids)], sort_keys=True).encode()).hexdigest()


class GistStore:
    """The files of one memory directory. Safe to share between threads; one writing process at a
    time (``writing()``), any number of read-only ones.

    Args:
        path: the directory; created when missing unless ``read_only``.
        read_only: open without writing anything (a second process beside a writer).
    """

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()  # the SQLite connection, held briefly
        self._writer = threading.Lock()  # the writing thread, held for a whole add or delete
        if read_only:
            if not (self.path / MANIFEST).is_file():
                raise InputError(f"{self.path} holds no gist store (no {MANIFEST}); build one first, or open it "
                                 "without read_only=True")
            self._db = sqlite3.connect(f"file:{self.path / CATALOG}?mode=ro", uri=True, timeout=30,
                                       check_same_thread=False)
        else:
            self._prepare_directory()
            self._db = sqlite3.connect(self.path / CATALOG, timeout=30, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._open_catalog()

    def _open_catalog(self) -> None:
        """Create the catalogue's tables (read-only: read its schema) now, so that a damaged
        ``catalog.sqlite`` is one clear error at open, not sqlite3's at the first query."""
        try:
            if self.read_only:
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, or cannot be opened: not damage
                raise
            self._db.close()
            raise CacheFormatError(f"{self.path / CATALOG} is not a readable SQLite catalogue ({exc}); it holds the "
                                   "store's documents and chunks: restore it from a copy, or build the store anew "
                                   "in an empty directory") from None

    def _prepare_directory(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not (self.path / MANIFEST).is_file():
                strangers = sorted(p.name for p in self.path.iterdir() if p.name not in OWN_NAMES)
                if strangers:
                    raise InputError(f"{self.path} is not empty ({', '.join(strangers[:3])} ...) and holds no gist "
                                     "store; give persist_dir an empty or new directory")
            os.close(os.open(self.path / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o644))
            (self.path / CACHES).mkdir(exist_ok=True)
            if not (self.path / SECRET).is_file():  # written whole or not at all: temp file, then link
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(os.urandom(SECRET_BYTES))
                    fh.flush()
                    os.fsync(fh.fileno())  # never an empty key after a power cut: anyone could sign with it
                try:
                    os.link(tmp, self.path / SECRET)  # never replaces a secret another process just wrote
                except FileExistsError:
                    pass
                os.unlink(tmp)
        except OSError as exc:
            blocker = _file_in_the_way(self.path)
            if blocker is not None:
                raise InputError(f"cannot write to {self.path}: {blocker} is a file, not a directory; give "
                                 "persist_dir a directory (a new one, or one that holds a gist store)") from None
            raise InputError(f"cannot write to {self.path} ({exc.strerror or exc}); choose a directory you can write "
                             "to, or open an existing store with read_only=True") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ manifest and locking
    def write_manifest(self, manifest: dict) -> None:
        """Replace ``store.json`` atomically."""
        self._check_writable()
        write_manifest(self.path, manifest)

    def _check_writable(self) -> None:
        if self.read_only:
            raise InputError(f"this memory was opened with read_only=True ({self.path}); open it without read_only "
                             "to change it")

    @contextlib.contextmanager
    def writing(self):
        """Hold the store's write lock: one thread of one process changes the store at a time.
        Temp files left by a killed writer are removed here, where no other writer can be mid-write."""
        self._check_writable()
        with self._writer:
            fd = os.open(self.path / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                for leftover in list((self.path / CACHES).glob("*/.tmp-*")) + list(self.path.glob(".tmp-*")):
                    leftover.unlink(missing_ok=True)
                yield self
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    # ------------------------------------------------------------------ gist caches
    def cache_path(self, cache_id: str) -> Path:
        """Where a cache lives; an id that is not a content address is refused (it names no file)."""
        if not isinstance(cache_id, str) or not CACHE_ID.fullmatch(cache_id):
            raise InputError(f"{str(cache_id)[:80]!r} is not a gist cache id (64 hex digits, as compress_texts "
                             "and retrieval return them)")
        return self.path / CACHES / cache_id[:2] / f"{cache_id}.safetensors"

    def sign(self, cache_id: str, scope: str | None = None) -> str:
        """The signature of ``cache_id`` under this store's secret (what a minted gist tag carries),
        bound to ``scope`` when one is given: it then verifies only for a reader of that scope."""
        self.cache_path(cache_id)  # the id's shape
        message = cache_id if not scope else f"{cache_id}\x00{scope}"
        return hmac.new(_read_secret(self.path), message.encode(), hashlib.sha256).hexdigest()[:32]

    def verify(self, cache_id: str, signature: str, scope: str | None = None) -> bool:
        """True when ``signature`` is this store's for ``cache_id`` in ``scope``: the tag was minted
        by this memory, for a reader of the same scope (None and '' are the unscoped scope)."""
        return bool(CACHE_ID.fullmatch(cache_id)) and hmac.compare_digest(self.sign(cache_id, scope), signature)

    def has_cache(self, cache_id: str) -> bool:
        return self.cache_path(cache_id).is_file()

    def save_cache(self, cache_id: str, cache: GistCache) -> None:
        self._check_writable()
        cache.save(self.cache_path(cache_id))

    def load_cache(self, cache_id: str, expect: dict) -> GistCache:
        """Read one cache, refusing one made by another model (``expect`` is the model's cache identity).

        A cache that is not stored is an InputError when nothing lists it (never stored, or deleted,
        perhaps while this read it), and a CacheFormatError naming the file when the catalogue still
        lists it: then the file was lost (removed by hand, disk damage), and asking again cannot help.
        """
        path = self.cache_path(cache_id)
        try:
            return GistCache.load(path, expect=expect)
        except (CacheFormatError, FileNotFoundError):
            if path.is_file():  # there, but damaged
                raise
        lost = self._lost_cache(cache_id)
        if lost is not None:
            raise lost
        raise InputError(f"no gist cache {cache_id!r} in {self.path}; compress the text first")

    def _lost_cache(self, cache_id: str) -> CacheFormatError | None:
        """The error for a cache the catalogue lists but whose file is missing; None when nothing lists it.

        Told apart from a concurrent delete in one read transaction: while it holds SQLite's shared
        lock no writer commits, and every writer (one at a time, ``writing()``) writes a cache file
        before listing it and unlists it before removing the file. So a cache listed in this
        snapshot whose file is missing was not removed by a delete: its file was lost.
        """
        with self._lock:
            self._db.execute("BEGIN")
            try:
                docs = [r["doc_id"] for r in self._db.execute(
                    "SELECT DISTINCT doc_id FROM chunks WHERE cache_id = ? ORDER BY doc_id", (cache_id,))]
                text = self._db.execute("SELECT 1 FROM texts WHERE cache_id = ?", (cache_id,)).fetchone()
                if self.has_cache(cache_id) or not (docs or text):
                    return None
            finally:
                self._db.commit()
        return _lost_cache_error(self.cache_path(cache_id), docs)

    def register_text(self, cache_id: str, n_tokens: int) -> None:
        """Keep a cache made by ``compress_texts`` when documents that share it are deleted."""
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO texts VALUES (?, ?)", (cache_id, n_tokens))

    def _drop_unreferenced(self, cache_ids) -> None:
        for cid in set(cache_ids):
            used = self._db.execute("SELECT 1 FROM chunks WHERE cache_id = ? UNION SELECT 1 FROM texts WHERE cache_id = ?",
                                    (cid, cid)).fetchone()
            if used is None:
                self.cache_path(cid).unlink(missing_ok=True)

    # ------------------------------------------------------------------ catalogue
    def _query(self, sql: str, args=()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def put_document(self, doc, chunks, cache_ids: list[str], built_with: str) -> None:
        """Record a document and its chunks in one transaction, replacing an older record of it."""
        self._check_writable()
        rows = [(chunk_id(doc.doc_id, c.index), doc.doc_id, c.index, c.start, c.end, len(c.token_ids), cid)
                for c, cid in zip(chunks, cache_ids)]
        with self._lock:
            old = [r["cache_id"] for r in self._db.execute("SELECT cache_id FROM chunks WHERE doc_id = ?", (doc.doc_id,))]
            with self._db:
                self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc.doc_id,))
                self._db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                                 (doc.doc_id, doc.text, json.dumps(doc.metadata), doc.text_sha256, built_with,
                                  sum(len(c.token_ids) for c in chunks)))
                self._db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._drop_unreferenced(old)

    def delete_document(self, doc_id: str) -> None:
        self._check_writable()
        with self._lock:
            old = [r["cache_id"] for r in self._db.execute("SELECT cache_id FROM chunks WHERE doc_id = ?", (doc_id,))]
            with self._db:
                self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
                self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            self._drop_unreferenced(old)

    def document(self, doc_id: str) -> dict | None:
        """A document's record (text, metadata, text_sha256, built_with, n_tokens), or None."""
        rows = self._query("SELECT * FROM documents WHERE doc_id = ?", (doc_id,))
        return _with_metadata(rows[0]) if rows else None

    def documents(self) -> list[dict]:
        """Every document, in the order it was first added, without its text."""
        rows = self._query("SELECT d.doc_id, d.metadata, d.n_tokens, count(c.chunk_id) AS chunks FROM documents d "
                           "LEFT JOIN chunks c ON c.doc_id = d.doc_id GROUP BY d.doc_id ORDER BY d.rowid")
        return [{"doc_id": r["doc_id"], "metadata": json.loads(r["metadata"]), "tokens": r["n_tokens"],
                 "chunks": r["chunks"]} for r in rows]

    def stale_documents(self, built_with: str) -> list[str]:
        """Ids of documents built with another model, chunking or embedder than ``built_with``."""
        return [r["doc_id"] for r in self._query("SELECT doc_id FROM documents WHERE built_with != ? ORDER BY rowid",
                                                 (built_with,))]

    def chunks_by_id(self, chunk_ids: list[str]) -> dict[str, dict]:
        """Chunk records (with text and metadata) of the stored ones among ``chunk_ids``."""
        marks = ",".join("?" * len(chunk_ids))
        rows = self._query(_CHUNK_SELECT + f"WHERE c.chunk_id IN ({marks})", list(chunk_ids)) if chunk_ids else []
        return {r["chunk_id"]: _with_metadata(r) for r in rows}

    def chunks_of(self, doc_ids: list[str]) -> list[dict]:
        """All chunks of the documents, document by document in the given order, each in text order."""
        out = []
        for doc_id in doc_ids:
            out += [_with_metadata(r) for r in self._query(_CHUNK_SELECT + "WHERE c.doc_id = ? ORDER BY c.idx", (doc_id,))]
        return out

    def stats(self) -> dict:
        row = self._query("SELECT (SELECT count(*) FROM documents) AS documents, count(*) AS chunks, "
                          "coalesce(sum(n_tokens), 0) AS tokens, count(DISTINCT cache_id) AS caches FROM chunks")[0]
        disk = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return {**dict(row), "bytes_on_disk": disk}


def _read_secret(path: Path) -> bytes:
    """The tag-signing secret of the store at ``path``, refusing a missing or damaged one."""
    try:
        secret = (path / SECRET).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} has no {SECRET} (a store from before signed gist tags, opened read-only); "
                         "open it once without read_only to create it") from None
    if len(secret) != SECRET_BYTES:  # an empty or cut key is one anyone could sign with: refuse it
        raise CacheFormatError(f"{path / SECRET} is damaged ({len(secret)} bytes, not {SECRET_BYTES}); delete "
                               "it and open the store without read_only to make a new one (tags minted before "
                               "become plain text)")
    return secret


def _lost_cache_error(path: Path, docs: list[str]) -> CacheFormatError:
    """The error for the cache file ``path`` that the catalogue lists (for ``docs``, or for a text
    ``compress_texts`` compressed when there are none) but that is missing."""
    if docs:
        names = ", ".join(map(repr, docs[:3])) + (" ..." if len(docs) > 3 else "")
        what, them = (f"documents {names}", "them") if len(docs) > 1 else (f"document {names}", "it")
        fix = f"delete {them} and add {them} again (memory.delete({docs[0]!r}), then memory.add with the same text)"
    else:
        what, fix = "a text compress_texts compressed", "compress that text again (memory.compress_texts)"
    return CacheFormatError(f"{path} is missing, though the catalogue lists it (the gist cache of {what}); "
                            f"the store is damaged: {fix}, or restore the store from a copy")


def _with_metadata(row: sqlite3.Row) -> dict:
    return dict(row, metadata=json.loads(row["metadata"]))
