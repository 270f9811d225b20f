"""Token roles, position ids and the gist attention mask (docs/design.md invariants 1 and 3).

A training episode holds one or more chunks, each compressed into its own k gist tokens, then a
question and its answer that may look only at the gists (Mu et al. 2023, arXiv 2304.08467)::

    [context c1][context c2] .. [gists g1][gists g2] .. [question + answer]

Who may attend to whom (■ allowed, · masked), for two chunks of 3 tokens, k=2, 3 post tokens::

                 keys:  c1 c1 c1 c2 c2 c2 g1 g1 g2 g2  q  q  a
      c1 (context)      ■  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·
      c1                ■  ■  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·
      c1                ■  ■  ■  ·  ·  ·  ·  ·  ·  ·  ·  ·  ·
      c2                ·  ·  ·  ■  ·  ·  ·  ·  ·  ·  ·  ·  ·   chunks never see each other:
      c2                ·  ·  ·  ■  ■  ·  ·  ·  ·  ·  ·  ·  ·   each is compressed on its own
      c2                ·  ·  ·  ■  ■  ■  ·  ·  ·  ·  ·  ·  ·
      g1 (gist)         ■  ■  ■  ·  ·  ·  ■  ·  ·  ·  ·  ·  ·   gists read their own chunk
      g1                ■  ■  ■  ·  ·  ·  ■  ■  ·  ·  ·  ·  ·
      g2                ·  ·  ·  ■  ■  ■  ·  ·  ■  ·  ·  ·  ·
      g2                ·  ·  ·  ■  ■  ■  ·  ·  ■  ■  ·  ·  ·
      q  (post-gist)    ·  ·  ·  ·  ·  ·  ■  ■  ■  ■  ■  ·  ·   the question sees gists only,
      q                 ·  ·  ·  ·  ·  ·  ■  ■  ■  ■  ■  ■  ·   never the context: anything
      a                 ·  ·  ·  ·  ·  ·  ■  ■  ■  ■  ■  ■  ■   else is data leakage

Padding tokens see only themselves and are seen by nobody.

Positions (RoPE) follow the same convention at training and at inference: a chunk's context
tokens sit at 0..L-1, its gists at L..L+k-1, and the question starts at max over chunks of L+k.
So concatenating independently compressed chunk caches reproduces training exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CONTEXT, GIST, POST, PAD = 0, 1, 2, 3


@dataclass
class EpisodeLayout:
    """Roles of one episode's tokens in packed order (contexts, gists, post-gist tokens).

    kinds: role of each token (CONTEXT, GIST, POST or PAD).
    chunks: the chunk a CONTEXT or GIST token belongs to (-1 for POST and PAD).
    positions: RoPE position id of each token.
    """

    kinds: list[int]
    chunks: list[int]
    positions: list[int]

    @property
    def next_position(self) -> int:
        """Position of the first post-gist token: max over chunks of (chunk length + k)."""
        gist_positions = [p for p, k in zip(self.positions, self.kinds) if k == GIST]
        return max(gist_positions) + 1 if gist_positions else 0


def episode_layout(chunk_lengths: list[int], num_gist_tokens: int, post_length: int) -> EpisodeLayout:
    """Layout of ``[contexts][gists][post]`` for chunks of the given token lengths."""
    if any(n < 1 for n in chunk_lengths):
        raise ValueError(f"every chunk needs at least one token, got lengths {chunk_lengths}")
    kinds, chunks, positions = [], [], []
    for c, n in enumerate(chunk_lengths):
        kinds += [CONTEXT] * n
        chunks += [c] * n
        positions += list(range(n))
    for c, n in enumerate(chunk_lengths):
        kinds += [GIST] * num_gist_tokens
        chunks += [c] * num_gist_tokens
        positions += list(range(n, n + num_gist_tokens))
    start = max((n + num_gist_tokens for n in chunk_lengths), default=0)
    kinds += [POST] * post_length
    chunks += [-1] * post_length
    positions += list(range(start, start + post_length))
    return EpisodeLayout(kinds, chunks, positions)


def gist_attention_allowed(kinds: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T, T) matrix: may query token i attend to key token j (the picture above).

    Args:
        kinds: (B, T) roles, CONTEXT / GIST / POST / PAD.
        chunks: (B, T) chunk index of CONTEXT and GIST tokens; ignored for the others.
    """
    T = kinds.shape[-1]
    q_kind, k_kind = kinds[:, :, None], kinds[:, None, :]  # (B, T, 1), (B, 1, T)
    same_chunk = chunks[:, :, None] == chunks[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=kinds.device).tril()[None]
    ctx_rows = (q_kind == CONTEXT) & (k_kind == CONTEXT) & same_chunk
    gist_rows = (q_kind == GIST) & ((k_kind == CONTEXT) | (k_kind == GIST)) & same_chunk
    post_rows = (q_kind == POST) & ((k_kind == GIST) | (k_kind == POST))
    allowed = (ctx_rows | gist_rows | post_rows) & causal
    # A padding row attends to itself only, so softmax never sees an all-masked row.
    eye = torch.eye(T, dtype=torch.bool, device=kinds.device)[None]
    return allowed | ((q_kind == PAD) & eye)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T_q, T_k) booleans -> (B, 1, T_q, T_k) additive float mask (0 or the dtype's minimum)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def pad_layouts(layouts: list[EpisodeLayout], regions: bool = True) -> tuple[torch.Tensor, ...]:
    """Stack episode layouts into (B, T) tensors, padding each region to the batch's longest.

    With ``regions`` the context, gist and post regions are padded separately, so every row has
    its context region at the same columns [0, C), its gists at [C, C+G) and its post-gist
    tokens at [C+G, T). The two-pass training forward relies on that alignment.

    Returns:
        kinds, chunks, positions, index: (B, T) tensors; ``index[b, t]`` is the token's index in
        the episode's own layout, or -1 for padding.
    """
    def region(layout: EpisodeLayout, kind: int) -> list[int]:
        return [i for i, k in enumerate(layout.kinds) if k == kind]

    groups = [[region(lay, kind) for kind in (CONTEXT, GIST, POST)] for lay in layouts]
    widths = [max(len(g[r]) for g in groups) for r in range(3)] if regions else None
    rows = []
    for lay, g in zip(layouts, groups):
        if regions:
            idx = sum((g[r] + [-1] * (widths[r] - len(g[r])) for r in range(3)), [])
        else:
            idx = list(range(len(lay.kinds)))
        rows.append(idx)
    T = max(len(r) for r in rows)
    rows = [r + [-1] * (T - len(r)) for r in rows]
    index = torch.tensor(rows, dtype=torch.long)

    def gather(values: list[list[int]], fill: int) -> torch.Tensor:
        out = torch.full(index.shape, fill, dtype=torch.long)
        for b, (vals, idx) in enumerate(zip(values, rows)):
            for t, i in enumerate(idx):
                if i >= 0:
                    out[b, t] = vals[i]
        return out

    kinds = gather([lay.kinds for lay in layouts], PAD)
    chunks = gather([lay.chunks for lay in layouts], -1)
    positions = gather([lay.positions for lay in layouts], 0)
    return kinds, chunks, positions, index
