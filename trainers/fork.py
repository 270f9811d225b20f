"""Start a new run from another run's checkpoint (``TrainConfig.init_from``), optionally with more LoRA modules."""

from __future__ import annotations

import json
from pathlib import Path

from gist_memory.model import GistModel

from .config import TrainConfig


def _checkpoint_dir(path: Path) -> Path:
    """``path`` itself when it holds a checkpoint, else the checkpoint of the run directory ``path``."""
    for candidate in (path, path / "checkpoint", path / "checkpoint.old"):
        if (candidate / "trainer_state.json").is_file() and (candidate / "adapter_config.json").is_file():
            return candidate
    raise ValueError(f"init_from: {path} holds no checkpoint (trainer_state.json and adapter_config.json); "
                     "give a run directory or its checkpoint/ directory")


def regroup(saved: list[dict], optimizer) -> list[dict]:
    """Saved parameter groups fitted to ``optimizer``'s groups: each group's own parameters (numbered
    in order across the groups, as the saved state numbers them) and its ``lr_scale`` as configured
    now, the other hyperparameters as saved (a checkpoint of one group serves a run that has since
    put its context LoRA in a group of its own)."""
    out, at = [], 0
    for i, group in enumerate(optimizer.param_groups):
        n = len(group["params"])
        out.append(dict(saved[min(i, len(saved) - 1)], params=list(range(at, at + n)),
                        **({"lr_scale": group["lr_scale"]} if "lr_scale" in group else {})))
        at += n
    return out


def init_from_checkpoint(source: Path, cfg: TrainConfig, gm: GistModel, optimizer) -> int:
    """Start a new run from another run's checkpoint; returns the step it continues at.

    Loads the LoRA of every module the source adapted, the gist rows, and the AdamW moments of each
    of those parameters; modules that ``cfg.lora_targets`` adds, and a context LoRA the source did
    not have, keep their fresh LoRA (B = 0, so the model's output is the source's) and fresh
    optimizer state.
    """
    ckpt = _checkpoint_dir(source)
    lora = json.loads((ckpt / "adapter_config.json").read_text())
    gist = json.loads((ckpt / "gist_config.json").read_text())
    old_targets = set(lora.get("target_modules") or ())
    wrong = [f"{name}: {had!r} -> {now!r}" for name, had, now in (
        ("num_gist_tokens", gist.get("num_gist_tokens"), cfg.num_gist_tokens),
        ("chunk_tokens", gist.get("chunk_tokens"), cfg.chunk_tokens),
        ("lora_r", lora.get("r"), cfg.lora_r), ("lora_alpha", lora.get("lora_alpha"), cfg.lora_alpha)) if had != now]
    had_context = gist.get("context_lora")  # the source's context LoRA settings, if it had one
    # a context LoRA may grow to more layers (the source's keep their factors, the added start at zero)
    if had_context and ([had_context.get(k) for k in ("r", "alpha")] != [cfg.context_lora_r, cfg.context_lora_alpha]
                        or not 1 <= int(had_context.get("layers") or 0) <= cfg.context_lora_layers):
        wrong.append(f"context_lora: {had_context} -> layers {cfg.context_lora_layers}, r {cfg.context_lora_r}, "
                     f"alpha {cfg.context_lora_alpha} (layers may only grow)")
    if not old_targets <= set(cfg.lora_targets):
        wrong.append(f"lora_targets: {sorted(old_targets)} -> {sorted(cfg.lora_targets)} (may only add modules)")
    if str(gist.get("base_model", "")).split("#")[-1] != gm.base_identity.split("#")[-1]:
        wrong.append(f"base: {gist.get('base_model')!r} -> {gm.base_identity!r}")
    if wrong:
        raise ValueError(f"init_from: {ckpt} was made with other settings ({'; '.join(wrong)})")
    from .train import restore_saved  # (train imports this module)

    grown = bool(had_context) and int(had_context["layers"]) < cfg.context_lora_layers
    meta, saved, loaded = restore_saved(ckpt, gm, grow_context=grown)
    if getattr(loaded, "unexpected_keys", None):
        raise ValueError(f"init_from: {ckpt} holds tensors this model has no place for: {loaded.unexpected_keys[:3]}")
    # The source optimizer numbered its parameters in named_parameters() order, without the added modules.
    names = [n for n, p in gm.named_parameters() if p.requires_grad]
    # a context LoRA's modules are sorted by layer and the source's are the top ones: it had module i
    # (context_lora.a.i, context_lora.b.i) when that module's layer is among its top layers
    first_old = (gm.context_lora.first_layer + cfg.context_lora_layers - int(had_context["layers"])
                 if had_context else None)

    def source_had(n: str) -> bool:
        if n.startswith("context_lora."):
            return bool(had_context) and gm.context_lora.layer_of(int(n.rsplit(".", 1)[1])) >= first_old
        return ".lora_" not in n or n.split(".lora_")[0].rsplit(".", 1)[-1] in old_targets

    kept = [i for i, n in enumerate(names) if source_had(n)]
    if saved and max(saved) >= len(kept):
        raise ValueError(f"init_from: {ckpt}'s optimizer has more parameters than its adapter")
    state = {kept[pid]: entry for pid, entry in saved.items()}
    params = [p for p in gm.parameters() if p.requires_grad]
    for pid, entry in state.items():
        if entry["exp_avg"].shape != params[pid].shape:
            raise ValueError(f"init_from: {ckpt}'s optimizer state does not fit {names[pid]}")
    optimizer.load_state_dict({"state": state, "param_groups": regroup(meta["param_groups"], optimizer)})
    return int(meta["step"])
