"""Training configuration: one typed dataclass, validated on construction, loadable from YAML.

Imports without torch, so configs can be parsed and checked anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from gist_memory.config import PROMPT_FORMATS

#: Tasks the data builders can make (theme, quote, relation, generic: the pool recipe only, see __post_init__).
TASKS = ("niah", "fact", "qa", "recon", "theme", "quote", "relation", "generic")
POOL_ONLY_TASKS = ("theme", "quote", "relation", "generic")
#: Fields that fix the shapes of what a checkpoint holds: a resumed run must keep them.
SHAPE_FIELDS = ("base", "num_gist_tokens", "chunk_tokens", "lora_r", "lora_alpha", "lora_targets", "load_in_4bit",
                "context_lora_layers", "context_lora_r", "context_lora_alpha", "prompt_format")
RECIPES = ("episode", "pool")
#: Genres kept for out-of-domain evaluation: no training data may come from them.
RESERVED_GENRES = frozenset({"package-descriptions", "man-pages"})


@dataclass(frozen=True)
class Stage:
    """One curriculum stage, active until ``until_step``.

    Attributes:
        until_step: the stage applies to steps below this.
        min_tokens, max_tokens: range of a chunk's context length in tokens.
        max_chunks: an episode holds 1..max_chunks chunks, each compressed independently.
        task_mix: this stage's task weights; None keeps the run's ``task_mix``.
        chunks_per_step, questions_per_chunk: the pool recipe's batch in this stage; None keeps the
            run's. A small batch early (a bootstrap stage) buys more updates per CPU-second while the
            adapter learns to read its gists at all; the full batch afterwards buys cleaner ones.
        pool_refresh: fresh pool chunks per step in this stage; None keeps the run's. (A chunk is a
            target about chunks_per_step / pool_refresh times in its life.)
    """

    until_step: int
    min_tokens: int
    max_tokens: int
    max_chunks: int = 1
    task_mix: dict | None = None
    chunks_per_step: int | None = None
    questions_per_chunk: int | None = None
    pool_refresh: float | None = None

    def __post_init__(self) -> None:
        if self.until_step < 1:
            raise ValueError(f"stage.until_step must be >= 1, got {self.until_step}")
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"stage needs 1 <= min_tokens <= max_tokens, got {self.min_tokens}, {self.max_tokens}")
        if self.max_chunks < 1:
            raise ValueError(f"stage.max_chunks must be >= 1, got {self.max_chunks}")
        if self.task_mix is not None:
            check_task_mix(self.task_mix, "stage.task_mix")
        for name in ("chunks_per_step", "questions_per_chunk"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"stage.{name} must be a positive integer, got {value!r}")
        if self.pool_refresh is not None and (isinstance(self.pool_refresh, bool)
                                              or not isinstance(self.pool_refresh, (int, float))
                                              or self.pool_refresh < 0):
            raise ValueError(f"stage.pool_refresh must be a number >= 0, got {self.pool_refresh!r}")


def check_task_mix(mix: dict, name: str) -> None:
    """Raise ValueError unless ``mix`` gives non-negative weights to known tasks, some positive."""
    unknown = set(mix) - set(TASKS)
    if unknown or not any(w > 0 for w in mix.values()) or any(w < 0 for w in mix.values()):
        raise ValueError(f"{name} needs non-negative weights for tasks among {TASKS}, some positive; got {mix}")


def _key_digits(kd) -> tuple:
    """``key_digits`` checked: [lo, hi] with 1 <= lo <= hi <= 18, or [lo, hi, share] with 0 <= share <= 1."""
    ok = isinstance(kd, (list, tuple)) and len(kd) in (2, 3) and all(type(d) is int for d in kd[:2])
    ok = ok and 1 <= kd[0] <= kd[1] <= 18
    if ok and len(kd) == 3:
        ok = not isinstance(kd[2], bool) and isinstance(kd[2], (int, float)) and 0 <= kd[2] <= 1
    if not ok:
        raise ValueError("key_digits must be [lo, hi] digits with 1 <= lo <= hi <= 18, or [lo, hi, share] with "
                         f"0 <= share <= 1, got {kd!r}")
    return tuple(kd[:2]) + ((float(kd[2]),) if len(kd) == 3 else ())


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; the defaults run on a laptop CPU.

    Attributes:
        base: 'default', a Hugging Face id or a local model directory.
        out_dir: run directory (config, checkpoints, log, plot, final adapter).
        num_gist_tokens: k gist tokens per chunk.
        chunk_tokens: longest chunk; chunk lengths in ``stages`` must not exceed it.
        lora_r, lora_alpha, lora_targets: the LoRA adapter.
        lr: peak learning rate (linear warm-up, cosine decay to 10%).
        warmup_steps: warm-up length.
        steps: optimiser steps in total.
        batch_size: episodes per step.
        grad_clip: gradient-norm clip.
        stages: curriculum over chunk length, chunks per episode and (optionally) task mix.
        task_mix: relative weights of the tasks niah, fact, qa, recon, theme, quote (a planted
            fact's sentence back, word for word; pool recipe only), relation (a fact of the
            evaluation's relations, ``relation_share``; pool recipe only), generic (a fact of a
            drawn relation and value shape, ``generic_share``; pool recipe only). In the pool recipe
            they pick among the questions a chunk holds, so the shares really asked are bounded by
            ``keyed_share`` and ``facts_per_chunk`` (the log's ``tasks``).
        eval_every, eval_samples: validation through the real inference path.
        save_every: checkpoint period (steps); the run resumes from the latest.
        snapshot_every: also keep the adapter (no optimizer state) of every this-many steps in
            ``<out_dir>/snapshots/step-NNNNN`` (0, the default: none), to score a run's curve
            afterwards on one validation set (``benchmarks/recipe_race.py``).
        seed: seeds data and initialisation; data of step s depends only on (seed, s).
        device, dtype: 'auto' picks CUDA/bf16 when available, else CPU/fp32.
        load_in_4bit: QLoRA: NF4 base, paged 8-bit AdamW, gradient checkpointing (CUDA).
        num_threads: torch CPU threads (0 = torch's default).
        recipe: 'episode' (every step runs the frozen base over fresh contexts, one question each)
            or 'pool' (a context-KV pool: each chunk's base KV is computed once and reused for
            many questions and steps; ``trainers/pool.py``).
        pool_size: chunks the pool keeps (pool recipe).
        pool_refresh: fresh chunks entering the pool per step, replacing the oldest.
        pool_dtype: storage dtype of the kept KV ('float16' or 'float32').
        chunks_per_step: chunks drawn per step; each is a target, the others its distractors.
        questions_per_chunk: questions asked of each drawn chunk per step.
        facts_per_chunk: open-vocabulary facts planted in each English pool chunk.
        relation_share: share of those facts that are instead one of the relations of
            ``tasks.FACT_KINDS`` (birthplace, colour, location, day, count, job) in trained
            phrasings with half-open values (``facts.relation_fact``), asked as task ``relation``.
        generic_share: share of those facts that are instead of a drawn relation and value shape
            (``facts.generic_fact``: "the ferry call sign is 71/0/388"), asked as task ``generic``;
            relation_share + generic_share must not exceed 1.
        open_shapes: generic facts' values may take the held-out kinds' shapes too (three digit
            groups joined by hyphens, a combination's); the held-out kinds stay out by their words
            and relations (``facts.generic_fact``). False keeps every earlier run's data as it was.
        key_digits: [lo, hi]: a pool pass key's length in digits is drawn from lo..hi ([5, 5], the
            default, is every earlier run's 5-digit key; validation and evaluation keys stay 5 digits);
            [lo, hi, share]: only that share of the keys, the rest are 5 digits.
        language_mix: share of pool chunks by language ('en', 'ko').
        init_from: a checkpoint directory (or a run directory holding one) that a new run starts
            from: its step, its LoRA and gist rows, and the optimizer state of every parameter it
            has. ``lora_targets`` may add modules (their LoRA starts at zero, so the model starts
            unchanged); base, k, chunk size and LoRA rank must match. Ignored once the run has a
            checkpoint of its own (resuming always wins).
        keyed_share: share of pool chunks that hold a pass key.
        recon_share: share of pool chunks also asked for their opening words back (task ``recon``,
            24 tokens; an autoencoding target). 0.3, the default, is what every earlier run had.
        theme_share: share of pool chunks asked "what is this text about?", with the base model's
            answer reading the chunk as the target (context distillation); such a question's
            episode is its chunk alone.
        theme_tokens: the longest base-model answer kept as a theme target.
        loss_weighting: pool recipe: 'token' (mean over all answer tokens: long answers weigh
            more), 'question' (mean within each question, then over questions) or 'capped' (a
            question weighs as many tokens as it has, up to ``loss_token_cap``).
        loss_token_cap: the most tokens one question weighs under ``loss_weighting: capped``.
        focal_gamma: pool recipe: weigh each answer token's loss by (1 - p) ** focal_gamma, p the
            adapter's probability of it (``pool_forward.pool_loss``); 0 (the default): plain
            cross-entropy.
        context_lora_layers: the top decoder layers that read the context through a LoRA of their
            own (``gist_memory.context_lora``; pool recipe: the pool keeps the KV below them and the
            hidden state at their input, and each step recomputes them for its drawn chunks, with
            gradient); 0 (the default) keeps the whole context pass the frozen base model.
        prompt_format: how the adapter reads the question after the gists (``PROMPT_FORMATS``:
            "chat-no-system" drops SmolLM2's 21-token default system turn, ~0.6x of each update's
            tokens on a pass key); recorded in the adapter, inference follows it.
        context_lora_r, context_lora_alpha: that LoRA's rank and scale (on ``lora_targets``).
        context_lora_lr_scale: the context LoRA's learning rate as a multiple of ``lr`` (its own
            optimizer group; it starts at zero, so it may need a faster rate to move).
        collections: English corpus collections to train on (``gist_memory.data.corpus.COLLECTIONS``;
            never the reserved evaluation genres).
    """

    base: str = "default"
    out_dir: str = "runs/default"
    num_gist_tokens: int = 8
    chunk_tokens: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 1e-3
    warmup_steps: int = 30
    steps: int = 1000
    batch_size: int = 1
    grad_clip: float = 1.0
    stages: tuple[Stage, ...] = (Stage(200, 64, 256), Stage(600, 128, 512, 2), Stage(1_000_000, 256, 512, 4))
    task_mix: dict = field(default_factory=lambda: {"niah": 0.3, "fact": 0.4, "qa": 0.2, "recon": 0.1})
    eval_every: int = 200
    eval_samples: int = 16
    save_every: int = 50
    snapshot_every: int = 0
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    load_in_4bit: bool = False
    num_threads: int = 0
    recipe: str = "episode"
    pool_size: int = 256
    pool_refresh: float = 0.5
    pool_dtype: str = "float16"
    chunks_per_step: int = 8
    questions_per_chunk: int = 3
    facts_per_chunk: int = 3
    language_mix: dict = field(default_factory=lambda: {"en": 1.0})
    keyed_share: float = 0.5
    recon_share: float = 0.3
    collections: tuple[str, ...] = ("sotu", "web-bible")
    theme_share: float = 0.0
    theme_tokens: int = 40
    relation_share: float = 0.0
    generic_share: float = 0.0
    open_shapes: bool = False
    key_digits: tuple = (5, 5)
    loss_weighting: str = "token"
    focal_gamma: float = 0.0
    loss_token_cap: int = 8
    init_from: str = ""
    context_lora_layers: int = 0
    context_lora_r: int = 16
    context_lora_alpha: int = 32
    context_lora_lr_scale: float = 1.0
    prompt_format: str = "chat"

    def pool_contents(self) -> dict:
        """What each pool chunk holds, as ``ContextPool``'s keyword arguments."""
        return {"facts": self.facts_per_chunk, "language_mix": self.language_mix, "keyed_share": self.keyed_share,
                "recon_share": self.recon_share,
                "theme_share": self.theme_share, "theme_tokens": self.theme_tokens,
                "relation_share": self.relation_share, "generic_share": self.generic_share,
                "open_shapes": self.open_shapes, "key_digits": self.key_digits}

    def __post_init__(self) -> None:
        try:
            stages = tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
        except TypeError as exc:  # a stage with a missing or misspelt key, or one that is not a mapping
            raise ValueError(f"stages: {exc}; a stage has until_step, min_tokens, max_tokens and, optionally, "
                             "max_chunks, task_mix, chunks_per_step, questions_per_chunk and pool_refresh") from None
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        for name in ("lr", "grad_clip", "pool_refresh", "keyed_share", "theme_share", "relation_share",
                     "generic_share", "recon_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                hint = " (YAML reads 1e-3 as text: write 1.0e-3 or 0.001)" if isinstance(value, str) else ""
                raise ValueError(f"{name} must be a number, got {value!r}{hint}")
        positive = ("num_gist_tokens", "chunk_tokens", "lora_r", "lora_alpha", "steps", "batch_size",
                    "eval_every", "save_every", "context_lora_r", "context_lora_alpha", "loss_token_cap")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "facts_per_chunk", "num_threads", "context_lora_layers", "snapshot_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.open_shapes, bool):
            raise ValueError(f"open_shapes must be true or false, got {self.open_shapes!r}")
        object.__setattr__(self, "key_digits", _key_digits(self.key_digits))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not stages:
            raise ValueError("stages must hold at least one curriculum stage")
        if any(s.max_tokens > self.chunk_tokens for s in stages):
            raise ValueError(f"a stage's max_tokens exceeds chunk_tokens={self.chunk_tokens}")
        if [s.until_step for s in stages] != sorted(s.until_step for s in stages):
            raise ValueError("stages must be ordered by until_step")
        check_task_mix(self.task_mix, "task_mix")
        mixes = [self.task_mix] + [s.task_mix for s in stages if s.task_mix]
        for task in POOL_ONLY_TASKS:
            if self.recipe == "episode" and any(m.get(task, 0) > 0 for m in mixes):
                hint = {"theme": " with theme_share > 0", "relation": " with relation_share > 0",
                        "generic": " with generic_share > 0"}.get(task, "")
                raise ValueError(f"task_mix: the episode recipe has no {task} builder; use recipe: pool{hint}")
        object.__setattr__(self, "collections", tuple(self.collections))
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        for name in ("pool_size", "chunks_per_step", "questions_per_chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.recipe == "episode" and any(s.chunks_per_step or s.questions_per_chunk or s.pool_refresh is not None
                                            for s in stages):
            raise ValueError("stage chunks_per_step, questions_per_chunk and pool_refresh are the pool recipe's; "
                             "the episode recipe's batch is batch_size")
        for drawn in [self.chunks_per_step] + [s.chunks_per_step for s in stages if s.chunks_per_step]:
            if self.recipe == "pool" and drawn > self.pool_size:
                raise ValueError(f"chunks_per_step={drawn} exceeds pool_size={self.pool_size}")
        for refresh in [self.pool_refresh] + [s.pool_refresh for s in stages if s.pool_refresh is not None]:
            if not 0 <= refresh <= self.pool_size:
                raise ValueError(f"pool_refresh must be in [0, pool_size], got {refresh}")
        _check_pool_contents(self)
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        if isinstance(self.context_lora_lr_scale, bool) or not isinstance(self.context_lora_lr_scale, (int, float)) \
                or not self.context_lora_lr_scale > 0:
            raise ValueError(f"context_lora_lr_scale must be a positive number, got {self.context_lora_lr_scale!r}")
        if self.context_lora_layers and self.recipe != "pool":
            raise ValueError("context_lora_layers needs recipe: pool (the episode recipe runs the frozen base over "
                             "the context)")
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from must be a directory path, got {self.init_from!r}")
        reserved = set(self.collections) & RESERVED_GENRES
        if reserved:
            raise ValueError(f"collections {sorted(reserved)} are reserved for out-of-domain evaluation")

    def stage(self, step: int) -> Stage:
        """The curriculum stage of ``step`` (the last stage past the end)."""
        return next((s for s in self.stages if step < s.until_step), self.stages[-1])

    def task_mix_at(self, step: int) -> dict:
        """Task weights in force at ``step``."""
        return self.stage(step).task_mix or self.task_mix

    def refresh_schedule(self) -> float | list[tuple[int, float]]:
        """The pool's refresh: the run's rate, or ``[(until_step, rate), ...]`` when a stage sets its own."""
        if all(s.pool_refresh is None for s in self.stages):
            return self.pool_refresh
        return [(s.until_step, self.pool_refresh if s.pool_refresh is None else s.pool_refresh) for s in self.stages]

    def batch_at(self, step: int) -> tuple[int, int]:
        """(chunks_per_step, questions_per_chunk) in force at ``step`` (the pool recipe's batch)."""
        stage = self.stage(step)
        return stage.chunks_per_step or self.chunks_per_step, stage.questions_per_chunk or self.questions_per_chunk

    def to_dict(self) -> dict:
        out = asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        out["collections"] = list(self.collections)
        return out

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        """Read a YAML config; keyword overrides win. Unknown keys are an error."""
        data = read_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}; valid keys are {sorted(known)}")
        return cls(**data)


