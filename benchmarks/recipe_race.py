"""The recipe race: held-out validation exact match against CPU-minutes for two training runs from
the same fresh adapter (issue 14's efficiency bar: the new recipe reaches the old recipe's final
score in at most a fifth of its CPU time).

Each run keeps its adapter every few steps (``snapshot_every`` in its config). This script reads
each run's log for the CPU time spent up to each snapshot (step seconds, plus the pool's first
build, times the run's torch threads), scores every snapshot on one validation set
(``trainers.validation``: the same samples for both runs, built once), and writes
``results.json``, ``race.png`` and ``report.md`` to ``--out``. Snapshots already scored in an
earlier ``results.json`` there are not scored again, so it can be re-run as the runs go on.

    python -m trainers.train --recipe trainers/configs/race-episode.yaml --num_threads 1 &
    python -m trainers.train --recipe trainers/configs/race-pool.yaml --num_threads 1 &
    wait; python -m trainers.train --recipe trainers/configs/race-pool-b.yaml --num_threads 1
    python benchmarks/recipe_race.py --num_threads 2 --every '[200,50,25]'

(Stop the pool runs when their curves are past the old run's final score; a run's later
snapshots, once scored, stay in results.json.)

The first run is the old recipe: its last scored snapshot is "its final score", and for each later
run and task the report gives the CPU time at which that run first reached it, and the ratio.
"""

from __future__ import annotations

import json
from pathlib import Path

TASKS = ("niah", "fact")


def cpu_seconds_by_step(log_path: Path, threads: int) -> dict[int, float]:
    """CPU-seconds of training spent before each step (0 through the last step + 1) of a run's log.

    A step's time is its logged wall seconds; the first step of each (re)start also carries
    ``setup_s`` (the pool recipe's pool build), which counts too, at the step it preceded;
    everything is multiplied by ``threads`` (the run's torch threads). A resumed run repeats the
    steps after its last checkpoint: the later record of a step wins, and a resumption's rebuild
    counts (it was paid again).
    """
    steps: dict[int, float] = {}
    setups: dict[int, float] = {}
    for line in Path(log_path).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if "setup_s" in record:  # (also on a record of its own, as the first race runs wrote it)
            setups[int(record["step"])] = setups.get(int(record["step"]), 0.0) + float(record["setup_s"])
        if "loss" in record and "s" in record:
            steps[int(record["step"])] = float(record["s"])
    out, total = {}, 0.0
    for step in range(max(steps, default=-1) + 1):
        total += setups.get(step, 0.0)
        out[step] = total * threads
        total += steps.get(step, 0.0)
    if steps:
        out[max(steps) + 1] = total * threads
    return out


def parent_run(run: Path, earlier: tuple[str, ...] | list[str]) -> str | None:
    """The run of ``earlier`` whose checkpoint ``run`` began from (its config's ``init_from``: the run
    directory or a checkpoint directory inside it); None when it began from none of them."""
    from trainers.config import read_yaml

    source = str(read_yaml(run / "config.yaml").get("init_from") or "") if (run / "config.yaml").is_file() else ""
    if not source:
        return None
    path = Path(source).resolve()
    return next((e for e in earlier if Path(e).resolve() in (path, *path.parents)), None)


def fork_step(log_path: Path) -> int:
    """The first trained step of a run's log: 0 for a run from a fresh adapter, S for one that began
    from another run's state at step S (``init_from``)."""
    from trainers.runlog import read_log

    return min(read_log(Path(log_path))[0], default=0)


def _thinned(snaps: list[Path], stride: int) -> list[Path]:
    """The snapshots whose step is a multiple of ``stride`` (all when it is 0), and always the last."""
    if stride <= 0:
        return snaps
    return [p for i, p in enumerate(snaps) if int(p.name.split("-")[1]) % stride == 0 or i == len(snaps) - 1]


def first_reaching(curve: list[dict], task: str, target: float) -> float | None:
    """CPU-minutes of the first point of ``curve`` (sorted by time) whose ``task`` score is at least
    ``target``; None if none is."""
    for point in sorted(curve, key=lambda p: p["cpu_min"]):
        if point["scores"].get(task, -1.0) >= target:
            return point["cpu_min"]
    return None


def summary(curves: dict[str, list[dict]], tasks: tuple[str, ...], starts: dict[str, float] | None = None) -> list[dict]:
    """Per later run and task: the old (first) run's final score and CPU time, when that run first
    reached it, and the ratio of the two times.

    A run in ``starts`` began from the old run's state at some step (``init_from``): its points sit
    on the old run's time axis from that state's CPU-minutes (the value), and its ratio compares the
    time each recipe spent after that common start.
    """
    starts = starts or {}
    (old_name, old), *others = list(curves.items())
    last = max(old, key=lambda p: p["cpu_min"])
    rows = []
    for new_name, new in others:
        t0 = starts.get(new_name, 0.0)
        for task in tasks:
            target = last["scores"][task]
            reached = first_reaching(new, task, target)
            rows.append({"task": task, "old_run": old_name, "old_final": target, "old_cpu_min": last["cpu_min"],
                         "new_run": new_name, "start_cpu_min": t0, "new_best": max(p["scores"][task] for p in new),
                         "new_reached_at_cpu_min": reached,
                         "time_ratio": None if reached is None else round((reached - t0) / (last["cpu_min"] - t0), 3)})
    return rows


