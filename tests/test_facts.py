"""Open-vocabulary facts: values are generated (not drawn from short lists), held-out kinds stay out."""

from __future__ import annotations

import random

from gist_memory.data.facts import HELD_OUT_KINDS, KINDS, TRAIN_KINDS, open_fact, open_fact_sample
from gist_memory.data.scoring import contains_match


def test_held_out_kinds_are_never_drawn_for_training():
    rng = random.Random(0)
    drawn = {open_fact(rng).kind for _ in range(2000)}
    assert drawn == set(TRAIN_KINDS)
    assert not drawn & set(HELD_OUT_KINDS)
    held = {open_fact(rng, held_out_kind=True).kind for _ in range(500)}
    assert held == set(HELD_OUT_KINDS)


def test_answers_are_open_vocabulary():
    """Nothing like the old 20-city list: almost every answer of a kind is new."""
    rng = random.Random(1)
    for kind in ("number", "code", "person", "place", "time", "date"):
        values = []
        while len(values) < 300:
            fact = open_fact(rng)
            if fact.kind == kind:
                values.append(fact.answer)
        assert len(set(values)) > 200, kind


def test_sample_plants_the_answer_and_asks_for_it_without_giving_it_away():
    rng = random.Random(2)
    text = "The river rose in spring. The town kept its records. Nobody forgot the flood."
    for i in range(200):
        s = open_fact_sample(rng, text, rng.uniform(0.1, 0.9), f"f{i}", held_out_kind=i % 2 == 0)
        assert s.needle in s.context and s.answer.lower() in s.needle.lower()  # a sentence may open with it
        assert contains_match(s.context, s.answer)
        assert not contains_match(s.question, s.answer), (s.question, s.answer)
        assert s.meta["held_out_kind"] == (i % 2 == 0)


def test_every_kind_phrases_owner_attribute_and_value():
    rng = random.Random(3)
    for kind in KINDS:
        for template in kind.statements:
            assert {"{owner}", "{value}"} <= {t for t in ("{owner}", "{attr}", "{value}") if t in template}, template
        for template in kind.questions:
            assert "{owner}" in template and "{value}" not in template, template
        assert kind.value(rng).strip()
