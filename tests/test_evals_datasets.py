"""Eval datasets: seeded builders over the test split only, and a JSONL loader with clear errors."""

from __future__ import annotations

import json
import re

import pytest

from evals.config import EvalConfig
from evals.datasets import DatasetError, build, load_jsonl, write_jsonl
from gist_memory.data.corpus import load_documents, split_documents
from gist_memory.data.tasks import PASSKEY_QUESTION
from tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()  # byte-level: one token per byte


@pytest.fixture(scope="module")
def held_out_ids() -> dict[str, set[str]]:
    ids = {}
    for lang in ("en", "ko"):
        splits = split_documents(load_documents(lang))
        ids[lang] = {d.doc_id for d in splits["test"]}
        ids[lang + "-train"] = {d.doc_id for d in splits["train"] + splits["validation"]}
    return ids


def _n(tok, text):
    return len(tok(text, add_special_tokens=False)["input_ids"])


def test_niah_grid_is_seeded_and_only_uses_test_documents(tok, held_out_ids):
    samples = build("niah", tok, limit=8, seed=1, lengths=(800, 1600), depths=(0.1, 0.9))
    assert samples == build("niah", tok, limit=8, seed=1, lengths=(800, 1600), depths=(0.1, 0.9))
    assert samples != build("niah", tok, limit=8, seed=2, lengths=(800, 1600), depths=(0.1, 0.9))
    assert [(s.meta["context_length"], s.needle_position) for s in samples[:4]] == [
        (800, 0.1), (800, 0.9), (1600, 0.1), (1600, 0.9)]
    for s in samples:
        assert s.task == "niah" and s.question == PASSKEY_QUESTION
        assert re.fullmatch(r"\d{5}", s.answer) and s.needle in s.context and s.answer in s.needle
        # haystack cut to the length, plus the planted sentence
        assert _n(tok, s.context) <= s.meta["context_length"] + _n(tok, s.needle) + 1
        used = set(s.source_id.split("+"))
        assert used <= held_out_ids["en"] and not used & held_out_ids["en-train"]
        depth = s.context.index(s.needle) / len(s.context)
        assert abs(depth - s.needle_position) < 0.2


def test_long_haystacks_join_several_documents(tok):
    (s,) = build("niah", tok, limit=1, lengths=(30000,), depths=(0.5,))
    assert "+" in s.source_id and _n(tok, s.context) > 25000


def test_facts_use_only_phrasings_the_trainer_never_sees(tok, held_out_ids):
    from gist_memory.data.tasks import FACT_KINDS

    trained = {t for k in FACT_KINDS for t in k.statements + k.questions}
    held_out = {t for k in FACT_KINDS for t in k.held_out_statements + k.held_out_questions}
    as_pattern = lambda t: re.escape(t).replace(r"\{", "{").replace(r"\}", "}")  # noqa: E731
    matches = lambda text, templates: any(  # noqa: E731
        re.fullmatch(re.sub(r"\{\w+\}", ".+?", as_pattern(t)), text) for t in templates)
    samples = build("facts", tok, limit=12, seed=0, lengths=(700,))
    assert len({s.meta.get("kind") for s in samples}) >= 3
    for s in samples:
        assert s.task == "fact" and s.answer in s.needle and s.needle in s.context
        assert matches(s.needle, held_out) and not matches(s.needle, trained)
        assert matches(s.question, held_out) and not matches(s.question, trained)
        assert set(s.source_id.split("+")) <= held_out_ids["en"]


def test_korean_niah_asks_in_korean(tok, held_out_ids):
    samples = build("niah-ko", tok, limit=3, lengths=(600,))
    for s in samples:
        assert s.question == "비밀번호는 무엇입니까?" and s.needle.startswith("비밀번호는 ")
        assert s.answer in s.needle and s.needle in s.context
        assert re.search(r"[\uac00-\ud7a3]{20}", s.context.replace(" ", ""))
        assert set(s.source_id.split("+")) <= held_out_ids["ko"]


