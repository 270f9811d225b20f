"""Compression: text -> token-exact chunks -> one gist cache per chunk, batched.

For each chunk (N chunks per batch, right-padded to the longest, L):

    pass 1, frozen base, no grad:  [c_0 .. c_L-1]           positions 0..L-1      -> context KV
    pass 2, adapter:               [g_1 .. g_k] on top       positions L_i..L_i+k-1 (L_i the chunk's own length)
    keep:                          KV columns L..L+k of every layer; the context KV is dropped.

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
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
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


def _compress_batch(gm, chunks: list[list[int]]) -> list[GistCache]:
    k, dev = gm.gist.num_gist_tokens, gm.device
    kinds, chunk_idx, positions, _ = pad_layouts([episode_layout([len(c)], k, 0) for c in chunks])
    L = kinds.shape[1] - k
    ids = torch.full((len(chunks), L), gm.tokenizer.pad_token_id, dtype=torch.long)
    for b, c in enumerate(chunks):
        ids[b, :len(c)] = torch.tensor(c)
    mask = additive_mask(gist_attention_allowed(kinds, chunk_idx), gm.dtype).to(dev)  # (N, 1, L+k, L+k)
    positions = positions.to(dev)
    with gm.base_mode():
        past = gm.model(input_ids=ids.to(dev), attention_mask=mask[:, :, :L, :L], position_ids=positions[:, :L],
                        use_cache=True, logits_to_keep=1).past_key_values
    past = gm.model(inputs_embeds=gm.gist_embeds(len(chunks)), attention_mask=mask[:, :, L:, :],
                    position_ids=positions[:, L:], past_key_values=past, use_cache=True,
                    logits_to_keep=1).past_key_values
    layers = _kv_layers(past)  # per layer (N, n_kv_heads, L+k, head_dim)
    meta = dict(gm.cache_identity, chunks=1)
    return [GistCache(keys=[kv[0][b, :, L:].clone() for kv in layers], values=[kv[1][b, :, L:].clone() for kv in layers],
                      positions=positions[b, L:].cpu().clone(), next_position=len(c) + k, context_tokens=len(c),
                      meta=dict(meta))
            for b, c in enumerate(chunks)]


def compress_text(gm, text: str, batch_size: int = 8, progress: bool = False) -> GistCache:
    """Compress ``text`` into the concatenation of its chunks' gist caches."""
    chunks = split_tokens(tokenize(gm.tokenizer, text), gm.gist.chunk_tokens)
    return GistCache.concat(compress_chunks(gm, chunks, batch_size=batch_size, progress=progress))
