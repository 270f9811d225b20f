"""Aggregation of Records into per-mode summaries and breakdowns, and the Markdown report.

``results.json`` holds the summaries this module computes; ``report.md`` prints the same numbers
through :func:`fmt`, so the two always agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Iterable

from .config import MODES
from .metrics import METRICS
from .records import Record

__all__ = ["aggregate", "fmt", "label", "render_markdown", "summarize"]

QUALITY = [m for m in METRICS.values() if m.kind == "quality"]
COST = [m for m in METRICS.values() if m.kind == "cost"]


def label(record: Record, sweep: bool) -> str:
    """Row name: the mode, and k for the gist modes of a run that varies k."""
    return f"{record.mode} k={record.gist_tokens}" if sweep and record.mode in ("gist", "hybrid") else record.mode


def aggregate(records: Iterable[Record]) -> dict:
    """``{metric: value, "n": cells, "failures": failed cells}`` over ``records``.

    Quality metrics average the cells that have the score (failed cells score 0 on exact match
    and have no other score); cost metrics average, or for peak memory take the max of, the
    cells that did not fail.
    """
    records = list(records)
    out: dict = {"n": len(records), "failures": sum(1 for r in records if r.error)}
    for m in QUALITY:
        values = [r.scores[m.name] for r in records if m.name in r.scores]
        if values:
            out[m.name] = sum(values) / len(values)
    for m in COST:
        values = [r.cost[m.name] for r in records if not r.error and m.name in r.cost]
        if values:
            out[m.name] = max(values) if m.aggregation == "max" else sum(values) / len(values)
    return out


def _group(records: list[Record], key: Callable[[Record], object]) -> dict:
    groups: dict = defaultdict(list)
    for r in records:
        groups[key(r)].append(r)
    return groups


def summarize(records: list[Record], sweep: bool = False) -> dict:
    """Summary by row label, and breakdowns by task, by task and context length, and (NIAH) by depth."""
    ordered = sorted(records, key=lambda r: (MODES.index(r.mode) if r.mode in MODES else len(MODES), r.gist_tokens))
    rows = _group(ordered, lambda r: label(r, sweep))
    summary = {name: aggregate(rs) for name, rs in rows.items()}
    by_task = {name: {task: aggregate(g) for task, g in sorted(_group(rs, lambda r: r.task).items())}
               for name, rs in rows.items()}
    by_length = {name: {f"{task} {n}": aggregate(g)
                        for (task, n), g in sorted(_group(rs, lambda r: (r.task, r.context_length)).items())}
                 for name, rs in rows.items()}
    needle: dict = {}
    for name, rs in rows.items():
        cells = [r for r in rs if r.task == "niah" and r.needle_position is not None]
        grid = _group(cells, lambda r: (r.context_length, round(r.needle_position, 2)))
        if grid:
            needle[name] = {str(n): {str(d): aggregate(grid[(n, d)]).get("exact_match", 0.0)
                                     for (n2, d) in sorted(grid) if n2 == n}
                            for n in sorted({n for n, _ in grid})}
    return {"summary": summary, "by_task": by_task, "by_context_length": by_length, "needle": needle}


def fmt(value, metric: str | None = None) -> str:
    """How a number is printed in the report (and so how a test finds it there)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in ("kv_bytes", "kv_entries", "prompt_tokens", "n", "failures"):
        return f"{value:,.0f}"
    if metric in ("peak_memory_mb", "tokens_per_s", "compression_ratio"):
        return f"{value:,.1f}"
    return f"{value:.3f}"


def _table(rows: dict, metrics: list, first: str) -> list[str]:
    present = [m for m in metrics if any(m.name in r for r in rows.values())]
    if not present:
        return []
    head = [first, "n", "failed"] + [f"{m.name} {m.arrow}" for m in present]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [name, fmt(r["n"], "n"), fmt(r["failures"], "failures")] + [fmt(r.get(m.name), m.name) for m in present]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(results: dict) -> str:
    """The side-by-side report of a run (``results`` as written to results.json)."""
    cfg, env, model = results["config"], results["environment"], results["model"]
    s = results["summary"]
    out = ["# gist-memory evaluation", "",
           f"- command: `{results['command']}`",
           f"- model: {model['base']}; adapter: {model['adapter']}; k = {model['gist_tokens']} gist tokens per "
           f"{model['chunk_tokens']}-token chunk; top-k = {cfg['top_k']}, {cfg.get('retrieval', 'dense')} retrieval",
           f"- dataset: {cfg['dataset']} ({results['dataset']['n_samples']} samples, seed {cfg['seed']}); "
           f"max {cfg['max_new_tokens']} new tokens, greedy",
           f"- device: {env['device']}; {env['date']}; git {env['git_hash']}",
           f"- gist-memory {env['versions'].get('gist-memory')}, torch {env['versions'].get('torch')}, "
           f"transformers {env['versions'].get('transformers')}",
           ""]
    out += [f"> {note}" for note in results.get("notes", [])] + ([""] if results.get("notes") else [])
    out += ["↑ higher is better, ↓ lower is better. Definitions at the end.", "", "## Quality", ""]
    out += _table(s["summary"], QUALITY, "mode") + ["", "## Cost", ""]
    out += _table(s["summary"], COST, "mode") + [""]
    out += ["## By task", ""]
    task_rows = {f"{name} / {task}": agg for name, tasks in s["by_task"].items() for task, agg in tasks.items()}
    out += _table(task_rows, QUALITY + [METRICS["ttft_s"]], "mode / task") + [""]
    out += ["## By task and context length (tokens)", ""]
    length_rows = {f"{name} / {n}": agg for name, ns in s["by_context_length"].items() for n, agg in ns.items()}
    out += _table(length_rows, QUALITY + [METRICS["ttft_s"], METRICS["kv_bytes"]], "mode / task length") + [""]
    if s["needle"]:
        out += ["## Needle in a haystack: exact match by context length (rows) and depth (columns)", ""]
        for name, grid in s["needle"].items():
            depths = sorted({d for row in grid.values() for d in row}, key=float)
            out += [f"**{name}**", "", "| length | " + " | ".join(depths) + " |", "|" + "---|" * (len(depths) + 1)]
            out += ["| " + " | ".join([n] + [fmt(grid[n].get(d)) for d in depths]) + " |" for n in grid] + [""]
    if results.get("plots"):
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in results["plots"]] + [""]
    failed = [r for r in results["samples"] if r["error"]]
    if failed:
        out += ["## Failed cells", "", "| sample | mode | k | error |", "|---|---|---|---|"]
        out += [f"| {r['sample_id']} | {r['mode']} | {r['gist_tokens']} | {r['error'][:160].replace('|', '/')} |"
                for r in failed] + [""]
    present = {name for row in s["summary"].values() for name in row}
    out += ["## Metrics", ""] + [f"- `{m.name}` ({m.arrow}, {m.aggregation}): {m.description}"
                                 for m in METRICS.values() if m.name in present]
    return "\n".join(out) + "\n"
