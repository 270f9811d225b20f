"""Metrics: what each one measures, which direction is better, and how it is computed.

Quality metrics score a Record's prediction; cost metrics are measured while it is produced.
Every metric declares its direction and aggregation (as lm-evaluation-harness does), and the
report prints the direction next to each column.

RAGAS is imported only inside the functions that use it (``import ragas`` takes seconds), and
always with ``RAGAS_DO_NOT_TRACK=true`` set, so it sends no analytics.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Literal

from gist_memory.data.scoring import contains_match

from .records import Record

__all__ = ["METRICS", "Metric", "PeakMemory", "score_basic", "score_judge", "score_offline"]


@dataclass(frozen=True)
class Metric:
    """A metric's identity: name, direction, aggregation over samples, and what it means."""

    name: str
    higher_is_better: bool
    kind: Literal["quality", "cost"]
    description: str
    aggregation: Literal["mean", "max"] = "mean"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("exact_match", True, "quality", "niah, fact and qa: the normalised reference appears in the answer; "
           "a failed cell counts as 0"),
    Metric("semantic_similarity", True, "quality", "theme and qa: RAGAS SemanticSimilarity, cosine of the "
           "answer's and the reference's embeddings (the memory's local embedder, all-MiniLM-L6-v2 by default)"),
    Metric("string_similarity", True, "quality", "theme and qa: RAGAS NonLLMStringSimilarity, 1 - normalised "
           "Levenshtein distance between answer and reference"),
    Metric("rouge_l", True, "quality", "theme and qa: RAGAS RougeScore, ROUGE-L F1 of answer against reference"),
    Metric("context_recall", True, "quality", "samples with a needle: RAGAS NonLLMContextRecall, share of the "
           "chunks holding the needle that are among the contexts the answer used"),
    Metric("faithfulness", True, "quality", "RAGAS Faithfulness (LLM judge): share of the answer's claims "
           "supported by the contexts"),
    Metric("answer_accuracy", True, "quality", "RAGAS AnswerAccuracy (LLM judge): agreement of answer and "
           "reference, 0-1"),
    Metric("ttft_s", False, "cost", "seconds from the question to the first answer token (retrieval, "
           "prefill, first decode step)"),
    Metric("total_s", False, "cost", "seconds from the question to the whole answer"),
    Metric("tokens_per_s", True, "cost", "answer tokens (re-tokenised) per second after the first"),
    Metric("prompt_tokens", False, "cost", "tokens prefilled at query time (question, plus chunk text in "
           "rag and full)"),
    Metric("kv_entries", False, "cost", "KV entries per layer held when the answer starts: the memory (gist "
           "entries, or chunk/document tokens in the prompt) plus the prompt prefilled"),
    Metric("kv_bytes", False, "cost", "bytes of those KV entries over all layers"),
    Metric("compression_ratio", True, "cost", "document tokens per KV entry standing for them (kv_entries "
           "less the question's own prompt tokens)"),
    Metric("peak_memory_mb", False, "cost", "peak memory while answering: CUDA max allocated on GPU, "
           "process peak RSS on CPU", aggregation="max"),
    Metric("ingest_s_per_1k_tokens", False, "cost", "seconds to ingest (chunk, embed, compress) per 1,000 "
           "document tokens; shared by all modes of a run"),
)}


# --------------------------------------------------------------------------- quality
def score_basic(records: list[Record]) -> None:
    """Exact match on niah, fact and qa cells (failed cells score 0)."""
    for r in records:
        if r.task in ("niah", "fact", "qa"):
            r.scores["exact_match"] = 0.0 if r.error else float(contains_match(r.prediction, r.reference))


def _ragas():
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"  # RAGAS sends usage analytics unless told not to
    try:
        import ragas  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("RAGAS metrics need the evals extra: pip install -e '.[evals]' "
                           "(ragas==0.4.3 with langchain-community==0.4.1); or pass --metrics basic") from exc


