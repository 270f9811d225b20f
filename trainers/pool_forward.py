"""The pool recipe's forward passes over kept context KV: the training loss and the theme teacher.

``pool_loss``: gists of the drawn chunks (``compress.gist_kv``, with gradient), then every
question on top of its episode's concatenated gists (``post_logits``). ``base_answers``: what the
frozen base model says reading a chunk, the target of the theme task. ``tests/test_pool.py``
checks both against the plain inference path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gist_memory.compress import context_inputs, gist_kv
from gist_memory.mask import additive_mask

from .recipe import IGNORE_INDEX

if TYPE_CHECKING:
    from .pool import PoolChunk, Row


def stack_context(chunks: list[PoolChunk], device, dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Kept KV of the drawn chunks, right-padded to the longest: per layer (N, kv_heads, L, head_dim)."""
    L = max(len(c.ids) for c in chunks)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(t.to(device, dtype), (0, 0, 0, L - t.shape[1]))

    return [(torch.stack([pad(c.keys[i]) for c in chunks]), torch.stack([pad(c.values[i]) for c in chunks]))
            for i in range(len(chunks[0].keys))]


def top_layers_kv(gm, hidden: torch.Tensor, lengths: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The context LoRA's layers run over the kept hidden state at their input (N, L, hidden size),
    right-padded chunks of ``lengths``: their KV per layer (N, kv_heads, L, head_dim), with gradient
    when it is enabled. The same computation as the top of ``compress.context_kv``'s pass, which
    ``tests/test_context_lora.py`` checks: the decoder runs with only those layers in its layer list.
    """
    first = gm.context_lora.first_layer
    mask, positions, _ = context_inputs(gm, lengths)
    decoder = _causal_lm(gm).get_decoder()
    every = decoder.layers
    decoder.layers = torch.nn.ModuleList(list(every)[first:])
    try:
        with gm.context_mode():
            past = decoder(inputs_embeds=hidden.to(gm.device, gm.dtype), attention_mask=mask, position_ids=positions,
                           past_key_values=_cache(gm, []), use_cache=True).past_key_values
    finally:
        decoder.layers = every
    return [(layer.keys, layer.values) for layer in past.layers[first:]]


def context_of(gm, chunks: list[PoolChunk]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The context KV of drawn chunks, every layer, right-padded to the longest: the kept KV, and
    with a context LoRA its layers recomputed from the kept hidden state (with gradient when enabled)."""
    layers = stack_context(chunks, gm.device, gm.dtype)
    if chunks[0].hidden is None:
        return layers
    L = max(len(c.ids) for c in chunks)
    hidden = torch.stack([torch.nn.functional.pad(c.hidden.to(gm.device, gm.dtype), (0, 0, 0, L - len(c.ids)))
                          for c in chunks])
    return layers + top_layers_kv(gm, hidden, [len(c.ids) for c in chunks])


def _causal_lm(gm):
    """The causal LM itself, under the PEFT wrapper if there is one."""
    return gm.model.get_base_model() if hasattr(gm.model, "get_base_model") else gm.model


def _common_prefix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return n


def _cache(gm, layers: list[tuple[torch.Tensor, torch.Tensor]]):
    from transformers import DynamicCache

    past = DynamicCache(config=gm.model.config)
    for i, (key, value) in enumerate(layers):
        past.update(key, value, i)
    return past


def post_logits(gm, gists: list[tuple[torch.Tensor, torch.Tensor]], lengths: list[int], rows: list[Row],
                answers_only: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Run every row's post tokens on top of its episode's concatenated gists.

    Two passes, the same computation as one: the prompt prefix all rows share (the chat template's
    system turn and user header) runs once per episode on its gists; then the own tokens of an
    episode's rows, packed into one sequence of the batch, run on top of its gists and prefix, a
    block mask letting each token see only its own row's earlier tokens::

        keys of episode e:     [gists e][prefix e][row 0 own][row 1 own] ..
        a token of row 1:         ■        ■          ·      ■ (causal)  ·

    Args:
        gists: per layer (N, kv_heads, k, head_dim), :func:`gist_kv`'s output for the draw.
        lengths: context length of each drawn chunk (its gists sit at L_i..L_i+k-1).
        answers_only: compute logits only where the next token is an answer token (training:
            spares the vocabulary projection of the prompt); else at every own token.

    Returns:
        logits (T_sel, vocab); targets (T_sel,): the token each logit predicts (IGNORE_INDEX at a
        row's last token); spans: each row's [start, end) among the logits (with answers_only=False).
    """
    dev, k, N = gm.device, gm.gist.num_gist_tokens, len(lengths)
    episodes = list({id(r.chunks): r.chunks for r in rows}.values())
    of_row = [next(e for e, ep in enumerate(episodes) if ep is r.chunks) for r in rows]
    E = len(episodes)
    G = max(len(ep) for ep in episodes) * k
    # gather index into the draw's gist entries flattened to N*k (N*k: a zero pad entry)
    index = torch.full((E, G), N * k, dtype=torch.long)
    valid = torch.zeros(E, G, dtype=torch.bool)
    start = []
    for e, ep in enumerate(episodes):
        entries = torch.cat([torch.arange(c * k, (c + 1) * k) for c in ep])
        index[e, :len(entries)], valid[e, :len(entries)] = entries, True
        start.append(max(lengths[c] + k for c in ep))

    def gather(t: torch.Tensor) -> torch.Tensor:  # (N, h, k, d) -> (E, h, G, d)
        flat = t.transpose(1, 2).reshape(N * k, t.shape[1], t.shape[3])
        flat = torch.cat([flat, flat.new_zeros(1, *flat.shape[1:])])
        return flat[index.to(dev)].transpose(1, 2)

    layers = [(gather(key), gather(value)) for key, value in gists]
    posts = [r.question.prompt + r.question.answer for r in rows]
    S = min(_common_prefix(posts), min(len(r.question.prompt) for r in rows) - 1)
    if S > 0:  # the shared prefix, once per episode: (E, S) on top of (E, G) gists
        ids = torch.tensor(posts[0][:S]).expand(E, S)
        allowed = torch.cat([valid[:, None, :].expand(E, S, G), torch.ones(S, S, dtype=torch.bool).tril().expand(E, S, S)], 2)
        positions = torch.tensor(start)[:, None] + torch.arange(S)
        past = gm.model(input_ids=ids.to(dev), attention_mask=additive_mask(allowed, gm.dtype).to(dev),
                        position_ids=positions.to(dev), past_key_values=_cache(gm, layers),
                        use_cache=True, logits_to_keep=1).past_key_values
        layers = [(layer.keys, layer.values) for layer in past.layers]  # (E, h, G+S, d)
    # each episode's rows' own tokens, packed into one row of the batch: (E, Tp) on (E, W)
    own = [p[S:] for p in posts]
    spans, fill = [], [0] * E
    for o, e in zip(own, of_row):
        spans.append((fill[e], fill[e] + len(o)))
        fill[e] += len(o)
    Tp = max(fill)
    ids = torch.full((E, Tp), gm.tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros(E, Tp, dtype=torch.long)
    real = torch.zeros(E, Tp, dtype=torch.bool)
    own_cols = torch.zeros(E, Tp, Tp, dtype=torch.bool)
    targets = torch.full((E, Tp), IGNORE_INDEX, dtype=torch.long)
    for (a, b), o, e, row in zip(spans, own, of_row, rows):
        ids[e, a:b] = torch.tensor(o)
        positions[e, a:b] = torch.arange(start[e] + S, start[e] + S + len(o))
        real[e, a:b] = True
        own_cols[e, a:b, a:b] = torch.ones(b - a, b - a, dtype=torch.bool).tril()
        first = b - len(row.question.answer) - 1 if answers_only else a  # first position kept
        targets[e, first:b - 1] = torch.tensor(o[first - a + 1:])
    own_cols |= (~real[:, :, None]) & torch.eye(Tp, dtype=torch.bool)[None]  # a pad sees itself only
    allowed = torch.cat([valid[:, None, :].expand(E, Tp, G) & real[:, :, None],
                         real[:, :, None].expand(E, Tp, S), own_cols], dim=2)
    causal_lm = _causal_lm(gm)
    hidden = causal_lm.get_decoder()(input_ids=ids.to(dev), attention_mask=additive_mask(allowed, gm.dtype).to(dev),
                                     position_ids=positions.to(dev), past_key_values=_cache(gm, layers),
                                     use_cache=True).last_hidden_state  # (E, Tp, hidden)
    keep = (targets != IGNORE_INDEX) if answers_only else real
    logits = causal_lm.get_output_embeddings()(hidden[keep.to(dev)])  # (T_sel, vocab)
    cap = getattr(causal_lm.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    # spans index the kept rows of ``logits`` when every own token is kept
    offsets = [sum(fill[:e]) for e in range(E)]
    spans = [(offsets[e] + a, offsets[e] + b) for (a, b), e in zip(spans, of_row)]
    return logits, targets[keep], spans


def answer_rows(rows: list[Row]) -> torch.Tensor:
    """The row each answer target of ``post_logits(answers_only=True)`` belongs to, in their order:
    episodes in order of first appearance, each episode's rows in the order given."""
    first: dict[int, int] = {}
    for r in rows:
        first.setdefault(id(r.chunks), len(first))
    order = sorted(range(len(rows)), key=lambda i: first[id(rows[i].chunks)])  # stable
    return torch.tensor([i for i in order for _ in rows[i].question.answer], dtype=torch.long)


class PoolLoss(torch.nn.Module):
    """:func:`pool_loss` as a module, so ``accelerate`` (DDP) can wrap it and sync gradients."""

    def __init__(self, gm, weighting: str = "token", focal_gamma: float = 0.0, token_cap: int = 8):
        super().__init__()
        self.gm, self.weighting, self.focal_gamma, self.token_cap = gm, weighting, focal_gamma, token_cap

    def forward(self, drawn: list[PoolChunk], rows: list[Row], stats: dict | None = None) -> tuple[torch.Tensor, int]:
        return pool_loss(self.gm, drawn, rows, self.weighting, stats, self.focal_gamma, self.token_cap)


def pool_loss(gm, drawn: list[PoolChunk], rows: list[Row], weighting: str = "token",
              stats: dict | None = None, focal_gamma: float = 0.0, token_cap: int = 8) -> tuple[torch.Tensor, int]:
    """Cross-entropy over the answer tokens of ``rows``; returns (loss, answer tokens).

    ``weighting="token"`` averages over all answer tokens, so a 40-token theme answer weighs as
    much as eight 5-digit pass keys; ``"question"`` averages within each question, then over the
    questions (every question counts once, as in the episode recipe's batch of one); ``"capped"``
    lets a question weigh as many tokens as it has, up to ``token_cap`` (a 9-token name counts 8
    times a one-token answer, a 40-token theme answer no more than that name). With
    ``stats``, ``stats["task_loss"]`` gets each task's mean token loss and ``stats["tasks"]`` its
    number of questions (what the draw really held, for the log), both of the plain cross-entropy.
    ``focal_gamma`` > 0 weighs each token's loss by ``(1 - p) ** focal_gamma``, ``p`` the (detached)
    probability the adapter gives it (focal loss, Lin et al., arXiv 1708.02002): tokens it already
    reads count less, those it misses (a value's separator, the token after its first group) more.
    """
    lengths = [len(c.ids) for c in drawn]
    gists = gist_kv(gm, context_of(gm, drawn), lengths)
    logits, targets, _ = post_logits(gm, gists, lengths, rows)
    per_token = torch.nn.functional.cross_entropy(logits.float(), targets.to(logits.device), reduction="none")
    weighted = per_token * (1 - torch.exp(-per_token.detach())) ** focal_gamma if focal_gamma else per_token
    of_row = answer_rows(rows).to(per_token.device)
    if weighting in ("question", "capped"):  # 'question' is 'capped' at one token a question
        sums = per_token.new_zeros(len(rows)).index_add(0, of_row, weighted)
        counts = torch.bincount(of_row, minlength=len(rows))
        weights = counts.clamp(max=1 if weighting == "question" else token_cap)
        loss = (sums * weights / counts.clamp(min=1)).sum() / weights.sum().clamp(min=1)
    elif weighting == "token":
        loss = weighted.mean()
    else:
        raise ValueError(f"weighting must be 'token', 'question' or 'capped', got {weighting!r}")
    if stats is not None:
        tasks = [rows[i].question.task for i in of_row.tolist()]
        losses = per_token.detach().tolist()
        by: dict[str, list[float]] = {}
        for t, v in zip(tasks, losses):
            by.setdefault(t, []).append(v)
        stats["task_loss"] = {t: round(sum(v) / len(v), 4) for t, v in sorted(by.items())}
        stats["tasks"] = {t: sum(r.question.task == t for r in rows) for t in sorted({r.question.task for r in rows})}
    return loss, int(targets.numel())


def base_answers(gm, layers: list[tuple[torch.Tensor, torch.Tensor]], lengths: list[int], prompts: list[list[int]],
                 max_new_tokens: int) -> list[list[int]]:
    """Greedy answers of the frozen base model reading each chunk (its context KV) and then a prompt.

    The teacher of the theme task (context distillation, Cartridges arXiv 2506.06266): what the
    base model says a chunk is about when it reads the text, which the adapter must then say from
    the gists alone. Rows are batched: prompts left-padded after the chunk, positions per row.
    Returns each answer's token ids, ending with the end-of-turn token where the model stopped.
    """
    from gist_memory.generate import stop_token_ids

    dev, B = gm.device, len(lengths)
    L, Q = layers[0][0].shape[2], max(len(p) for p in prompts)
    ids = torch.full((B, Q), gm.tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros(B, Q, dtype=torch.long)
    keys = torch.zeros(B, L + Q, dtype=torch.bool)  # which key columns are real, grows with the answer
    for b, (n, p) in enumerate(zip(lengths, prompts)):
        ids[b, Q - len(p):] = torch.tensor(p)
        positions[b, Q - len(p):] = torch.arange(n, n + len(p))
        keys[b, :n] = True
        keys[b, L + Q - len(p):] = True
    causal = torch.ones(Q, Q, dtype=torch.bool).tril()[None] & keys[:, None, L:]
    causal |= torch.eye(Q, dtype=torch.bool)[None]  # a pad sees itself only
    allowed = torch.cat([keys[:, None, :L].expand(B, Q, L) & keys[:, L:, None], causal], 2)
    stops, out, done = stop_token_ids(gm), [[] for _ in range(B)], [False] * B
    eos = gm.tokenizer.eos_token_id
    with gm.base_mode():
        res = gm.model(input_ids=ids.to(dev), attention_mask=additive_mask(allowed, gm.dtype).to(dev),
                       position_ids=positions.to(dev), past_key_values=_cache(gm, layers), use_cache=True,
                       logits_to_keep=1)
        nxt = positions[:, -1] + 1
        for _ in range(max_new_tokens):
            token = res.logits[:, -1].argmax(-1).cpu()
            for b in range(B):
                if not done[b]:
                    if int(token[b]) in stops:
                        done[b] = True
                    else:
                        out[b].append(int(token[b]))
            if all(done):
                break
            keys = torch.cat([keys, torch.ones(B, 1, dtype=torch.bool)], 1)
            res = gm.model(input_ids=token[:, None].to(dev), attention_mask=additive_mask(keys[:, None, :], gm.dtype).to(dev),
                           position_ids=nxt[:, None].to(dev), past_key_values=res.past_key_values, use_cache=True)
            nxt = nxt + 1
    # an answer cut at max_new_tokens gets no end-of-turn token: it is not taught to stop mid-sentence
    return [a + ([eos] if d and eos is not None else []) for a, d in zip(out, done)]
