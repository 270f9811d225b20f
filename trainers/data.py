"""Training episodes from real text: a task sample, cut into chunks, turned into token ids.

The data of step ``s`` is a pure function of (seed, s): resuming a run reproduces the exact
batches it would have seen, with no sampler state to save.
"""

from __future__ import annotations

import random

from gist_memory.compress import split_tokens
from gist_memory.data.corpus import COLLECTIONS, SourceDocument, load_documents, split_documents
from gist_memory.data.tasks import Sample, cloze_sample, fact_sample, passkey_sample, recon_sample, trim_to_tokens
from gist_memory.generate import answer_ids, prompt_ids

from .config import Stage, TrainConfig
from .recipe import Episode


def training_documents(split: str = "train", seed: int = 0, language: str = "en") -> list[SourceDocument]:
    """Documents of one split; train, validation and test never share a source work."""
    return split_documents(load_documents(language), seed=seed)[split]


def recipe_documents(cfg: TrainConfig, split: str) -> dict[str, list]:
    """The pool recipe's documents of ``split`` by language.

    The default English collections are split together exactly as the evaluation sets split them
    (so no test work is trained on), then filtered to ``cfg.collections``; a non-default
    collection (``pydoc``) is split on its own.
    """
    wanted = set(cfg.collections)
    en = [d for d in training_documents(split, seed=cfg.seed) if d.source.split(":", 1)[0] in wanted]
    for name in sorted(n for n in wanted if not COLLECTIONS[n].default):
        en += split_documents(load_documents("en", [name]), seed=cfg.seed)[split]
    docs = {"en": en}
    if cfg.language_mix.get("ko", 0) > 0:
        docs["ko"] = training_documents(split, seed=cfg.seed, language="ko")
    return docs


def sample_text(rng: random.Random, docs: list[SourceDocument], tokenizer, n_tokens: int) -> tuple[str, SourceDocument]:
    """About ``n_tokens`` tokens of real text starting at a random paragraph of a random document."""
    doc = rng.choice(docs)
    paragraphs = doc.text.split("\n\n")
    start = rng.randrange(max(len(paragraphs) // 2, 1))
    text = "\n\n".join(paragraphs[start:])
    while len(text) < n_tokens * 6:  # ~4 characters a token in English; top up from another document
        text += "\n\n" + rng.choice(docs).text
    return trim_to_tokens(tokenizer, text, n_tokens), doc


def make_sample(rng: random.Random, task: str, docs: list[SourceDocument], tokenizer, stage: Stage,
                sample_id: str, held_out_facts: bool = False) -> Sample:
    """One sample of ``task`` over 1..max_chunks chunks of stage-sized real text."""
    n_chunks = 1 if task == "recon" else rng.randint(1, stage.max_chunks)
    lengths = [rng.randint(stage.min_tokens, stage.max_tokens) for _ in range(n_chunks)]
    # Each chunk is cut separately so it stays within its length even after the needle goes in.
    texts = [sample_text(rng, docs, tokenizer, n)[0] for n in lengths]
    target = rng.randrange(n_chunks)
    depth = rng.uniform(0.1, 0.9)
    if task == "niah":
        inner = passkey_sample(rng, texts[target], depth, sample_id)
    elif task == "fact":
        inner = fact_sample(rng, texts[target], depth, sample_id, held_out=held_out_facts)
    elif task == "qa":
        inner = cloze_sample(rng, texts[target], sample_id) or passkey_sample(rng, texts[target], depth, sample_id)
    elif task == "recon":
        inner = recon_sample(tokenizer, texts[0], sample_id)
    else:
        raise ValueError(f"task {task!r} has no episode builder")
    texts[target] = inner.context
    inner.meta["chunk_texts"] = texts
    inner.meta["target_chunk"] = target
    return inner


def to_episode(sample: Sample, tokenizer, chunk_tokens: int, prompt_format: str = "chat") -> Episode:
    """Token ids of a sample: each chunk text is its own chunk (split again if a needle overflowed it);
    the question written in ``prompt_format`` (``gist_memory.generate.prompt_ids``)."""
    chunks = []
    for text in sample.meta.get("chunk_texts", [sample.context]):
        chunks += split_tokens(tokenizer(text, add_special_tokens=False)["input_ids"], chunk_tokens)
    return Episode(chunks, prompt_ids(tokenizer, sample.question, prompt_format=prompt_format), answer_ids(tokenizer, sample.answer))


def step_samples(cfg: TrainConfig, step: int, docs: list[SourceDocument], tokenizer, stream: str = "") -> list[Sample]:
    """The batch of step ``step``: ``batch_size`` samples, tasks drawn by the stage's task mix.

    ``stream`` names a process's own data stream when several train together ('' for one)."""
    rng = random.Random(f"{cfg.seed}-{step}{stream}")
    tasks, weights = zip(*[(t, w) for t, w in cfg.task_mix_at(step).items() if w > 0])
    stage = cfg.stage(step)
    return [make_sample(rng, rng.choices(tasks, weights)[0], docs, tokenizer, stage, f"s{step}-{i}")
            for i in range(cfg.batch_size)]
