"""The adapter's prompt format (``GistConfig.prompt_format``): how the question after the gists is
written. Training and inference must write it the same way (the trainer records it in the
adapter, generation reads it back), and the base model answering without gists keeps its own
chat turn. SmolLM2's template adds a 21-token default system turn to every question; an adapter
trained in "chat-no-system" never reads it.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import torch

from gist_memory import InputError
from gist_memory.compress import compress_chunks
from gist_memory.config import GistConfig
from gist_memory.errors import ModelLoadError
from gist_memory.generate import prompt_ids
from gist_memory.model import GistModel
from tiny import save_tiny, tiny_gist_model

QUESTION = "What is the pass key?"
#: SmolLM2's shape of template: a default system turn unless the messages bring their own.
WITH_DEFAULT_SYSTEM = (
    "{% for m in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "<|user|>system: You are a helpful tiny model.<|end|>{% endif %}"
    "<|user|>{{ m['role'] }}: {{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")
#: Gemma's shape: a system role is refused.
REFUSES_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "<|user|>{{ m['content'] }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _gm(template: str | None = WITH_DEFAULT_SYSTEM, prompt_format: str = "chat-no-system"):
    gm = tiny_gist_model()
    if template is not None:
        gm.tokenizer.chat_template = template
    gm.gist = replace(gm.gist, prompt_format=prompt_format)
    return gm


def test_no_system_drops_the_default_system_turn_and_nothing_else():
    tok = _gm().tokenizer
    chat, bare = prompt_ids(tok, QUESTION), prompt_ids(tok, QUESTION, prompt_format="chat-no-system")
    assert "helpful tiny model" in tok.decode(chat)
    assert tok.decode(bare) == f"<|user|>user: {QUESTION}<|end|><|assistant|>"
    assert chat[-len(bare):] == bare and len(bare) < len(chat)


@pytest.mark.parametrize("template", [REFUSES_SYSTEM, None])  # None: the tiny template, no system turn of its own
def test_no_system_is_the_chat_turn_where_the_template_adds_none(template):
    tok = _gm(template).tokenizer
    assert prompt_ids(tok, QUESTION, prompt_format="chat-no-system") == prompt_ids(tok, QUESTION)


def test_unknown_formats_are_refused_everywhere():
    from trainers.config import TrainConfig

    with pytest.raises(InputError, match="prompt_format"):
        prompt_ids(_gm().tokenizer, QUESTION, prompt_format="plain")
    with pytest.raises(ValueError, match="prompt_format"):
        GistConfig(prompt_format="plain")
    with pytest.raises(ValueError, match="prompt_format"):
        TrainConfig(prompt_format="plain")


def test_the_adapter_records_its_format_and_loads_with_it(tmp_path):
    base, chat_dir = save_tiny(tmp_path)
    info = json.loads((tmp_path / "adapter" / "gist_config.json").read_text())
    assert "prompt_format" not in info and info["format_version"] == 1  # written as every release wrote it
    gm = GistModel.from_pretrained(base, adapter=chat_dir, device="cpu")
    assert gm.gist.prompt_format == "chat"
    gm.gist = replace(gm.gist, prompt_format="chat-no-system")
    gm.save_adapter(tmp_path / "bare")
    info = json.loads((tmp_path / "bare" / "gist_config.json").read_text())
    assert info["prompt_format"] == "chat-no-system" and info["format_version"] == 3  # older releases refuse it
    assert GistModel.from_pretrained(base, adapter=str(tmp_path / "bare"), device="cpu").gist.prompt_format \
        == "chat-no-system"
    (tmp_path / "bare" / "gist_config.json").write_text(json.dumps(dict(info, prompt_format="plain")))
    with pytest.raises(ModelLoadError, match="prompt_format"):
        GistModel.from_pretrained(base, adapter=str(tmp_path / "bare"), device="cpu")


def _prefills(gm, run) -> list[int]:
    calls = []
    hook = gm.model.register_forward_pre_hook(
        lambda m, a, kw: calls.append(kw["input_ids"][0].tolist()) if kw.get("input_ids") is not None else None,
        with_kwargs=True)
    try:
        run()
    finally:
        hook.remove()
    return calls[0]


def test_generation_asks_in_the_adapters_format_and_the_base_model_in_its_own():
    gm = _gm()
    caches = compress_chunks(gm, [list(range(40, 70))])
    with_gists = _prefills(gm, lambda: gm.generate(QUESTION, caches, max_new_tokens=2))
    assert with_gists == prompt_ids(gm.tokenizer, QUESTION, prompt_format="chat-no-system")
    assert _prefills(gm, lambda: gm.generate(QUESTION, None, max_new_tokens=2)) == prompt_ids(gm.tokenizer, QUESTION)


def _trainer_model(prompt_format: str):
    from trainers.config import Stage, TrainConfig
    from trainers.train import build_model

    cfg = TrainConfig(recipe="pool", chunk_tokens=64, num_gist_tokens=4, stages=(Stage(1000, 24, 64, 2),),
                      task_mix={"niah": 1.0, "fact": 1.0, "theme": 1.0}, prompt_format=prompt_format)
    gm = _gm(prompt_format="chat")
    gm.model = gm.model.get_base_model()  # build_model adds the run's own LoRA
    del gm.model.peft_config
    return cfg, build_model(cfg, gm)


def test_the_trainer_asks_what_inference_will_ask_and_the_teacher_reads_its_own_turn():
    """Every pool question and episode is written in the run's format (the adapter it saves says so),
    while the theme teacher, the base model reading the chunk, gets its usual chat turn."""
    from trainers.data import make_sample, recipe_documents, to_episode
    from trainers.pool import ContextPool

    cfg, gm = _trainer_model("chat-no-system")
    assert gm.gist.prompt_format == "chat-no-system"
    docs = recipe_documents(cfg, "train")
    pool = ContextPool(gm, docs, 3, 0.0, torch.float32, lambda s: (24, 64), facts=2, keyed_share=1.0,
                       theme_share=1.0)
    pool.advance(0)
    system = prompt_ids(gm.tokenizer, "x")[:-len(prompt_ids(gm.tokenizer, "x", prompt_format="chat-no-system"))]
    for chunk in pool.chunks:
        for q in chunk.questions:
            assert gm.tokenizer.decode(q.prompt).startswith("<|user|>user: ") and q.prompt[:len(system)] != system
    plan = pool.plan(0)
    assert plan.theme_prompt[:len(system)] == system and plan.theme_prompt[len(system):] == plan.theme_asked
    sample = make_sample(random.Random(0), "niah", docs["en"], gm.tokenizer, cfg.stages[0], "s0")
    assert to_episode(sample, gm.tokenizer, 64, "chat-no-system").prompt \
        == prompt_ids(gm.tokenizer, sample.question, prompt_format="chat-no-system")


def test_a_run_saves_its_format_and_refuses_to_resume_in_another(tmp_path):
    from trainers.train import check_resume, train

    cfg, gm = _trainer_model("chat-no-system")
    cfg = replace(cfg, out_dir=str(tmp_path / "run"), steps=2, warmup_steps=1, save_every=1, eval_samples=0,
                  pool_size=4, chunks_per_step=2, questions_per_chunk=1, task_mix={"niah": 1.0, "fact": 1.0})
    train(cfg, model=gm, progress=False)
    for saved in ("adapter", "checkpoint"):
        assert json.loads((tmp_path / "run" / saved / "gist_config.json").read_text())["prompt_format"] \
            == "chat-no-system"
    with pytest.raises(ValueError, match="prompt_format"):
        check_resume(tmp_path / "run", replace(cfg, prompt_format="chat"))


@pytest.mark.slow
def test_the_default_models_question_without_its_system_turn():
    """SmolLM2's template adds a default system turn to a question: "chat-no-system" is the same
    prompt without it (15 tokens for a pass-key question instead of 36)."""
    from gist_memory.loading import load_base

    _, tok, _ = load_base("default", torch.device("cpu"), torch.float32)
    chat, bare = prompt_ids(tok, QUESTION), prompt_ids(tok, QUESTION, prompt_format="chat-no-system")
    assert (len(chat), len(bare)) == (36, 15) and chat[-len(bare):] == bare
    assert tok.decode(bare) == f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    assert "You are a helpful AI assistant" in tok.decode(chat[:-len(bare)])
