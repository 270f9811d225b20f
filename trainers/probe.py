"""Where exact fact recall is lost: a paired probe over facts per chunk and the text around them.

Validation's facts sit alone in 256-480 tokens of real text and come back right about a third of
the time, as near misses (README, evidence item 11). Two causes predict different things:

- **capacity**: a chunk's k gists hold only so much, so recall falls as a chunk holds more facts
  (training chunks hold a pass key and three);
- **selection**: the gists must find the planted sentence among real text full of numbers and
  names, so recall rises when the text around the facts is taken away.

Every sample ``i`` draws one text and ``max(facts)`` facts of trained kinds once; each condition
keeps the first ``n`` facts (with or without the text) and asks about the first, so conditions
differ only in what they vary (paired). Answers come from the gists alone, through
``validation.validate_kept`` (the inference path over kept context KV).

    python -m trainers.probe --adapter runs/pool-k8m/checkpoint --samples 60

``--key_lengths 4,5,6,8,10`` probes instead whether an adapter reads where a string ends: each
sample draws one text and one depth, and each condition ``key{L}`` plants there a pass key of L
digits (keys of other lengths than the training's 5 come back with the right digits and the wrong
length, README evidence items 17-18).
"""

from __future__ import annotations

import random

import torch

from gist_memory.data.facts import open_fact
from gist_memory.data.tasks import passkey_sample, plant

from .data import sample_text
from .validation import ValSample, kept_chunks


def probe_set(gm, docs, n: int, facts: tuple[int, ...], text_tokens: int, seed: int = 0) -> list[ValSample]:
    """``n`` paired samples per condition ``f{n_facts}-{text|bare}``, context KV computed here."""
    drafts = []
    for i in range(n):
        rng = random.Random(f"probe-{seed}-{i}")
        text = sample_text(rng, docs["en"], gm.tokenizer, text_tokens)[0]
        drawn = [open_fact(rng) for _ in range(max(facts))]
        depths = [rng.uniform(0.1, 0.9) for _ in drawn]
        order = list(range(max(facts)))
        rng.shuffle(order)  # the bare chunks list the facts in a drawn order, the asked one anywhere
        for n_facts in facts:
            kept = [drawn[j] for j in order if j < n_facts]
            with_text = text
            for fact, depth in zip(drawn[:n_facts], depths):
                with_text = plant(with_text, fact.needle, depth)
            for name, context in ((f"f{n_facts}-text", with_text), (f"f{n_facts}-bare", " ".join(f.needle for f in kept))):
                ids = gm.tokenizer(context, add_special_tokens=False)["input_ids"][:gm.gist.chunk_tokens]
                drafts.append((name, ids, drawn[0].question, drawn[0].answer))
    kept = kept_chunks(gm, [ids for _, ids, _, _ in drafts])
    return [ValSample(name, [chunk], q, a) for (name, _, q, a), chunk in zip(drafts, kept)]


def key_length_set(gm, docs, n: int, lengths: tuple[int, ...], text_tokens: int, seed: int = 0) -> list[ValSample]:
    """``n`` paired samples per condition ``key{L}``: the same text and depth, a pass key of L digits."""
    drafts = []
    for i in range(n):
        rng = random.Random(f"probe-keys-{seed}-{i}")
        text = sample_text(rng, docs["en"], gm.tokenizer, text_tokens)[0]
        depth = rng.uniform(0.1, 0.9)
        for length in lengths:
            s = passkey_sample(random.Random(f"probe-keys-{seed}-{i}-{length}"), text, depth, f"key{length}-{i}",
                               digits=(length, length))
            ids = gm.tokenizer(s.context, add_special_tokens=False)["input_ids"][:gm.gist.chunk_tokens]
            drafts.append((f"key{length}", ids, s.question, s.answer))
    kept = kept_chunks(gm, [ids for _, ids, _, _ in drafts])
    return [ValSample(name, [chunk], q, a) for (name, _, q, a), chunk in zip(drafts, kept)]


def main(adapter: str = "default", recipe: str = "trainers/configs/pool.yaml", samples: int = 60,
         facts: str = "1,3,6", text_tokens: int = 448, num_threads: int = 2, out: str | None = None,
         answers_out: str | None = None, key_lengths: str = "") -> dict:
    """Exact match from the gists by condition: facts per chunk x with or without real text.

    Args:
        adapter: 'default', 'none' or an adapter directory (a run's ``checkpoint/``).
        recipe: the training config whose seed and collections pick the validation documents.
        samples: paired samples per condition.
        facts: comma-separated numbers of facts planted per chunk (the first is asked).
        text_tokens: tokens of real text around the facts in the ``text`` conditions.
        num_threads: torch CPU threads.
        out: also write the scores as JSON here.
        answers_out: write every answer (JSON lines) here.
        key_lengths: comma-separated pass-key lengths in digits (1-18): probe these instead of facts.
    """
    from gist_memory.model import GistModel

    from .config import TrainConfig
    from .data import recipe_documents
    from .validation import emit, score_samples

    counts = tuple(int(x) for x in facts.split(","))
    if not counts or min(counts) < 1:
        raise ValueError(f"facts must list positive numbers, got {facts!r}")
    lengths = tuple(int(x) for x in str(key_lengths).split(",") if x.strip())
    if lengths and not all(1 <= n <= 18 for n in lengths):
        raise ValueError(f"key_lengths must list digits from 1 to 18, got {key_lengths!r}")
    torch.set_num_threads(num_threads)
    cfg = TrainConfig.from_yaml(recipe)
    gm = GistModel.from_pretrained(cfg.base, adapter=adapter, num_gist_tokens=cfg.num_gist_tokens,
                                   chunk_tokens=cfg.chunk_tokens)
    docs = recipe_documents(cfg, "validation")
    val = key_length_set(gm, docs, samples, lengths, text_tokens, seed=cfg.seed) if lengths else \
        probe_set(gm, docs, samples, counts, text_tokens, seed=cfg.seed)
    record = {"adapter": gm.adapter_identity, "samples_per_condition": samples, "text_tokens": text_tokens,
              "exact_match": score_samples(gm, val, answers_out)}
    emit(record, out)
    return record


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
