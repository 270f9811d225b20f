"""The context-KV pool recipe: parity with compressed inference, fp16 storage, no leak, sampling."""

from __future__ import annotations

import random

import pytest
import torch

from gist_memory.cache import GistCache
from gist_memory.compress import compress_chunks, gist_kv
from gist_memory.generate import answer_ids, forward_on_cache, prompt_ids
from tiny import tiny_gist_model
from gist_memory.generate import stop_token_ids
from trainers.pool import ChunkPlan, Question, Row, chunks_kv, draw_rows
from trainers.pool_forward import answer_rows, base_answers, context_of, pool_loss, post_logits, stack_context

TOL = 1e-4


def plans_for(gm, lengths, seed=0):
    rng = random.Random(seed)
    plans = []
    for i, n in enumerate(lengths):
        q = Question("fact", prompt_ids(gm.tokenizer, f"what is fact {i}?" + " really" * (i % 3)),
                     answer_ids(gm.tokenizer, f"value {i}" + "x" * i))
        plans.append(ChunkPlan([rng.randrange(256) for _ in range(n)], [q], keyed=i % 2 == 0))
    return plans


def pool_vs_inference(gm, drawn, rows, context=None) -> float:
    """Max |logit difference| between the pool recipe's post pass and compress-then-answer
    (``context(gm, drawn)``: the context KV the pool path reads; the kept KV by default)."""
    lengths = [len(c.ids) for c in drawn]
    with torch.no_grad():
        layers = stack_context(drawn, gm.device, gm.dtype) if context is None else context(gm, drawn)
        gists = gist_kv(gm, layers, lengths)
        train, _, spans = post_logits(gm, gists, lengths, rows, answers_only=False)  # (T, vocab), packed
    worst = 0.0
    for row, (a, b) in zip(rows, spans):
        cache = GistCache.concat(compress_chunks(gm, [drawn[c].ids for c in row.chunks]))
        logits, _, _ = forward_on_cache(gm, cache, row.question.prompt + row.question.answer)
        # the shared prefix's logits are not returned: compare the row's own tokens
        worst = max(worst, (train[a:b] - logits[0, -(b - a):]).abs().max().item())
    return worst


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3_text"])
def test_pool_recipe_matches_compressed_inference(arch):
    """docs/design.md invariant 2 for the pool recipe: padded draw, multi-chunk episodes in any order."""
    gm = tiny_gist_model(arch=arch)
    drawn = chunks_kv(gm, plans_for(gm, [20, 48, 7, 33]))
    two = [3, 1]  # one episode asked two questions shares its chunks list (and its prefix pass)
    rows = [Row([1], drawn[1].questions[0]), Row([2, 0, 3], drawn[0].questions[0]),
            Row(two, drawn[3].questions[0]), Row(two, drawn[1].questions[0]), Row([0, 1, 2, 3], drawn[2].questions[0])]
    assert pool_vs_inference(gm, drawn, rows) <= TOL


def test_pool_parity_bites_when_a_row_reads_another_episodes_gists():
    gm = tiny_gist_model()
    drawn = chunks_kv(gm, plans_for(gm, [20, 30]))
    right = [Row([0], drawn[0].questions[0])]
    assert pool_vs_inference(gm, drawn, right) <= TOL
    lengths = [20, 30]
    with torch.no_grad():
        gists = gist_kv(gm, stack_context(drawn, gm.device, gm.dtype), lengths)
        wrong = post_logits(gm, gists, lengths, [Row([1], drawn[0].questions[0])])[0]
        good = post_logits(gm, gists, lengths, right)[0]
    assert (wrong - good).abs().max() > 1e-3


def test_fp16_pool_matches_recomputed_chunk_to_fp16_tolerance():
    gm = tiny_gist_model()
    plans = plans_for(gm, [40, 25])
    exact, half = chunks_kv(gm, plans), chunks_kv(gm, plans, storage_dtype=torch.float16)
    assert half[0].keys[0].dtype == torch.float16
    rows = [Row([0, 1], exact[0].questions[0])]
    with torch.no_grad():
        out = [post_logits(gm, gist_kv(gm, stack_context(d, gm.device, gm.dtype), [40, 25]), [40, 25], rows,
                           answers_only=False)[0]
               for d in (exact, half)]
    scale = out[0].abs().max().item()
    assert (out[0] - out[1]).abs().max().item() <= 5e-3 * max(scale, 1.0)


