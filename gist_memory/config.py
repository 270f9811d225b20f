"""Typed configuration of the gist engine. Imports without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Format version written into every cache and adapter file; bump on an incompatible change.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GistConfig:
    """How a text is compressed.

    Attributes:
        num_gist_tokens: k, the gist tokens appended to each chunk; only their KV is kept.
        chunk_tokens: the longest chunk, in model tokens, that is compressed into k gists.
            512 is what the shipped adapter was trained on (64x compression at k=8): long enough
            that a chunk holds a paragraph or two, short enough that every chunk of a document
            can be compressed in one batch on a CPU.
    """

    num_gist_tokens: int = 8
    chunk_tokens: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.num_gist_tokens, int) or not 1 <= self.num_gist_tokens <= 256:
            raise ValueError(f"num_gist_tokens must be an integer in [1, 256], got {self.num_gist_tokens!r}")
        if not isinstance(self.chunk_tokens, int) or not 8 <= self.chunk_tokens <= 32768:
            raise ValueError(f"chunk_tokens must be an integer in [8, 32768], got {self.chunk_tokens!r}")

    @property
    def compression_ratio(self) -> float:
        """Context tokens per gist token for a full chunk."""
        return self.chunk_tokens / self.num_gist_tokens

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GistConfig":
        known = {k: data[k] for k in ("num_gist_tokens", "chunk_tokens") if k in data}
        return cls(**known)
