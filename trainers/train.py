"""Train a gist adapter: LoRA plus k gist rows, by the frozen-base recipe (docs/design.md).

    python -m trainers.train --recipe trainers/configs/default.yaml            # CPU or one GPU
    accelerate launch -m trainers.train --recipe trainers/configs/gist25.yaml  # several GPUs

A run directory describes itself (config.yaml, run.json with seed, git hash, versions and base
model identity), keeps a JSONL log, a checkpoint every ``save_every`` steps (written to a temp
directory and swapped in, so a crash never leaves a broken one), validation through the real
compress-then-generate inference path, a loss/accuracy plot, and the final adapter in
``adapter/``. Re-running the same command resumes from the checkpoint to the same state.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from gist_memory.cache import GistCache
from gist_memory.compress import compress_chunks
from gist_memory.context_lora import FILE as CONTEXT_LORA_FILE
from gist_memory.data.scoring import contains_match
from gist_memory.model import GistModel

from .config import SHAPE_FIELDS, TrainConfig, read_yaml
from .data import make_sample, recipe_documents, step_samples, to_episode, training_documents
from .fork import init_from_checkpoint, regroup
from .pool import ContextPool, draw_step
from .pool_forward import PoolLoss
from .runlog import answers_path, never_scored, plot_log
from .recipe import EpisodeLoss, collate
from .validation import nll_by_task, validate_kept, validation_set, write_answers


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def build_model(cfg: TrainConfig, model: GistModel | None = None) -> GistModel:
    """The base model with a fresh LoRA and trainable gist rows (or ``model``, for tests), and the
    context LoRA ``cfg.context_lora_layers`` asks for."""
    if model is None:
        model = GistModel.from_pretrained(cfg.base, adapter=None, device=cfg.device, dtype=cfg.dtype,
                                          load_in_4bit=cfg.load_in_4bit, num_gist_tokens=cfg.num_gist_tokens,
                                          chunk_tokens=cfg.chunk_tokens)
        if cfg.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            model.model = prepare_model_for_kbit_training(model.model, use_gradient_checkpointing=True)
        model.add_lora(r=cfg.lora_r, alpha=cfg.lora_alpha, target_modules=cfg.lora_targets)
    model.gist = replace(model.gist, prompt_format=cfg.prompt_format)  # saved with the adapter, read at inference
    if cfg.context_lora_layers and model.context_lora is None:
        model.add_context_lora(cfg.context_lora_layers, cfg.context_lora_r, cfg.context_lora_alpha, cfg.lora_targets)
    return model


def make_optimizer(cfg: TrainConfig, gm: GistModel):
    """AdamW over the trainable parameters (in ``gm.parameters()`` order); a context LoRA's factors,
    which come last, form a second group whose rate is ``context_lora_lr_scale`` times the run's."""
    params = [p for p in gm.parameters() if p.requires_grad]
    context = {id(p) for p in gm.context_lora.parameters()} if gm.context_lora is not None else set()
    groups = [{"params": [p for p in params if id(p) not in context]}]
    if context:
        groups.append({"params": [p for p in params if id(p) in context], "lr_scale": cfg.context_lora_lr_scale})
    if cfg.load_in_4bit and gm.device.type == "cuda":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(groups, lr=cfg.lr, weight_decay=0.0)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0)


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(run: Path, gm: GistModel, optimizer, step: int) -> None:
    """Adapter, optimizer state (safetensors, never pickle) and step; swapped in atomically."""
    from safetensors.torch import save_file

    tmp, final, old = run / "checkpoint.tmp", run / "checkpoint", run / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    gm.save_adapter(tmp)
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "trainer_state.json").write_text(json.dumps(
        {"step": step, "param_groups": state["param_groups"], "scalars": scalars}, indent=1))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def check_resume(run: Path, cfg: TrainConfig) -> None:
    """Refuse to resume a run whose checkpoint has other shapes (k, LoRA rank, base ...) than ``cfg``."""
    if not (run / "config.yaml").is_file() or not any((run / d / "trainer_state.json").is_file()
                                                      for d in ("checkpoint", "checkpoint.old")):
        return
    before, now = read_yaml(run / "config.yaml"), cfg.to_dict()
    changed = [f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in SHAPE_FIELDS
               if k in before and before[k] != now[k]]
    if changed:
        raise ValueError(f"{run} holds a checkpoint made with other settings ({'; '.join(changed)}); resume with the "
                         f"same ones, or pass another out_dir to start a new run")


