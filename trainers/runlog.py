"""A training run's ``log.jsonl`` and its validation answer files, each read one way by everything
that reads it (the plot drawn here, the resume's check for validation tasks never scored, the paired
comparison of two runs, the tally of misses)."""

from __future__ import annotations

import json
from pathlib import Path


def read_log(log_path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """(training record by step, validation scores by step) of a run's log.

    A resumed run repeats the steps after its last checkpoint, so the later record of a step wins;
    a line cut short by a kill is skipped; a missing log reads as empty.
    """
    train: dict[int, dict] = {}
    val: dict[int, dict] = {}
    for record in _records(log_path):
        if "val" in record:
            val[record["step"]] = record["val"]
        elif "loss" in record:
            train[record["step"]] = record
    return train, val


def read_val_nll(log_path: Path) -> dict[int, dict]:
    """The held-out loss of the validation's expected answers by step (``val_nll``: nats per answer
    token by task, from the gists; logged since session 29), read as :func:`read_log` reads."""
    return {r["step"]: r["val_nll"] for r in _records(log_path) if "val_nll" in r}


def _records(log_path: Path):
    # a line cut short by a kill, or one that is not a step's record, is skipped
    if not log_path.is_file():
        return
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            yield record


def answers_path(run: Path, step: int) -> Path:
    """The file a run writes its validation answers of ``step`` to (one JSON object a sample:
    ``task``, ``question``, ``expected``, ``answer``, ``hit``), in the order of the validation set."""
    return Path(run) / "validation" / f"step-{step:05d}.jsonl"


def read_answers(path: Path) -> list[dict]:
    """The answer records of one validation file (see :func:`answers_path`); blank lines skipped."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def never_scored(log_path: Path, tasks: set[str]) -> set[str]:
    """The validation tasks among ``tasks`` that no record of the run's log has scored (tasks added
    to the validation set since the run began)."""
    return tasks - {task for scores in read_log(log_path)[1].values() for task in scores}


def plot_log(log_path: Path, out_png: Path) -> None:
    """Loss against step, and validation accuracy (and, where logged, the validation answers' loss)
    against training minutes; dotted lines where the run's settings changed (its
    ``config-history.jsonl``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step, scores = read_log(log_path)
    nll = read_val_nll(log_path)
    train = [by_step[s] for s in sorted(by_step)]
    fig, ax = plt.subplots(1, 3 if nll else 2, figsize=(15 if nll else 10, 3.5))
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        win = max(len(losses) // 50, 1)
        smooth = [sum(losses[max(0, i - win):i + 1]) / len(losses[max(0, i - win):i + 1]) for i in range(len(losses))]
        ax[0].plot(steps, losses, alpha=0.3, label="loss")
        ax[0].plot(steps, smooth, label=f"mean of {win}")
        ax[0].set_yscale("log")
        ax[0].set_xlabel("step")
        ax[0].set_title("training loss (answer tokens)")
        ax[0].legend()
    # validation against the training process's cumulative step time (validation itself excluded)
    minutes, total = {}, 0.0
    for r in train:
        total += r.get("s", 0.0)
        minutes[r["step"] + 1] = total / 60
    _by_task(ax[1], scores, minutes)
    history = log_path.parent / "config-history.jsonl"  # the steps where the settings changed, as dotted lines
    changes = sorted({json.loads(line)["from_step"] for line in history.read_text().splitlines() if line.strip()}
                     - {0}) if history.is_file() else []
    for step in changes:
        ax[0].axvline(step, color="grey", linestyle=":", linewidth=1)
        ax[1].axvline(minutes.get(step, 0.0), color="grey", linestyle=":", linewidth=1)
    ax[1].set_ylim(-0.02, 1.02)
    ax[1].set_xlabel("training minutes (step time on this machine)")
    ax[1].set_title("validation exact match (gists only)")
    if scores:
        ax[1].legend()
    if nll:
        _by_task(ax[2], nll, minutes)
        ax[2].set_xlabel("training minutes (step time on this machine)")
        ax[2].set_title("validation answer loss (nats/token, gists only)")
        ax[2].legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def _by_task(ax, by_step: dict[int, dict], minutes: dict[int, float]) -> None:
    # one curve per task of a {step: {task: value}} series, against the training minutes at its steps
    for task in sorted({t for v in by_step.values() for t in v}):
        pts = [(minutes.get(step, 0.0), by_step[step][task]) for step in sorted(by_step) if task in by_step[step]]
        ax.plot(*zip(*pts), marker="o", label=task)
