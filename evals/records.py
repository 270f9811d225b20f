"""Record: one question asked in one mode, with what came back, its scores and its cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Record:
    """One (sample, mode, k) cell of a run; ``results.json`` lists them all under ``samples``.

    Attributes:
        sample_id, task, question, reference: from the dataset.
        mode: rag, gist, hybrid or full.
        gist_tokens: k of the model that answered (gist and hybrid depend on it).
        prediction: the answer text ("" when the cell failed).
        contexts: texts the answer was drawn from, as RAGAS sees them: the retrieved chunks (rag,
            hybrid), the chunks whose gists were used (gist), the whole document (full).
        reference_contexts: the chunk texts that hold the needle, where the sample has one.
        context_tokens: the document's length in the model's tokens.
        context_length: the length cell the sample was built for (NIAH, theme), else context_tokens.
        needle_position: depth of the needle in the document, 0..1, where there is one.
        scores: quality metrics by name.
        cost: cost metrics by name.
        error: ``"ExceptionType: message"`` when ingest or the query crashed; the cell then
            scores 0 on exact match and is left out of every other average.
    """

    sample_id: str
    task: str
    mode: str
    gist_tokens: int
    question: str
    reference: str
    prediction: str = ""
    contexts: list[str] = field(default_factory=list)
    reference_contexts: list[str] | None = None
    context_tokens: int = 0
    context_length: int = 0
    needle_position: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)