def test_pool_loss_trains_answers_only_and_grads_reach_gists_and_lora():
    gm = tiny_gist_model()
    gm.train()
    drawn = chunks_kv(gm, plans_for(gm, [20, 48, 7]))
    rows = draw_rows(random.Random(0), drawn, max_chunks=3, questions_per_chunk=1)
    loss, tokens = pool_loss(gm, drawn, rows)
    assert tokens == sum(len(r.question.answer) for r in rows)
    loss.backward()
    assert gm.gist_embeddings.grad is not None and gm.gist_embeddings.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in gm.model.named_parameters() if "lora" in n)


def test_question_weighting_counts_every_question_once():
    """'question' weighting is the mean of each question's own loss (episodes interleaved, shared
    chunk lists, answers of different lengths); 'token' the mean over all answer tokens."""
    gm = tiny_gist_model()
    drawn = chunks_kv(gm, plans_for(gm, [20, 48, 7, 33]))
    two = [3, 1]
    rows = [Row(two, drawn[3].questions[0]), Row([2, 0], drawn[0].questions[0]),
            Row(two, drawn[1].questions[0]), Row([2], drawn[2].questions[0])]
    assert answer_rows(rows).tolist() == [0] * len(rows[0].question.answer) + [2] * len(rows[2].question.answer) + \
        [1] * len(rows[1].question.answer) + [3] * len(rows[3].question.answer)
    with torch.no_grad():
        alone = [pool_loss(gm, drawn, [r])[0].item() for r in rows]
        n = [len(r.question.answer) for r in rows]
        stats: dict = {}
        by_question = pool_loss(gm, drawn, rows, "question", stats)[0].item()
        by_token = pool_loss(gm, drawn, rows, "token")[0].item()
    assert by_question == pytest.approx(sum(alone) / len(alone), rel=1e-5)
    assert by_token == pytest.approx(sum(a * k for a, k in zip(alone, n)) / sum(n), rel=1e-5)
    assert len(set(n)) > 1 and by_question != pytest.approx(by_token, rel=1e-4)  # the two differ here
    assert stats["tasks"] == {"fact": 4} and stats["task_loss"]["fact"] == pytest.approx(by_token, rel=1e-4)
    with torch.no_grad():  # 'capped': a question weighs min(its tokens, cap); 1 is 'question', a big cap 'token'
        capped = {c: pool_loss(gm, drawn, rows, "capped", token_cap=c)[0].item() for c in (1, 2, 100)}
    w = [min(k, 2) for k in n]
    assert capped[1] == pytest.approx(by_question, rel=1e-5) and capped[100] == pytest.approx(by_token, rel=1e-5)
    assert capped[2] == pytest.approx(sum(a * k for a, k in zip(alone, w)) / sum(w), rel=1e-5)
    with pytest.raises(ValueError, match="weighting"):
        pool_loss(gm, drawn, rows, "answer")


def test_focal_loss_weighs_each_token_by_how_badly_it_is_read():
    """focal_gamma weighs every answer token's cross-entropy by (1 - p)^gamma (p detached), within
    either weighting; 0 is the plain loss, and the task log stays the plain cross-entropy."""
    gm = tiny_gist_model()
    drawn = chunks_kv(gm, plans_for(gm, [20, 48, 7]))
    rows = draw_rows(random.Random(0), drawn, max_chunks=3, questions_per_chunk=1)
    lengths = [len(c.ids) for c in drawn]
    with torch.no_grad():
        logits, targets, _ = post_logits(gm, gist_kv(gm, context_of(gm, drawn), lengths),
                                         lengths, rows)
        ce = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        want = (ce * (1 - torch.exp(-ce)) ** 2).mean().item()
        plain_stats, focal_stats = {}, {}
        assert pool_loss(gm, drawn, rows, "token", plain_stats)[0].item() == pytest.approx(ce.mean().item(), rel=1e-5)
        assert pool_loss(gm, drawn, rows, "token", focal_stats, focal_gamma=2.0)[0].item() == pytest.approx(want, rel=1e-5)
        assert pool_loss(gm, drawn, rows, "token", focal_gamma=0.0)[0].item() == pytest.approx(ce.mean().item(), rel=1e-5)
        assert focal_stats["task_loss"] == plain_stats["task_loss"]
        one = pool_loss(gm, drawn, rows[:1], "question", focal_gamma=2.0)[0].item()
        n = len(rows[0].question.answer)
        assert one == pytest.approx((ce[:n] * (1 - torch.exp(-ce[:n])) ** 2).mean().item(), rel=1e-5)
    gm.train()
    loss, _ = pool_loss(gm, drawn, rows, "question", focal_gamma=2.0)
    loss.backward()  # the weight is a constant: the gradient flows through the cross-entropy only
    assert gm.gist_embeddings.grad is not None and gm.gist_embeddings.grad.abs().sum() > 0


