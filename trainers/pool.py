"""The context-KV pool recipe: compute a chunk's frozen-base KV once, train many questions on it.

The frozen base model's pass over a chunk (~70% of a step of the episode recipe) never changes
during training, so each training chunk's context KV is computed once and kept (fp16 by
default: ~11.8 MB per 512-token chunk of the default model). A step then runs only what learns::

    pool:  chunk_1 .. chunk_M     context KV (n_layers x (kv_heads, L_i, head_dim)), planted needles, questions
    step:  draw N chunks                                        e.g. N = 8
           gist pass, adapter, grad:  k gists on each chunk's kept KV     -> (N, kv_heads, k, head_dim) per layer
           episodes: each drawn chunk is a target; 0..max_chunks-1 others of the same draw are its
                     distractors (their gists are already computed: distractors cost nothing)
           post pass, adapter, grad:  Q questions per episode on top of the episode's concatenated
                     gists, positions from max(L_i + k) on (docs/design.md invariant 3)   -> loss on the answer

Fresh chunks replace the oldest at ``pool_refresh`` per step: reuse within a step is safe, but a
chunk drawn across many steps gets its answers memorised instead of read (measured: README). Chunk ``i`` is a pure function of
(seed, i) and the pool at step ``s`` holds a fixed range of chunk numbers, so a resumed run
rebuilds exactly the pool it had (the pool is regenerable and never saved).

The gist pass is :func:`gist_memory.compress.gist_kv`, the very function compression runs, and
the post pass follows ``generate.forward_on_cache``'s convention; ``tests/test_pool.py`` checks
the two paths agree (docs/design.md invariant 2).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import torch

from gist_memory.compress import context_kv
from gist_memory.data.corpus import SourceDocument
from gist_memory.data.facts import generic_fact, open_fact, quote_question, relation_fact
from gist_memory.data.tasks import cloze_sample, passkey_sample, plant, recon_sample
from gist_memory.data.themes import QUESTIONS as THEME_QUESTIONS
from gist_memory.generate import answer_ids, prompt_ids

from .data import sample_text
from .pool_forward import base_answers


@dataclass
class Question:
    """One question on a pool chunk: token ids of the templated prompt and of the answer."""

    task: str
    prompt: list[int]
    answer: list[int]


@dataclass
class PoolChunk:
    """A training chunk, its kept context KV and the questions that can be asked of it.

    keys, values: per layer (kv_heads, L, head_dim), in the pool's storage dtype; with a context
        LoRA (``gm.context_lora``) only the frozen layers below it.
    keyed: the chunk holds a pass key (a passkey question's distractors must not).
    hidden: with a context LoRA, (L, hidden size): the input of its first layer, from which each
        step recomputes the top layers' KV (``pool_forward.context_of``); else None.
    """

    number: int
    ids: list[int]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    questions: list[Question]
    keyed: bool
    language: str = "en"
    hidden: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        extra = [] if self.hidden is None else [self.hidden]
        return sum(t.numel() * t.element_size() for t in self.keys + self.values + extra)


@dataclass
class Row:
    """One post-pass row: a question on an episode of drawn chunks (indices into the draw, in order)."""

    chunks: list[int]
    question: Question


@dataclass
class ChunkPlan:
    """What goes into a chunk before its KV exists: text, token ids, questions."""

    ids: list[int]
    questions: list[Question] = field(default_factory=list)
    keyed: bool = False
    language: str = "en"
    theme_prompt: list[int] | None = None  #: a theme question whose answer the base model gives (see build)
    theme_asked: list[int] | None = None  #: the same question as the adapter reads it (its prompt format)


def _draw_fact(rng: random.Random, relation_share: float, generic_share: float, open_shapes: bool = False):
    if not (relation_share or generic_share):
        return open_fact(rng)
    u = rng.random()
    if u < relation_share:
        return relation_fact(rng)
    if u < relation_share + generic_share:
        return generic_fact(rng, open_shapes)
    return open_fact(rng)


def plan_chunk(rng: random.Random, docs: dict[str, list[SourceDocument]], tokenizer, n_tokens: int,
               chunk_tokens: int, facts: int, language: str, keyed: bool, relation_share: float = 0.0,
               generic_share: float = 0.0, open_shapes: bool = False, recon_share: float = 0.3,
               prompt_format: str = "chat", key_digits: tuple = (5, 5)) -> ChunkPlan:
    """Real text of about ``n_tokens`` with needles planted: a pass key (if ``keyed``) and ``facts``
    open-vocabulary facts for English (each asked about, and, as task ``quote``, asked for its
    sentence back word for word), plus a cloze question and the text's opening on the real text.
    Each fact is, with probability ``relation_share``, one of the evaluation's relations in trained
    phrasings (``facts.relation_fact``; task ``relation``), with probability ``generic_share`` a fact
    of a drawn relation and value shape (``facts.generic_fact``; task ``generic``), else an open
    kind (task ``fact``); at 0 and 0 no draw is spent on the choice, so plans stay those of
    recipes before them (and one draw serves both shares, so a plan with only ``relation_share``
    is the same as before ``generic_share`` existed). ``open_shapes``: see ``facts.generic_fact``.
    ``recon_share``: the chance the chunk is also asked for its opening 24 tokens back (task ``recon``).
    ``key_digits``: the pass key's length is drawn from (lo, hi) digits; (lo, hi, share): only a share
    of the keys, the others are 5 digits (one more draw per key).
    Questions are written in ``prompt_format`` (``gist_memory.generate.prompt_ids``)."""
    needles, questions = [], []
    if keyed:
        digits = key_digits[:2] if len(key_digits) == 2 or rng.random() < key_digits[2] else (5, 5)
        key = passkey_sample(rng, "x", 0.5, "k", language=language, digits=digits)
        needles.append(key.needle)
        questions.append(("niah", key.question, key.answer))
    if language == "en":
        drawn = [_draw_fact(rng, relation_share, generic_share, open_shapes) for _ in range(facts)]
        for fact in drawn:
            task = "relation" if fact.kind.startswith("relation-") else "generic" if fact.kind == "generic" else "fact"
            needles.append(fact.needle)
            questions.append((task, fact.question, fact.answer))
        # each fact's sentence back, verbatim (asked only when task_mix weighs "quote")
        questions += [("quote", quote_question(fact), fact.needle) for fact in drawn]
    needle_tokens = sum(len(tokenizer(n, add_special_tokens=False)["input_ids"]) + 1 for n in needles)
    text, _ = sample_text(rng, docs[language], tokenizer, max(n_tokens - needle_tokens, 16))
    cloze = cloze_sample(rng, text, "c")
    if cloze is not None:
        questions.append(("qa", cloze.question, cloze.answer))
    if rng.random() < recon_share:
        recon = recon_sample(tokenizer, text, "r", n_tokens=24)
        questions.append(("recon", recon.question, recon.answer))
    for needle in needles:
        text = plant(text, needle, rng.uniform(0.05, 0.95))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:chunk_tokens]
    asked = [Question(t, prompt_ids(tokenizer, q, prompt_format=prompt_format), answer_ids(tokenizer, a))
             for t, q, a in questions]
    return ChunkPlan(ids, asked, keyed, language)


class ContextPool:
    """A FIFO of :class:`PoolChunk`; at step ``s`` it holds chunk numbers [first(s), first(s) + size).

    Args:
        gm: the GistModel in training (its base computes the KV).
        docs: training documents by language.
        size: chunks kept.
        refresh: new chunks per step (0.5: one every other step); or a schedule, ``[(until_step,
            rate), ...]`` ordered by step, the last rate holding past its step (the curriculum's).
        storage_dtype: dtype the KV is kept in (fp16 halves the memory; fp32 is exact).
        length_at: step -> (min_tokens, max_tokens) of chunks made at that step (the curriculum).
        seed: chunk ``i`` is drawn from ``random.Random(f"{seed}-chunk-{i}")``.
        facts, language_mix, keyed_share, relation_share, generic_share, open_shapes, recon_share, key_digits:
            what each chunk holds (``plan_chunk``).
    """

    def __init__(self, gm, docs: dict[str, list[SourceDocument]], size: int, refresh: float,
                 storage_dtype: torch.dtype, length_at, seed: int | str = 0, facts: int = 3,
                 language_mix: dict[str, float] | None = None, keyed_share: float = 0.5, batch: int = 8,
                 theme_share: float = 0.0, theme_tokens: int = 40, relation_share: float = 0.0,
                 generic_share: float = 0.0, open_shapes: bool = False, recon_share: float = 0.3,
                 key_digits: tuple = (5, 5)):
        self.gm, self.docs, self.size, self.refresh = gm, docs, size, refresh
        self.storage_dtype, self.length_at, self.seed, self.facts = storage_dtype, length_at, seed, facts
        self.language_mix = language_mix or {"en": 1.0}
        self.keyed_share, self.batch = keyed_share, batch
        self.theme_share, self.theme_tokens = theme_share, theme_tokens
        self.relation_share, self.generic_share, self.open_shapes = relation_share, generic_share, open_shapes
        self.recon_share, self.key_digits = recon_share, tuple(key_digits)
        self.chunks: list[PoolChunk] = []
        self.built_seconds = 0.0

    def _entered(self, step: int) -> float:
        """Fresh chunks that entered before ``step`` (before flooring)."""
        if not isinstance(self.refresh, (list, tuple)):
            return step * self.refresh
        total, since = 0.0, 0
        for i, (until, rate) in enumerate(self.refresh):
            end = step if i == len(self.refresh) - 1 else min(step, until)
            total += max(0, end - since) * rate
            since = until
            if step <= until:
                break
        return total

    def first(self, step: int) -> int:
        return math.floor(self._entered(step))

    def made_at(self, number: int) -> int:
        """The step at which chunk ``number`` entered the pool (its curriculum length is that step's)."""
        if number < self.size:
            return 0
        if not isinstance(self.refresh, (list, tuple)):
            return math.ceil((number - self.size + 1) / self.refresh) if self.refresh else 0
        need, lo, hi = number - self.size + 1, 0, 1
        while self.first(hi) < need:  # the first step whose range reaches ``number``
            if hi > 10 ** 9:
                return 0  # never enters (refresh 0 from some step on)
            lo, hi = hi, hi * 2
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if self.first(mid) < need else (lo, mid)
        return lo

    def plan(self, number: int) -> ChunkPlan:
        rng = random.Random(f"{self.seed}-chunk-{number}")
        langs, weights = zip(*self.language_mix.items())
        language = rng.choices(langs, weights)[0]
        lo, hi = self.length_at(self.made_at(number))
        plan = plan_chunk(rng, self.docs, self.gm.tokenizer, rng.randint(lo, hi), self.gm.gist.chunk_tokens,
                          self.facts, language, keyed=rng.random() < self.keyed_share,
                          relation_share=self.relation_share, generic_share=self.generic_share,
                          open_shapes=self.open_shapes, recon_share=self.recon_share,
                          prompt_format=self.gm.gist.prompt_format, key_digits=self.key_digits)
        themed = random.Random(f"{self.seed}-theme-{number}")  # its own stream: the draws above stay as they were
        if themed.random() < self.theme_share:  # the teacher (the base model) reads its own chat turn
            question = themed.choice(THEME_QUESTIONS[language])
            plan.theme_prompt = prompt_ids(self.gm.tokenizer, question)
            plan.theme_asked = prompt_ids(self.gm.tokenizer, question, prompt_format=self.gm.gist.prompt_format)
        return plan

    @torch.no_grad()
    def build(self, numbers: list[int]) -> list[PoolChunk]:
        """Plan chunks and run the frozen base over them, ``batch`` at a time."""
        t0 = time.perf_counter()
        out = []
        for start in range(0, len(numbers), self.batch):
            group = numbers[start:start + self.batch]
            plans = [self.plan(n) for n in group]
            layers, hidden = base_kv(self.gm, [p.ids for p in plans])  # per layer (B, kv_heads, L, head_dim)
            themed = [b for b, p in enumerate(plans) if p.theme_prompt is not None]
            if themed:  # context distillation: the target is what the base model says reading the chunk
                answers = base_answers(self.gm, [(k[themed], v[themed]) for k, v in layers],
                                       [len(plans[b].ids) for b in themed], [plans[b].theme_prompt for b in themed],
                                       self.theme_tokens)
                for b, answer in zip(themed, answers):
                    plans[b].questions.append(Question("theme", plans[b].theme_asked, answer))
            out += [_kept(self.gm, n, p, layers, hidden, b, self.storage_dtype) for b, (n, p) in enumerate(zip(group, plans))]
        self.built_seconds += time.perf_counter() - t0
        return out

    def advance(self, step: int, progress: bool = False) -> int:
        """Bring the pool to the range of ``step``; returns how many chunks were built."""
        lo = self.first(step)
        have = {c.number for c in self.chunks}
        self.chunks = [c for c in self.chunks if c.number >= lo]
        missing = [n for n in range(lo, lo + self.size) if n not in have]
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing), desc="context-KV pool", unit="chunk",
                   disable=not (progress and len(missing) > self.batch))
        for start in range(0, len(missing), self.batch):
            self.chunks += self.build(missing[start:start + self.batch])
            bar.update(len(missing[start:start + self.batch]))
        bar.close()
        return len(missing)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks)


