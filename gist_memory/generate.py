"""Generation from gist caches: prefill only the question on top of the cached gist KV.

The question goes through the model's chat template (in the adapter's ``prompt_format``) and is placed at positions
``cache.next_position ..`` (docs/design.md invariant 3), exactly where training put it. With no cache
(the rag and full baselines) the prompt carries the context text and starts at position 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .cache import GistCache, check_compatible
from .config import PROMPT_FORMATS
from .errors import CacheFormatError, InputError


def prompt_ids(tokenizer, question: str, context: str | None = None, prompt_format: str = "chat") -> list[int]:
    """Token ids of the user turn (and the assistant header) that follow the gists.

    ``context``, for rag and full modes only, is put in the user message before the question.
    ``prompt_format`` (``gist_memory.config.PROMPT_FORMATS``): "chat" renders the tokenizer's chat
    template as it stands; "chat-no-system" renders it without a system turn (a template that adds a
    default one, as SmolLM2's, is given an empty one, and that turn's rendering is cut off).
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty; ask something")
    if prompt_format not in PROMPT_FORMATS:
        raise InputError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    content = question if context is None else f"{context}\n\nQuestion: {question}"
    if not tokenizer.chat_template:
        return tokenizer(f"Question: {content}\nAnswer:", add_special_tokens=False)["input_ids"]
    user = [{"role": "user", "content": content}]
    if prompt_format == "chat":
        return _render(tokenizer, user, True)
    from jinja2 import TemplateError  # what apply_chat_template's renderer raises

    try:
        system = _render(tokenizer, [{"role": "system", "content": ""}], False)
        ids = _render(tokenizer, [{"role": "system", "content": ""}] + user, True)
    except TemplateError:  # a template that refuses a system role adds none of its own
        return _render(tokenizer, user, True)
    return ids[len(system):] if ids[:len(system)] == system else _render(tokenizer, user, True)


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True,
                                        return_dict=True)
    return list(out["input_ids"])


def answer_ids(tokenizer, answer: str) -> list[int]:
    """Token ids of an answer as the assistant would write it, ending with its end-of-turn token."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def stop_token_ids(gm) -> set[int]:
    ids = {gm.tokenizer.eos_token_id}
    gen_eos = getattr(getattr(gm.model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else {gen_eos}
    return {i for i in ids if i is not None}


def to_dynamic_cache(gm, cache: GistCache | None):
    """A fresh transformers DynamicCache holding ``cache``'s entries (batch of 1)."""
    from transformers import DynamicCache

    dyn = DynamicCache(config=gm.model.config)
    if cache is not None:
        for i, (k, v) in enumerate(zip(cache.keys, cache.values)):
            dyn.update(k[None].to(gm.device, gm.dtype), v[None].to(gm.device, gm.dtype), i)
    return dyn


def merge_caches(gm, caches) -> GistCache | None:
    """Check every cache against ``gm`` and concatenate them (None when there are none)."""
    if caches is None:
        return None
    if isinstance(caches, GistCache):
        caches = [caches]
    caches = list(caches)
    for c in caches:
        if not isinstance(c, GistCache):
            raise InputError(f"caches must be GistCache objects, got {type(c).__name__}")
        check_compatible(gm.cache_identity, c.meta)
        check_shapes(gm, c)
    return GistCache.concat(caches) if caches else None


def check_shapes(gm, cache: GistCache) -> None:
    """Refuse a cache whose tensors do not fit the model, whatever its metadata claims (a damaged or
    forged file), before the attention layers fail on it with a shape error."""
    want = gm.kv_shape()
    got = {(len(cache.keys), t.shape[0], t.shape[2]) for t in cache.keys + cache.values}
    if got != {want}:
        raise CacheFormatError(f"a gist cache holds (layers, KV heads, head size) {sorted(got)}, but this model has "
                               f"{want}; the cache is damaged or was made by another model: compress the text again")


