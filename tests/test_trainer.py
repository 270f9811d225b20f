"""Trainer: configs parse, no label sees the context, loss goes down, a checkpoint resumes exactly."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch

from gist_memory.mask import CONTEXT
from trainers.recipe import IGNORE_INDEX, Episode, collate
from tiny import tiny_gist_model
from trainers.config import Stage, TrainConfig

CONFIGS = sorted((Path(__file__).parent.parent / "trainers" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_parses(path):
    cfg = TrainConfig.from_yaml(path)
    assert cfg.stage(0).max_tokens <= cfg.chunk_tokens
    assert cfg.steps > 0


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="num_gist_tokens"):
        TrainConfig(num_gist_tokens=0)
    with pytest.raises(ValueError, match="max_tokens exceeds chunk_tokens"):
        TrainConfig(chunk_tokens=64, stages=(Stage(10, 8, 128),))
    for gamma in (-1, 6, True, "2"):
        with pytest.raises(ValueError, match="focal_gamma"):
            TrainConfig(focal_gamma=gamma)
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_gist_tokns: 8\n")
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_yaml(bad)


def test_a_config_extends_another_key_by_key_and_bad_chains_are_one_line_errors(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 40\nlr: 0.002\ntask_mix: {niah: 1.0, fact: 0.5}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.yaml").write_text("extends: ../base.yaml\nlr: 0.003\n")
    (tmp_path / "child.yaml").write_text("extends: sub/mid.yaml\ntask_mix: {qa: 1.0}\n")
    cfg = TrainConfig.from_yaml(tmp_path / "child.yaml")
    assert (cfg.steps, cfg.lr) == (40, 0.003)  # the parent's key, then the middle file's
    assert cfg.task_mix == {"qa": 1.0}  # a mapping is replaced whole, not merged
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        TrainConfig.from_yaml(tmp_path / "a.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ValueError, match="nowhere.yaml.*is not a file"):
        TrainConfig.from_yaml(tmp_path / "orphan.yaml")


def test_the_campaign_configs_extend_the_pool_recipe_and_differ_only_where_they_say():
    """pool-k8m, pool-mlp and pool-lr were copies of pool.yaml; each now names only what it changes,
    and everything else comes from pool.yaml."""
    configs = Path(__file__).parent.parent / "trainers" / "configs"
    pool = TrainConfig.from_yaml(configs / "pool.yaml").to_dict()
    changed = {"pool-k8m": {"init_from", "lora_targets", "out_dir"}, "pool-mlp": {"init_from", "lora_targets", "out_dir"},
               "pool-lr": {"init_from", "out_dir", "steps"}}
    for name, keys in changed.items():
        cfg = TrainConfig.from_yaml(configs / f"{name}.yaml").to_dict()
        assert {k for k in cfg if cfg[k] != pool[k]} == keys, name


def test_no_label_token_can_attend_to_any_context_token():
    """docs/design.md invariant 1 on the collator's real output: every row that predicts a label
    (and every post-gist row at all) has every context column masked."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda n: torch.randint(5, 200, (n,), generator=gen).tolist()  # noqa: E731
    episodes = [Episode([rand(7), rand(3)], rand(4), rand(3)), Episode([rand(5)], rand(2), rand(5)),
                Episode([rand(2), rand(6), rand(4)], rand(3), rand(2))]
    batch = collate(episodes, num_gist_tokens=2, pad_id=0)
    C, P = batch.context_ids.shape[1], batch.post_ids.shape[1]
    T = batch.kinds.shape[1]
    post_rows = torch.arange(T - P, T)
    context_cols = batch.kinds == CONTEXT  # (B, T)
    for b in range(len(episodes)):
        rows = batch.allowed[b][post_rows]  # (P, T)
        assert not rows[:, context_cols[b]].any(), "a post-gist token can see the context"
        labelled = (batch.labels[b, 1:] != IGNORE_INDEX).nonzero().flatten()  # row t predicts label t+1
        assert len(labelled) == len(episodes[b].answer)
        assert not batch.allowed[b][T - P + labelled][:, :C].any()


def _config(tmp_path, steps, **kw):
    kw = {"task_mix": {"niah": 1.0}, "num_gist_tokens": 4, "eval_every": 1000, "eval_samples": 0,
          "stages": (Stage(1000, 24, 64, 2),), **kw}
    return TrainConfig(out_dir=str(tmp_path / "run"), chunk_tokens=64, steps=steps,
                       batch_size=2, lr=1e-2, warmup_steps=2, save_every=1000, **kw)


