"""benchmarks/thread_split.py's arms train on the same data: a step's parts are drawn the same
whichever process trains them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

_bench = Path(__file__).parent.parent / "benchmarks"
sys.path.insert(0, str(_bench))  # thread_split imports train_throughput as its sibling
_spec = importlib.util.spec_from_file_location("thread_split", _bench / "thread_split.py")
split = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(split)


def _chunks(n):
    questions = lambda i: [SimpleNamespace(task=t, answer=f"{t}{i}") for t in ("niah", "fact", "fact")]  # noqa: E731
    return [SimpleNamespace(number=i, keyed=i % 2 == 0, questions=questions(i), ids=[0] * (10 + i)) for i in range(n)]


def test_the_threads_arm_trains_exactly_the_parts_the_processes_train_between_them():
    chunks = _chunks(12)
    args = dict(share=2, chunks_per_part=3, max_chunks=2, questions_per_chunk=2, task_mix={"niah": 1.0, "fact": 1.0})
    for step in range(5):
        whole, whole_rows = split.step_parts(chunks, step, [0, 1], **args)
        parts = [split.step_parts(chunks, step, [i], **args) for i in (0, 1)]
        assert whole == parts[0][0] + parts[1][0] and len(whole) == 6
        # the rows of part 1 point at the same chunks once its draw follows part 0's
        resolved = [([whole[c].number for c in r.chunks], r.question.answer) for r in whole_rows]
        by_part = [([d[c].number for c in r.chunks], r.question.answer) for d, rows in parts for r in rows]
        assert resolved == by_part and all(any(r.question in whole[c].questions for c in r.chunks) for r in whole_rows)
    assert split.step_parts(chunks, 0, [0], **args) != split.step_parts(chunks, 1, [0], **args)
    with pytest.raises(ValueError, match="part 2 of 2"):
        split.step_parts(chunks, 0, [2], **args)
