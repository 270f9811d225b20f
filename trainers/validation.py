"""Held-out validation for the pool recipe: fixed samples on the validation split, scored by exact match.

Tasks (``n`` samples each, documents of the validation split only, 1-2 chunks of 256-512 tokens,
the needle in one chunk at a depth of 10-90%):

- ``niah``: the English pass key;  ``niah_ko``: the Korean pass key in Korean text;
- ``fact``: an open-vocabulary fact of a kind the trainer plants, in the trainer's phrasings;
- ``fact_new_kind``: a fact of a kind the trainer never plants (``facts.HELD_OUT_KINDS``);
- ``fact_rel``: a fact of the evaluation's relations (``tasks.fact_sample``: birthplace, colour,
  location, day, count, job) in its held-out phrasings, as the test split asks them (last in the
  list, so the samples of the tasks before it are those of runs made before it existed);
- ``fact_generic`` (never scored in training; ``trainers.readout`` asks for it): a fact of a drawn
  relation and value shape, as the pool plants them (``facts.generic_fact``), on validation text.

The frozen base's context KV of every chunk is computed once and kept (fp16, as in the pool);
each validation then runs what compression runs after that pass (``compress.gist_kv``) and
answers with ``GistModel.generate`` from the resulting gist caches: the inference path, minus a
context pass that the adapter cannot change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from gist_memory.compress import gist_caches, gist_kv
from gist_memory.data.corpus import SourceDocument
from gist_memory.data.facts import generic_fact, open_fact_sample
from gist_memory.data.scoring import contains_match
from gist_memory.data.tasks import fact_sample, passkey_sample, plant
from gist_memory.generate import answer_ids, forward_on_cache, merge_caches, prompt_ids

from .data import sample_text
from .pool import ChunkPlan, PoolChunk, chunks_kv
from .pool_forward import context_of

TASKS = ("niah", "fact", "fact_new_kind", "niah_ko", "fact_rel")


@dataclass
class ValSample:
    task: str
    chunks: list[PoolChunk]
    question: str
    answer: str


def _sample(rng: random.Random, task: str, docs: dict[str, list[SourceDocument]], tokenizer, i: int):
    language = "ko" if task == "niah_ko" else "en"
    n_chunks = rng.randint(1, 2)
    texts = [sample_text(rng, docs[language], tokenizer, rng.randint(256, 480))[0] for _ in range(n_chunks)]
    target, depth = rng.randrange(n_chunks), rng.uniform(0.1, 0.9)
    if task.startswith("niah"):
        s = passkey_sample(rng, texts[target], depth, f"val-{i}", language=language)
    elif task == "fact_rel":
        s = fact_sample(rng, texts[target], depth, f"val-{i}", held_out=True)
    elif task == "fact_generic":  # a fact of a drawn relation and shape, as the pool plants them (not scored in training)
        fact = generic_fact(rng, open_shapes=True)
        texts[target] = plant(texts[target], fact.needle, depth)
        return texts, fact.question, fact.answer
    else:
        s = open_fact_sample(rng, texts[target], depth, f"val-{i}", held_out_kind=task == "fact_new_kind")
    texts[target] = s.context
    return texts, s.question, s.answer


def validation_set(gm, docs: dict[str, list[SourceDocument]], n: int, seed: int = 0,
                   tasks: tuple[str, ...] = TASKS, progress: bool = False,
                   keep: tuple[str, ...] | None = None) -> list[ValSample]:
    """``n`` samples per task with their chunks' context KV computed (once, here); with ``keep``,
    only those tasks' samples, the same ones the full set holds (every task is still drawn)."""
    tasks = tuple(t for t in tasks if t != "niah_ko" or docs.get("ko"))
    rng = random.Random(f"validation-{seed}")
    chunk_tokens = gm.gist.chunk_tokens
    drafts = []
    for task in tasks:
        for i in range(n):
            texts, q, a = _sample(rng, task, docs, gm.tokenizer, i)  # drawn for every task: the rng moves on
            if keep is None or task in keep:
                ids = [gm.tokenizer(t, add_special_tokens=False)["input_ids"][:chunk_tokens] for t in texts]
                drafts.append((task, ids, q, a))
    kept = kept_chunks(gm, [ids for _, chunks, _, _ in drafts for ids in chunks], progress)
    out, at = [], 0
    for task, chunks, q, a in drafts:
        out.append(ValSample(task, kept[at:at + len(chunks)], q, a))
        at += len(chunks)
    return out


