"""Retrieval by fusion: BM25 over vector search's candidates (gist_memory/lexical.py), and the
choice between it and vector search alone in GistMemory.retrieve."""

from __future__ import annotations

import pytest

from gist_memory import GistMemory
from gist_memory.lexical import bm25, fuse, words
from tiny import tiny_gist_model

PROSE = "The council met in the hall and spoke of roads, harvests and the price of grain this year. "
NEEDLE = "The pass key is 58933. Remember it. 58933 is the pass key. "
QUESTION = "What is the pass key?"


def test_words_are_lower_cased_in_any_script():
    assert words("The Pass-Key 58933, 통행 키!") == ["the", "pass", "key", "58933", "통행", "키"]


def test_bm25_ranks_the_text_with_the_rare_words_first_and_scores_no_overlap_zero():
    texts = [PROSE, PROSE + NEEDLE, "Zebras graze at dawn."]
    scores = bm25(QUESTION, texts)
    assert scores[1] > scores[0] > 0  # "the" and "is" are everywhere and count little
    assert scores[2] == 0.0
    assert bm25(QUESTION, []) == []


def test_fusion_lifts_a_low_dense_rank_that_holds_the_question_words():
    texts = [PROSE] * 3 + [PROSE + NEEDLE] + [PROSE] * 2
    similarities = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65]  # the needle's chunk is the dense search's fourth
    assert fuse(QUESTION, texts, similarities) == [3, 0, 1, 2, 4, 5]
    # The dense score keeps its share: the dense search's last, all else equal, ties with its first.
    texts = [PROSE] * 5 + [PROSE + NEEDLE]
    assert fuse(QUESTION, texts, similarities)[:2] == [0, 5]
    # With nothing lexical to tell them apart, the dense order stands.
    assert fuse("zebra", texts[:5], similarities[:5]) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="5 texts but 6 similarities"):
        fuse(QUESTION, texts[:5], similarities)


class TopicalEmbedder:
    """Puts the question nearer to some prose chunks than to the chunks that name the pass key, as a
    sentence embedder can when a chunk is mostly about something else: vector search alone ranks
    a prose chunk first."""

    identity = "tests.test_lexical.TopicalEmbedder/2"

    def __call__(self, texts):
        return [[1.0, 0.0] if t.endswith("?") else [1.0, 0.6] if "pass" in t else [1.0, 0.5 * (i % 4)]
                for i, t in enumerate(texts)]


@pytest.mark.parametrize("retrieval, found", [("fusion", True), ("dense", False)])
def test_retrieve_finds_the_needle_by_fusion_and_misses_it_dense(tmp_path, retrieval, found):
    gm = tiny_gist_model(k=4, chunk_tokens=48)
    with GistMemory(persist_dir=tmp_path, model=gm, embedder=TopicalEmbedder(), top_k=1,
                    retrieval=retrieval) as mem:
        mem.add([{"text": PROSE * 3 + NEEDLE + PROSE * 3, "id": "doc"}], progress=False)
        top = mem.retrieve(QUESTION)
        assert len(top) == 1
        assert ("pass" in top[0].text) is found
        assert top[0].score is not None  # the cosine similarity, whatever the order


def test_a_bad_retrieval_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="retrieval must be one of fusion, dense, got 'bm25'"):
        GistMemory(persist_dir=tmp_path, model=tiny_gist_model(k=4, chunk_tokens=48), retrieval="bm25")
