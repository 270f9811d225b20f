"""GistCache: the per-layer keys and values of gist tokens only, and their positions.

A cache is data, never code (docs/design.md invariant 5): it is saved as safetensors with string
metadata, and loading refuses pickles, truncated files and caches made by another base model,
adapter or gist configuration with an error naming both sides.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import FORMAT_VERSION
from .errors import CacheFormatError, CacheMismatchError
from .loading import is_legacy_identity

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # raw pickle protocol 2+, or torch.save's zip archive


@dataclass
class GistCache:
    """Keys and values of gist tokens for one or more chunks.

    Attributes:
        keys, values: per layer, (n_kv_heads, n_entries, head_dim) tensors.
        positions: (n_entries,) RoPE position each entry was computed at.
        next_position: where the first token placed on top of this cache goes.
        context_tokens: how many context tokens the gists stand for.
        meta: identity of what made it: base_model, adapter, num_gist_tokens, chunk_tokens, dtype.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    positions: torch.Tensor
    next_position: int
    context_tokens: int
    meta: dict = field(default_factory=dict)

    @property
    def num_entries(self) -> int:
        """KV entries per layer (gist tokens kept)."""
        return int(self.positions.numel())

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        """Bytes of the kept keys and values over all layers."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    @property
    def bytes_per_entry(self) -> int:
        return self.nbytes // max(self.num_entries, 1)

    @property
    def full_context_nbytes(self) -> int:
        """Bytes the full context's KV cache would take in the same model and dtype."""
        return self.bytes_per_entry * self.context_tokens

    @property
    def compression_ratio(self) -> float:
        """Context tokens per kept KV entry."""
        return self.context_tokens / max(self.num_entries, 1)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "GistCache":
        move = lambda t: t.to(device=device, dtype=dtype or t.dtype)  # noqa: E731
        meta = dict(self.meta, dtype=str(dtype or self.keys[0].dtype).replace("torch.", ""))
        return GistCache([move(k) for k in self.keys], [move(v) for v in self.values],
                         self.positions.to(device), self.next_position, self.context_tokens, meta)

    @staticmethod
    def concat(caches: list["GistCache"]) -> "GistCache":
        """Join caches in chunk order, keeping each entry at the position it was computed at.

        The question then starts at the largest ``next_position``: the convention of
        ``mask.episode_layout`` that training uses (docs/design.md invariant 3).
        """
        if not caches:
            raise ValueError("concat needs at least one cache")
        first = caches[0]
        for other in caches[1:]:
            check_compatible(first.meta, other.meta, what="concatenated cache")
        layers = range(first.num_layers)
        return GistCache(
            keys=[torch.cat([c.keys[i] for c in caches], dim=1) for i in layers],
            values=[torch.cat([c.values[i] for c in caches], dim=1) for i in layers],
            positions=torch.cat([c.positions for c in caches]),
            next_position=max(c.next_position for c in caches),
            context_tokens=sum(c.context_tokens for c in caches),
            meta=dict(first.meta, chunks=sum(int(c.meta.get("chunks", 1)) for c in caches)),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically as safetensors (temp file in the same directory, then rename)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"positions": self.positions.contiguous().cpu()}
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            tensors[f"layers.{i}.keys"] = k.contiguous().cpu()
            tensors[f"layers.{i}.values"] = v.contiguous().cpu()
        meta = {"format": "gist-cache", "format_version": str(FORMAT_VERSION),
                "next_position": str(self.next_position), "context_tokens": str(self.context_tokens),
                "num_layers": str(self.num_layers), "meta": json.dumps(self.meta, sort_keys=True)}
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expect: dict | None = None, device: str | torch.device = "cpu") -> "GistCache":
        """Read a cache file; with ``expect`` (e.g. ``GistModel.cache_identity``) refuse a mismatch."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise CacheFormatError(f"{path}: no such gist cache file")
        with open(path, "rb") as fh:
            head = fh.read(9)
        if head[8:9] != b"{":  # a safetensors file starts with an 8-byte length, then its JSON header
            if head[:1] == _PICKLE_MAGIC[0] or head[:4] == _PICKLE_MAGIC[1]:
                raise CacheFormatError(f"{path}: this is a pickle/torch.save file, not a gist cache; "
                                       "gist-memory only reads safetensors and never unpickles files")
            raise CacheFormatError(f"{path}: not a gist cache (not a safetensors file)")
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as fh:
                header = fh.metadata() or {}
                if header.get("format") != "gist-cache":
                    raise CacheFormatError(f"{path}: a safetensors file, but not a gist cache (no gist-cache metadata)")
                n = int(header["num_layers"])
                keys = [fh.get_tensor(f"layers.{i}.keys") for i in range(n)]
                values = [fh.get_tensor(f"layers.{i}.values") for i in range(n)]
                positions = fh.get_tensor("positions")
            version = int(header.get("format_version", -1))
            numbers = int(header["next_position"]), int(header["context_tokens"])
            meta = json.loads(header["meta"])
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
            if isinstance(exc, CacheFormatError):
                raise
            raise CacheFormatError(f"{path}: not a readable gist cache (truncated or corrupted?): {exc}") from None
        if not isinstance(meta, dict):
            raise CacheFormatError(f"{path}: corrupted gist cache (its meta header is not a JSON object)")
        if version != FORMAT_VERSION:
            raise CacheFormatError(f"{path}: cache format version {header.get('format_version')} "
                                   f"is not supported (this gist-memory reads version {FORMAT_VERSION})")
        entries = positions.numel()
        if positions.dim() != 1 or any(t.dim() != 3 or t.shape[1] != entries for t in keys + values):
            raise CacheFormatError(f"{path}: corrupted gist cache (key/value shapes do not match "
                                   f"{entries} positions)")
        cache = cls(keys, values, positions, *numbers, meta)
        if expect is not None:
            check_compatible(expect, cache.meta, what=f"cache {path}")
        return cache


IDENTITY_KEYS = ("base_model", "adapter", "num_gist_tokens")


def check_compatible(expected: dict, found: dict, what: str = "cache") -> None:
    """Raise CacheMismatchError when ``found`` was made by another model, adapter or k."""
    for key in IDENTITY_KEYS:
        # Models and adapters are "label#digest": the label is how they were named (a path, a hub
        # id), the digest of their weights is what they are; the same model under another path matches.
        if str(expected.get(key)).split("#")[-1] != str(found.get(key)).split("#")[-1]:
            old = key == "base_model" and is_legacy_identity(str(found.get(key)))
            raise CacheMismatchError(
                f"{what} was made with {key}={found.get(key)!r}, but this model has {key}={expected.get(key)!r}"
                + (" (an identity of gist-memory 0.1, which did not cover the weights)" if old else "")
                + "; re-compress the text with this model (a store: GistMemory(path, rebuild=True)), or load the "
                "model and adapter that made the cache")
