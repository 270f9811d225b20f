"""A memory directory's ``store.json``: what made the store, read back with one-line errors.

The manifest records the model, adapter, gist settings, chunking, embedder and versions that
built a store (``GistMemory`` compares them when it reopens one); it is replaced atomically and
carries a format version that newer code may raise and older code refuses to guess at.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import CacheFormatError

MANIFEST = "store.json"
STORE_FORMAT_VERSION = 1

#: What every manifest holds (a section's fields that reopening a store reads); a file without
#: them was not written by this store. None: a plain value, not a section.
_MANIFEST_KEYS = {"build": ("base_model", "embedder", "chunk_tokens", "chunk_overlap"), "built_with": None,
                  "model": ("source",), "chunking": (), "vector_index": ("collection",)}


def _manifest_gaps(manifest: dict) -> list[str]:
    """What a manifest lacks: a key, a section that is not a mapping, or a field of a section."""
    gaps = []
    for key, inner in _MANIFEST_KEYS.items():
        if key not in manifest:
            gaps.append(key)
        elif inner is not None and not isinstance(manifest[key], dict):
            gaps.append(f"{key} (a mapping)")
        else:
            gaps += [f"{key}.{name}" for name in inner or () if name not in manifest[key]]
    source = manifest.get("model", {}).get("source") if not gaps else None
    if source is not None and not (isinstance(source, dict) and {"base", "adapter"} <= set(source)):
        gaps.append("model.source (null, or its base and adapter)")
    return gaps


def read_manifest(path: str | os.PathLike) -> dict | None:
    """The ``store.json`` of a memory directory, or None when there is none.

    Raises CacheFormatError, naming the file, when it is not JSON, not a store manifest, or
    written by a newer format than this version reads.
    """
    path = Path(path) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheFormatError(f"{path} is not valid JSON ({exc}); it describes the store: restore it from a "
                               "copy, or build the store anew in an empty directory") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "gist-memory-store":
        raise CacheFormatError(f"{path} is not a gist-memory store manifest; point persist_dir at a directory "
                               "GistMemory made, or at an empty one")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise CacheFormatError(f"{path} has no valid format_version (got {version!r}); it is damaged: restore it "
                               "from a copy, or build the store anew")
    if version > STORE_FORMAT_VERSION:
        raise CacheFormatError(f"{path} has store format version {version!r}; this gist-memory reads up to "
                               f"{STORE_FORMAT_VERSION}. Upgrade gist-memory to open it")
    missing = _manifest_gaps(manifest)
    if missing:
        raise CacheFormatError(f"{path} lacks {', '.join(missing)}; it is damaged: restore it from a copy, or "
                               "build the store anew")
    return manifest


def write_manifest(path: str | os.PathLike, manifest: dict) -> None:
    """Replace the ``store.json`` of the memory directory ``path`` atomically."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the manifest is for anyone who can read the store
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(manifest, format="gist-memory-store", format_version=STORE_FORMAT_VERSION), fh, indent=2)
    os.replace(tmp, Path(path) / MANIFEST)