def _assert_same_adapters(a_dir: Path, b_dir: Path) -> None:
    """The final adapters of two runs (``<dir>/run/adapter``) hold the same tensors, to 1e-6."""
    from safetensors.torch import load_file

    for name in ("adapter_model.safetensors", "gist_embeddings.safetensors"):
        a = load_file(str(a_dir / "run" / "adapter" / name))
        b = load_file(str(b_dir / "run" / "adapter" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def _fresh_model():
    gm = tiny_gist_model(k=4, chunk_tokens=64, lora=False)
    # At the default init (std 0.02) a 64-wide tied embedding bounds the logits near +-1, so no
    # adapter could move the loss far from log(vocab); larger embeddings give it room to learn.
    with torch.no_grad():
        gm.model.get_input_embeddings().weight.mul_(20)
    torch.manual_seed(1)
    gm.add_lora(r=4, alpha=8)
    return gm


def test_short_cpu_training_lowers_the_loss(tmp_path):
    from trainers.train import train

    cfg = _config(tmp_path, steps=40)
    train(cfg, model=_fresh_model(), progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8
    assert (tmp_path / "run" / "training.png").stat().st_size > 0
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_checkpoint_resumes_to_the_same_state(tmp_path):
    from trainers.train import train

    straight = _config(tmp_path / "a", steps=8)
    train(straight, model=_fresh_model(), progress=False)
    sliced = _config(tmp_path / "b", steps=8)
    assert train(sliced, model=_fresh_model(), progress=False, stop_after=5) is None
    assert json.loads((tmp_path / "b" / "run" / "checkpoint" / "trainer_state.json").read_text())["step"] == 5
    train(sliced, model=_fresh_model(), progress=False)  # a new process would start exactly like this
    _assert_same_adapters(tmp_path / "a", tmp_path / "b")


def _pool_config(tmp_path, steps, **kw):
    kw = {"task_mix": {"niah": 1.0, "fact": 1.0}, "pool_refresh": 0.5, **kw}
    return _config(tmp_path, steps, recipe="pool", pool_size=6, chunks_per_step=3,
                   questions_per_chunk=2, facts_per_chunk=2, **kw)


def test_pool_recipe_lowers_the_loss_and_refreshes_its_pool(tmp_path):
    from trainers.train import train

    cfg = _pool_config(tmp_path, steps=40)
    train(cfg, model=_fresh_model(), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8
    # the first 6 are built before step 0; then 0.5 fresh chunks a step replace the oldest
    assert sum(r["built"] for r in rows) == 39 // 2
    assert all(r["questions"] == 6 for r in rows)  # 3 chunks x 2 questions (each has 2 facts)


def test_a_stage_sets_the_pool_batch_and_bad_stage_batches_are_refused(tmp_path):
    from trainers.train import train

    stages = (Stage(3, 16, 64, task_mix={"niah": 1.0}, chunks_per_step=2, questions_per_chunk=1), Stage(1000, 32, 64, 2))
    cfg = _pool_config(tmp_path, steps=5, stages=stages, keyed_share=0.5)
    assert [cfg.batch_at(s) for s in (0, 2, 3)] == [(2, 1), (2, 1), (3, 2)]
    train(cfg, model=_fresh_model(), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # a bootstrap stage: 2 chunks x 1 pass key each (half of them hold one; a draw with none is
    # drawn again); then the run's 3 chunks x 2 questions
    assert [r["questions"] for r in rows][3:] == [6, 6] and all(1 <= r["questions"] <= 2 for r in rows[:3])
    assert all(set(r["tasks"]) == {"niah"} for r in rows[:3])
    never = _pool_config(tmp_path / "never", steps=2, stages=stages, keyed_share=0.0)
    with pytest.raises(ValueError, match="held no question"):
        train(never, model=_fresh_model(), progress=False)
    with pytest.raises(ValueError, match="stage.chunks_per_step"):
        Stage(10, 8, 64, chunks_per_step=0)
    with pytest.raises(ValueError, match="stage.pool_refresh"):
        Stage(10, 8, 64, pool_refresh=-1)
    with pytest.raises(ValueError, match="exceeds pool_size"):
        TrainConfig(recipe="pool", pool_size=4, stages=(Stage(10, 8, 64, chunks_per_step=5),))
    with pytest.raises(ValueError, match="episode recipe"):
        TrainConfig(recipe="episode", stages=(Stage(10, 8, 64, questions_per_chunk=2),))


def test_a_staged_refresh_enters_chunks_at_each_stages_rate_and_resumes_to_the_same_pool(tmp_path):
    from trainers.pool import ContextPool
    from trainers.train import train

    pool = ContextPool(None, {}, size=6, refresh=[(10, 0.5), (1000, 2)], storage_dtype=torch.float16,
                       length_at=lambda s: (8, 8))
    assert [pool.first(s) for s in (0, 1, 2, 10, 11, 12)] == [0, 0, 1, 5, 7, 9]
    for number in range(40):  # a chunk enters at the first step whose range [first, first + size) holds it
        s = pool.made_at(number)
        assert pool.first(s) <= number < pool.first(s) + pool.size
        assert s == 0 or number >= pool.first(s - 1) + pool.size
    stages = (Stage(3, 24, 64, 2, pool_refresh=0.5), Stage(1000, 24, 64, 2))
    cfg = _pool_config(tmp_path / "a", steps=6, stages=stages)
    assert cfg.refresh_schedule() == [(3, 0.5), (1000, 0.5)] and _pool_config(tmp_path, 1).refresh_schedule() == 0.5
    cfg = _pool_config(tmp_path / "a", steps=6, stages=stages, pool_refresh=2)
    train(cfg, model=_fresh_model(), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines()]
    # first(step) is 0, 0, 1, 1 at 0.5 a step, then 3, 5 at 2 a step: built is its increase
    assert [r["built"] for r in rows] == [0, 0, 1, 0, 2, 2]
    sliced = _pool_config(tmp_path / "b", steps=6, stages=stages, pool_refresh=2)
    train(sliced, model=_fresh_model(), progress=False, stop_after=4)
    train(sliced, model=_fresh_model(), progress=False)
    _assert_same_adapters(tmp_path / "a", tmp_path / "b")


def test_pool_recipe_resumes_to_the_same_state(tmp_path):
    from trainers.train import train

    train(_pool_config(tmp_path / "a", steps=7), model=_fresh_model(), progress=False)
    sliced = _pool_config(tmp_path / "b", steps=7)
    assert train(sliced, model=_fresh_model(), progress=False, stop_after=4) is None
    train(sliced, model=_fresh_model(), progress=False)  # rebuilds the pool of step 4 from the seed
    _assert_same_adapters(tmp_path / "a", tmp_path / "b")


def test_snapshots_keep_the_adapter_of_every_nth_step_and_the_log_keeps_the_pool_build_time(tmp_path):
    from safetensors.torch import load_file

    from trainers.train import train

    train(_pool_config(tmp_path, steps=4, snapshot_every=2), model=_fresh_model(), progress=False)
    snaps = tmp_path / "run" / "snapshots"
    assert sorted(p.name for p in snaps.iterdir()) == ["step-00000", "step-00002", "step-00004"]
    final, last = (load_file(str(d / "gist_embeddings.safetensors")) for d in (tmp_path / "run" / "adapter", snaps / "step-00004"))
    first = load_file(str(snaps / "step-00000" / "gist_embeddings.safetensors"))
    for key in final:
        torch.testing.assert_close(final[key], last[key], rtol=0, atol=0)
        assert not torch.equal(first[key], last[key])  # the start, before any step
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["setup_s"] > 0 and all("setup_s" not in r for r in rows[1:])


def test_pool_validation_keeps_every_answer_of_each_step_and_draws_the_plot(tmp_path):
    from trainers.train import train

    cfg = _pool_config(tmp_path, steps=4, eval_every=2, eval_samples=2)
    assert train(cfg, model=_fresh_model(), progress=False, stop_after=2) is None
    # stopped mid-schedule: the plot stands at the last validation, not only at the schedule's end
    assert (tmp_path / "run" / "training.png").stat().st_size > 0
    val = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if "val" in line]
    assert [v["step"] for v in val] == [2]
    answers = [json.loads(line) for line in (tmp_path / "run" / "validation" / "step-00002.jsonl").open()]
    assert {a["task"] for a in answers} == set(val[0]["val"])  # 2 samples of each task the score names
    assert len(answers) == 2 * len(val[0]["val"])
    assert all({"question", "expected", "answer", "hit", "nll"} <= a.keys() for a in answers)
    for task, score in val[0]["val"].items():
        assert score == sum(a["hit"] for a in answers if a["task"] == task) / 2
        # and the held-out loss of the expected answers, by task, beside the exact match
        assert val[0]["val_nll"][task] == pytest.approx(sum(a["nll"] for a in answers if a["task"] == task) / 2, abs=1e-4)


def test_a_validation_task_added_on_resume_is_scored_at_the_starting_step(tmp_path):
    from trainers.train import train

    log = tmp_path / "run" / "log.jsonl"
    cfg = _pool_config(tmp_path, steps=2, eval_every=2, eval_samples=2)
    train(cfg, model=_fresh_model(), progress=False)
    # as if the run had been made before the fact_rel task existed
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    for r in rows:
        if "val" in r:
            del r["val"]["fact_rel"]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    longer = _pool_config(tmp_path, steps=3, eval_every=2, eval_samples=2)
    train(longer, model=_fresh_model(), progress=False)
    val = [json.loads(line) for line in log.read_text().splitlines() if "val" in line]
    assert [v["step"] for v in val] == [2, 2, 3]  # (3: the last step of a run is always scored)
    assert "fact_rel" not in val[0]["val"] and "fact_rel" in val[1]["val"]
    assert val[1]["val"]["niah"] == val[0]["val"]["niah"]  # the same adapter, the same samples
    again = _pool_config(tmp_path, steps=4, eval_every=2, eval_samples=2)
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if '"step": 3, "val"' not in line))
    train(again, model=_fresh_model(), progress=False)  # every task has a score: no extra validation at 3
    val = [json.loads(line) for line in log.read_text().splitlines() if "val" in line]
    assert [v["step"] for v in val] == [2, 2, 4]


def test_a_task_no_builder_makes_is_refused_at_construction():
    with pytest.raises(ValueError, match="task_mix"):
        TrainConfig(task_mix={"niah": 1.0, "summary": 0.5})
    with pytest.raises(ValueError, match="episode recipe has no theme builder"):
        TrainConfig(task_mix={"niah": 1.0, "theme": 0.5})
    TrainConfig(recipe="pool", theme_share=0.2, task_mix={"niah": 1.0, "theme": 0.5})


def test_resume_with_other_shapes_is_refused_and_configs_keep_their_history(tmp_path):
    from trainers.train import train

    cfg = _pool_config(tmp_path, steps=4)
    assert train(cfg, model=_fresh_model(), progress=False, stop_after=2) is None
    changed = _pool_config(tmp_path, steps=4, num_gist_tokens=2)
    with pytest.raises(ValueError, match=r"num_gist_tokens: 4 -> 2"):
        train(changed, model=_fresh_model(), progress=False)
    longer = _pool_config(tmp_path, steps=6)  # a longer schedule is a valid resume
    train(longer, model=_fresh_model(), progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / "config-history.jsonl").read_text().splitlines()]
    assert [(h["from_step"], h["config"]["steps"]) for h in history] == [(0, 4), (2, 6)]


@pytest.mark.parametrize("change", [{"lora_r": 8}, {"lora_alpha": 16}, {"lora_targets": ("q_proj", "v_proj")},
                                    {"base": "HuggingFaceTB/SmolLM2-360M-Instruct"}])
def test_resume_with_another_lora_or_base_is_refused_before_any_weight_loads(tmp_path, change):
    """The LoRA rank, scale and modules and the base shape the checkpoint's tensors: a resume that
    changes one would die in a size mismatch (or load into the wrong model), so it is refused."""
    import yaml

    from trainers.train import check_resume

    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "trainer_state.json").write_text("{}")
    (run / "config.yaml").write_text(yaml.safe_dump(_config(tmp_path, steps=4).to_dict(), sort_keys=False))
    check_resume(run, _config(tmp_path, steps=8))  # a longer schedule is a valid resume
    field = next(iter(change))
    with pytest.raises(ValueError, match=rf"holds a checkpoint made with other settings \({field}: "):
        check_resume(run, _config(tmp_path, steps=4, **change))


