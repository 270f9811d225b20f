"""trainers.misses sorts validation misses into kinds; these pin each kind on the examples it names."""

import json

import pytest

from trainers.misses import main, miss_kind, shape, tally


def test_shape_keeps_separators_and_collapses_runs():
    assert shape("40-11-32") == "9-9-9"
    assert shape("14 April 1914") == "9 a 9"
    assert shape("5N-MP-XVIW") == shape("7K-QR-AB") == "9a-a-a" != shape("40-11-32")


@pytest.mark.parametrize("expected, answer, kind", [
    ("40-11-32", "40", "stopped early"),
    ("87.9 MHz", "87", "stopped early"),
    ("89552395", "89525525", "same shape"),
    ("11:10", "11:15", "same shape"),
    ("15-53-15", "15:15", "other shape"),
    ("164", "14 April 1914", "other shape"),
    ("Wumsyr", "", "other shape"),
])
def test_each_kind_of_miss(expected, answer, kind):
    assert miss_kind(expected, answer) == kind


def test_tally_counts_hits_kinds_and_right_starts():
    rows = [{"task": "f", "expected": "40-11-32", "answer": "40", "hit": False},
            {"task": "f", "expected": "15-53-15", "answer": "15:15", "hit": False},
            {"task": "f", "expected": "164", "answer": "14 April 1914", "hit": False},
            {"task": "f", "expected": "22", "answer": "22", "hit": True}]
    t = tally(rows)["f"]
    assert (t["n"], t["hits"], t["stopped early"], t["other shape"], t["same shape"]) == (4, 1, 1, 2, 0)
    assert t["first group right"] == 2


def test_tally_counts_how_numbers_were_read():
    rows = [{"task": "key4", "expected": "3275", "answer": "32755", "hit": False},     # start read, end not
            {"task": "key4", "expected": "4417", "answer": "4417", "hit": True},
            {"task": "key8", "expected": "25386206", "answer": "2538666666", "hit": False},
            {"task": "key8", "expected": "31686739", "answer": "3186939", "hit": False},
            {"task": "key8", "expected": "56699890", "answer": "5669 9891", "hit": False},  # length right, end wrong
            {"task": "fact", "expected": "40-11-32", "answer": "40", "hit": False}]
    t = tally(rows)
    assert (t["key4"]["numbers"], t["key4"]["first 5 digits right"], t["key4"]["length right"]) == (2, 2, 1)
    assert (t["key8"]["numbers"], t["key8"]["first 5 digits right"], t["key8"]["length right"]) == (3, 2, 1)
    assert "numbers" not in t["fact"]


def test_main_reads_a_run_folder_and_says_what_is_missing(tmp_path, capsys):
    v = tmp_path / "validation"
    v.mkdir()
    (v / "step-00075.jsonl").write_text(json.dumps({"task": "niah", "expected": "12345", "answer": "12354", "hit": False}) + "\n")
    out = main(str(v))
    assert out["step-00075"]["niah"]["same shape"] == 1
    assert json.loads(capsys.readouterr().out) == out
    with pytest.raises(FileNotFoundError, match="no step-"):
        main(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(str(tmp_path / "nope"))