def test_passkey_distractors_hold_no_pass_key():
    gm = tiny_gist_model()
    plans = plans_for(gm, [10] * 8)
    for p in plans:
        p.questions[0].task = "niah" if p.keyed else "fact"
    drawn = chunks_kv(gm, plans)
    for seed in range(20):
        for row in draw_rows(random.Random(seed), drawn, max_chunks=4, questions_per_chunk=1):
            if row.question.task == "niah":
                target = [c for c in row.chunks if drawn[c].questions[0] is row.question]
                assert len(target) == 1
                assert all(not drawn[c].keyed for c in row.chunks if c != target[0])


def test_theme_teacher_is_the_base_model_reading_the_chunk_then_the_question():
    """base_answers over kept KV, batched and padded, equals greedy decoding of [chunk][prompt] by
    the base model from scratch, row by row."""
    gm = tiny_gist_model()
    plans = plans_for(gm, [20, 48, 7])
    prompts = [prompt_ids(gm.tokenizer, q) for q in ("What is this text about?", "Topic?", "In one sentence, what?")]
    drawn = chunks_kv(gm, plans)
    got = base_answers(gm, stack_context(drawn, gm.device, gm.dtype), [20, 48, 7], prompts, max_new_tokens=6)
    stops = stop_token_ids(gm)
    for plan, prompt, answer in zip(plans, prompts, got):
        ids, want = plan.ids + prompt, []
        with torch.no_grad(), gm.base_mode():
            for _ in range(6):
                token = int(gm.model(input_ids=torch.tensor([ids + want])).logits[0, -1].argmax())
                if token in stops:
                    want.append(gm.tokenizer.eos_token_id)
                    break
                want.append(token)
        assert answer == want


def test_theme_rows_are_asked_of_their_chunk_alone():
    gm = tiny_gist_model()
    plans = plans_for(gm, [10] * 6)
    for p in plans:
        p.questions[0].task = "theme"
    drawn = chunks_kv(gm, plans)
    rows = draw_rows(random.Random(0), drawn, max_chunks=4, questions_per_chunk=1)
    assert rows and all(len(r.chunks) == 1 for r in rows)


def test_validation_scores_and_records_every_answer():
    """validate_kept's score is the share of recorded answers that hold the expected one."""
    from gist_memory.data.scoring import contains_match
    from trainers.validation import ValSample, answer_nll, nll_by_task, score_samples, validate_kept

    gm = tiny_gist_model()
    drawn = chunks_kv(gm, plans_for(gm, [20, 31, 12]))
    samples = [ValSample("fact", [drawn[0], drawn[1]], "what is fact 0?", "value 0"),
               ValSample("fact", [drawn[2]], "what is fact 2?", "value 2xx"),
               ValSample("niah", [drawn[1]], "what is the pass key?", "4417")]
    given: list[dict] = []
    scores = validate_kept(gm, samples, max_new_tokens=3, answers=given)
    assert [(a["task"], a["question"], a["expected"]) for a in given] == [(s.task, s.question, s.answer) for s in samples]
    assert all(a["hit"] == contains_match(a["answer"], a["expected"]) for a in given)
    # and each answer is the inference path's: compress the sample's chunks, answer from the caches
    for s, a in zip(samples, given):
        caches = compress_chunks(gm, [c.ids for c in s.chunks])
        assert a["answer"] == gm.generate(s.question, caches, max_new_tokens=3).text
        # the recorded loss is the expected answer's, read from the same caches
        assert a["nll"] == pytest.approx(answer_nll(gm, caches, s.question, s.answer), abs=2e-4)
    assert nll_by_task(given) == {"fact": pytest.approx((given[0]["nll"] + given[1]["nll"]) / 2, abs=1e-4),
                                  "niah": given[2]["nll"]}
    # the command line's scoring reports the same losses (teacher-forced: not the decoding's length)
    nll: dict = {}
    assert set(score_samples(gm, samples, nll=nll)) == {"fact", "niah"} and nll == nll_by_task(given)
    assert scores == {t: sum(a["hit"] for a in given if a["task"] == t) / sum(a["task"] == t for a in given)
                      for t in ("fact", "niah")}