def test_pool_recipe_trains_theme_questions_with_the_base_models_answers(tmp_path):
    from trainers.pool import ContextPool
    from trainers.data import recipe_documents
    from trainers.train import train

    cfg = _pool_config(tmp_path, steps=3, theme_share=1.0, task_mix={"theme": 1.0})
    train(cfg, model=_fresh_model(), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["questions"] for r in rows] == [3, 3, 3]  # one theme question per drawn chunk
    gm = _fresh_model()
    pool = ContextPool(gm, recipe_documents(cfg, "train"), 2, 0.0, torch.float32, lambda s: (24, 64), theme_share=1.0)
    pool.advance(0)
    for chunk in pool.chunks:
        theme = [q for q in chunk.questions if q.task == "theme"]
        assert len(theme) == 1 and len(theme[0].answer) >= 1


def test_quote_questions_ask_each_planted_fact_back_word_for_word(tmp_path):
    from gist_memory.data.facts import QUOTE_QUESTIONS
    from trainers.data import recipe_documents
    from trainers.pool import plan_chunk

    gm = _fresh_model()
    docs = recipe_documents(_pool_config(tmp_path, steps=1), "train")
    tok = gm.tokenizer
    for i in range(4):
        plan = plan_chunk(random.Random(i), docs, tok, 200, 4096, facts=3, language="en", keyed=True)
        text = tok.decode(plan.ids)
        facts = [q for q in plan.questions if q.task == "fact"]
        quotes = [q for q in plan.questions if q.task == "quote"]
        assert len(facts) == len(quotes) == 3
        for quote in quotes:
            needle = tok.decode(quote.answer, skip_special_tokens=True)
            assert needle in text  # the sentence planted, verbatim
            asked = tok.decode(quote.prompt, skip_special_tokens=True)
            owners = [m.group(1) for t in QUOTE_QUESTIONS
                      if (m := re.search(re.escape(t).replace(re.escape("{owner}"), "(.+?)"), asked))]
            assert len(owners) == 1 and owners[0] in needle  # asked by the person the sentence names
        # every fact's answer lies in its own quote's sentence
        for fact, quote in zip(facts, quotes):
            value = tok.decode(fact.answer, skip_special_tokens=True)
            assert value.lower() in tok.decode(quote.answer, skip_special_tokens=True).lower()
        again = plan_chunk(random.Random(i), docs, tok, 200, 4096, facts=3, language="en", keyed=True)
        assert again.ids == plan.ids and [q.answer for q in again.questions] == [q.answer for q in plan.questions]
    with pytest.raises(ValueError, match="episode recipe has no quote builder"):
        TrainConfig(task_mix={"niah": 1.0, "quote": 0.5})
    TrainConfig(recipe="pool", task_mix={"niah": 1.0, "quote": 0.5})