def check_window(gm, cache: GistCache | None, ids: list[int], max_new_tokens: int) -> None:
    """Refuse a prompt that would run past the model's position window instead of degrading silently."""
    window = getattr(gm.model.config.get_text_config(), "max_position_embeddings", None)
    start = cache.next_position if cache is not None else 0
    need = start + len(ids) + max_new_tokens
    if window and need > window:
        raise InputError(f"the prompt is {len(ids)} tokens (from position {start}); with max_new_tokens={max_new_tokens} "
                         f"it needs {need} positions, past the model's window of {window}. Put less text in the "
                         "prompt, or compress it into gist caches and answer from those")


def forward_on_cache(gm, cache: GistCache | None, ids: list[int] | torch.Tensor, past=None, start: int | None = None):
    """Run ``ids`` on top of ``cache`` (or ``past``); returns (logits (1, T, vocab), past, next position)."""
    ids = torch.as_tensor(ids, dtype=torch.long, device=gm.device).reshape(1, -1)
    if past is None:
        past = to_dynamic_cache(gm, cache)
        start = cache.next_position if cache is not None else 0
    T, held = ids.shape[1], past.get_seq_length()
    positions = torch.arange(start, start + T, device=gm.device)[None]
    mask = torch.ones(1, held + T, dtype=torch.long, device=gm.device)
    out = gm.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past, use_cache=True)
    return out.logits, out.past_key_values, start + T


