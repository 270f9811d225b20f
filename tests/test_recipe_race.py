"""The recipe race's bookkeeping (benchmarks/recipe_race.py): CPU time per step from a run's log,
and when the new recipe first reached the old recipe's final score."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "recipe_race", Path(__file__).parent.parent / "benchmarks" / "recipe_race.py")
race = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(race)


def test_cpu_time_counts_the_pool_build_each_steps_last_record_and_the_threads(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"step": 0, "loss": 2.0, "s": 10.0, "setup_s": 30.0},
            {"step": 1, "loss": 1.9, "s": 10.0},
            {"step": 2, "loss": 1.8, "s": 99.0},  # cut off by a kill before its checkpoint: repeated
            {"step": 2, "val": {"niah": 0.5}},
            {"step": 2, "loss": 1.8, "s": 12.0, "setup_s": 5.0},  # the resumed run rebuilt its pool
            {"step": 3, "setup_s": 1.0}]  # the first race runs wrote the setup on a record of its own
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')
    cpu = race.cpu_seconds_by_step(log, threads=2)
    assert cpu[0] == 2 * 30.0
    assert cpu[1] == 2 * 40.0
    assert cpu[2] == 2 * 50.0 + 2 * 5.0  # the rebuild before step 2 counts, the killed attempt does not
    assert cpu[3] == 2 * (50.0 + 5.0 + 12.0)


def test_the_summary_finds_when_the_new_run_first_reached_the_old_final_score():
    old = [{"step": s, "cpu_min": m, "scores": {"niah": v, "fact": f}}
           for s, m, v, f in [(0, 0.0, 0.0, 0.0), (100, 20.0, 0.4, 0.02), (200, 40.0, 0.75, 0.05)]]
    new = [{"step": s, "cpu_min": m, "scores": {"niah": v, "fact": f}}
           for s, m, v, f in [(25, 6.0, 0.1, 0.1), (50, 8.0, 0.8, 0.2), (75, 12.0, 0.7, 0.3)]]
    rows = {r["task"]: r for r in race.summary({"old": old, "new": new}, ("niah", "fact"))}
    assert rows["niah"]["old_final"] == 0.75 and rows["niah"]["old_cpu_min"] == 40.0
    assert rows["niah"]["new_reached_at_cpu_min"] == 8.0 and rows["niah"]["time_ratio"] == 0.2
    assert rows["fact"]["new_reached_at_cpu_min"] == 6.0
    never = race.summary({"old": old, "new": new[:1]}, ("niah",))[0]
    assert never["new_reached_at_cpu_min"] is None and never["time_ratio"] is None
    assert race.first_reaching(new, "niah", 0.95) is None
    both = race.summary({"old": old, "new": new, "newer": new[1:]}, ("niah",))  # every later run against the first
    assert [(r["new_run"], r["new_reached_at_cpu_min"]) for r in both] == [("new", 8.0), ("newer", 8.0)]
    assert "| newer | niah | 75% |" in race._report({"old": old, "new": new, "newer": new[1:]}, both, 60)


def test_the_race_refuses_runs_without_snapshots(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(SystemExit, match="no snapshots"):
        race.main(runs=(str(tmp_path / "a"), str(tmp_path / "b")), out=str(tmp_path / "out"))
    with pytest.raises(SystemExit, match="unknown validation task"):
        race.main(runs=(str(tmp_path / "a"), str(tmp_path / "b")), tasks=("passkey",), out=str(tmp_path / "out"))
