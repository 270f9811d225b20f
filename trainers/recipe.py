"""The training forward path: episodes, the gist collator, and the two-pass masked forward.

An episode is one or more context chunks and a post-gist sequence (question then answer). The
collator packs a batch as ``[contexts | gists | post]``, every region padded to the batch's
longest, with the gist mask of ``mask.py``. The forward then runs

    pass 1, frozen base, no grad:  the context region           (block-diagonal causal mask)
    pass 2, adapter, with grad:    gists and post on top of it   (gist mask rows: post never sees context)

which is the recipe measured to learn (docs/design.md). Inference instead compresses each chunk on its
own, drops the context KV, concatenates the gist caches and runs the post tokens on top; the
parity test (docs/design.md invariant 2) checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gist_memory.mask import CONTEXT, GIST, POST, additive_mask, episode_layout, gist_attention_allowed, pad_layouts

IGNORE_INDEX = -100


@dataclass
class Episode:
    """Token ids of one training example.

    chunks: context chunks, each compressed into its own gists.
    prompt: post-gist tokens without loss (the templated question).
    answer: post-gist tokens with loss (the answer and its end-of-turn token).
    """

    chunks: list[list[int]]
    prompt: list[int]
    answer: list[int] = field(default_factory=list)

    @property
    def post(self) -> list[int]:
        return self.prompt + self.answer


@dataclass
class GistBatch:
    """A collated batch. C, G, P: widths of the context, gist and post regions.

    context_ids: (B, C); post_ids: (B, P); labels: (B, P) with IGNORE_INDEX off the answer;
    kinds, chunks, positions: (B, C+G+P) layout tensors; allowed: (B, T, T) gist mask.
    """

    context_ids: torch.Tensor
    post_ids: torch.Tensor
    labels: torch.Tensor
    kinds: torch.Tensor
    chunks: torch.Tensor
    positions: torch.Tensor
    allowed: torch.Tensor

    @property
    def answer_tokens(self) -> int:
        """Tokens the loss trains (labels other than IGNORE_INDEX)."""
        return int((self.labels != IGNORE_INDEX).sum())

    @property
    def context_width(self) -> int:
        return self.context_ids.shape[1]

    def to(self, device) -> "GistBatch":
        return GistBatch(*(t.to(device) for t in (self.context_ids, self.post_ids, self.labels, self.kinds,
                                                   self.chunks, self.positions, self.allowed)))


def collate(episodes: list[Episode], num_gist_tokens: int, pad_id: int) -> GistBatch:
    """Pack episodes into a GistBatch with the gist attention mask (docs/design.md invariant 1)."""
    layouts = [episode_layout([len(c) for c in ep.chunks], num_gist_tokens, len(ep.post)) for ep in episodes]
    kinds, chunks, positions, index = pad_layouts(layouts)
    C = int((kinds == CONTEXT).sum(1).max())
    P = int((kinds == POST).sum(1).max())
    B = len(episodes)
    context_ids = torch.full((B, C), pad_id, dtype=torch.long)
    post_ids = torch.full((B, P), pad_id, dtype=torch.long)
    labels = torch.full((B, P), IGNORE_INDEX, dtype=torch.long)
    for b, ep in enumerate(episodes):
        flat = sum(ep.chunks, [])
        context_ids[b, :len(flat)] = torch.tensor(flat)
        post_ids[b, :len(ep.post)] = torch.tensor(ep.post)
        labels[b, len(ep.prompt):len(ep.post)] = torch.tensor(ep.answer, dtype=torch.long)
    return GistBatch(context_ids, post_ids, labels, kinds, chunks, positions, gist_attention_allowed(kinds, chunks))


def episode_forward(gm, batch: GistBatch, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (B, P, vocab) of the post region, by the two-pass masked training forward.

    ``allowed`` overrides the batch's mask (the leak test uses it to prove the parity test bites).
    """
    dev = gm.device
    batch = batch.to(dev)
    mask = additive_mask(batch.allowed if allowed is None else allowed.to(dev), gm.dtype)  # (B, 1, T, T)
    C, B = batch.context_width, batch.context_ids.shape[0]
    with torch.no_grad(), gm.base_mode():
        past = gm.model(input_ids=batch.context_ids, attention_mask=mask[:, :, :C, :C],
                        position_ids=batch.positions[:, :C], use_cache=True, logits_to_keep=1).past_key_values
    n_gist_slots = int((batch.kinds == GIST).sum(1).max())
    k = gm.gist.num_gist_tokens
    gists = gm.gist_embeds(B).repeat(1, n_gist_slots // k, 1)  # (B, G, hidden): k rows per chunk slot
    embeds = torch.cat([gists, gm.embed(batch.post_ids)], dim=1)
    out = gm.model(inputs_embeds=embeds, attention_mask=mask[:, :, C:, :], position_ids=batch.positions[:, C:],
                   past_key_values=past, use_cache=True)
    return out.logits[:, n_gist_slots:]


def episode_loss(gm, batch: GistBatch) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens only."""
    logits = episode_forward(gm, batch)
    labels = batch.labels.to(logits.device)
    # logits at post index t predict post token t+1; the first post token is predicted by the last
    # gist, which carries no label here, so shift within the post region.
    pred, target = logits[:, :-1].float(), labels[:, 1:]
    return torch.nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1),
                                            ignore_index=IGNORE_INDEX)


class EpisodeLoss(torch.nn.Module):
    """:func:`episode_loss` as a module, so ``accelerate`` (DDP) can wrap the training forward."""

    def __init__(self, gm):
        super().__init__()
        self.gm = gm

    def forward(self, batch: GistBatch) -> torch.Tensor:
        return episode_loss(self.gm, batch)
