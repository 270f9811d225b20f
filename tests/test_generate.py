"""Answering from gist caches: streaming, stop strings, timings, bad questions."""

import pytest

from gist_memory import Generation, InputError
from gist_memory.generate import TokenStream
from tiny import tiny_gist_model

TEXT = "The quick brown fox jumps over the lazy dog. " * 3
# A random tiny model answers with random bytes; sampling (seeded) makes a long, varied answer,
# with multi-byte characters split over several tokens.
SAMPLED = dict(max_new_tokens=40, temperature=1.0, seed=0)


@pytest.fixture(scope="module")
def memory():
    """A tiny model and a cache it compressed."""
    gm = tiny_gist_model()
    return gm, gm.compress(TEXT)


@pytest.fixture
def gm(memory):
    return memory[0]


@pytest.fixture
def cache(memory):
    return memory[1]


def test_stream_pieces_join_to_the_answer(gm, cache):
    whole = gm.generate("What jumps?", [cache], **SAMPLED)
    stream = gm.generate("What jumps?", [cache], stream=True, **SAMPLED)
    assert isinstance(stream, TokenStream)
    pieces = list(stream)
    assert len(pieces) > 1 and all(pieces)
    assert "".join(pieces) == whole.text == stream.generation.text
    assert stream.generation.token_ids == whole.token_ids


def test_timings_and_costs_are_reported(gm, cache):
    out = gm.generate("What jumps?", [cache], **SAMPLED)
    assert isinstance(out, Generation)
    assert len(out.token_ids) == SAMPLED["max_new_tokens"]
    assert 0 < out.ttft_s <= out.total_s and out.tokens_per_s > 0
    assert out.kv_entries == cache.num_entries and out.kv_bytes == cache.nbytes
    assert out.prompt_tokens > 0


def test_stop_strings_end_the_answer_and_are_not_shown(gm, cache):
    text = gm.generate("What jumps?", [cache], **SAMPLED).text
    stops = [text[i:i + 2] for i in range(1, len(text) - 2) if "\ufffd" not in text[i:i + 2]]
    assert len(stops) >= 5
    for stop in stops:
        expected = text[:text.index(stop)]
        assert gm.generate("What jumps?", [cache], stop=[stop], **SAMPLED).text == expected
        streamed = gm.generate("What jumps?", [cache], stop=[stop], stream=True, **SAMPLED)
        assert "".join(streamed) == expected  # no piece of a stop string is streamed and taken back
    assert gm.generate("What jumps?", [cache], stop=["never said"], **SAMPLED).text == text


def test_greedy_is_deterministic(gm, cache):
    a = gm.generate("What jumps?", [cache], max_new_tokens=8)
    b = gm.generate("What jumps?", cache, max_new_tokens=8)  # a single cache works as well as a list
    assert a.token_ids == b.token_ids


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question_is_refused(gm, cache, question):
    with pytest.raises(InputError, match="question is empty"):
        gm.generate(question, [cache])


def test_bad_arguments_are_refused(gm, cache):
    with pytest.raises(InputError, match="max_new_tokens"):
        gm.generate("What jumps?", [cache], max_new_tokens=0)
    with pytest.raises(InputError, match="GistCache"):
        gm.generate("What jumps?", ["not a cache"])


@pytest.mark.parametrize("text", ["", "  \n\n  "])
def test_empty_text_is_refused(gm, text):
    with pytest.raises(InputError, match="empty or whitespace-only"):
        gm.compress(text)


def test_text_baselines_are_read_by_the_base_model_and_caches_by_the_adapter(gm, cache):
    """rag and full (a context text, no caches) run with the adapter off; gist answers use it."""
    import torch

    from gist_memory.generate import forward_on_cache, prompt_ids

    plain = tiny_gist_model(lora=False)  # the same base weights, no LoRA at all
    context = "The lighthouse keeper wrote 48213 on the last page of the red logbook."
    with_adapter = gm.generate("What is written?", None, context=context, max_new_tokens=6)
    base_only = plain.generate("What is written?", None, context=context, max_new_tokens=6)
    assert with_adapter.token_ids == base_only.token_ids
    ids = prompt_ids(gm.tokenizer, "What is written?")
    with torch.no_grad():
        adapter_logits = forward_on_cache(gm, cache, ids)[0]
        with gm.base_mode():
            base_logits = forward_on_cache(gm, cache, ids)[0]
    assert (adapter_logits - base_logits).abs().max() > 1e-3  # the adapter is on for gist answers


def test_contrastive_scores_favour_what_the_gists_add_among_plausible_tokens():
    import math

    import torch

    from gist_memory.generate import contrastive_scores

    own = torch.log(torch.tensor([0.5, 0.1, 0.005, 0.395]))
    prior = torch.log(torch.tensor([0.6, 0.02, 0.00001, 0.37999]))
    assert int(contrastive_scores(own, prior, 0.0).argmax()) == 0  # no contrast: the plain first choice
    scores = contrastive_scores(own, prior, 1.0)
    assert int(scores.argmax()) == 1  # 5x more likely with the gists than without
    assert scores[2] == -math.inf  # 500x more likely, but under a tenth of the first choice: never chosen
    assert torch.allclose(scores[1], 2 * own[1] - prior[1])


def test_contrast_decodes_by_the_gists_against_the_question_alone(gm, cache):
    """Every token is the argmax of contrastive_scores over two streams that both follow the answer
    so far: one on the gists, one on the question alone (adapter on, no gists)."""
    from gist_memory.generate import contrastive_scores, forward_on_cache, prompt_ids

    differs = []
    for question in ("What jumps?", "Who is lazy?", "Say it again.", "What colour is the fox?", "Why?"):
        plain = gm.generate(question, [cache], max_new_tokens=4, temperature=0)
        assert gm.generate(question, [cache], max_new_tokens=4, contrast=0).token_ids == plain.token_ids
        got = gm.generate(question, [cache], max_new_tokens=4, contrast=5.0).token_ids
        ids = prompt_ids(gm.tokenizer, question, prompt_format=gm.gist.prompt_format)
        want = []
        for _ in range(len(got)):
            own = forward_on_cache(gm, cache, ids + want)[0][0, -1]
            prior = forward_on_cache(gm, None, ids + want)[0][0, -1]
            want.append(int(contrastive_scores(own, prior, 5.0).argmax()))
        assert got == want
        differs.append(got != plain.token_ids)
    assert any(differs)  # the prior stream changes some answer: it is read
    # without caches there are no gists to contrast: the base model's plain answer
    assert gm.generate("What jumps?", max_new_tokens=4, contrast=2.0).token_ids == \
        gm.generate("What jumps?", max_new_tokens=4).token_ids


@pytest.mark.parametrize("contrast", [-1, 11, "1", True, float("nan")])
def test_bad_contrast_is_refused(gm, cache, contrast):
    with pytest.raises(InputError, match="contrast"):
        gm.generate("What jumps?", [cache], contrast=contrast)