def test_recon_share_sets_how_many_chunks_are_asked_their_opening_back(tmp_path):
    from trainers.data import recipe_documents
    from trainers.pool import plan_chunk

    gm = _fresh_model()
    docs = recipe_documents(_pool_config(tmp_path, steps=1), "train")
    tok = gm.tokenizer
    plan = lambda i, **kw: plan_chunk(random.Random(i), docs, tok, 200, 4096, facts=1, language="en",  # noqa: E731
                                      keyed=True, **kw)
    asked = lambda share: [any(q.task == "recon" for q in plan(i, recon_share=share).questions) for i in range(12)]  # noqa: E731
    assert all(asked(1.0)) and not any(asked(0.0))
    for i in range(12):  # the default, 0.3, is every earlier run's plan, draw for draw
        default, explicit = plan(i), plan(i, recon_share=0.3)
        assert default.ids == explicit.ids and [q.answer for q in default.questions] == [q.answer for q in explicit.questions]
    recon = next(q for q in plan(0, recon_share=1.0).questions if q.task == "recon")
    assert tok.decode(recon.answer, skip_special_tokens=True).strip()[:20] in tok.decode(plan(0, recon_share=1.0).ids)
    with pytest.raises(ValueError, match=r"recon_share must be in \[0, 1\]"):
        TrainConfig(recipe="pool", recon_share=1.5)


