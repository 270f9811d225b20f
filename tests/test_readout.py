"""trainers.readout: a teacher-forced read-out of validation answers, own gists against another sample's."""

from __future__ import annotations

import json
import math
import random

import pytest

from gist_memory.compress import compress_chunks
from gist_memory.data.corpus import SourceDocument
from tiny import tiny_gist_model
from trainers.pool import ChunkPlan, chunks_kv
from trainers.readout import main, read_answer, read_out, summarise, token_class
from trainers.validation import ValSample, validation_set, write_answers


@pytest.mark.parametrize("piece, end, want", [("4", False, "digit"), (" 40", False, "digit"), ("-", False, "separator"),
                                              (" MHz", False, "letter"), (":", False, "separator"),
                                              ("<|end|>", True, "end"), ("a1", False, "digit")])
def test_token_class(piece, end, want):
    assert token_class(piece, end) == want


def test_forced_first_choices_are_what_greedy_decoding_writes():
    """The adapter's own greedy answer, read back with teacher forcing, is its first choice at every
    token, and the probabilities are those of the inference path (compressed caches)."""
    gm = tiny_gist_model()
    caches = compress_chunks(gm, [[random.Random(1).randrange(256) for _ in range(40)]])
    greedy = gm.generate("what is fact 0?", caches, max_new_tokens=6)
    tokens = read_answer(gm, caches, "what is fact 0?", greedy.text)
    assert len(tokens) == len(greedy.token_ids) + 1  # the end-of-turn token last
    assert all(t["top"] for t in tokens[:-1]) and tokens[-1]["class"] == "end"
    assert all(0 < t["p"] <= 1 for t in tokens)
    other = read_answer(gm, caches, "what is fact 0?", "zz" + greedy.text)
    assert other[0]["p"] < tokens[0]["p"]  # not the greedy first token: less likely


def test_summary_counts_classes_positions_and_control():
    own = [[{"class": "digit", "p": 0.9, "top": True}, {"class": "separator", "p": 0.2, "top": False},
            {"class": "digit", "p": 0.5, "top": True}, {"class": "end", "p": 0.8, "top": True}],
           [{"class": "letter", "p": 0.7, "top": True}, {"class": "end", "p": 0.6, "top": True}]]
    other = [[dict(t, p=0.1, top=False) for t in a] for a in own]
    s = summarise(own, other)
    assert s["n"] == 2 and s["forced exact"] == 0.5 and s["forced exact, control"] == 0.0
    assert s["digit"] == {"tokens": 2, "p": 0.7, "p control": 0.1, "first choice": 1.0, "first choice control": 0.0}
    assert s["separator"]["first choice"] == 0.0 and s["end"]["tokens"] == 2
    assert s["position 1"]["tokens"] == 2 and s["position 1"]["p"] == 0.8
    assert s["position 3"]["tokens"] == 1 and s["position 4+"]["tokens"] == 0  # end tokens are not positions
    # the loss per answer token and the whole answer's probability, own gists
    first = -(math.log(0.9) + math.log(0.2) + math.log(0.5) + math.log(0.8)) / 4
    assert s["nll"] == round((first - (math.log(0.7) + math.log(0.6)) / 2) / 2, 3)
    assert s["nll, control"] == round(-math.log(0.1), 3)
    assert s["P(answer)"] == round((0.9 * 0.2 * 0.5 * 0.8 + 0.7 * 0.6) / 2, 3)


def test_read_out_controls_with_the_next_sample_of_the_task(tmp_path):
    gm = tiny_gist_model()
    rng = random.Random(0)
    drawn = chunks_kv(gm, [ChunkPlan([rng.randrange(256) for _ in range(n)]) for n in (20, 31, 12, 25)])
    samples = [ValSample("fact", [drawn[0]], "what is fact 0?", "12-3"),
               ValSample("fact", [drawn[1], drawn[2]], "what is fact 1?", "ab"),
               ValSample("niah", [drawn[3]], "what is the pass key?", "4417")]
    records: list[dict] = []
    result = read_out(gm, samples, records)
    assert set(result) == {"fact", "niah"} and result["fact"]["n"] == 2
    one = compress_chunks(gm, [drawn[1].ids, drawn[2].ids])
    assert records[1]["control"] == read_answer(gm, compress_chunks(gm, [drawn[0].ids]), "what is fact 1?", "ab")
    assert records[1]["own"] == read_answer(gm, one, "what is fact 1?", "ab")
    assert records[2]["own"] == records[2]["control"]  # a task of one sample is its own control
    # a recorded read-out summarises, without the model, to what the read-out said
    path = tmp_path / "records.jsonl"
    write_answers(path, records)
    assert main(records_in=str(path)) == json.loads(json.dumps(result))


def test_validation_set_keep_gives_the_full_sets_samples():
    gm = tiny_gist_model(chunk_tokens=64)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    text = "\n\n".join(" ".join(random.Random(i).choice(words) for _ in range(400)) for i in range(3))
    docs = {"en": [SourceDocument(f"d{i}", "t", text, "en", f"s:{i}") for i in range(3)], "ko": []}
    full = validation_set(gm, docs, 2, tasks=("niah", "fact", "fact_new_kind"))
    kept = validation_set(gm, docs, 2, tasks=("niah", "fact", "fact_new_kind"), keep=("fact_new_kind",))
    want = [s for s in full if s.task == "fact_new_kind"]
    assert len(want) == 2 and len(full) == 6
    assert [(s.question, s.answer, [c.ids for c in s.chunks]) for s in kept] == \
           [(s.question, s.answer, [c.ids for c in s.chunks]) for s in want]


def test_generic_facts_are_planted_as_the_pool_plants_them():
    """validation's fact_generic task (readout only): a drawn generic fact in validation text, its
    value in the chunk; appended after the trainer's tasks, it leaves their samples as they were."""
    from trainers.validation import TASKS

    gm = tiny_gist_model(chunk_tokens=600)  # texts are 256-480 tokens: none cut
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    text = "\n\n".join(" ".join(random.Random(i).choice(words) for _ in range(400)) for i in range(3))
    docs = {"en": [SourceDocument(f"d{i}", "t", text, "en", f"s:{i}") for i in range(3)], "ko": []}
    alone = validation_set(gm, docs, 2, tasks=TASKS)
    both = validation_set(gm, docs, 2, tasks=TASKS + ("fact_generic",))
    assert [(s.task, s.answer) for s in both[:len(alone)]] == [(s.task, s.answer) for s in alone]
    generic = [s for s in both if s.task == "fact_generic"]
    assert len(generic) == 2
    for s in generic:
        held = "".join(gm.tokenizer.decode(c.ids) for c in s.chunks)
        assert s.answer in held and s.answer not in s.question