def kept_chunks(gm, id_lists: list[list[int]], progress: bool = False) -> list[PoolChunk]:
    """The frozen base's context KV of each chunk of token ids, 8 at a time, kept in fp16 as the pool keeps it
    (with a context LoRA: the layers below it and the hidden state at its input, as the pool keeps them)."""
    from tqdm.auto import tqdm

    kept: list[PoolChunk] = []
    bar = tqdm(total=len(id_lists), desc="validation context KV", unit="chunk", disable=not progress)
    for start in range(0, len(id_lists), 8):
        kept += chunks_kv(gm, [ChunkPlan(ids) for ids in id_lists[start:start + 8]], storage_dtype=torch.float16)
        bar.update(len(id_lists[start:start + 8]))
    bar.close()
    return kept


@torch.no_grad()
def sample_caches(gm, samples: list[ValSample], batch: int = 16) -> list[list]:
    """Each sample's gist caches (one per chunk), made over its kept context KV ``batch`` chunks at a time."""
    chunks = [c for s in samples for c in s.chunks]
    caches = []
    for start in range(0, len(chunks), batch):
        group = chunks[start:start + batch]
        lengths = [len(c.ids) for c in group]
        caches += gist_caches(gm, gist_kv(gm, context_of(gm, group), lengths), lengths)
    out, at = [], 0
    for s in samples:
        out.append(caches[at:at + len(s.chunks)])
        at += len(s.chunks)
    return out


@torch.no_grad()
def forced_logp(gm, caches, question: str, answer: str) -> tuple[list[int], torch.Tensor]:
    """Teacher forcing on gist caches: the answer's token ids (its end-of-turn token last) and, at
    each of them, the adapter's log-probabilities over the vocabulary after the question and the
    right tokens before it, (T, V)."""
    prompt = prompt_ids(gm.tokenizer, question, prompt_format=gm.gist.prompt_format)
    target = answer_ids(gm.tokenizer, answer)
    logits, _, _ = forward_on_cache(gm, merge_caches(gm, caches), prompt + target[:-1])
    return target, logits[0, len(prompt) - 1:].float().log_softmax(-1)


def answer_nll(gm, caches, question: str, answer: str) -> float:
    """The expected answer's mean negative log-likelihood per token (nats, end-of-turn token
    included) from ``caches``: a held-out loss that moves before exact match does, since one wrong
    token of a value costs the whole answer but only its own share of this."""
    target, logp = forced_logp(gm, caches, question, answer)
    return -logp.gather(-1, torch.as_tensor(target, device=logp.device)[:, None]).mean().item()


def nll_by_task(answers: list[dict]) -> dict[str, float]:
    """Mean ``nll`` of :func:`validate_kept`'s answer records, by task."""
    by: dict[str, list[float]] = {}
    for a in answers:
        by.setdefault(a["task"], []).append(a["nll"])
    return {task: round(sum(v) / len(v), 4) for task, v in by.items()}


@torch.no_grad()
def validate_kept(gm, samples: list[ValSample], max_new_tokens: int = 12, batch: int = 16,
                  answers: list[dict] | None = None, contrast: float = 0.0) -> dict[str, float]:
    """Exact match by task, answering from gist caches made over the kept context KV; with
    ``answers``, every sample's task, question, expected and given answer is appended to it, and
    the expected answer's teacher-forced loss from the same caches (``nll``, :func:`answer_nll`)."""
    was_training = gm.training
    gm.eval()
    hits: dict[str, list[bool]] = {}
    for s, mine in zip(samples, sample_caches(gm, samples, batch)):
        answer = gm.generate(s.question, mine, max_new_tokens=max_new_tokens, contrast=contrast).text
        hits.setdefault(s.task, []).append(contains_match(answer, s.answer))
        if answers is not None:
            answers.append({"task": s.task, "question": s.question, "expected": s.answer, "answer": answer,
                            "hit": hits[s.task][-1], "nll": round(answer_nll(gm, mine, s.question, s.answer), 4)})
    if was_training:
        gm.train()
    return {task: sum(v) / len(v) for task, v in hits.items()}


def write_answers(path, answers: list[dict]) -> None:
    """``validate_kept``'s recorded answers as JSON lines, one sample a line (its folder made if new)."""
    import json
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.writelines(json.dumps(a) + "\n" for a in answers)


def score_samples(gm, samples: list[ValSample], answers_out: str | None = None,
                  contrast: float = 0.0, nll: dict | None = None) -> dict[str, float]:
    """``validate_kept`` for a command line: the scores, and every answer written to ``answers_out``;
    with ``nll``, the expected answers' loss by task (:func:`nll_by_task`) is put in it."""
    given: list[dict] = []
    scores = validate_kept(gm, samples, answers=given, contrast=contrast)
    if answers_out:
        write_answers(answers_out, given)
    if nll is not None:
        nll.update(nll_by_task(given))
    return scores


def emit(record: dict, out: str | None) -> None:
    """Print a command's result record as one JSON line and, with ``out``, write it there too."""
    import json

    print(json.dumps(record))
    if out:
        with open(out, "w") as fh:
            json.dump(record, fh, indent=2)


