"""Compare two runs that trained on the same data stream from the same step (``init_from``).

Data of step s depends only on (seed, s), so two runs with one seed see the same batch at every
step, and each step's loss is measured before the update on that batch: its chunks are mostly
fresh to both. The paired difference of their losses is therefore a low-noise, held-out-like
comparison of two recipes, step for step, which 60-sample validations (+-6 points) are not::

    python -m trainers.compare runs/pool-k8 runs/pool-k8-mlp --start 1950 --plot_to runs/pool-k8-mlp/compare.png

It prints one JSON object: per task, both runs' question-weighted mean loss over the common steps
(and over their last half), the steps compared, both runs' seconds per step, and their validation
scores at each step both were scored at, and those scores paired sample by sample (the samples
only one run got right are the difference; the two scores alone hide how many each gained and
lost). Nothing in either run is changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainers.runlog import answers_path, read_answers, read_log


def _task_means(rows: list[dict]) -> dict[str, float]:
    """Each task's loss averaged over its questions (a step's task loss weighs its question count)."""
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    for r in rows:
        for task, loss in r.get("task_loss", {}).items():
            n = r.get("tasks", {}).get(task, 1)
            total[task] = total.get(task, 0.0) + loss * n
            count[task] = count.get(task, 0) + n
    return {t: round(total[t] / count[t], 4) for t in sorted(total)}


def _common_steps(a: Path, b: Path, train_a: dict, train_b: dict, start: int) -> list[int]:
    """The steps from ``start`` that both runs trained, in order; a ValueError when there are none."""
    common = sorted(s for s in train_a.keys() & train_b.keys() if s >= start)
    if not common:
        raise ValueError(f"{a} and {b} have no trained step in common from step {start}")
    return common


def compare(a: Path, b: Path, start: int = 0, logs: tuple | None = None) -> dict:
    """The paired comparison of runs ``a`` and ``b`` over the steps from ``start`` both have trained
    (``logs``: their :func:`read_log` results, when the caller has read them already)."""
    (train_a, val_a), (train_b, val_b) = logs or (read_log(a / "log.jsonl"), read_log(b / "log.jsonl"))
    common = _common_steps(a, b, train_a, train_b, start)
    late = common[len(common) // 2:]
    out: dict = {"steps": [common[0], common[-1]], "compared": len(common)}
    for name, train in ((a.name, train_a), (b.name, train_b)):
        out[name] = {"loss": round(sum(train[s]["loss"] for s in common) / len(common), 4),
                     "task_loss": _task_means([train[s] for s in common]),
                     "task_loss_last_half": _task_means([train[s] for s in late]),
                     "s_per_step": round(sum(train[s].get("s", 0.0) for s in common) / len(common), 3)}
    out["same_first_batch"] = train_a[common[0]].get("tasks") == train_b[common[0]].get("tasks")
    out["validation"] = {s: {a.name: val_a[s], b.name: val_b[s]} for s in sorted(val_a.keys() & val_b.keys())
                         if s >= start}
    out["validation_paired"] = validation_paired(a, b, [s for s in out["validation"]])
    out["equal_time"] = _equal_time((a.name, train_a), (b.name, train_b), common=common)
    return out


def validation_paired(a: Path, b: Path, steps: list[int]) -> dict[str, dict[str, int]]:
    """Per task, over the ``steps`` at which both runs wrote validation answers: the samples both
    runs answered right, only ``a``, only ``b``, and neither. Both runs score one validation set in
    one order (same seed), so the i-th answer of each file is the same sample; a file pair whose
    expected answers differ is an error, not a comparison. Steps without both files are skipped."""
    out: dict[str, dict[str, int]] = {}
    for step in steps:
        pa, pb = answers_path(a, step), answers_path(b, step)
        if not (pa.is_file() and pb.is_file()):
            continue
        ra, rb = read_answers(pa), read_answers(pb)
        if [r["expected"] for r in ra] != [r["expected"] for r in rb]:
            raise ValueError(f"{pa} and {pb} hold different validation samples: the runs' validation sets "
                             f"differ (seed or eval_samples), so their answers cannot be paired")
        for x, y in zip(ra, rb):
            kind = "both" if x["hit"] and y["hit"] else "only_a" if x["hit"] else "only_b" if y["hit"] else "neither"
            counts = out.setdefault(x["task"], {"both": 0, "only_a": 0, "only_b": 0, "neither": 0})
            counts[kind] += 1
    return out


def _equal_time(*runs: tuple[str, dict[int, dict]], common: list[int]) -> dict:
    """Where the faster run stands after the training seconds the slower one spent on the common
    steps: its step then (from its own records past the common range, where it has them).

    Seconds compare only between steps trained on the same machine: the same run's steps took
    ~12 s on one session's machine and ~16 s on the next one's. Time the runs side by side."""
    spent = {name: sum(train[s].get("s", 0.0) for s in common) for name, train in runs}
    (slow, _), (fast, fast_train) = sorted(runs, key=lambda run: -spent[run[0]])
    budget, step = spent[slow], common[0]
    while step in fast_train and budget >= fast_train[step].get("s", 0.0) > 0:
        budget -= fast_train[step]["s"]
        step += 1
    return {"seconds": round(spent[slow], 1), "slower": slow, "faster": fast, "faster_reaches_step": step,
            "slower_reaches_step": common[-1] + 1}


def _running_mean(ys: list[float], window: int) -> list[float]:
    return [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1]) for i in range(len(ys))]


def plot(a: Path, b: Path, start: int, out_png: Path, window: int = 25, logs: tuple | None = None) -> None:
    """Per-task loss of both runs over the common steps (top) and the paired difference, ``b``'s
    loss over ``a``'s on the same batch minus 1 (bottom), both as running means of ``window`` steps.
    The batches' own difficulty swings the top curves far more than the runs differ; the bottom
    row cancels it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (train_a, _), (train_b, _) = logs or (read_log(a / "log.jsonl"), read_log(b / "log.jsonl"))
    common = _common_steps(a, b, train_a, train_b, start)
    tasks = sorted({t for s in common for t in train_a[s].get("task_loss", {})})
    fig, axes = plt.subplots(2, len(tasks), figsize=(2.6 * len(tasks), 5.2), squeeze=False, sharex=True)
    for col, task in enumerate(tasks):
        steps = [s for s in common if task in train_a[s].get("task_loss", {}) and task in train_b[s].get("task_loss", {})]
        if not steps:
            continue
        for run, train in ((a, train_a), (b, train_b)):
            axes[0][col].plot(steps, _running_mean([train[s]["task_loss"][task] for s in steps], window), label=run.name)
        ratio = [100 * (train_b[s]["task_loss"][task] / max(train_a[s]["task_loss"][task], 1e-9) - 1) for s in steps]
        axes[1][col].plot(steps, _running_mean(ratio, window), color="black")
        axes[1][col].axhline(0, color="grey", linewidth=1)
        axes[0][col].set_title(task)
        axes[1][col].set_xlabel("step")
    axes[0][0].set_ylabel(f"answer loss (mean of {window} steps)")
    axes[1][0].set_ylabel(f"{b.name} vs {a.name}, same batch (%)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(a: str, b: str, start: int = 0, plot_to: str | None = None) -> dict:
    """Print the paired comparison of runs ``a`` and ``b`` from step ``start``.

    Args:
        a, b: run directories (each with its log.jsonl).
        start: the first step compared (the step ``b`` was started from, with init_from).
        plot_to: also write the per-task loss curves of both runs to this PNG.
    """
    logs = (read_log(Path(a) / "log.jsonl"), read_log(Path(b) / "log.jsonl"))
    result = compare(Path(a), Path(b), start, logs=logs)
    print(json.dumps(result, indent=1))
    if plot_to:
        plot(Path(a), Path(b), start, Path(plot_to), logs=logs)
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