def _check_pool_contents(cfg: "TrainConfig") -> None:
    """ValueError for a pool setting (storage, what a chunk holds, loss weighting) out of range."""
    if cfg.pool_dtype not in ("float16", "float32", "bfloat16"):
        raise ValueError(f"pool_dtype must be float16, float32 or bfloat16, got {cfg.pool_dtype!r}")
    if not 0 <= cfg.relation_share <= 1:
        raise ValueError(f"relation_share must be in [0, 1], got {cfg.relation_share}")
    if not 0 <= cfg.generic_share <= 1 - cfg.relation_share:
        raise ValueError(f"generic_share must be in [0, 1 - relation_share] = [0, {1 - cfg.relation_share:g}], "
                         f"got {cfg.generic_share}")
    if not 0 <= cfg.theme_share <= 1:
        raise ValueError(f"theme_share must be in [0, 1], got {cfg.theme_share}")
    if not isinstance(cfg.theme_tokens, int) or cfg.theme_tokens < 1:
        raise ValueError(f"theme_tokens must be a positive integer, got {cfg.theme_tokens!r}")
    if cfg.loss_weighting not in ("token", "question", "capped"):
        raise ValueError(f"loss_weighting must be 'token', 'question' or 'capped', got {cfg.loss_weighting!r}")
    if isinstance(cfg.focal_gamma, bool) or not isinstance(cfg.focal_gamma, (int, float)) or not 0 <= cfg.focal_gamma <= 5:
        raise ValueError(f"focal_gamma must be a number in [0, 5], got {cfg.focal_gamma!r}")
    for name in ("keyed_share", "recon_share"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    if set(cfg.language_mix) - {"en", "ko"} or not any(w > 0 for w in cfg.language_mix.values()) \
            or any(w < 0 for w in cfg.language_mix.values()):
        raise ValueError(f"language_mix needs non-negative weights for 'en' and 'ko', some positive; "
                         f"got {cfg.language_mix}")


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The mapping a YAML file holds (empty: {}), refusing a file that is not YAML or not a mapping
    with a one-line ValueError that names it and the line.

    A file may start from another: ``extends: pool.yaml`` (a path relative to the file's own
    folder) takes every key of that file, then this file's keys replace those they name, whole
    (a ``task_mix`` given here replaces the parent's mapping, it is not merged into it). Chains
    work; a cycle or a missing parent is a one-line ValueError.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path} is not valid YAML ({getattr(exc, 'problem', None) or exc}{where})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a YAML {type(data).__name__}, not a mapping of config keys to values")
    if "extends" not in data:
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent:
        raise ValueError(f"{path}: extends must name a YAML file, got {parent!r}")
    parent_path = (path.parent / parent).resolve()
    chain = _seen + (path.resolve(),)
    if parent_path in chain:
        raise ValueError(f"{path}: extends {parent} makes a cycle ({' -> '.join(p.name for p in chain + (parent_path,))})")
    if not parent_path.is_file():
        raise ValueError(f"{path}: extends {parent}, but {parent_path} is not a file")
    return {**read_yaml(parent_path, chain), **data}
