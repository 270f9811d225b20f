"""Threads or processes? The pool recipe's training throughput with the cores given to one process's
threads, against the same cores as that many one-thread processes running at once, each drawing its
share of the step's chunks (what ``accelerate launch`` on a CPU does, less the gradient all-reduce,
which for ~6M trainable parameters is a few tens of milliseconds against a step of seconds).

A step's small matrix products (8 gist tokens, a question's ~20 tokens) use a second thread
poorly, which is what one-thread processes would win back, if anything; both arms share the
memory bandwidth. Both arms train on the same data: every process builds the same small pool (one
seed), and a step's draw is made of ``cores`` parts, each drawn from its own seed (:func:`step_parts`);
the one process of the threads arm trains on all the parts at once, process i of the other arm on
part i. Each runs ``warmup`` untimed steps, then ``steps`` timed ones; a pool chunk's base pass is
added at the config's refresh rate (split between the processes), as in ``train_throughput.py``. Questions and answer tokens per second are summed
over an arm's processes. A benchmark, not a test: it prints the conditions it ran under, and the
machine must be otherwise idle (a training run beside it takes the same cores)::

    python benchmarks/thread_split.py --recipe trainers/configs/pool-k8gt.yaml --cores 2
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time


def step_parts(chunks: list, step: int, parts: list[int], share: int, chunks_per_part: int, max_chunks: int,
               questions_per_chunk: int, task_mix: dict) -> tuple[list, list]:
    """The draw and rows of ``parts`` (indices among ``share``) of a benchmark step: part i draws
    ``chunks_per_part`` chunks and their rows (``trainers.pool.draw_rows``) from its own seed, so the
    parts of a step are the same whichever process trains them; rows index the concatenated draw."""
    from trainers.pool import Row, draw_rows

    drawn, rows = [], []
    for i in parts:
        if not 0 <= i < share:
            raise ValueError(f"part {i} of {share}")
        rng = random.Random(f"split-{step}-{i}-of-{share}")
        part = rng.sample(chunks, chunks_per_part)
        rows += [Row([c + len(drawn) for c in r.chunks], r.question)
                 for r in draw_rows(rng, part, max_chunks, questions_per_chunk, task_mix)]
        drawn += part
    return drawn, rows


def worker(recipe: str, threads: int, parts: int, index: int = -1, steps: int = 6, warmup: int = 1,
           pool_chunks: int = 8) -> dict:
    """One process of an arm on ``threads`` threads: part ``index`` of the ``parts`` of each step, or
    every part with ``index`` -1 (the threads arm); prints its numbers as one JSON line."""
    import torch

    torch.set_num_threads(threads)
    from train_throughput import _pool_steps, _summary

    from trainers.config import TrainConfig
    from trainers.data import recipe_documents
    from trainers.pool import ContextPool
    from trainers.train import build_model, make_optimizer

    cfg = TrainConfig.from_yaml(recipe)
    if cfg.recipe != "pool" or cfg.chunks_per_step % parts:
        raise ValueError(f"{recipe}: needs recipe: pool and chunks_per_step divisible by {parts}")
    mine = list(range(parts)) if index == -1 else [index]
    torch.manual_seed(0)
    gm = build_model(cfg)
    gm.train()
    last = cfg.stages[-1]
    pool = ContextPool(gm, recipe_documents(cfg, "train"), pool_chunks, 0.0, getattr(torch, cfg.pool_dtype),
                       lambda s: (last.min_tokens, last.max_tokens), seed=f"{cfg.seed}-split",
                       **cfg.pool_contents())
    pool.advance(0)
    per_chunk_s = pool.built_seconds / pool_chunks
    optimizer = make_optimizer(cfg, gm)

    def draw(step):  # this process's parts of the step
        return step_parts(pool.chunks, step, mine, parts, cfg.chunks_per_step // parts, last.max_chunks,
                          cfg.questions_per_chunk, cfg.task_mix)

    _pool_steps(cfg, gm, optimizer, pool, warmup, per_chunk_s, draw, len(mine) / parts)
    rows = _pool_steps(cfg, gm, optimizer, pool, steps, per_chunk_s, draw, len(mine) / parts)
    out = {"threads": threads, "chunks_per_step": cfg.chunks_per_step * len(mine) // parts,
           "chunk_build_s": per_chunk_s, "questions": sum(r["questions"] for r in rows), **_summary(rows)}
    print(json.dumps(out))
    return out


def _arm(recipe: str, processes: int, threads: int, parts: int, steps: int, warmup: int, pool_chunks: int) -> dict:
    """Run ``processes`` workers of ``threads`` threads at once (one process trains every one of a
    step's ``parts``, several train one each); their numbers summed."""
    args = [sys.executable, __file__, "worker", recipe, str(threads), str(parts), "--steps", str(steps),
            "--warmup", str(warmup), "--pool_chunks", str(pool_chunks)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    indices = [-1] if processes == 1 else range(processes)
    procs = [subprocess.Popen(args + ["--index", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for i in indices]
    results = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a worker failed (exit {p.returncode}):\n{stderr[-2000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return {"processes": processes, "threads": threads, "wall_s": time.perf_counter() - t0, "workers": results,
            "step_s": statistics.median(r["step_s"] for r in results), "questions": sum(r["questions"] for r in results),
            "questions_per_s": sum(r["questions_per_s"] for r in results),
            "answer_tokens_per_s": sum(r["answer_tokens_per_s"] for r in results),
            "ctx_tokens_per_s": sum(r["ctx_tokens_per_s"] for r in results)}


def main(recipe: str = "trainers/configs/pool-k8gt.yaml", cores: int = 2, steps: int = 6, warmup: int = 1,
         pool_chunks: int = 8, out: str | None = None) -> dict:
    """Print a Markdown table of the two ways to use ``cores`` cores; return the numbers.

    Args:
        recipe: a pool-recipe config (its last curriculum stage and its chunks a step are used).
        cores: the cores to split: one process of ``cores`` threads against ``cores`` one-thread processes.
        steps, warmup: timed and untimed steps per process.
        pool_chunks: chunks in each process's pool.
        out: also write the numbers as JSON here.
    """
    from gist_memory.provenance import versions

    arms = {"threads": _arm(recipe, 1, cores, cores, steps, warmup, pool_chunks),
            "processes": _arm(recipe, cores, 1, cores, steps, warmup, pool_chunks)}
    ratio = {k: arms["processes"][k] / arms["threads"][k] for k in ("questions_per_s", "answer_tokens_per_s", "ctx_tokens_per_s")}
    lines = ["| arm | processes x threads | step (s, median) | questions / s | answer tokens / s | drawn context tokens / s |",
             "|---|---|---|---|---|---|"]
    for name, a in arms.items():
        lines.append(f"| {name} | {a['processes']} x {a['threads']} | {a['step_s']:.2f} | {a['questions_per_s']:.2f} | "
                     f"{a['answer_tokens_per_s']:.1f} | {a['ctx_tokens_per_s']:.0f} |")
    lines.append(f"| processes / threads | | | {ratio['questions_per_s']:.2f}x | {ratio['answer_tokens_per_s']:.2f}x | "
                 f"{ratio['ctx_tokens_per_s']:.2f}x |")
    print("\n".join(lines))
    print(f"\n{recipe}, {cores} cores, {steps} timed steps a process, {datetime.date.today().isoformat()}; "
          f"questions trained: {arms['threads']['questions']} and {arms['processes']['questions']} (the same data)")
    result = {"arms": arms, "ratio": ratio, "conditions": {"date": datetime.date.today().isoformat(), "recipe": recipe,
              "machine": platform.processor() or platform.machine(), "cores": cores, "steps": steps, **versions()}}
    if out:
        with open(out, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    if sys.argv[1:2] == ["worker"]:  # one process of an arm, started by main
        CLI(worker, args=sys.argv[2:])
    else:
        CLI(main)