def _ragas_embeddings(embed: Callable[[list[str]], list]):
    """``embed`` (texts -> vectors, e.g. gist_memory's Embedder) as a RAGAS embedding model."""
    from ragas.embeddings.base import BaseRagasEmbedding

    class _Embeddings(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs) -> list[float]:
            return [float(x) for x in embed([text])[0]]

        async def aembed_text(self, text: str, **kwargs) -> list[float]:
            return self.embed_text(text)

    return _Embeddings()


def score_offline(records: list[Record], embed: Callable[[list[str]], list]) -> None:
    """RAGAS metrics that need no LLM, on every cell that did not fail.

    Args:
        embed: texts -> vectors for SemanticSimilarity; the run passes the memory's own local
            embedder (all-MiniLM-L6-v2 by default), so nothing is downloaded.
    """
    _ragas()
    from ragas.metrics.collections import NonLLMStringSimilarity, RougeScore, SemanticSimilarity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas.dataset_schema import SingleTurnSample
        from ragas.metrics import NonLLMContextRecall  # no collections version in ragas 0.4.3

    done = [r for r in records if not r.error]
    # A passkey or a one-word fact is right or wrong: text similarity to it would only add noise.
    prose = [r for r in done if r.task not in ("niah", "fact")]
    pairs = [{"reference": r.reference, "response": r.prediction} for r in prose]
    for name, metric in (("semantic_similarity", SemanticSimilarity(embeddings=_ragas_embeddings(embed))),
                         ("string_similarity", NonLLMStringSimilarity()),
                         ("rouge_l", RougeScore(rouge_type="rougeL", mode="fmeasure"))):
        for r, result in zip(prose, metric.batch_score(pairs) if pairs else []):
            r.scores[name] = float(result.value)
    recall = NonLLMContextRecall()
    for r in done:
        if r.reference_contexts and r.contexts:
            sample = SingleTurnSample(retrieved_contexts=r.contexts, reference_contexts=r.reference_contexts)
            r.scores["context_recall"] = float(asyncio.run(recall.single_turn_ascore(sample)))


def score_judge(records: list[Record], base_url: str, model: str) -> None:
    """LLM-judged RAGAS metrics (Faithfulness, AnswerAccuracy) through an OpenAI-compatible endpoint.

    The API key is read from ``OPENAI_API_KEY`` (any string for a local server that ignores it).
    """
    _ragas()
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory
    from ragas.metrics.collections import AnswerAccuracy, Faithfulness

    client = AsyncOpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "not-needed"))
    llm = llm_factory(model, client=client)
    done = [r for r in records if not r.error]
    answered = [r for r in done if r.prediction.strip()]
    for r in done:
        if not r.prediction.strip():  # RAGAS refuses an empty response; it answers nothing
            r.scores["answer_accuracy"] = 0.0
    accuracy = AnswerAccuracy(llm=llm).batch_score(
        [{"user_input": r.question, "response": r.prediction, "reference": r.reference} for r in answered])
    for r, result in zip(answered, accuracy):
        r.scores["answer_accuracy"] = float(result.value)
    grounded = [r for r in answered if r.contexts]
    faithful = Faithfulness(llm=llm).batch_score(
        [{"user_input": r.question, "response": r.prediction, "retrieved_contexts": r.contexts} for r in grounded])
    for r, result in zip(grounded, faithful):
        r.scores["faithfulness"] = float(result.value)


# --------------------------------------------------------------------------- cost
class PeakMemory:
    """Peak memory of the block it wraps, in MiB: CUDA max allocated on a GPU device, else the
    process's peak resident set size.

    On Linux the RSS high-water mark is reset on entry (``/proc/self/clear_refs``), so each block
    reports its own peak; where that is not possible the process's lifetime peak is reported.
    """

    def __init__(self, device) -> None:
        self.cuda = getattr(device, "type", str(device)).startswith("cuda")
        self.device = device
        self.mb = 0.0

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch

            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = _peak_rss_mb()


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
