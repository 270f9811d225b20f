"""Documents: what ``GistMemory.add`` accepts, and how one becomes token-exact chunks.

``add`` takes plain strings and the document objects of the ecosystems around us without
importing them: anything with ``.page_content`` and ``.metadata`` (LangChain), anything with
``.text`` or ``.get_content()`` and ``.metadata`` (LlamaIndex), and dicts
``{"text": ..., "metadata": ..., "id": ...}``. A document's id is the ``id`` of a dict, else
``id`` or ``doc_id`` in its metadata, else a hash of its text, so adding the same text twice is
idempotent.

Chunks are cut on the model's own tokens (``compress.split_tokens``), and each chunk's text is
the character span from its first token to the first token of the next chunk, so with no
overlap the chunks' texts add up to the document exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .compress import split_tokens
from .errors import InputError

#: Metadata keys GistMemory writes on every chunk in the vector index; a document may not set them.
RESERVED_KEYS = ("chunk_index", "cache_id", "n_tokens")


@dataclass(frozen=True)
class Document:
    """A text and its metadata, as stored.

    Attributes:
        text: the whole document.
        metadata: JSON-serialisable; scalar values (str, int, float, bool) can be filtered on
            with ``where=`` in ``GistMemory.query``.
        doc_id: given, or ``doc-`` and the first 16 hex digits of the text's SHA-256.
    """

    text: str
    metadata: dict = field(default_factory=dict)
    doc_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InputError(f"Document.text must be a str, got {type(self.text).__name__}")
        if not self.text.strip():
            raise InputError("Document.text is empty or whitespace only; there is nothing to remember")
        if not isinstance(self.metadata, dict):
            raise InputError(f"Document.metadata must be a dict, got {type(self.metadata).__name__}")
        bad = [k for k in RESERVED_KEYS if k in self.metadata]
        if bad:
            raise InputError(f"metadata keys {bad} are reserved for gist-memory's chunk records; rename them")
        try:
            json.dumps(self.metadata)
        except (TypeError, ValueError) as exc:
            raise InputError(f"metadata must be JSON-serialisable ({exc}); convert its values to str or numbers") from None
        if not self.doc_id:
            object.__setattr__(self, "doc_id", str(self.metadata.get("id") or self.metadata.get("doc_id")
                                                   or f"doc-{self.text_sha256[:16]}"))

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A token-exact piece of a document: ``text[start:end]`` holds tokens ``token_ids``."""

    index: int
    start: int
    end: int
    token_ids: list[int]


def _metadata_dict(metadata) -> dict:
    """A copy of a document's metadata (None: none), refusing what is not a mapping."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"metadata must be a dict, got {type(metadata).__name__}")
    return dict(metadata)


def _is_one_document(items) -> bool:
    """True for a single document rather than a list of them. LangChain and LlamaIndex documents
    are pydantic models, which iterate over their fields, so they are told apart by attribute."""
    return isinstance(items, (str, dict, Document)) or any(
        hasattr(items, name) for name in ("page_content", "get_content", "text"))


def _fields(item) -> tuple[object, dict, str]:
    """(text, metadata, id) of one item in any accepted shape."""
    if isinstance(item, str):
        return item, {}, ""
    if isinstance(item, Document):
        return item.text, dict(item.metadata), item.doc_id
    if isinstance(item, dict):
        if "text" not in item:
            raise InputError(f"a dict document needs a 'text' key, got keys {sorted(item)}")
        return item["text"], _metadata_dict(item.get("metadata")), str(item.get("id") or "")
    metadata = _metadata_dict(getattr(item, "metadata", None))
    if hasattr(item, "page_content"):
        return item.page_content, metadata, ""
    if hasattr(item, "get_content"):
        return item.get_content(), metadata, ""
    if hasattr(item, "text"):
        return item.text, metadata, ""
    raise InputError(f"cannot read a document from a {type(item).__name__}; pass a str, a dict with 'text', "
                     "or an object with .page_content (LangChain) or .text / .get_content() (LlamaIndex)")


def to_documents(items, metadata: dict | list[dict] | None = None) -> list[Document]:
    """Normalise ``add``'s input; ``metadata`` (one dict for all, or one per item) fills in keys
    an item does not set. Repeats of one document collapse; one id with two texts is an error."""
    if _is_one_document(items):
        items = [items]
    elif not isinstance(items, Iterable):
        raise InputError(f"add() takes a str, a dict with 'text', a document object or a list of them; got "
                         f"{type(items).__name__}")
    items = list(items)
    if not items:
        raise InputError("add() got an empty list; pass at least one text or document")
    given = metadata if isinstance(metadata, list) else [metadata]
    odd = [m for m in given if m is not None and not isinstance(m, dict)]
    if odd:
        raise InputError(f"metadata must be one dict for every item or a list of one dict per item, got "
                         f"{type(odd[0]).__name__}")
    if isinstance(metadata, list) and len(metadata) != len(items):
        raise InputError(f"metadata is a list of {len(metadata)} dicts for {len(items)} items; give one per item "
                         "or a single dict for all")
    docs: dict[str, Document] = {}
    for i, item in enumerate(items):
        shared = (metadata[i] if isinstance(metadata, list) else metadata) or {}
        try:
            text, meta, doc_id = _fields(item)
            doc = Document(text, {**shared, **meta}, doc_id)
        except InputError as exc:
            raise InputError(f"item {i} of add(): {exc}") from None
        seen = docs.get(doc.doc_id)
        if seen is not None and seen.text != doc.text:
            raise InputError(f"items give document id {doc.doc_id!r} to two different texts; give each its own id")
        docs.setdefault(doc.doc_id, doc)
    return list(docs.values())


def chunk_text(tokenizer, text: str, chunk_tokens: int, overlap: int = 0) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``chunk_tokens`` tokens, ``overlap`` shared between neighbours."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if not ids:
        raise InputError("the text has no tokens; there is nothing to remember")
    n = len(ids)
    chunks = []
    for i, span in enumerate(split_tokens(list(range(n)), chunk_tokens, overlap)):
        first, after = span[0], span[-1] + 1
        start = 0 if first == 0 else offsets[first][0]
        end = len(text) if after == n else offsets[after][0]
        chunks.append(Chunk(i, start, end, ids[first:after]))
    return chunks