def test_relation_facts_use_trained_phrasings_and_half_open_values(tmp_path):
    from gist_memory.data.facts import relation_fact
    from gist_memory.data.tasks import CITIES, FACT_KINDS
    from trainers.data import recipe_documents
    from trainers.pool import plan_chunk

    held_out = [t for k in FACT_KINDS for t in k.held_out_statements + k.held_out_questions]
    rng = random.Random(3)
    drawn = [relation_fact(rng) for _ in range(600)]
    assert {f.kind for f in drawn} == {f"relation-{k.name}" for k in FACT_KINDS}
    for fact in drawn:
        assert fact.answer in fact.needle and fact.owner in fact.needle and fact.owner in fact.question
        # never a phrasing the test split holds out (statement or question)
        for template in held_out:
            pattern = re.sub(r"\\\{\w+\\\}", ".+?", re.escape(template))
            assert not re.fullmatch(pattern, fact.needle, re.I) and not re.fullmatch(pattern, fact.question, re.I)
    cities = [f.answer for f in drawn if f.kind == "relation-birthplace"]
    listed = sum(c in CITIES for c in cities) / len(cities)
    assert 0.3 < listed < 0.7  # half the towns from the list, half invented: the list is no shortcut

    gm = _fresh_model()
    docs = recipe_documents(_pool_config(tmp_path, steps=1), "train")
    tasks = lambda share: [q.task for q in plan_chunk(random.Random(5), docs, gm.tokenizer, 200, 4096, facts=3,  # noqa: E731
                                                      language="en", keyed=True, relation_share=share).questions]
    assert tasks(0.0).count("fact") == 3 and "relation" not in tasks(0.0)
    assert tasks(1.0).count("relation") == 3 and "fact" not in tasks(1.0) and tasks(1.0).count("quote") == 3
    with pytest.raises(ValueError, match="episode recipe has no relation builder; use recipe: pool with relation_share"):
        TrainConfig(task_mix={"niah": 1.0, "relation": 0.5})
    with pytest.raises(ValueError, match="relation_share must be in"):
        TrainConfig(recipe="pool", relation_share=1.5)


