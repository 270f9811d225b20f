"""Typed configuration of the gist engine. Imports without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

#: Format version written into every cache and adapter file; bump on an incompatible change.
FORMAT_VERSION = 1
#: The newest adapter format this version reads: 2 adds a context LoRA (``context_lora``), 3 a
#: ``prompt_format`` other than "chat"; an adapter without them is still written as version 1, so
#: older releases keep reading it (and refuse what they would read wrongly).
ADAPTER_FORMAT_VERSION = 3

#: The query modes of the pipeline: text of the top-k chunks, gists of every chunk, gists of the
#: top-k chunks, the whole text. The one definition; the harness and the integrations use it.
MODES = ("rag", "gist", "hybrid", "full")
Mode = Literal["rag", "gist", "hybrid", "full"]

#: How rag and hybrid choose their chunks: vector search re-ranked with BM25, or vector search alone.
RETRIEVALS = ("fusion", "dense")

#: How the question after the gists is written for the adapter: "chat", the tokenizer's chat
#: template as it stands (for SmolLM2 that adds a 21-token default system turn: "What is the pass
#: key?" is 36 prompt tokens); "chat-no-system", the same template without any system turn (15).
#: The base model answering without gists (rag, full) always reads "chat".
PROMPT_FORMATS = ("chat", "chat-no-system")

#: Bounds of the gist settings (inclusive).
GIST_TOKENS_RANGE = (1, 256)
CHUNK_TOKENS_RANGE = (8, 32768)


def check_gist_settings(num_gist_tokens: int | None = None, chunk_tokens: int | None = None,
                        names: tuple[str, str] = ("num_gist_tokens", "chunk_tokens")) -> None:
    """Raise ValueError, naming the field, for a k or chunk length outside its bounds (None: unset)."""
    for value, (lo, hi), name in ((num_gist_tokens, GIST_TOKENS_RANGE, names[0]),
                                  (chunk_tokens, CHUNK_TOKENS_RANGE, names[1])):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi):
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class GistConfig:
    """How a text is compressed.

    Attributes:
        num_gist_tokens: k, the gist tokens appended to each chunk; only their KV is kept.
        chunk_tokens: the longest chunk, in model tokens, that is compressed into k gists.
            512 is what the shipped adapter was trained on (64x compression at k=8): long enough
            that a chunk holds a paragraph or two, short enough that every chunk of a document
            can be compressed in one batch on a CPU.
        prompt_format: how the question after the gists is written (:data:`PROMPT_FORMATS`); fixed
            by the adapter, which was trained reading questions in it.
    """

    num_gist_tokens: int = 8
    chunk_tokens: int = 512
    prompt_format: str = "chat"

    def __post_init__(self) -> None:
        check_gist_settings(self.num_gist_tokens, self.chunk_tokens)
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")

    @property
    def compression_ratio(self) -> float:
        """Context tokens per gist token for a full chunk."""
        return self.chunk_tokens / self.num_gist_tokens

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GistConfig":
        known = {k: data[k] for k in ("num_gist_tokens", "chunk_tokens", "prompt_format") if k in data}
        return cls(**known)
