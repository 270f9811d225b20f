"""PNG plots of a run: quality by mode, TTFT by mode, the needle heatmap, and the k sweep.

Drawn with matplotlib's Agg backend (no display needed) from the summaries in results.json.
"""

from __future__ import annotations

from pathlib import Path

from .report import COST, QUALITY

__all__ = ["write_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _quality(plt, summary: dict, path: Path) -> bool:
    metrics = [m for m in QUALITY if any(m.name in row for row in summary.values())]
    if not metrics:
        return False
    names = list(summary)
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(min(14.0, 3.5 + 0.35 * len(names) * len(metrics)), 3.8))
    for i, m in enumerate(metrics):
        xs = [j + (i - (len(metrics) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [summary[n].get(m.name, 0.0) for n in names], width, label=f"{m.name} {m.arrow}")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (higher is better)")
    ax.set_title("Quality by mode")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _ttft(plt, summary: dict, path: Path) -> bool:
    names = [n for n in summary if "ttft_s" in summary[n]]
    if not names:
        return False
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names)), 3.4))
    ax.bar(names, [summary[n]["ttft_s"] for n in names], color="tab:orange", label="time to first token")
    ax.scatter(names, [summary[n].get("total_s", 0.0) for n in names], color="k", marker="_", s=300,
               label="total latency", zorder=3)
    ax.set_ylabel("seconds (lower is better)")
    ax.set_title("Time to first token by mode")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _heatmap(plt, needle: dict, path: Path) -> bool:
    if not needle:
        return False
    cols = min(4, len(needle))
    rows = -(-len(needle) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1.2, 2.8 * rows + 0.4), squeeze=False,
                             layout="constrained")
    flat = axes.ravel().tolist()
    for ax, (name, grid) in zip(flat, needle.items()):
        lengths = list(grid)
        depths = sorted({d for row in grid.values() for d in row}, key=float)
        values = [[grid[n].get(d, float("nan")) for d in depths] for n in lengths]
        image = ax.imshow(values, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(depths)), [f"{float(d):.0%}" for d in depths])
        ax.set_yticks(range(len(lengths)), lengths)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("needle depth")
        ax.set_ylabel("context tokens")
        ax.set_title(name)
    for ax in flat[len(needle):]:
        ax.axis("off")
    fig.colorbar(image, ax=flat, label="exact match", shrink=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _sweep(plt, summary: dict, path: Path) -> bool:
    quality = next((m.name for m in QUALITY if any(m.name in r for r in summary.values())), None)
    points = {n: r for n, r in summary.items() if "compression_ratio" in r}
    if quality is None or not any(" k=" in n for n in points):
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for mode in ("gist", "hybrid", "rag", "full"):
        rows = sorted(((r["compression_ratio"], r, n) for n, r in points.items() if n.split(" ")[0] == mode),
                      key=lambda t: t[0])
        if not rows:
            continue
        xs = [x for x, _, _ in rows]
        style = "o-" if len(rows) > 1 else "s"
        left.plot(xs, [r.get(quality, 0.0) for _, r, _ in rows], style, label=mode)
        right.plot(xs, [r.get("kv_bytes", 0.0) for _, r, _ in rows], style, label=mode)
        for x, r, n in rows:
            if " k=" in n:
                left.annotate(n.split(" ")[1], (x, r.get(quality, 0.0)), fontsize=7)
    kv = next(m for m in COST if m.name == "kv_bytes")
    for ax, ylabel in ((left, f"{quality} (higher is better)"), (right, f"kv_bytes per query {kv.arrow}")):
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (document tokens per KV entry)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    right.set_yscale("log")
    fig.suptitle("Gist tokens sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_plots(summaries: dict, out: str | Path) -> list[str]:
    """Write the plots that the run's data supports into ``out``; returns their file names."""
    plt = _pyplot()
    out = Path(out)
    made = []
    for name, draw, data in (("quality_by_mode.png", _quality, summaries["summary"]),
                             ("ttft_by_mode.png", _ttft, summaries["summary"]),
                             ("needle_heatmap.png", _heatmap, summaries["needle"]),
                             ("sweep_gist_tokens.png", _sweep, summaries["summary"])):
        if draw(plt, data, out / name):
            made.append(name)
    return made
