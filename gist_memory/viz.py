"""The gist attention mask as a picture (a picture is how people check a mask).

Rows are query tokens, columns are key tokens; a coloured cell means "may attend", coloured by the
key's role, a white cell means masked. The post-gist rows (question, answer) must show colour only
in gist and post-gist columns: any colour in a context column is data leakage (docs/design.md invariant 1).
matplotlib is imported only here, through its object API with the Agg canvas, so drawing needs no
display and never changes the backend of a user's pyplot session.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .mask import CONTEXT, GIST, PAD, POST

ROLES = {CONTEXT: ("context", "#4C72B0"), GIST: ("gist", "#DD8452"), POST: ("post-gist (question, answer)", "#55A868"),
         PAD: ("padding", "#B0B0B0")}
#: Up to this many tokens every row and column is labelled; beyond it, only the regions.
LABEL_EVERY_TOKEN = 64


def token_labels(kinds: list[int], chunks: list[int], tokens: list[str] | None = None) -> list[str]:
    """Short role labels, ``c1 g1 c2 g2 q pad``, with the token text after them when given."""
    short = {CONTEXT: "c{}", GIST: "g{}", POST: "q", PAD: "pad"}
    labels = [short[k].format(c + 1) for k, c in zip(kinds, chunks)]
    if tokens is not None:
        labels = [f"{lab} {tok!r}"[:24] for lab, tok in zip(labels, tokens)]
    return labels


def _regions(kinds: list[int], chunks: list[int]) -> list[tuple[int, int, str]]:
    """Runs of tokens with the same role and chunk: (start, end, label)."""
    runs: list[tuple[int, int, str]] = []
    names = {CONTEXT: "context {}", GIST: "gists {}", POST: "question + answer", PAD: "pad"}
    for t, (k, c) in enumerate(zip(kinds, chunks)):
        label = names[k].format(c + 1)
        if runs and runs[-1][2] == label and runs[-1][1] == t:
            runs[-1] = (runs[-1][0], t + 1, label)
        else:
            runs.append((t, t + 1, label))
    return runs


def render_mask(allowed: torch.Tensor, kinds: torch.Tensor, chunks: torch.Tensor, path: str | Path,
                tokens: list[str] | None = None, title: str = "gist attention mask") -> Path:
    """Draw one episode's (T, T) boolean mask as a PNG with the roles on both axes.

    Args:
        allowed: (T, T) booleans, query rows by key columns (``mask.gist_attention_allowed`` of one row).
        kinds, chunks: (T,) role and chunk index of each token.
        path: the PNG to write.
        tokens: the tokens' text, shown next to their roles when there are few enough.
        title: the picture's title.
    """
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    kinds_l, chunks_l = kinds.tolist(), chunks.tolist()
    T = len(kinds_l)
    colour = torch.tensor([to_rgb(ROLES[k][1]) for k in kinds_l])  # (T, 3): the key's role colour
    image = torch.where(allowed.cpu()[:, :, None], colour[None], torch.ones(3))  # (T, T, 3)

    size = min(4 + T * 0.32, 16)
    fig = Figure(figsize=(size + 2.5, size))
    ax = fig.add_subplot()
    ax.imshow(image.numpy(), interpolation="nearest")
    regions = _regions(kinds_l, chunks_l)
    for start, _, _ in regions[1:]:  # region boundaries
        ax.axhline(start - 0.5, color="black", lw=0.6)
        ax.axvline(start - 0.5, color="black", lw=0.6)
    if T <= LABEL_EVERY_TOKEN:
        ticks, labels = list(range(T)), token_labels(kinds_l, chunks_l, tokens)
        if T <= 24:  # the picture is small enough for a grid between cells
            ax.set_xticks([t - 0.5 for t in range(1, T)], minor=True)
            ax.set_yticks([t - 0.5 for t in range(1, T)], minor=True)
            ax.grid(which="minor", color="#DDDDDD", lw=0.5)
            ax.tick_params(which="minor", length=0)
    else:
        ticks = [(s + e - 1) / 2 for s, e, _ in regions]
        labels = [f"{lab} ({e - s})" for s, e, lab in regions]
    font = 7 if tokens is not None or T > 24 else 9
    ax.set_xticks(ticks, labels, rotation=90, fontsize=font)
    ax.set_yticks(ticks, labels, fontsize=font)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    used = sorted(set(kinds_l))
    handles = [Patch(color=ROLES[k][1], label=ROLES[k][0]) for k in used]
    handles.append(Patch(facecolor="white", edgecolor="black", label="masked"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
