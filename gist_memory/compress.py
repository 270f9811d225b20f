"""Compression: text -> token-exact chunks -> one gist cache per chunk, batched.

For each chunk (N chunks per batch, right-padded to the longest, L):

    pass 1, frozen base, no grad:  [c_0 .. c_L-1]           positions 0..L-1      -> context KV
           (its top layers through the adapter's context LoRA, if it has one: gist_memory/context_lora.py)
    pass 2, adapter:               [g_1 .. g_k] on top       positions L_i..L_i+k-1 (L_i the chunk's own length)
    keep:                          KV columns L..L+k of every layer; the context KV is dropped.

The two passes are separate functions (:func:`context_kv`, :func:`gist_kv`) because the trainer
keeps a chunk's context KV and runs only pass 2 over it, many times (``trainers/pool.py``).

The gist rows of pass 2 use the same mask as training (``mask.gist_attention_allowed``), so a
gist reads only its own chunk and earlier gists of that chunk.
"""

from __future__ import annotations

import torch

from .cache import GistCache
from .errors import InputError
from .mask import additive_mask, episode_layout, gist_attention_allowed, pad_layouts


def tokenize(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens; refuses empty or whitespace-only text."""
    if not isinstance(text, str):
        raise InputError(f"expected a str to compress, got {type(text).__name__}")
    if not text.strip():
        raise InputError("cannot compress an empty or whitespace-only text")
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def split_tokens(ids: list[int], chunk_tokens: int, overlap: int = 0) -> list[list[int]]:
    """Token-exact chunks of at most ``chunk_tokens`` ids, consecutive chunks sharing ``overlap`` ids."""
    if not 0 <= overlap < chunk_tokens:
        raise InputError(f"overlap must be in [0, chunk_tokens={chunk_tokens}), got {overlap}")
    step = chunk_tokens - overlap
    starts = range(0, max(len(ids) - overlap, 1), step)
    return [ids[s:s + chunk_tokens] for s in starts]


def _kv_layers(past) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in past.layers]


@torch.no_grad()
def compress_chunks(gm, chunks: list[list[int]], batch_size: int = 8, progress: bool = False) -> list[GistCache]:
    """One GistCache per chunk of token ids; chunks are compressed ``batch_size`` at a time."""
    from tqdm.auto import tqdm

    if not chunks or any(len(c) == 0 for c in chunks):
        raise InputError("every chunk must hold at least one token")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    too_long = max(len(c) for c in chunks)
    if too_long > gm.gist.chunk_tokens:
        raise InputError(f"a chunk of {too_long} tokens exceeds chunk_tokens={gm.gist.chunk_tokens}; split it first")
    out: list[GistCache] = []
    bar = tqdm(total=len(chunks), desc="compressing", unit="chunk", disable=not progress)
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start:start + batch_size]
        out += _compress_batch(gm, batch)
        bar.update(len(batch))
    bar.close()
    return out


def chunk_layout(lengths: list[int], k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mask and positions of N chunks right-padded to the longest, L, each followed by k gists.

    Returns:
        allowed: (N, L+k, L+k) gist mask (``mask.gist_attention_allowed``).
        positions: (N, L+k): context at 0..L_i-1, chunk i's gists at L_i..L_i+k-1.
        L: the padded context width.
    """
    kinds, chunk_idx, positions, _ = pad_layouts([episode_layout([n], k, 0) for n in lengths])
    return gist_attention_allowed(kinds, chunk_idx), positions, kinds.shape[1] - k


def context_inputs(gm, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Pass 1's attention mask and positions for chunks of ``lengths`` right-padded to the longest,
    L, on the model's device: (additive mask over (L, L), positions (N, L), L)."""
    allowed, positions, L = chunk_layout(lengths, gm.gist.num_gist_tokens)
    return additive_mask(allowed[:, :L, :L], gm.dtype).to(gm.device), positions[:, :L].to(gm.device), L


def context_kv(gm, chunks: list[list[int]], base: bool = False, hidden_at: int | None = None):
    """Pass 1: the model's KV of N chunks, per layer (N, n_kv_heads, L, head_dim).

    The context pass is the frozen base model, its top layers through the adapter's context LoRA
    when it has one (``GistModel.context_mode``); ``base=True`` runs the frozen base throughout.
    Rows are right-padded to the longest chunk; what the pad columns hold is masked later. With
    ``hidden_at=i`` it returns ``(layers, hidden)``, ``hidden`` (N, L, hidden size) the input of
    decoder layer ``i`` (what the trainer keeps to recompute the layers from ``i`` on).
    """
    mask, positions, L = context_inputs(gm, [len(c) for c in chunks])
    ids = torch.full((len(chunks), L), gm.tokenizer.pad_token_id, dtype=torch.long)
    for b, c in enumerate(chunks):
        ids[b, :len(c)] = torch.tensor(c)
    with torch.no_grad(), (gm.base_mode() if base else gm.context_mode()):
        out = gm.model(input_ids=ids.to(gm.device), attention_mask=mask, position_ids=positions,
                       use_cache=True, logits_to_keep=1, output_hidden_states=hidden_at is not None)
    if hidden_at is None:
        return _kv_layers(out.past_key_values)
    return _kv_layers(out.past_key_values), out.hidden_states[hidden_at]


def gist_kv(gm, context: list[tuple[torch.Tensor, torch.Tensor]], lengths: list[int]
            ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pass 2: the adapter runs each chunk's k gists on top of its context KV.

    ``context`` is :func:`context_kv`'s output (or the trainer's kept copy of it, padded to the same
    width); returns the gists' own KV per layer, (N, n_kv_heads, k, head_dim). It keeps gradients
    when called with them enabled, so training and compression share this one function.
    """
    from transformers import DynamicCache

    k, dev = gm.gist.num_gist_tokens, gm.device
    allowed, positions, L = chunk_layout(lengths, k)
    if context[0][0].shape[2] != L:
        raise ValueError(f"context KV is {context[0][0].shape[2]} wide; chunks of lengths up to {L} need {L}")
    past = DynamicCache(config=gm.model.config)
    for i, (key, value) in enumerate(context):
        past.update(key.to(dev, gm.dtype), value.to(dev, gm.dtype), i)
    mask = additive_mask(allowed[:, L:, :], gm.dtype).to(dev)  # (N, 1, k, L+k)
    past = gm.model(inputs_embeds=gm.gist_embeds(len(lengths)), attention_mask=mask,
                    position_ids=positions[:, L:].to(dev), past_key_values=past, use_cache=True,
                    logits_to_keep=1).past_key_values
    return [(key[:, :, L:], value[:, :, L:]) for key, value in _kv_layers(past)]


def gist_caches(gm, gists: list[tuple[torch.Tensor, torch.Tensor]], lengths: list[int]) -> list[GistCache]:
    """One GistCache per chunk from :func:`gist_kv`'s output for chunks of ``lengths`` tokens."""
    k = gm.gist.num_gist_tokens
    meta = dict(gm.cache_identity, chunks=1)
    return [GistCache(keys=[kv[0][b].clone() for kv in gists], values=[kv[1][b].clone() for kv in gists],
                      positions=torch.arange(n, n + k), next_position=n + k, context_tokens=n, meta=dict(meta))
            for b, n in enumerate(lengths)]


def _compress_batch(gm, chunks: list[list[int]]) -> list[GistCache]:
    lengths = [len(c) for c in chunks]
    return gist_caches(gm, gist_kv(gm, context_kv(gm, chunks), lengths), lengths)


def compress_text(gm, text: str, batch_size: int = 8, progress: bool = False) -> GistCache:
    """Compress ``text`` into the concatenation of its chunks' gist caches."""
    chunks = split_tokens(tokenize(gm.tokenizer, text), gm.gist.chunk_tokens)
    return GistCache.concat(compress_chunks(gm, chunks, batch_size=batch_size, progress=progress))