def draw_rows(rng: random.Random, drawn: list[PoolChunk], max_chunks: int, questions_per_chunk: int,
              task_weights: dict[str, float] | None = None) -> list[Row]:
    """Episodes over a draw: each drawn chunk is a target with 0..max_chunks-1 distractors from the
    same draw, and up to ``questions_per_chunk`` of its questions are asked of the episode (the
    rows of one episode share one ``chunks`` list), drawn without replacement by ``task_weights``
    (a task of weight 0, or not named, is not asked). The weights pick among the questions a chunk
    holds, so what a step really asks is bounded by them: one pass key in ``keyed_share`` of the
    chunks, ``facts_per_chunk`` facts in each English one (the log's ``tasks`` says what was asked).

    A pass key question's distractors hold no pass key, so its answer is unique in the episode;
    fact questions name an invented owner, so a distractor's facts never answer them (a relation
    fact's owner is half the time from a list of 576 names or 12 objects: a clash within one
    episode is rare, and left as noise); a theme
    question asks about "this text", so its episode is the target chunk alone.
    """
    rows = []
    for t, chunk in enumerate(drawn):
        weights = task_weights or {q.task: 1.0 for q in chunk.questions}
        # weighted sampling without replacement: order by u ** (1 / w) (Efraimidis and Spirakis)
        keyed = [(rng.random() ** (1 / weights[q.task]), i) for i, q in enumerate(chunk.questions)
                 if weights.get(q.task, 0) > 0]
        asked = [chunk.questions[i] for _, i in sorted(keyed, reverse=True)[:questions_per_chunk]]
        if not asked:
            continue
        plain = [i for i, c in enumerate(drawn) if i != t and not c.keyed]
        others = [i for i in range(len(drawn)) if i != t]
        choices = plain if any(q.task == "niah" for q in asked) else others
        n = min(rng.randint(1, max_chunks) - 1, len(choices))
        if any(q.task == "theme" for q in asked):  # "this text" is the target chunk alone
            n = 0
        episode = rng.sample(choices, n) + [t]
        rng.shuffle(episode)
        rows += [Row(episode, q) for q in asked]
    return rows