def test_theme_samples_cover_distinct_works_first(tok, held_out_ids):
    samples = build("theme", tok, limit=6, theme_tokens=300)
    assert len({s.id for s in samples}) == 6 and all(s.task == "theme" for s in samples)
    assert {s.source_id for s in samples} <= held_out_ids["en"]
    assert all(_n(tok, s.context) <= 300 and s.answer not in s.context for s in samples)


def test_jsonl_round_trip_and_limit(tok, tmp_path):
    samples = build("niah", tok, limit=3, lengths=(200,))
    path = write_jsonl(samples, tmp_path / "d.jsonl")
    assert load_jsonl(path) == samples
    assert load_jsonl(path, limit=2) == samples[:2]
    assert build(str(path), tok, limit=1) == samples[:1]


def test_longbench_lines_load_as_qa(tmp_path):
    path = tmp_path / "lb.jsonl"
    path.write_text(json.dumps({"_id": "a1", "input": "Who?", "context": "Ann wrote it.", "answers": ["Ann", "A."],
                                "dataset": "narrativeqa", "length": 3}) + "\n")
    (s,) = load_jsonl(path)
    assert (s.id, s.task, s.question, s.answer) == ("a1", "qa", "Who?", "Ann")
    assert s.meta["answers"] == ["Ann", "A."]