@torch.no_grad()
def answer_losses(gm, pool, numbers: list[int]) -> dict[str, float]:
    """Mean answer loss by task over the questions of pool chunks ``numbers``, each asked of its
    chunk alone. On chunks a run trained on against fresh ones: a seen loss far below the fresh
    one means the adapter memorised the pool's answers instead of reading the gists."""
    from .pool import Row
    from .pool_forward import pool_loss

    was_training = gm.training
    gm.eval()
    losses: dict[str, list[float]] = {}
    for chunk in pool.build(list(numbers)):
        for q in chunk.questions:
            losses.setdefault(q.task, []).append(pool_loss(gm, [chunk], [Row([0], q)])[0].item())
    if was_training:
        gm.train()
    return {task: round(sum(v) / len(v), 3) for task, v in losses.items()}


def main(adapter: str = "default", recipe: str = "trainers/configs/pool.yaml", samples: int = 60,
         num_threads: int = 2, out: str | None = None, seen_vs_fresh_at: int | None = None,
         chunks: int = 24, refresh: float | None = None, answers_out: str | None = None,
         contrast: tuple[float, ...] = (0.0,)) -> dict:
    """Score an adapter on the trainer's validation set (the same samples a run of ``recipe`` logs).

    With ``seen_vs_fresh_at`` it instead compares the answer loss on ``chunks`` chunks from the
    middle of the pool the run held at that step (built as the trainer built them, and trained on)
    with as many fresh chunks of that step's lengths.

    Args:
        adapter: 'default' (the shipped adapter), 'none' (untrained floor) or an adapter directory
            (a run's ``adapter/`` or ``checkpoint/``).
        recipe: the training config whose seed, collections and languages define the set.
        samples: samples per task.
        num_threads: torch CPU threads.
        out: also write the scores as JSON here.
        seen_vs_fresh_at: a training step whose pool to compare with fresh chunks (memorisation check).
        chunks: chunks on each side of that comparison.
        refresh: the pool_refresh the run had up to that step, when the config has changed since.
        answers_out: write every validation sample's question, expected and given answer here
            (JSON lines), to see how the misses miss; with several ``contrast`` values, one file
            each, named ``<answers_out stem>-contrast<value>.jsonl``.
        contrast: decode with this contrast (``gist_memory.generate.contrastive_scores``; 0: plain
            greedy reading); several values score the same samples once each, side by side.
    """
    from gist_memory.model import GistModel

    from .config import TrainConfig
    from .data import recipe_documents

    torch.set_num_threads(num_threads)
    cfg = TrainConfig.from_yaml(recipe)
    gm = GistModel.from_pretrained(cfg.base, adapter=adapter, num_gist_tokens=cfg.num_gist_tokens,
                                   chunk_tokens=cfg.chunk_tokens)
    record: dict = {}
    if seen_vs_fresh_at is not None:
        from .pool import ContextPool

        step, docs = seen_vs_fresh_at, recipe_documents(cfg, "train")

        def pool_with(length_at):
            return ContextPool(gm, docs, cfg.pool_size, cfg.refresh_schedule() if refresh is None else refresh,
                               torch.float16, length_at, seed=cfg.seed, **{**cfg.pool_contents(), "theme_share": 0.0})

        trained = pool_with(lambda s: (cfg.stage(s).min_tokens, cfg.stage(s).max_tokens))  # as the trainer
        middle = trained.first(step) + (cfg.pool_size - chunks) // 2  # the pool of that step: [first, first + size)
        fresh = pool_with(lambda s: (cfg.stage(step).min_tokens, cfg.stage(step).max_tokens))
        scores = {"seen": answer_losses(gm, trained, list(range(middle, middle + chunks))),
                  "fresh": answer_losses(gm, fresh, list(range(10 ** 7, 10 ** 7 + chunks)))}
    else:
        val = validation_set(gm, recipe_documents(cfg, "validation"), samples, seed=cfg.seed, progress=True)
        from pathlib import Path

        def named(c):  # where contrast c's answers go
            return answers_out if not answers_out or len(contrast) == 1 else str(
                Path(answers_out).with_name(f"{Path(answers_out).stem}-contrast{c:g}.jsonl"))

        record["val_nll"] = {}  # teacher-forced: the same whatever the decoding's contrast
        by_contrast = {f"{c:g}": score_samples(gm, val, named(c), contrast=c, nll=record["val_nll"]) for c in contrast}
        scores = by_contrast.popitem()[1] if len(by_contrast) == 1 else by_contrast
    emit({"adapter": gm.adapter_identity, "recipe": recipe, "samples_per_task": samples, "val": scores, **record}, out)
    return scores


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