def record_config(run: Path, cfg: TrainConfig, start: int) -> None:
    """Write ``config.yaml`` (the settings now) and append them to ``config-history.jsonl`` with the
    step they took effect at, so a run resumed with a longer schedule still says how it was made."""
    import yaml

    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    with (run / "config-history.jsonl").open("a") as fh:
        fh.write(json.dumps({"from_step": start, "config": cfg.to_dict()}) + "\n")


def restore_saved(ckpt: Path, gm: GistModel, grow_context: bool = False) -> tuple[dict, dict, object]:
    """Load checkpoint ``ckpt``'s LoRA and gist rows into ``gm``; returns its trainer state, its
    optimizer state by parameter number (as saved) and PEFT's load result. With ``grow_context``
    the checkpoint's context LoRA may cover fewer layers than ``gm``'s (a fork that grows it)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    loaded = set_peft_model_state_dict(gm.model, load_file(str(ckpt / "adapter_model.safetensors"),
                                                           device=str(gm.device)))
    rows = load_file(str(ckpt / "gist_embeddings.safetensors"))["gist_embeddings"]
    with torch.no_grad():
        gm.gist_embeddings.copy_(rows.to(gm.gist_embeddings.dtype))
    if (ckpt / CONTEXT_LORA_FILE).is_file():  # (a checkpoint without one, forked from, leaves it at zero)
        if gm.context_lora is None:
            raise ValueError(f"{ckpt} has a context LoRA; set context_lora_layers as it was made")
        gm.context_lora.load(ckpt, partial=grow_context)
    meta = json.loads((ckpt / "trainer_state.json").read_text())
    tensors = load_file(str(ckpt / "optimizer.safetensors"), device=str(gm.device))
    state: dict = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value.cpu() if key == "step" and torch.is_tensor(value) else value
    return meta, state, loaded


def load_checkpoint(run: Path, gm: GistModel, optimizer) -> int:
    """Restore adapter, gist rows and optimizer from ``run/checkpoint``; returns the next step."""
    ckpt = run / "checkpoint"
    if not (ckpt / "trainer_state.json").is_file():
        old = run / "checkpoint.old"  # a crash between the two renames leaves the previous one here
        if not (old / "trainer_state.json").is_file():
            return 0
        ckpt = old
    meta, state, _ = restore_saved(ckpt, gm)
    optimizer.load_state_dict({"state": state, "param_groups": regroup(meta["param_groups"], optimizer)})
    return int(meta["step"])


# ---------------------------------------------------------------------------------- validation
def validation_samples(cfg: TrainConfig, tokenizer, n: int):
    """A fixed validation set from the validation split: passkeys and held-out-phrasing facts."""
    docs = training_documents("validation", seed=cfg.seed)
    rng = random.Random(f"validation-{cfg.seed}")
    stage = cfg.stages[-1]
    return [make_sample(rng, "niah" if i % 2 == 0 else "fact", docs, tokenizer, stage, f"val-{i}",
                        held_out_facts=True) for i in range(n)]


@torch.no_grad()
def validate(gm: GistModel, samples, chunk_tokens: int, max_new_tokens: int = 12) -> dict:
    """Accuracy by task through the real inference path: compress each chunk, concat, generate."""
    gm.eval()
    hits: dict[str, list[bool]] = {}
    for s in samples:
        ep = to_episode(s, gm.tokenizer, chunk_tokens, gm.gist.prompt_format)
        cache = GistCache.concat(compress_chunks(gm, ep.chunks))
        answer = gm.generate(s.question, [cache], max_new_tokens=max_new_tokens).text
        hits.setdefault(s.task, []).append(contains_match(answer, s.answer))
    gm.train()
    return {task: sum(v) / len(v) for task, v in hits.items()}


def run_metadata(cfg: TrainConfig, gm: GistModel, processes: int = 1) -> dict:
    from gist_memory.provenance import versions

    found = versions()
    return {"git": found.pop("git", "unknown"), "seed": cfg.seed, "base_model": gm.base_identity,
            "device": str(gm.device), "dtype": str(gm.dtype), "processes": processes,
            "num_threads": torch.get_num_threads(), "versions": found,
            "trainable_parameters": gm.trainable_parameters(),
            "data": "gist_memory.data.corpus train split (by source work), "
                    + ("chunks and questions per trainers.pool.plan_chunk" if cfg.recipe == "pool"
                       else "tasks per trainers.data.make_sample")}


def train(cfg: TrainConfig, model: GistModel | None = None, progress: bool = True,
          stop_after: int | None = None) -> Path | None:
    """Run (or resume) training; returns the final adapter directory.

    ``stop_after`` ends this session after that many steps with a checkpoint (None if the run is
    not finished), so a CPU run can be done in slices.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    run = Path(cfg.out_dir)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    gm = build_model(cfg, model)
    optimizer = make_optimizer(cfg, gm)
    check_resume(run, cfg)
    start = load_checkpoint(run, gm, optimizer)
    forked = not start and bool(cfg.init_from)
    if forked:  # the source's log already scored this state
        start = init_from_checkpoint(Path(cfg.init_from), cfg, gm, optimizer)
    accelerator = Accelerator(cpu=gm.device.type == "cpu")
    # several processes (accelerate launch): each draws its own data, the main one alone writes
    is_main, stream = accelerator.is_main_process, "" if accelerator.num_processes == 1 else f"-r{accelerator.process_index}"
    loss_fn, optimizer = accelerator.prepare(PoolLoss(gm, cfg.loss_weighting, cfg.focal_gamma, cfg.loss_token_cap) if cfg.recipe == "pool" else EpisodeLoss(gm), optimizer)
    if is_main:
        record_config(run, cfg, start)
        (run / "run.json").write_text(json.dumps(run_metadata(cfg, gm, accelerator.num_processes), indent=2))
    if cfg.recipe == "pool":
        pool = ContextPool(gm, recipe_documents(cfg, "train"), cfg.pool_size, cfg.refresh_schedule(),
                           getattr(torch, cfg.pool_dtype), lambda s: (cfg.stage(s).min_tokens, cfg.stage(s).max_tokens),
                           seed=f"{cfg.seed}{stream}", **cfg.pool_contents())
        t_build = time.perf_counter()
        pool.advance(start, progress=progress and is_main)
        setup_s = round(time.perf_counter() - t_build, 3)
        val = validation_set(gm, recipe_documents(cfg, "validation"), cfg.eval_samples, seed=cfg.seed,
                             progress=progress) if cfg.eval_samples and is_main else []

        def score(step: int) -> dict:
            # every answer of the validation too, so the misses of each step can be read afterwards,
            # and the held-out loss of the expected answers, a curve that moves before exact match
            given: list[dict] = []
            scores = validate_kept(gm, val, answers=given)
            write_answers(answers_path(run, step), given)
            return {"val": scores, "val_nll": nll_by_task(given)}
    else:
        setup_s = 0.0
        docs = training_documents("train", seed=cfg.seed)
        val = validation_samples(cfg, gm.tokenizer, cfg.eval_samples) if cfg.eval_samples and is_main else []
        score = lambda step: {"val": validate(gm, val, cfg.chunk_tokens)}  # noqa: E731
    log = (run / "log.jsonl").open("a") if is_main else None
    if is_main and cfg.snapshot_every and start == 0:
        gm.save_adapter(run / "snapshots" / "step-00000")
    if val and start and not forked and never_scored(run / "log.jsonl", {s.task for s in val}):
        # a validation task added since the run began is scored at the resumed step: its curve gets a start
        scores = score(start)
        log.write(json.dumps({"step": start, **scores}) + "\n")
        log.flush()
        print(f"step {start} (resumed): validation {scores['val']}")
    bar = tqdm(total=cfg.steps, initial=start, desc="training", unit="step", disable=not (progress and is_main))
    gm.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    for step in range(start, end):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, step) * group.get("lr_scale", 1.0)
        if cfg.recipe == "pool":
            built = pool.advance(step)
            rng = random.Random(f"{cfg.seed}-step-{step}{stream}")
            chunks_per_step, questions_per_chunk = cfg.batch_at(step)
            drawn, rows = draw_step(rng, pool.chunks, chunks_per_step, questions_per_chunk, cfg.stage(step).max_chunks,
                                    cfg.task_mix_at(step), step)
            stats: dict = {}
            loss, answer_tokens = loss_fn(drawn, rows, stats)
            extra = {"questions": len(rows), "built": built,
                     "ctx_tokens": sum(len(c.ids) for c in drawn), **stats}
        else:
            episodes = [to_episode(s, gm.tokenizer, cfg.chunk_tokens, cfg.prompt_format)
                        for s in step_samples(cfg, step, docs, gm.tokenizer, stream)]
            batch = collate(episodes, cfg.num_gist_tokens, gm.tokenizer.pad_token_id)
            loss = loss_fn(batch)
            answer_tokens = batch.answer_tokens
            extra = {"questions": len(episodes), "ctx_tokens": int(sum(len(c) for e in episodes for c in e.chunks))}
        accelerator.backward(loss)
        accelerator.clip_grad_norm_([p for p in gm.parameters() if p.requires_grad], cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        bar.update(1)
        if is_main:
            row = {"step": step, "loss": loss.item(), "lr": lr_at(cfg, step), "s": round(time.perf_counter() - t0, 3),
                   "answer_tokens": answer_tokens, **extra}
            if step == start:  # this (re)start's pool build: training time too (benchmarks/recipe_race.py)
                row["setup_s"] = setup_s
            log.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if cfg.snapshot_every and done % cfg.snapshot_every == 0:
                gm.save_adapter(run / "snapshots" / f"step-{done:05d}")
            if val and (done % cfg.eval_every == 0 or done == cfg.steps):
                scores = score(done)
                log.write(json.dumps({"step": done, **scores}) + "\n")
                log.flush()
                plot_log(run / "log.jsonl", run / "training.png")  # at each validation: a stopped run's plot is current
                bar.write(f"step {done}: validation {scores['val']}")
        if done % cfg.save_every == 0 or done in (cfg.steps, end):
            if is_main:
                log.flush()
                save_checkpoint(run, gm, optimizer, done)
            accelerator.wait_for_everyone()
    bar.close()
    if log is not None:
        log.close()
    if end < cfg.steps or not is_main:
        return None
    plot_log(run / "log.jsonl", run / "training.png")
    gm.adapter_identity = "trained"
    return gm.save_adapter(run / "adapter")


def main(recipe: str = "trainers/configs/default.yaml", out_dir: str | None = None, steps: int | None = None,
         base: str | None = None, device: str | None = None, num_threads: int | None = None,
         stop_after: int | None = None) -> None:
    """Train a gist adapter from a YAML config (re-run the same command to resume).

    Args:
        recipe: YAML file with TrainConfig fields (see trainers/config.py). (Named recipe, not
            config: jsonargparse reserves --config for files of these CLI arguments.)
        out_dir: overrides the config's run directory.
        steps: overrides the number of steps.
        base: overrides the base model ('default', a Hugging Face id or a local directory).
        device: overrides the device ('auto', 'cpu', 'cuda').
        num_threads: CPU threads for torch (1 leaves a core free while you work beside it).
        stop_after: train at most this many steps now, then checkpoint and exit (resume later).
    """
    cfg = TrainConfig.from_yaml(recipe, out_dir=out_dir, steps=steps, base=base, device=device,
                                num_threads=num_threads)
    adapter = train(cfg, stop_after=stop_after)
    print(f"adapter written to {adapter}" if adapter else f"checkpoint written to {cfg.out_dir}/checkpoint; re-run to resume")


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