def draw_step(rng: random.Random, chunks: list[PoolChunk], chunks_per_step: int, questions_per_chunk: int,
              max_chunks: int, task_mix: dict[str, float], step: int) -> tuple[list[PoolChunk], list[Row]]:
    """One step's draw from the pool and its rows (:func:`draw_rows`). A small draw may hold nothing
    the mix asks (4 chunks, none with a pass key): it is drawn again from the same ``rng``, so the
    step stays a pure function of its seed; ValueError after 100 empty draws."""
    ordered = sorted(chunks, key=lambda c: c.number)
    for _ in range(100):
        drawn = rng.sample(ordered, chunks_per_step)
        rows = draw_rows(rng, drawn, max_chunks, questions_per_chunk, task_mix)
        if rows:
            return drawn, rows
    raise ValueError(f"step {step}: 100 draws of {chunks_per_step} pool chunks held no question of the task mix "
                     f"{task_mix}; check keyed_share, facts_per_chunk and theme_share")


def base_kv(gm, chunks: list[list[int]]):
    """The frozen base model's context KV of ``chunks`` (all layers: the theme teacher reads them) and,
    when ``gm`` has a context LoRA, the hidden state at its first layer's input (else None)."""
    if gm.context_lora is None:
        return context_kv(gm, chunks, base=True), None
    return context_kv(gm, chunks, base=True, hidden_at=gm.context_lora.first_layer)


def _kept(gm, number: int, plan: ChunkPlan, layers, hidden, b: int, dtype: torch.dtype) -> PoolChunk:
    """Row ``b`` of a batch's context KV, cut to the chunk's own length and stored in ``dtype``: every
    layer, or with a context LoRA the layers below it and the hidden state at its input."""
    L = len(plan.ids)
    if hidden is not None:
        layers = layers[:gm.context_lora.first_layer]
    return PoolChunk(number, plan.ids, [k[b, :, :L].to(dtype).clone() for k, _ in layers],
                     [v[b, :, :L].to(dtype).clone() for _, v in layers], plan.questions, plan.keyed, plan.language,
                     None if hidden is None else hidden[b, :L].to(dtype).clone())


def chunks_kv(gm, plans: list[ChunkPlan], storage_dtype=torch.float32) -> list[PoolChunk]:
    """PoolChunks of explicit plans (validation sets and tests), KV computed now."""
    layers, hidden = base_kv(gm, [p.ids for p in plans])
    return [_kept(gm, b, p, layers, hidden, b, storage_dtype) for b, p in enumerate(plans)]
