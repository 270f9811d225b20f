"""trainers.probe: conditions are paired (same question, nested facts) and differ only in what they vary."""

from __future__ import annotations

from tiny import tiny_gist_model

from gist_memory.data.corpus import SourceDocument
from trainers.probe import probe_set


def test_probe_conditions_are_paired_and_nested():
    gm = tiny_gist_model(chunk_tokens=400)
    body = "\n\n".join(f"Paragraph {i} says the harbor lamp is lit. It stays lit." for i in range(40))
    docs = {"en": [SourceDocument("d0", "t", body, "en", "sotu:x")]}
    samples = probe_set(gm, docs, n=3, facts=(1, 3), text_tokens=120)
    names = ["f1-text", "f1-bare", "f3-text", "f3-bare"]
    assert [s.task for s in samples] == names * 3
    for i in range(3):
        group = samples[4 * i:4 * i + 4]
        assert len({(s.question, s.answer) for s in group}) == 1  # one asked fact across conditions
        text = {s.task: gm.tokenizer.decode(s.chunks[0].ids) for s in group}
        answer = group[0].answer
        assert all(answer in t for t in text.values())
        assert "harbor lamp" in text["f1-text"] and "harbor lamp" in text["f3-text"]
        assert "harbor lamp" not in text["f1-bare"] and "harbor lamp" not in text["f3-bare"]
        # the bare chunks hold the facts alone: three sentences hold more than one
        assert text["f3-bare"].count(".") > text["f1-bare"].count(".") >= 1
        assert len(group[3].chunks[0].ids) > len(group[1].chunks[0].ids)


def test_key_length_conditions_share_text_and_depth_and_plant_keys_of_their_length():
    import pytest

    from trainers.probe import key_length_set, main

    gm = tiny_gist_model(chunk_tokens=400)
    body = "\n\n".join(f"Paragraph {i} says the harbor lamp is lit. It stays lit." for i in range(40))
    docs = {"en": [SourceDocument("d0", "t", body, "en", "sotu:x")]}
    samples = key_length_set(gm, docs, n=3, lengths=(4, 5, 9), text_tokens=120)
    assert [s.task for s in samples] == ["key4", "key5", "key9"] * 3
    for i in range(3):
        group = samples[3 * i:3 * i + 3]
        assert [len(s.answer) for s in group] == [4, 5, 9] and all(s.answer.isdigit() for s in group)
        texts = [gm.tokenizer.decode(s.chunks[0].ids) for s in group]
        assert all(s.answer in t for s, t in zip(group, texts))
        # the same text around the key at the same place: only the key differs
        assert len({t.replace(s.answer, "KEY") for s, t in zip(group, texts)}) == 1
    with pytest.raises(ValueError, match="key_lengths"):
        main(adapter="none", key_lengths="5,19")