def _panels(series: list[tuple[str, list[dict], float]], tasks: tuple[str, ...], path: Path, title: str,
            xlabel: str, legend_size: int) -> None:
    """One panel per task: each (label, points, t0) of ``series`` as its score against CPU-minutes - t0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for label, pts, t0 in series:
            ax.plot([p["cpu_min"] - t0 for p in pts], [100 * p["scores"][task] for p in pts], marker="o", ms=3, label=label)
        ax.set_title(f"validation: {task}{title}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("exact match (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot(curves: dict[str, list[dict]], tasks: tuple[str, ...], path: Path) -> None:
    series = [(name, sorted(curve, key=lambda p: p["cpu_min"]), 0.0) for name, curve in curves.items()]
    _panels(series, tasks, path, "", "training CPU-minutes (core-minutes)", 8)


def _plot_from_start(curves: dict[str, list[dict]], starts: dict[str, float], forks: dict[str, int],
                     also: tuple[str, ...], tasks: tuple[str, ...], path: Path) -> None:
    """The runs that began from the old run's state, and the old run itself (plus ``also``: e.g. a
    re-run of the old recipe to that step, continued), against CPU-minutes since that common step."""
    common = min(forks.values())
    series = []
    for name in [next(iter(curves)), *also, *starts]:
        pts = sorted(curves.get(name, []), key=lambda p: p["step"])
        if name in starts:
            series.append((f"{name} (began at step {forks[name]})", pts, starts[name]))
            continue
        at = [p for p in pts if p["step"] == common]
        if at:
            series.append((f"{name} (its own step {common} on)", [p for p in pts if p["step"] >= common], at[0]["cpu_min"]))
    _panels(series, tasks, path, f", after step {common}", f"training CPU-minutes since step {common}", 7)


def _report(curves: dict[str, list[dict]], rows: list[dict], samples: int, chained: dict[str, str] | None = None) -> str:
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    lines = ["# Recipe race", "", f"Validation: `trainers.validation`, {samples} samples per task, the same for every run.", ""]
    for run, parent in (chained or {}).items():
        lines += [f"{run} continues {parent} from its checkpoint (`init_from`): its CPU-minutes count from "
                  f"{parent}'s fresh start, so the two are one recipe timed from a fresh adapter.", ""]
    for name, curve in curves.items():
        lines += [f"## {name}", "", "| step | CPU-minutes | " + " | ".join(tasks) + " |",
                  "|---:|---:|" + "---:|" * len(tasks)]
        for p in sorted(curve, key=lambda p: p["step"]):
            lines.append(f"| {p['step']} | {p['cpu_min']:.1f} | "
                         + " | ".join(f"{100 * p['scores'][t]:.0f}%" for t in tasks) + " |")
        lines.append("")
    lines += ["## Against the old recipe's final score", "",
              "A run started from the old run's state at some step (its log begins there, `init_from`) is timed",
              "from that common start: its ratio is (its time to the score) / (the old run's time from that start",
              "to its final score).", "",
              "| run | task | old final | at CPU-minutes | common start at | first reached it at | ratio | run's best |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        reached = "not yet" if r["new_reached_at_cpu_min"] is None else f"{r['new_reached_at_cpu_min']:.1f}"
        ratio = "-" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}"
        start = f"{r.get('start_cpu_min', 0.0):.1f}"
        lines.append(f"| {r['new_run']} | {r['task']} | {100 * r['old_final']:.0f}% | {r['old_cpu_min']:.1f} | {start} | {reached} | "
                     f"{ratio} | {100 * r['new_best']:.0f}% |")
    return "\n".join(lines) + "\n"


def main(runs: tuple[str, ...] = ("runs/race-episode", "runs/race-pool", "runs/race-pool-b"), tasks: tuple[str, ...] = TASKS,
         samples: int = 60, recipe: str = "trainers/configs/pool.yaml", num_threads: int = 2,
         out: str = "docs/results/race", every: tuple[int, ...] = (), also_from_start: tuple[str, ...] = ()) -> dict:
    """Score every kept snapshot of ``runs`` (the old recipe first, then one or more new ones) and
    write the race's report.

    Args:
        runs: run directories with ``snapshots/`` (their configs set ``snapshot_every``).
        tasks: validation tasks to score (``trainers.validation.TASKS``).
        samples: validation samples per task.
        recipe: the config whose seed and collections define the validation set (pool.yaml's: the
            README's validation table).
        num_threads: torch threads for scoring (not the runs' own: those come from their run.json).
        out: directory for results.json, race.png and report.md.
        every: per run (in ``runs`` order), score only snapshots whose step is a multiple of this
            (and the last one); empty or 0 scores all. Scoring costs ~1-2 min per snapshot.
        also_from_start: runs (of ``runs``) drawn in ``race-from-start.png`` from the common step of
            the runs that began from the old run's state (e.g. the old recipe re-run to that step and
            continued); that plot is written when such runs exist. A run that began from one of
            these (its ``init_from``) began from the old recipe's state; one that began from another
            new run continues that run, and is timed from that run's fresh start.
    """
    import torch
    from tqdm.auto import tqdm

    from gist_memory.model import GistModel
    from trainers.config import TrainConfig
    from trainers.data import recipe_documents
    from trainers.validation import TASKS as VAL_TASKS, score_samples, validation_set

    unknown = [t for t in tasks if t not in VAL_TASKS]
    if unknown:
        raise SystemExit(f"unknown validation task(s) {unknown}; choose from {list(VAL_TASKS)}")
    if len(runs) < 2:
        raise SystemExit("give two runs or more: the old recipe's first")
    if every and len(every) != len(runs):
        raise SystemExit(f"--every needs one stride per run ({len(runs)}), got {list(every)}")
    out_dir = Path(out)
    results_path = out_dir / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.is_file() else {}
    same_set = previous.get("samples") == samples and previous.get("recipe") == recipe
    cached = {run: {p["step"]: p for p in previous.get("curves", {}).get(run, [])} if same_set else {} for run in runs}
    # snapshots are local (never committed): a fresh clone scores none again, it reads their cached scores
    found = {run: _thinned(sorted((Path(run) / "snapshots").glob("step-*")), every[i] if every else 0)
             for i, run in enumerate(runs)}
    empty = [run for run, snaps in found.items() if not snaps and not cached[run]]
    if empty:
        raise SystemExit(f"no snapshots in {empty}: train with snapshot_every set (trainers/configs/race-*.yaml)")
    torch.set_num_threads(num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig.from_yaml(recipe)
    val = None
    curves: dict[str, list[dict]] = {}
    starts: dict[str, float] = {}
    forks: dict[str, int] = {}
    first_cpu: dict[int, float] = {}
    run_cpu: dict[str, dict[int, float]] = {}  # each run's CPU-seconds by step, on its time axis
    chained: dict[str, str] = {}  # a run that continues another new run (init_from): its parent
    for i, (run, snaps) in enumerate(found.items()):
        meta = json.loads((Path(run) / "run.json").read_text())
        threads = int(meta.get("num_threads", 1)) * int(meta.get("processes", 1))
        cpu = cpu_seconds_by_step(Path(run) / "log.jsonl", threads)
        began = fork_step(Path(run) / "log.jsonl")
        offset = 0.0
        parent = parent_run(Path(run), runs[:i]) if began else None
        if i == 0:
            first_cpu = cpu
        elif parent is not None and parent not in (runs[0], *also_from_start):  # a new recipe's own run, continued
            if began not in run_cpu[parent]:
                raise SystemExit(f"{run} starts at step {began}, past its parent's log ({parent})")
            offset = run_cpu[parent][began]
            chained[run] = parent
        elif began:  # started from the old run's state at that step: on its time axis from there
            if began not in first_cpu:
                raise SystemExit(f"{run} starts at step {began}, past the old run's log ({runs[0]})")
            offset = first_cpu[began]
            starts[run], forks[run] = round(offset / 60, 2), began
        run_cpu[run] = {step: offset + seconds for step, seconds in cpu.items()} if offset else cpu
        done = cached[run]
        curve = []
        steps = sorted({int(p.name.split("-")[1]): p for p in snaps}.items())
        for step, snap in tqdm([(s, p) for s, p in steps if s not in done] + [(s, None) for s in done],
                               desc=f"scoring {run}", unit="snapshot"):
            if step not in cpu or step < began:
                continue  # kept after the log's last flushed step (score it next time), or before the run began
            scores = done.get(step, {}).get("scores")
            if scores is None or any(t not in scores for t in tasks):
                if snap is None:
                    continue  # cached without a task asked now, and its snapshot is gone
                gm = GistModel.from_pretrained(cfg.base, adapter=str(snap), num_gist_tokens=cfg.num_gist_tokens,
                                               chunk_tokens=cfg.chunk_tokens)
                if val is None:  # the base model's context KV: the same for every adapter
                    val = validation_set(gm, recipe_documents(cfg, "validation"), samples, seed=cfg.seed,
                                         tasks=tuple(tasks), progress=True)
                scores = score_samples(gm, val)
            curve.append({"step": step, "cpu_min": round((offset + cpu[step]) / 60, 2), "scores": scores})
        curves[run] = sorted(curve, key=lambda p: p["step"])
    rows = summary(curves, tuple(tasks), starts)
    record = {"samples": samples, "recipe": recipe, "tasks": list(tasks), "curves": curves, "starts": starts,
              "chained": chained, "summary": rows}
    results_path.write_text(json.dumps(record, indent=2))
    _plot(curves, tuple(tasks), out_dir / "race.png")
    if starts:
        _plot_from_start(curves, starts, forks, tuple(also_from_start), tuple(tasks), out_dir / "race-from-start.png")
    (out_dir / "report.md").write_text(_report(curves, rows, samples, chained))
    print(json.dumps(rows, indent=2))
    return record


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jsonargparse import CLI

    CLI(main, as_positional=False)