@dataclass
class Generation:
    """An answer and what it cost. Times are seconds."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    kv_entries: int = 0
    kv_bytes: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        decode = self.total_s - self.ttft_s
        return (len(self.token_ids) - 1) / decode if len(self.token_ids) > 1 and decode > 0 else 0.0


class TokenStream:
    """Iterator of text pieces; ``.generation`` holds the full Generation once it is exhausted."""

    def __init__(self, pieces: Iterator[str]):
        self._pieces = pieces
        self.generation: Generation | None = None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop the stream early and release what it holds (the model, for a memory's stream).
        Garbage collection does the same for a stream nobody reads any more."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def _sample(logits: torch.Tensor, temperature: float, generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def contrastive_scores(own: torch.Tensor, prior: torch.Tensor, contrast: float, plausible: float = 0.1) -> torch.Tensor:
    """Next-token scores that favour what the gists add over what the question alone predicts.

    ``own`` and ``prior`` are the adapter's logits after the same tokens with and without the gist
    caches. The score is ``log p_own + contrast * (log p_own - log p_prior)`` (context-aware
    decoding, Shi et al., arXiv 2305.14739), over the tokens whose ``p_own`` is at least
    ``plausible`` times the likeliest one's (every other token is ruled out, as in contrastive
    decoding, Li et al., arXiv 2210.15097, so a token the gists barely allow never wins on the
    ratio alone).
    """
    own = own.float().log_softmax(-1)
    score = own + contrast * (own - prior.float().log_softmax(-1))
    return score.masked_fill(own < own.max() + math.log(plausible), float("-inf"))


def _shown(full: str, stop: list[str]) -> str:
    """The part of the decoded answer that is safe to show before the answer ends.

    Held back: an unfinished UTF-8 character, and a tail that may still grow into a stop string
    (so no piece of a stop string is ever streamed and then taken back).
    """
    shown = full[:-1] if full.endswith("\ufffd") else full
    held = max((n for s in stop for n in range(1, len(s)) if shown.endswith(s[:n])), default=0)
    return shown[:len(shown) - held]


@torch.no_grad()
def _decode(gm, ids: list[int], cache: GistCache | None, max_new_tokens: int, temperature: float,
            stop: list[str], seed: int, sink: TokenStream, contrast: float = 0.0) -> Iterator[str]:
    t0 = time.perf_counter()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    stops, out, full, text, ttft, hit = stop_token_ids(gm), [], "", "", 0.0, []
    logits, past, pos = forward_on_cache(gm, cache, ids)
    if contrast:  # the same question and answer so far without the gists: what the question alone predicts
        prior, prior_past, prior_pos = forward_on_cache(gm, None, ids)
    for step in range(max_new_tokens):
        scores = logits[0, -1] if not contrast else contrastive_scores(logits[0, -1], prior[0, -1], contrast)
        token = _sample(scores.cpu(), temperature, generator)
        if step == 0:
            ttft = time.perf_counter() - t0
        if token in stops:
            break
        out.append(token)
        full = gm.tokenizer.decode(out, skip_special_tokens=True)
        hit = [full.index(s) for s in stop if s in full]
        if hit:
            full = full[:min(hit)]
            break
        shown = _shown(full, stop)
        if len(shown) > len(text):
            piece, text = shown[len(text):], shown
            yield piece
        if step == max_new_tokens - 1:
            break
        logits, past, pos = forward_on_cache(gm, None, [token], past=past, start=pos)
        if contrast:
            prior, prior_past, prior_pos = forward_on_cache(gm, None, [token], past=prior_past, start=prior_pos)
    # The answer is over: a tail held back for a stop string that never came is shown now. Text
    # before a stop string is complete; elsewhere a trailing unfinished character is dropped.
    final = full if hit else _shown(full, [])
    if len(final) > len(text):
        piece, text = final[len(text):], final
        yield piece
    total = time.perf_counter() - t0
    entries = cache.num_entries if cache is not None else 0
    sink.generation = Generation(text=text, token_ids=out, prompt_tokens=len(ids), kv_entries=entries,
                                 kv_bytes=cache.nbytes if cache is not None else 0, ttft_s=ttft, total_s=total)


def _without_adapter(gm, pieces: Iterator[str]) -> Iterator[str]:
    """Run a generation with the LoRA adapter off: the adapter is trained to read gists, so text
    answered without caches (the rag and full baselines) is read by the base model."""
    with gm.base_mode():
        yield from pieces


def generate(gm, question: str, caches=None, max_new_tokens: int = 64, stream: bool = False,
             context: str | None = None, temperature: float = 0.0, stop: list[str] | None = None,
             seed: int = 0, contrast: float = 0.0) -> Generation | TokenStream:
    """Answer ``question`` from gist caches (and, for rag/full baselines, a context text).

    With caches the adapter reads them; without, the base model answers with the adapter off.

    Args:
        gm: the GistModel that made the caches.
        caches: a GistCache, a list of them (concatenated in order), or None.
        max_new_tokens: most tokens to generate.
        stream: return a TokenStream of text pieces instead of a Generation.
        context: text placed in the prompt before the question (rag and full modes).
        temperature: 0 for greedy decoding, else sampling at that temperature.
        stop: strings that end the answer (not included in it).
        seed: sampling seed.
        contrast: 0 reads the gists plainly; above 0, each token is chosen by how much more likely
            the gists make it than the question alone does (:func:`contrastive_scores`), which
            counters an answer prior learned in training (a time's "10:15" where the text said
            "40-11-32"). Costs a second, gist-free pass over the question and answer. Used only
            with caches (without them there are no gists to contrast).
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be an integer of at least 1, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise InputError(f"temperature must be a number >= 0 (0 decodes greedily), got {temperature!r}")
    if isinstance(contrast, bool) or not isinstance(contrast, (int, float)) or not 0 <= contrast <= 10:
        raise InputError(f"contrast must be a number from 0 (plain reading) to 10, got {contrast!r}")
    cache = merge_caches(gm, caches)
    # the adapter reads questions as it was trained to; the base model (no caches) its own chat turn
    ids = prompt_ids(gm.tokenizer, question, context, gm.gist.prompt_format if cache is not None else "chat")
    check_window(gm, cache, ids, max_new_tokens)
    sink = TokenStream(iter(()))
    sink._pieces = _decode(gm, ids, cache, max_new_tokens, temperature, list(stop or []), seed, sink,
                           contrast if cache is not None else 0.0)
    if cache is None:
        sink._pieces = _without_adapter(gm, sink._pieces)
    if stream:
        return sink
    for _ in sink:
        pass
    return sink.generation
