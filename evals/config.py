"""EvalConfig: every option of an evaluation run. Its fields and docstring *are* ``evals/run.py``'s
command line (jsonargparse), so ``--help`` never drifts from the code. Imports without torch."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields
from typing import Literal

from gist_memory.config import MODES, RETRIEVALS, Mode, check_gist_settings
#: What ``--metrics`` turns on, cumulatively: ``basic`` is exact match and cost only; ``offline``
#: adds the RAGAS metrics that need no LLM (semantic similarity with the local embedding model,
#: string similarity, ROUGE-L, non-LLM context recall).
METRIC_SETS = ("basic", "offline")


def _ints(text: str, field: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{field} must be comma-separated integers such as 1024,2048, got {text!r}") from None
    if not values:
        raise ValueError(f"{field} is empty; give at least one value")
    return values


@dataclass
class EvalConfig:
    """Evaluate gist-memory's answer modes side by side on one dataset, model and machine.

    Every sample's document is ingested once into one GistMemory, then its question is asked in
    each mode. Writes OUT/results.json, OUT/report.md, OUT/samples.jsonl and PNG plots, and prints
    the table. Options may be written with dashes or underscores (--top-k or --top_k).

    Attributes:
        mode: rag (top-k chunk texts in the prompt), gist (gist KV of all the document's chunks),
            hybrid (gist KV of the top-k chunks), full (the whole text in the prompt), or all four.
        dataset: comma-separated builders (niah, niah-ko, facts, theme, and out of domain ood-facts,
            ood-theme: see evals/ood.py) and/or paths to .jsonl files.
        limit: samples per dataset; default: one NIAH sample per (length, depth) cell, 4 theme
            samples, whole files.
        model: base model: default (embedded SmolLM2-135M-Instruct, offline), a Hugging Face id
            in the local cache, or a local directory.
        adapter: gist adapter: auto (the shipped one for the default model if present, else
            none), default (the shipped one; an error if absent), none, or a directory.
        gist_tokens: gist tokens per chunk (k) when no adapter fixes it; default 8.
        chunk_tokens: tokens per chunk (rag retrieves chunks, gist compresses each into k
            entries); default: the adapter's, else 512.
        top_k: chunks retrieved per question in rag and hybrid modes.
        retrieval: how rag and hybrid choose chunks: fusion (vector search re-ranked with BM25)
            or dense (vector search alone), as ``GistMemory(retrieval=...)``.
        seed: seed of the dataset builders.
        out: output directory; default eval_runs/<UTC date-time>.
        lengths: NIAH haystack lengths in tokens, comma-separated.
        depths: NIAH needle depths (fractions of the haystack), comma-separated.
        theme_tokens: theme documents are cut to this many tokens.
        metrics: basic (exact match and cost) or offline (also the RAGAS metrics that need no LLM).
        judge: base URL of an OpenAI-compatible endpoint (a hosted API, or a local model served
            by llama.cpp, vLLM or Ollama) to add LLM-judged RAGAS metrics; none by default.
        judge_model: model name to request from the judge endpoint.
        max_new_tokens: most tokens generated per answer.
        device: auto, cpu, cuda, cuda:1 ...
        dtype: auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16, float16.
        embedder: retrieval embedding model: default (embedded all-MiniLM-L6-v2) or a local
            sentence-transformers directory.
        sweep_gist_tokens: comma-separated k values (e.g. 1,2,4,8,16): also run gist and hybrid
            at each k and plot quality and KV bytes against compression ratio. Without an
            adapter the untrained model runs at each k; with adapters, see adapter_dir_pattern.
        adapter_dir_pattern: adapter directory per k for the sweep, with {k} in it
            (e.g. adapters/k{k}).
        progress: show progress bars.
    """

    mode: Mode | Literal["all"] = "hybrid"
    dataset: str = "niah,theme"
    limit: int | None = None
    model: str = "default"
    adapter: str = "auto"
    gist_tokens: int | None = None
    chunk_tokens: int | None = None
    top_k: int = 2
    retrieval: str = "fusion"
    seed: int = 0
    out: str | None = None
    lengths: str = "1024,2048"
    depths: str = "0.1,0.5,0.9"
    theme_tokens: int = 2048
    metrics: Literal["basic", "offline"] = "offline"
    judge: str | None = None
    judge_model: str = "gpt-4o-mini"
    max_new_tokens: int = 48
    device: str = "auto"
    dtype: str = "auto"
    embedder: str = "default"
    sweep_gist_tokens: str | None = None
    adapter_dir_pattern: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES + ("all",):
            raise ValueError(f"mode must be one of {', '.join(MODES)} or all, got {self.mode!r}")
        if not [d for d in str(self.dataset).split(",") if d.strip()]:
            raise ValueError("dataset is empty; name a builder (niah, niah-ko, facts, theme, ood-facts, ood-theme) or a .jsonl file")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1 (or left unset), got {self.limit}")
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {self.retrieval!r}")
        for name in ("top_k", "max_new_tokens", "theme_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_gist_settings(self.gist_tokens, self.chunk_tokens, names=("gist_tokens", "chunk_tokens"))
        if self.metrics not in METRIC_SETS:
            raise ValueError(f"metrics must be one of {', '.join(METRIC_SETS)}, got {self.metrics!r}")
        _ints(self.lengths, "lengths")
        try:
            depths = [float(d) for d in self.depths.split(",") if d.strip()]
        except ValueError:
            raise ValueError(f"depths must be comma-separated fractions such as 0.1,0.5,0.9, got {self.depths!r}") from None
        if not depths or any(not 0 < d < 1 for d in depths):
            raise ValueError(f"depths must be fractions strictly between 0 and 1, got {self.depths!r}")
        if self.sweep_gist_tokens is not None:
            for k in _ints(self.sweep_gist_tokens, "sweep_gist_tokens"):
                check_gist_settings(k, names=("sweep_gist_tokens values", ""))
        if self.adapter_dir_pattern is not None and "{k}" not in self.adapter_dir_pattern:
            raise ValueError(f"adapter_dir_pattern must contain {{k}}, got {self.adapter_dir_pattern!r}")
        if self.adapter_dir_pattern is not None and self.sweep_gist_tokens is None:
            raise ValueError("adapter_dir_pattern is only used with sweep_gist_tokens; pass both or neither")

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.mode == "all" else (self.mode,)

    @property
    def datasets(self) -> list[str]:
        return [d.strip() for d in self.dataset.split(",") if d.strip()]

    @property
    def length_list(self) -> tuple[int, ...]:
        return _ints(self.lengths, "lengths")

    @property
    def depth_list(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self.depths.split(",") if d.strip())

    @property
    def sweep(self) -> tuple[int, ...]:
        return _ints(self.sweep_gist_tokens, "sweep_gist_tokens") if self.sweep_gist_tokens else ()

    def to_dict(self) -> dict:
        return asdict(self)

    def command(self) -> str:
        """The command line that runs this config (options left at their defaults are omitted)."""
        parts = ["python evals/run.py", "--mode", self.mode]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "mode" and value != f.default:
                parts += [f"--{f.name.replace('_', '-')}", shlex.quote(str(value).lower() if isinstance(value, bool) else str(value))]
        return " ".join(parts)