def test_generic_facts_draw_relations_and_shapes_but_keep_the_held_out_kinds_out(tmp_path):
    from gist_memory.data.facts import _HELD_OUT_WORDS, KINDS, HELD_OUT_KINDS, generic_fact
    from trainers.data import recipe_documents
    from trainers.pool import plan_chunk

    rng = random.Random(11)
    drawn = [generic_fact(rng) for _ in range(2000)]
    held_attrs = {a for k in KINDS if k.name in HELD_OUT_KINDS for a in k.attributes}
    attrs = set()
    for fact in drawn:
        assert fact.kind == "generic" and fact.answer in fact.needle and fact.owner in fact.question
        words = fact.needle.replace(fact.answer, "").replace(fact.owner, "")  # what the sentence itself says
        assert not any(re.search(rf"\b{w}\b", words, re.I) for w in _HELD_OUT_WORDS), fact.needle
        assert not any(re.search(rf"\b{a}\b", words, re.I) for a in held_attrs), fact.needle
        assert not re.fullmatch(r"\d+-\d+-\d+", fact.answer), fact.answer  # a combination's shape
        assert "Hz" not in fact.answer  # a frequency's
        attrs.add(fact.question.replace(fact.owner, "").replace(fact.answer, ""))
    shapes = {re.sub(r"[a-z]+", "a", re.sub(r"[A-Z]", "A", re.sub(r"\d+", "9", f.answer))) for f in drawn}
    assert len(shapes) > 100 and len(attrs) > 500  # many value shapes and many (attribute, phrasing) pairs

    gm = _fresh_model()
    docs = recipe_documents(_pool_config(tmp_path, steps=1), "train")
    tasks = [q.task for q in plan_chunk(random.Random(5), docs, gm.tokenizer, 200, 4096, facts=3, language="en",
                                        keyed=True, generic_share=1.0).questions]
    assert tasks.count("generic") == 3 and "fact" not in tasks and "relation" not in tasks and tasks.count("quote") == 3
    # one draw serves both shares: at generic_share 0 a fact is drawn exactly as before generic facts
    from gist_memory.data.facts import open_fact, relation_fact
    from trainers.pool import _draw_fact

    for seed in range(50):
        before, now = random.Random(seed), random.Random(seed)
        old = [relation_fact(before) if before.random() < 0.4 else open_fact(before) for _ in range(3)]
        assert [_draw_fact(now, 0.4, 0.0) for _ in range(3)] == old and before.random() == now.random()
    with pytest.raises(ValueError, match="episode recipe has no generic builder; use recipe: pool with generic_share"):
        TrainConfig(task_mix={"niah": 1.0, "generic": 0.5})
    with pytest.raises(ValueError, match=r"generic_share must be in \[0, 1 - relation_share\] = \[0, 0.6\]"):
        TrainConfig(recipe="pool", relation_share=0.4, generic_share=0.7)


def test_open_shapes_add_the_combinations_shape_and_change_no_other_draw():
    from gist_memory.data.facts import _HELD_OUT_WORDS, generic_fact

    triples = 0
    for i in range(3000):
        closed, opened = generic_fact(random.Random(i)), generic_fact(random.Random(i), open_shapes=True)
        words = opened.needle.replace(opened.answer, "").replace(opened.owner, "")
        assert not any(re.search(rf"\b{w}\b", words, re.I) for w in _HELD_OUT_WORDS), opened.needle
        assert not re.fullmatch(r"\d+-\d+-\d+", closed.answer)
        triples += bool(re.fullmatch(r"\d+-\d+-\d+", opened.answer))
        if "-" not in closed.answer and "-" not in opened.answer:
            assert closed == opened  # only a hyphen-grouped value's draw differs
    assert triples >= 5  # (about 1 in 300 generic facts: a tenth of the shapes, a ninth of the separators, a third of the counts)
    cfg = TrainConfig(recipe="pool", open_shapes=True)
    assert cfg.pool_contents()["open_shapes"] is True
    with pytest.raises(ValueError, match="open_shapes"):
        TrainConfig(open_shapes="yes")


def test_key_digits_draw_the_pass_key_length_and_the_default_draws_as_keys_always_did(tmp_path):
    from gist_memory.data.tasks import passkey_sample
    from trainers.data import recipe_documents
    from trainers.pool import plan_chunk

    for i in range(200):  # [5, 5]: the same key and the same draws after it as before the knob existed
        old, new = random.Random(i), random.Random(i)
        key = str(old.randint(10000, 99999))
        assert passkey_sample(new, "One. Two.", 0.5, "k").answer == key and old.random() == new.random()
    lengths = {len(passkey_sample(random.Random(i), "x", 0.5, "k", digits=(4, 10)).answer) for i in range(300)}
    assert lengths == set(range(4, 11))
    gm = _fresh_model()
    docs = recipe_documents(_pool_config(tmp_path, steps=1), "train")
    for i in range(6):
        plan = plan_chunk(random.Random(i), docs, gm.tokenizer, 200, 4096, facts=1, language="en", keyed=True,
                          key_digits=(8, 9))
        key = gm.tokenizer.decode(next(q.answer for q in plan.questions if q.task == "niah"), skip_special_tokens=True)
        assert re.fullmatch(r"\d{8,9}", key.strip()) and key.strip() in gm.tokenizer.decode(plan.ids)
    lengths = []  # [lo, hi, share]: that share of keys of drawn length, the rest 5 digits
    for i in range(200):
        plan = plan_chunk(random.Random(i), docs, gm.tokenizer, 120, 4096, facts=0, language="en", keyed=True,
                          key_digits=(8, 9, 0.25))
        key = gm.tokenizer.decode(next(q.answer for q in plan.questions if q.task == "niah"), skip_special_tokens=True)
        lengths.append(len(key.strip()))
    assert set(lengths) == {5, 8, 9} and 0.15 < sum(n != 5 for n in lengths) / 200 < 0.35
    cfg = TrainConfig(recipe="pool", key_digits=[6, 9])
    assert cfg.key_digits == (6, 9) and cfg.pool_contents()["key_digits"] == (6, 9)
    assert TrainConfig(recipe="pool", key_digits=[4, 10, 0.3]).key_digits == (4, 10, 0.3)
    for bad in ([5], [0, 3], [9, 5], ["5", "6"], 5, [5, 19], [4, 10, 1.5], [4, 10, True], [4, 10, "x"], [4, 10, 0.2, 1]):
        with pytest.raises(ValueError, match="key_digits"):
            TrainConfig(recipe="pool", key_digits=bad)


