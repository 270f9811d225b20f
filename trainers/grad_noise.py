"""Is a pool run limited by its number of updates or by its number of samples? Measure at a checkpoint.

The gradient noise scale ``B_noise = tr(Sigma) / |G|^2`` (McCandlish et al., "An Empirical Model of
Large-Batch Training", arXiv 1812.06162) is the batch size past which a bigger batch stops
buying a proportionally better step: well below the batch a recipe uses, its extra questions per
step are mostly wasted compute, and more, cheaper steps would learn faster per CPU-second; well
above, the batch is not too large. It is estimated from the gradients of one draw's questions
taken all together (B_big) and in disjoint groups (B_small), at the run's checkpoint, on fresh
chunks of the stage the run is in::

    python -m trainers.grad_noise --recipe trainers/configs/pool.yaml --draws 3

Nothing is written to the run; it prints one JSON line per draw and their mean.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from .config import TrainConfig
from .data import recipe_documents
from .pool import ContextPool, Row, draw_rows
from .pool_forward import pool_loss


def _subset(drawn, rows: list[Row]):
    """The chunks ``rows`` use and the rows re-indexed into them (one shared list per episode)."""
    used = sorted({c for r in rows for c in r.chunks})
    where = {c: i for i, c in enumerate(used)}
    episodes: dict[int, list[int]] = {}
    out = [Row(episodes.setdefault(id(r.chunks), [where[c] for c in r.chunks]), r.question) for r in rows]
    return [drawn[c] for c in used], out


def _grad(gm, params, drawn, rows, weighting: str) -> torch.Tensor:
    gm.zero_grad(set_to_none=True)  # LoRA and the gist rows
    loss, _ = pool_loss(gm, *_subset(drawn, rows), weighting)
    loss.backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float() for p in params])


def noise_scale(g_big: torch.Tensor, b_big: float, smalls: list[torch.Tensor], b_small: float) -> dict:
    """Unbiased |G|^2 and tr(Sigma) from two batch sizes (McCandlish et al., appendix A)."""
    big2 = float(g_big.square().sum())
    small2 = sum(float(g.square().sum()) for g in smalls) / len(smalls)
    g2 = (b_big * big2 - b_small * small2) / (b_big - b_small)
    trace = (small2 - big2) / (1 / b_small - 1 / b_big)
    return {"G2": g2, "trace": trace, "B_noise": trace / g2 if g2 > 0 else float("inf")}


def main(recipe: str = "trainers/configs/pool.yaml", draws: int = 2, groups: int = 8,
         num_threads: int | None = None) -> dict:
    """Print the gradient noise scale of the run of ``recipe`` at its checkpoint.

    Args:
        recipe: the run's YAML (its out_dir holds the checkpoint).
        draws: independent draws of ``chunks_per_step`` fresh chunks.
        groups: each draw's questions are also split into this many disjoint small batches.
        num_threads: CPU threads for torch.
    """
    from .train import build_model, load_checkpoint, make_optimizer

    cfg = TrainConfig.from_yaml(recipe, num_threads=num_threads)
    if cfg.recipe != "pool":
        raise SystemExit(f"{recipe} is not a pool recipe")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    gm = build_model(cfg, None)
    step = load_checkpoint(Path(cfg.out_dir), gm, make_optimizer(cfg, gm))
    stage = cfg.stage(step)
    pool = ContextPool(gm, recipe_documents(cfg, "train"), cfg.chunks_per_step * draws, 0.0,
                       getattr(torch, cfg.pool_dtype), lambda s: (stage.min_tokens, stage.max_tokens),
                       seed=f"{cfg.seed}-noise", **cfg.pool_contents())
    pool.advance(0, progress=True)
    params = [p for p in gm.parameters() if p.requires_grad]
    gm.train()
    results = []
    for d in range(draws):
        rng = random.Random(f"{cfg.seed}-noise-draw-{d}")
        drawn = pool.chunks[d * cfg.chunks_per_step:(d + 1) * cfg.chunks_per_step]
        rows = draw_rows(rng, drawn, stage.max_chunks, cfg.questions_per_chunk, cfg.task_mix_at(step))
        g_big = _grad(gm, params, drawn, rows, cfg.loss_weighting)
        parts = [rows[i::groups] for i in range(groups) if rows[i::groups]]
        smalls = [_grad(gm, params, drawn, p, cfg.loss_weighting) for p in parts]
        out = dict(noise_scale(g_big, len(rows), smalls, len(rows) / len(parts)), step=step, draw=d,
                   questions=len(rows), small_batch=len(rows) / len(parts))
        print(json.dumps(out), flush=True)
        results.append(out)
    mean = {"step": step, "B_noise_mean": sum(r["B_noise"] for r in results) / len(results),
            "B_noise_of_means": (sum(r["trace"] for r in results) / sum(r["G2"] for r in results)),
            "batch_in_use": cfg.chunks_per_step * cfg.questions_per_chunk}
    print(json.dumps(mean))
    return mean


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
