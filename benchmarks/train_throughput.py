"""Training throughput on this machine: the episode recipe and the context-KV pool recipe side by side.

Both recipes start from the same fresh adapter on the same base model, in one process, one after
the other, with the same thread count; each runs ``warmup`` untimed steps, then ``steps`` timed
ones. The pool recipe's time includes building its chunks' KV at the refresh rate of its config
(the initial pool is built once and its cost is reported apart, and amortised over a turnover).
Reported per recipe: trained answer tokens and questions per second of step time, context tokens
per second (tokens a step reads, through the base model or from kept KV), and, for reference, the
base model's plain prefill rate over one 512-token chunk. Each recipe is then timed again on the
same data with the question written without the chat template's system turn (the adapter's
``prompt_format: chat-no-system``), from the same fresh start. A benchmark, not a test: it prints
the conditions it ran under.

    python benchmarks/train_throughput.py --num_threads 2
"""

from __future__ import annotations

import datetime
import json
import platform
import random
import statistics
import time
from dataclasses import replace


def _episode_steps(cfg, gm, optimizer, docs, steps: int) -> list[dict]:
    from trainers.recipe import collate, episode_loss
    from trainers.data import step_samples, to_episode

    out = []
    for step in range(steps):
        t0 = time.perf_counter()
        late = (cfg.stages[-2].until_step if len(cfg.stages) > 1 else 0) + step  # a step of the last stage
        episodes = [to_episode(s, gm.tokenizer, cfg.chunk_tokens, gm.gist.prompt_format)
                    for s in step_samples(cfg, late, docs, gm.tokenizer)]
        batch = collate(episodes, cfg.num_gist_tokens, gm.tokenizer.pad_token_id)
        loss = episode_loss(gm, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        out.append({"s": time.perf_counter() - t0, "answer_tokens": batch.answer_tokens,
                    "questions": len(episodes), "ctx_tokens": sum(len(c) for e in episodes for c in e.chunks)})
    return out


def _pool_steps(cfg, gm, optimizer, pool, steps: int, per_chunk_s: float, draw=None,
                refresh_share: float = 1.0) -> list[dict]:
    """``steps`` timed pool-recipe steps; ``draw(step)`` gives a step's (chunks, rows) (by default
    ``cfg.chunks_per_step`` chunks from the pool and their rows), ``refresh_share`` the share of
    the step's fresh chunks whose base pass this process pays for."""
    from trainers.pool import draw_rows
    from trainers.pool_forward import pool_loss

    def default_draw(step):
        rng = random.Random(f"bench-{step}")
        drawn = rng.sample(pool.chunks, cfg.chunks_per_step)
        return drawn, draw_rows(rng, drawn, cfg.stages[-1].max_chunks, cfg.questions_per_chunk, cfg.task_mix)

    out = []
    for step in range(steps):
        t0 = time.perf_counter()
        drawn, rows = (draw or default_draw)(step)
        loss, answer_tokens = pool_loss(gm, drawn, rows)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # fresh chunks enter at cfg.pool_refresh a step: their base pass is part of the step's cost
        out.append({"s": time.perf_counter() - t0 + cfg.pool_refresh * refresh_share * per_chunk_s,
                    "answer_tokens": answer_tokens, "questions": len(rows), "ctx_tokens": sum(len(c.ids) for c in drawn)})
    return out


def _summary(rows: list[dict]) -> dict:
    total = sum(r["s"] for r in rows)
    return {"step_s": statistics.median(r["s"] for r in rows),
            "answer_tokens_per_s": sum(r["answer_tokens"] for r in rows) / total,
            "questions_per_s": sum(r["questions"] for r in rows) / total,
            "ctx_tokens_per_s": sum(r["ctx_tokens"] for r in rows) / total}


def _fresh_start(gm, init: dict, cfg):
    """Put ``gm``'s trainable tensors back to ``init``; a new optimizer for ``cfg``."""
    import torch

    from trainers.train import make_optimizer

    with torch.no_grad():
        for k, v in gm.named_parameters():
            if k in init:
                v.copy_(init[k])
    return make_optimizer(cfg, gm)


def main(episode_recipe: str = "trainers/configs/default.yaml", pool_recipe: str = "trainers/configs/pool.yaml",
         steps: int = 6, warmup: int = 1, pool_chunks: int = 24, num_threads: int = 2,
         out: str | None = None) -> dict:
    """Print a Markdown table of both recipes' training throughput; return the numbers.

    Args:
        episode_recipe, pool_recipe: the two configs (their last curriculum stage is measured).
        steps: timed steps per recipe (after ``warmup`` untimed ones).
        pool_chunks: chunks in the benchmark's pool (the draw needs ``chunks_per_step`` of them).
        num_threads: torch CPU threads.
        out: also write the numbers as JSON here.
    """
    import torch

    from gist_memory.compress import context_kv
    from gist_memory.provenance import versions
    from trainers.config import TrainConfig
    from trainers.pool import ContextPool
    from trainers.data import recipe_documents, training_documents
    from trainers.train import build_model

    torch.set_num_threads(num_threads)
    old = TrainConfig.from_yaml(episode_recipe)
    new = TrainConfig.from_yaml(pool_recipe)
    results: dict = {}
    torch.manual_seed(0)
    gm = build_model(old)
    init = {k: v.detach().clone() for k, v in gm.named_parameters() if v.requires_grad}
    gm.train()

    # the base model's plain prefill rate over one 512-token chunk
    ids = [list(range(1000, 1000 + new.chunk_tokens))]
    context_kv(gm, ids)
    t0 = time.perf_counter()
    for _ in range(2):
        context_kv(gm, ids)
    prefill = 2 * new.chunk_tokens / (time.perf_counter() - t0)

    docs = training_documents("train", seed=old.seed)
    last = new.stages[-1]
    pool = ContextPool(gm, recipe_documents(new, "train"), pool_chunks, 0.0, getattr(torch, new.pool_dtype),
                       lambda s: (last.min_tokens, last.max_tokens), seed=new.seed, facts=new.facts_per_chunk,
                       language_mix=new.language_mix, keyed_share=new.keyed_share)
    pool.advance(0)
    per_chunk_s = pool.built_seconds / pool_chunks
    for fmt, suffix in (("chat", ""), ("chat-no-system", " (no system turn)")):
        gm.gist = replace(gm.gist, prompt_format=fmt)
        for c in pool.chunks:  # the kept KV serves both formats; only the questions' prompts change
            c.questions = pool.plan(c.number).questions
        optimizer = _fresh_start(gm, init, old)
        _episode_steps(old, gm, optimizer, docs, warmup)
        results["episode" + suffix] = _summary(_episode_steps(old, gm, optimizer, docs, steps))
        optimizer = _fresh_start(gm, init, new)  # the same fresh start for the pool recipe
        _pool_steps(new, gm, optimizer, pool, warmup, per_chunk_s)
        results["pool" + suffix] = _summary(_pool_steps(new, gm, optimizer, pool, steps, per_chunk_s))
    results["pool"]["chunk_build_s"] = per_chunk_s
    results["prefill_tokens_per_s"] = prefill
    results["conditions"] = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                             "threads": num_threads, "steps": steps, **versions()}
    ratio = {k: results["pool"][k] / results["episode"][k] for k in ("answer_tokens_per_s", "questions_per_s")}
    results["ratio"] = ratio
    results["no_system_step_ratio"] = {r: results[f"{r} (no system turn)"]["step_s"] / results[r]["step_s"]
                                       for r in ("episode", "pool")}
    lines = ["| recipe | step (s, median) | answer tokens / s | questions / s | context tokens / s |",
             "|---|---|---|---|---|"]
    for name in ("episode", "pool", "episode (no system turn)", "pool (no system turn)"):
        r = results[name]
        lines.append(f"| {name} | {r['step_s']:.2f} | {r['answer_tokens_per_s']:.1f} | {r['questions_per_s']:.2f} | "
                     f"{r['ctx_tokens_per_s']:.0f} |")
    lines.append(f"| pool / episode | | {ratio['answer_tokens_per_s']:.1f}x | {ratio['questions_per_s']:.1f}x | |")
    lines += [f"| {r}: no system turn / chat | {v:.2f}x | | | |" for r, v in results["no_system_step_ratio"].items()]
    table = "\n".join(lines)
    print(table)
    print(f"\nplain prefill of the base model: {prefill:.0f} tokens/s; a pool chunk's base pass: {per_chunk_s:.2f} s; "
          f"{num_threads} threads, {steps} timed steps each, {results['conditions']['date']}")
    if out:
        with open(out, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
