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


def test_a_run_started_from_the_old_runs_state_is_timed_from_that_common_start(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in [{"step": 400, "loss": 1.0, "s": 6.0, "setup_s": 3.0},
                                                          {"step": 401, "loss": 1.0, "s": 6.0}]))
    assert race.fork_step(log) == 400
    (tmp_path / "fresh.jsonl").write_text(json.dumps({"step": 0, "loss": 2.0, "s": 1.0}) + "\n")
    assert race.fork_step(tmp_path / "fresh.jsonl") == 0
    old = [{"step": s, "cpu_min": m, "scores": {"niah": v}} for s, m, v in [(0, 0.0, 0.0), (400, 10.0, 0.6), (1400, 60.0, 0.75)]]
    # the forked run's points already sit on the old run's axis (its start, 10.0, plus its own time)
    new = [{"step": s, "cpu_min": m, "scores": {"niah": v}} for s, m, v in [(450, 14.0, 0.7), (500, 18.0, 0.8)]]
    row = race.summary({"old": old, "new": new}, ("niah",), {"new": 10.0})[0]
    assert row["new_reached_at_cpu_min"] == 18.0 and row["time_ratio"] == round(8.0 / 50.0, 3)
    assert row["start_cpu_min"] == 10.0
    assert "| new | niah | 75% | 60.0 | 10.0 | 18.0 | 0.16 |" in race._report({"old": old, "new": new}, [row], 60)


def test_cached_scores_stand_in_for_snapshots_a_fresh_clone_does_not_have(tmp_path):
    for name, rows in {"old": [{"step": 0, "loss": 2.0, "s": 60.0}, {"step": 1, "loss": 2.0, "s": 60.0}],
                       "new": [{"step": 1, "loss": 2.0, "s": 30.0, "setup_s": 30.0}]}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / name / "run.json").write_text(json.dumps({"num_threads": 1}))
    out = tmp_path / "out"
    out.mkdir()
    runs = (str(tmp_path / "old"), str(tmp_path / "new"))
    point = lambda step, v: {"step": step, "cpu_min": 0.0, "scores": {"niah": v, "fact": 0.0}}  # noqa: E731
    (out / "results.json").write_text(json.dumps({"samples": 60, "recipe": "trainers/configs/pool.yaml", "curves": {
        runs[0]: [point(0, 0.0), point(2, 0.5)], runs[1]: [point(2, 0.6)]}}))
    record = race.main(runs=runs, out=str(out))  # no snapshots anywhere: nothing is scored, nothing loaded
    assert [p["cpu_min"] for p in record["curves"][runs[0]]] == [0.0, 2.0]
    # the new run began at step 1 from the old one's state: on the old axis from 1.0 CPU-minute
    assert record["starts"] == {runs[1]: 1.0} and record["curves"][runs[1]][0]["cpu_min"] == 2.0
    assert record["summary"][0]["new_reached_at_cpu_min"] == 2.0 and (out / "race.png").is_file()
    assert (out / "race-from-start.png").is_file()  # the runs from the common start, against time since it


def test_a_run_continuing_a_new_recipes_run_is_timed_from_that_runs_fresh_start(tmp_path):
    """Two new-recipe runs in a chain (the second's init_from is the first) are one recipe from a
    fresh adapter: the second's CPU-minutes start where the first's were at the fork, not at the
    old run's time there."""
    logs = {"old": [{"step": s, "loss": 2.0, "s": 60.0} for s in range(4)],
            "first": [{"step": s, "loss": 2.0, "s": 30.0} for s in range(3)],
            "second": [{"step": 2, "loss": 2.0, "s": 6.0, "setup_s": 54.0}, {"step": 3, "loss": 2.0, "s": 60.0}]}
    for name, rows in logs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / name / "run.json").write_text(json.dumps({"num_threads": 1}))
    (tmp_path / "second" / "config.yaml").write_text(f"init_from: {tmp_path / 'first' / 'checkpoint-2'}\n")
    runs = tuple(str(tmp_path / n) for n in ("old", "first", "second"))
    point = lambda step, v: {"step": step, "cpu_min": 0.0, "scores": {"niah": v, "fact": 0.0}}  # noqa: E731
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(json.dumps({"samples": 60, "recipe": "trainers/configs/pool.yaml", "curves": {
        runs[0]: [point(0, 0.0), point(4, 0.5)], runs[1]: [point(2, 0.1)], runs[2]: [point(3, 0.5)]}}))
    record = race.main(runs=runs, out=str(tmp_path / "out"))
    assert record["chained"] == {runs[2]: runs[1]} and record["starts"] == {}
    # first's 2 steps (1.0 min), then second's rebuild and step 2 (54 + 6 s) before its step 3
    assert record["curves"][runs[2]][0]["cpu_min"] == 2.0
    row = next(r for r in record["summary"] if r["new_run"] == runs[2] and r["task"] == "niah")
    assert row["time_ratio"] == 0.5 and row["start_cpu_min"] == 0.0  # against the old run's 4.0 from fresh
    assert f"{runs[2]} continues {runs[1]}" in (tmp_path / "out" / "report.md").read_text()
