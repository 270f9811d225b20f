"""Lexical re-ranking of the vector search's candidates: BM25 fused with the dense ranking.

A sentence embedding summarises a chunk; a question that names a rare string ("the pass key",
"Brym Trolkouxhoun") can then rank the one chunk that holds it below chunks that are closer in
overall topic. On the test split, every hybrid-mode miss of runs/pool-k8c10's step 4500 (4 of
18 pass keys) was such a retrieval miss: the gists of the chunks it did retrieve were read right
14 times of 14. So ``retrieve`` takes a wider set of dense candidates, scores their text with
BM25 (Robertson and Zaragoza, 2009; the statistics are those of the candidates themselves) and
orders them by a mix of the two scores, each scaled over the candidates (relative score fusion,
as Weaviate's hybrid search does; a rank fusion such as LangChain's ``EnsembleRetriever`` would
let a chunk that is first by far lexically lose to one ranked second and first). Pure Python, no
index to build: the candidates are a few dozen chunks.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"\w+")

#: The lexical score's share of the fused score (the dense score has the rest).
LEXICAL_WEIGHT = 0.5


def words(text: str) -> list[str]:
    """Lower-cased word tokens (any script: ``\\w`` is Unicode-aware)."""
    return [w.lower() for w in _WORD.findall(text)]


def bm25(query: str, texts: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """The Okapi BM25 score of each of ``texts`` for ``query``, with document frequencies taken over
    ``texts``. A text sharing no word with the query scores 0."""
    docs = [words(t) for t in texts]
    if not docs:
        return []
    mean_len = sum(map(len, docs)) / len(docs) or 1.0
    df = Counter(w for d in docs for w in set(d))
    terms = set(words(query))
    scores = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for w in terms & tf.keys():
            idf = math.log(1 + (len(docs) - df[w] + 0.5) / (df[w] + 0.5))
            score += idf * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(doc) / mean_len))
        scores.append(score)
    return scores


def fuse(query: str, texts: list[str], similarities: list[float], weight: float = LEXICAL_WEIGHT) -> list[int]:
    """Indices into ``texts`` in fused order, best first.

    Relative score fusion: each of the two scores is min-max scaled over the candidates and the
    two are mixed, ``(1 - weight) * dense + weight * lexical``. Unlike rank fusion it keeps how far
    ahead a chunk is: a chunk holding the question's rare words scores far above the rest
    lexically, and wins even from a low dense rank. Ties keep the dense order.
    """
    if len(texts) != len(similarities):
        raise ValueError(f"{len(texts)} texts but {len(similarities)} similarities")
    lexical = bm25(query, texts)
    dense, lexical = _scaled(similarities), _scaled(lexical)
    fused = [(1 - weight) * d + weight * w for d, w in zip(dense, lexical)]
    return sorted(range(len(texts)), key=lambda i: (-fused[i], i))


def _scaled(scores: list[float]) -> list[float]:
    low, high = min(scores, default=0.0), max(scores, default=0.0)
    return [(s - low) / (high - low) if high > low else 0.0 for s in scores]