@pytest.mark.parametrize("line, message", [
    ({"id": "x", "task": "qa", "context": "c", "question": "q"}, r"line 2: missing field 'answer'"),
    ({"id": "x", "task": "poem", "context": "c", "question": "q", "answer": "a"}, r"line 2: field 'task' is 'poem'"),
    ({"id": "x", "task": "qa", "context": " ", "question": "q", "answer": "a"}, r"line 2: field 'context' is empty"),
    ({"id": "x", "task": "niah", "context": "c", "question": "q", "answer": "a", "needle_position": 3},
     r"line 2: field 'needle_position' must be a number in \[0, 1\]"),
    ({"id": "first", "task": "qa", "context": "c", "question": "q", "answer": "a"}, r"line 2: id 'first' is already"),
    ("not json", r"line 2: not valid JSON"),
])
def test_bad_jsonl_lines_name_line_and_field(tmp_path, line, message):
    good = {"id": "first", "task": "qa", "context": "c", "question": "q", "answer": "a"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(DatasetError, match=message):
        load_jsonl(path)


def test_empty_and_missing_datasets_are_refused(tok, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="has no samples"):
        load_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(DatasetError, match="does not exist"):
        build(str(tmp_path / "nope.jsonl"), tok)
    with pytest.raises(DatasetError, match="unknown dataset 'squad'"):
        build("squad", tok)


@pytest.mark.parametrize("kwargs, field", [
    ({"mode": "fast"}, "mode"), ({"limit": 0}, "limit"), ({"top_k": 0}, "top_k"), ({"dataset": " , "}, "dataset"),
    ({"lengths": "1k"}, "lengths"), ({"depths": "0.5,1.0"}, "depths"), ({"sweep_gist_tokens": "0,4"}, "sweep"),
    ({"adapter_dir_pattern": "adapters/k"}, "adapter_dir_pattern"), ({"gist_tokens": 0}, "gist_tokens"),
])
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EvalConfig(**kwargs)


def test_config_command_reproduces_the_config():
    cfg = EvalConfig(mode="all", limit=20, top_k=3, progress=False)
    assert cfg.command() == "python evals/run.py --mode all --limit 20 --top-k 3 --progress false"


# --------------------------------------------------------------------------- out of domain
_PAGE = """.\\" comment that must not reach the text
.TH FROB 1 "2020" "frob" "User Commands"
.de XX
a macro body that must not reach the text
..
.SH NAME
frob \\- turn \\fBwidgets\\fR into \\fIgadgets\\fP
.SH SYNOPSIS
.B frob
[\\-x] \\fIFILE\\fR...
.SH DESCRIPTION
.B frob
reads each FILE and writes it back \\(em slowly \\(em with every widget turned into a gadget.
{body}
.TP
.B \\-x
Exit at the first widget that cannot be turned.
"""


def _man_dir(tmp_path, n=12):
    import gzip

    for section in ("man1", "man8"):
        (tmp_path / section).mkdir()
    for i in range(n):
        body = " ".join(f"Sentence {j} of page {i} says something about widgets." for j in range(60))
        page = _PAGE.replace("frob", f"tool{i}").replace("{body}", body)
        (tmp_path / ("man1" if i % 2 else "man8") / f"tool{i}.{1 if i % 2 else 8}.gz").write_bytes(
            gzip.compress(page.encode()))
    (tmp_path / "man1" / "alias.1.gz").write_bytes(gzip.compress(b".so man1/tool1.1\n"))
    (tmp_path / "man1" / "short.1").write_text(".SH NAME\nshort \\- too short to use\n")
    return tmp_path


def test_man_page_text_keeps_prose_and_drops_roff(tmp_path):
    from evals.ood import man_to_text

    text = man_to_text(_PAGE.replace("{body}", "More prose."))
    assert "frob - turn widgets into gadgets" in text
    assert "writes it back - slowly - with every widget" in text and "More prose." in text
    assert "Exit at the first widget" in text
    for gone in ("comment that must", "macro body", "[-x]", "\\f", ".TH", ".B"):
        assert gone not in text, gone


def test_ood_facts_plant_new_kinds_in_man_pages_only(tok, tmp_path, monkeypatch):
    from gist_memory.data.facts import HELD_OUT_KINDS

    monkeypatch.setenv("GIST_MAN_DIR", str(_man_dir(tmp_path)))
    samples = build("ood-facts", tok, limit=6, seed=3, lengths=(400, 800), depths=(0.2, 0.8))
    assert samples == build("ood-facts", tok, limit=6, seed=3, lengths=(400, 800), depths=(0.2, 0.8))
    assert samples != build("ood-facts", tok, limit=6, seed=4, lengths=(400, 800), depths=(0.2, 0.8))
    for s in samples:
        assert s.task == "fact" and s.meta["kind"] in HELD_OUT_KINDS and s.meta["held_out_kind"]
        assert s.needle in s.context and s.answer in s.needle
        pages = s.source_id.split("+")
        assert all(p.startswith("man-man") and p.split("-", 2)[2].startswith("tool") for p in pages)
        assert "widget" in s.context and "\\f" not in s.context


def test_ood_facts_without_man_pages_is_a_clear_error(tok, tmp_path, monkeypatch):
    monkeypatch.setenv("GIST_MAN_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="ood-facts: found 0 manual pages.*GIST_MAN_DIR"):
        build("ood-facts", tok, limit=2)


def test_ood_theme_asks_what_an_installed_package_is_for(tok):
    import importlib.metadata as md

    samples = build("ood-theme", tok, limit=5, seed=0, theme_tokens=300)
    assert samples == build("ood-theme", tok, limit=5, seed=0, theme_tokens=300)
    names = [s.source_id for s in samples]
    assert len(set(names)) == 5 and "pkg-gist-memory" not in names
    for s in samples:
        assert s.task == "theme" and s.meta["collection"] == "package-descriptions"
        name = s.meta["title"].split(" ", 1)[1]
        summary = md.metadata(name)["Summary"].strip().rstrip(".")
        assert s.answer == f"{name} is software for this: {summary}."
        assert 0 < _n(tok, s.context) <= 300 and "```" not in s.context


def test_trainer_corpus_never_reads_the_ood_genres():
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    for folder in ("gist_memory", "trainers"):
        for path in (root / folder).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            assert "evals.ood" not in source and "/usr/share/man" not in source, path