def test_answer_losses_cover_every_task_of_the_chunks(tmp_path):
    from trainers.data import recipe_documents
    from trainers.pool import ContextPool
    from trainers.validation import answer_losses

    cfg = _pool_config(tmp_path, steps=1)
    gm = _fresh_model()
    pool = ContextPool(gm, recipe_documents(cfg, "train"), 4, 0.0, torch.float32, lambda s: (24, 64), facts=2,
                       keyed_share=1.0)
    losses = answer_losses(gm, pool, [0, 1, 2])
    assert {"niah", "fact"} <= set(losses) and all(v > 0 for v in losses.values())
    assert gm.training  # left as it was found


def _model_with(targets, layers: int = 2):
    gm = tiny_gist_model(k=4, chunk_tokens=64, lora=False, layers=layers)
    with torch.no_grad():
        gm.model.get_input_embeddings().weight.mul_(20)
    torch.manual_seed(1)
    gm.add_lora(r=4, alpha=8, target_modules=targets)
    return gm


def test_a_run_started_from_another_runs_checkpoint_adds_lora_modules_and_keeps_the_rest(tmp_path):
    from safetensors.torch import load_file

    from trainers.fork import init_from_checkpoint
    from trainers.train import load_checkpoint, make_optimizer, train

    attention = ("q_proj", "k_proj", "v_proj", "o_proj")
    wider = attention + ("gate_proj", "up_proj", "down_proj")
    train(_pool_config(tmp_path / "a", steps=6), model=_model_with(attention), progress=False, stop_after=3)
    src = tmp_path / "a" / "run"
    cfg = _pool_config(tmp_path / "b", steps=6, lora_r=4, lora_alpha=8, lora_targets=wider, init_from=str(src))
    gm = _model_with(wider)
    optimizer = make_optimizer(cfg, gm)
    assert init_from_checkpoint(src, cfg, gm, optimizer) == 3
    # the same function as the source (the added LoRA starts at zero) ...
    same = _model_with(attention)
    assert load_checkpoint(src, same, make_optimizer(cfg, same)) == 3
    ids = torch.randint(0, 200, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(gm.model(input_ids=ids).logits, same.model(input_ids=ids).logits)
    # ... and the source's AdamW moments on every parameter the source had, none on the added ones
    names = [n for n, p in gm.named_parameters() if p.requires_grad]
    held = {n: optimizer.state[p]["exp_avg"] for n, p in gm.named_parameters() if p in optimizer.state}
    stored = load_file(str(src / "checkpoint" / "optimizer.safetensors"))
    before = [n for n, p in same.named_parameters() if p.requires_grad]
    assert sorted(held) == sorted(before) and any("mlp" in n for n in names)
    for i, n in enumerate(before):
        torch.testing.assert_close(held[n], stored[f"{i}.exp_avg"])
    # train() starts there and continues; its own checkpoint then wins over init_from
    train(cfg, model=_model_with(wider), progress=False, stop_after=2)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [3, 4]
    assert json.loads((tmp_path / "b" / "run" / "checkpoint" / "trainer_state.json").read_text())["step"] == 5
    train(cfg, model=_model_with(wider), progress=False)
    assert (tmp_path / "b" / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_init_from_refuses_a_checkpoint_of_other_shapes(tmp_path):
    from trainers.fork import init_from_checkpoint
    from trainers.train import make_optimizer, train

    attention = ("q_proj", "k_proj", "v_proj", "o_proj")
    train(_pool_config(tmp_path / "a", steps=2), model=_model_with(attention), progress=False)
    src = tmp_path / "a" / "run"
    narrower = _pool_config(tmp_path / "b", steps=4, lora_r=4, lora_alpha=8, lora_targets=("q_proj",),
                            init_from=str(src))
    gm = _model_with(("q_proj",))
    with pytest.raises(ValueError, match="may only add modules"):
        init_from_checkpoint(src, narrower, gm, make_optimizer(narrower, gm))
    with pytest.raises(ValueError, match="holds no checkpoint"):
        init_from_checkpoint(tmp_path / "nowhere", narrower, gm, make_optimizer(narrower, gm))
    with pytest.raises(ValueError, match="init_from must be"):
        TrainConfig(init_from=3)


def test_compare_pairs_two_runs_losses_step_for_step(tmp_path):
    from trainers.compare import _equal_time, compare, plot

    def write(run, losses, val):
        run.mkdir()
        rows = [{"step": s, "loss": l, "s": 2.0, "task_loss": {"fact": l, "niah": l / 2}, "tasks": {"fact": 3, "niah": 1}}
                for s, l in losses.items()]
        rows += [{"step": s, "val": v} for s, v in val.items()]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 9, "lo')

    write(tmp_path / "a", {s: 2.0 for s in range(0, 8)}, {4: {"fact": 0.2}, 8: {"fact": 0.3}})
    write(tmp_path / "b", {s: 1.0 + (s >= 6) for s in range(4, 10)}, {8: {"fact": 0.4}})
    out = compare(tmp_path / "a", tmp_path / "b", start=4)
    assert out["steps"] == [4, 7] and out["compared"] == 4
    assert out["a"]["task_loss"] == {"fact": 2.0, "niah": 1.0}
    assert out["b"]["task_loss"] == {"fact": 1.5, "niah": 0.75} and out["b"]["task_loss_last_half"]["fact"] == 2.0
    assert out["validation"] == {8: {"a": {"fact": 0.3}, "b": {"fact": 0.4}}}
    assert out["equal_time"]["seconds"] == 8.0 and out["equal_time"]["slower_reaches_step"] == 8
    # at equal training seconds: b spends 3 s a step on steps 4-5, a 2 s, so a gets 3 steps (4, 5, 6)
    slow, fast = {s: {"s": 3.0} for s in (4, 5)}, {s: {"s": 2.0} for s in range(4, 10)}
    assert _equal_time(("fast", fast), ("slow", slow), common=[4, 5]) == {
        "seconds": 6.0, "slower": "slow", "faster": "fast", "faster_reaches_step": 7, "slower_reaches_step": 6}
    plot(tmp_path / "a", tmp_path / "b", 4, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    for call in (compare, lambda a, b, start: plot(a, b, start, tmp_path / "d.png")):  # one rule for both
        with pytest.raises(ValueError, match="no trained step in common"):
            call(tmp_path / "a", tmp_path / "b", start=8)


def test_compare_pairs_validation_answers_sample_by_sample(tmp_path):
    from trainers.compare import validation_paired
    from trainers.runlog import answers_path, read_answers
    from trainers.validation import write_answers

    def answers(run, step, hits, expected=("1", "2", "3", "4", "5")):
        path = answers_path(run, step)  # its folder does not exist yet: write_answers makes it
        tasks = ["niah", "niah", "niah", "fact", "fact"]
        write_answers(path, [{"task": t, "expected": e, "answer": e if h else "x", "hit": h}
                             for t, e, h in zip(tasks, expected, hits)])

    a, b = tmp_path / "a", tmp_path / "b"
    answers(a, 75, [True, True, False, False, True])
    answers(b, 75, [True, False, True, False, True])
    answers(a, 150, [True, True, True, True, True])
    answers(b, 150, [False, False, False, False, False])
    answers(a, 225, [True] * 5)  # only one run has answers at 225: not paired
    assert read_answers(answers_path(a, 75))[2] == {"task": "niah", "expected": "3", "answer": "x", "hit": False}
    assert validation_paired(a, b, [75]) == {"niah": {"both": 1, "only_a": 1, "only_b": 1, "neither": 0},
                                             "fact": {"both": 1, "only_a": 0, "only_b": 0, "neither": 1}}
    assert validation_paired(a, b, [75, 150, 225]) == {"niah": {"both": 1, "only_a": 4, "only_b": 1, "neither": 0},
                                                       "fact": {"both": 1, "only_a": 2, "only_b": 0, "neither": 1}}
    answers(b, 150, [True] * 5, expected=("9", "2", "3", "4", "5"))  # another validation set
    with pytest.raises(ValueError, match="different validation samples"):
        validation_paired(a, b, [150])


def test_run_log_is_read_one_way_by_plot_resume_and_compare(tmp_path):
    from trainers.runlog import never_scored, plot_log, read_log, read_val_nll

    log = tmp_path / "log.jsonl"
    assert read_log(log) == ({}, {}) and never_scored(log, {"niah"}) == {"niah"}
    rows = [{"step": 0, "loss": 3.0, "s": 1.0}, {"step": 1, "loss": 2.5, "s": 1.0}, {"step": 2, "val": {"niah": 0.1}},
            {"step": 1, "loss": 2.0, "s": 1.5}, [1, 2], {"no": "step"},  # step 1 again after a resume
            {"step": 4, "val": {"niah": 0.2}, "val_nll": {"niah": 1.5}}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 2, "loss": 1.')  # cut short by a kill
    train, val = read_log(log)
    assert sorted(train) == [0, 1] and train[1]["loss"] == 2.0 and val == {2: {"niah": 0.1}, 4: {"niah": 0.2}}
    assert read_val_nll(log) == {4: {"niah": 1.5}}
    assert never_scored(log, {"niah", "fact"}) == {"fact"}
    plot_log(log, tmp_path / "training.png")  # used to raise on the cut-short line
    assert (tmp_path / "training.png").stat().st_size > 0
