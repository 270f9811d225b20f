"""A training run's ``log.jsonl`` and its validation answer files, each read one way by everything
that reads it (the plot, the resume's check for validation tasks never scored, the paired comparison
of two runs, the tally of misses)."""

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
    if not log_path.is_file():
        return train, val
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "step" not in record:
            continue
        if "val" in record:
            val[record["step"]] = record["val"]
        elif "loss" in record:
            train[record["step"]] = record
    return train, val


def answers_path(run: Path, step: int) -> Path:
    """The file a run writes its validation answers of ``step`` to (one JSON object a sample:
    ``task``, ``question``, ``expected``, ``answer``, ``hit``), in the order of the validation set."""
    return Path(run) / "validation" / f"step-{step:05d}.jsonl"


def read_answers(path: Path) -> list[dict]:
    """The answer records of one validation file (see :func:`answers_path`); blank lines skipped."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
