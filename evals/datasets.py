"""Evaluation datasets: seeded builders over real text, and a JSONL loader.

Builders read only the ``"test"`` split of :func:`gist_memory.data.corpus.split_documents` (split by
source work, so no speech or book an adapter was trained on is evaluated on):

- ``niah``: an English passkey sentence (5-digit key) planted at a depth of 10-90% of a haystack
  of State of the Union addresses and World English Bible chapters, one cell per
  (context length, depth) of a grid.
- ``niah-ko``: the same with a Korean passkey sentence and question in Korean speeches of the
  presidents of the Republic of Korea.
- ``facts``: a synthetic fact (a person, place, object, time or quantity) planted like the
  passkey and asked about in other words, both in phrasings the trainer never uses
  (:data:`gist_memory.data.tasks.FACT_KINDS`, held-out templates): does the memory generalise?
- ``theme``: "what is this text about?" over one document, with a reference written from its
  metadata (:mod:`gist_memory.data.themes`).

Two more are out of domain (:mod:`evals.ood`): genres the trainer refuses, read on this machine.

- ``ood-facts``: a fact of a kind the trainer never plants (``facts.HELD_OUT_KINDS``: a pet, a
  combination, a frequency, a dock) planted in manual pages, as ``facts`` is in the test split.
- ``ood-theme``: "what is this software for?" over a Python package's long description, the
  reference being the package's own one-line summary.

Context lengths are counted in the evaluated model's tokens. Any other dataset is a JSONL file,
one object per line with ``id``, ``task`` (``niah``, ``fact``, ``theme`` or ``qa``), ``context``,
``question``, ``answer`` and optional ``needle``, ``needle_position``; LongBench lines
(``_id``, ``input``, ``context``, ``answers``) load as ``qa``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from gist_memory.data.corpus import SourceDocument, load_documents, split_documents
from gist_memory.data.facts import open_fact_sample
from gist_memory.data.tasks import Sample, fact_sample, passkey_sample, trim_to_tokens
from gist_memory.data.themes import theme_sample

from evals.ood import SOFTWARE_QUESTIONS, man_pages, package_descriptions

__all__ = ["BUILDERS", "TASKS", "DatasetError", "build", "load_jsonl", "write_jsonl"]

#: Tasks a JSONL line may declare; ``niah``, ``fact`` and ``qa`` are scored by exact match, ``theme`` by meaning.
TASKS = ("niah", "fact", "theme", "qa")
BUILDERS = ("niah", "niah-ko", "facts", "theme", "ood-facts", "ood-theme")
_REQUIRED = ("id", "task", "context", "question", "answer")



class DatasetError(ValueError):
    """A dataset name, file or line that cannot be used; the message says which and why."""


def build(name: str, tokenizer, limit: int | None = None, seed: int = 0,
          lengths: Sequence[int] = (1024, 2048), depths: Sequence[float] = (0.1, 0.5, 0.9),
          theme_tokens: int = 2048) -> list[Sample]:
    """Samples of dataset ``name``: a builder in :data:`BUILDERS` or a path to a JSONL file.

    Args:
        name: ``niah``, ``niah-ko``, ``facts``, ``theme``, ``ood-facts``, ``ood-theme`` or a ``.jsonl`` path.
        tokenizer: the evaluated model's tokenizer (contexts are cut to lengths in its tokens).
        limit: most samples; builders make exactly this many (default: one NIAH sample per
            (length, depth) cell, 4 theme samples), files keep their first ``limit`` lines.
        seed: builders draw documents, keys and questions from a generator seeded with the
            dataset name and ``seed``.
        lengths: NIAH and facts haystack lengths in tokens, cycled through.
        depths: NIAH and facts needle depths in (0, 1), cycled through within each length.
        theme_tokens: theme documents are cut to their first ``theme_tokens`` tokens.
    """
    if name == "niah":
        return _niah(tokenizer, "en", limit, seed, lengths, depths)
    if name == "niah-ko":
        return _niah(tokenizer, "ko", limit, seed, lengths, depths)
    if name == "facts":
        return _niah(tokenizer, "en", limit, seed, lengths, depths, plant_needle=_held_out_fact, name="facts")
    if name == "theme":
        return _themes(tokenizer, limit if limit is not None else 4, seed, theme_tokens)
    if name == "ood-facts":
        return _niah(tokenizer, "en", limit, seed, lengths, depths, plant_needle=_new_kind_fact, name="ood-facts",
                     documents=_man_haystacks)
    if name == "ood-theme":
        return _software_themes(tokenizer, limit if limit is not None else 4, seed, theme_tokens)
    path = Path(name)
    if path.suffix != ".jsonl" and not path.is_file():
        raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(BUILDERS)} or a path to a .jsonl file")
    return load_jsonl(path, limit)


def _test_documents(language: str, rng: random.Random) -> list[SourceDocument]:
    docs = split_documents(load_documents(language))["test"]
    rng.shuffle(docs)
    return docs


def _ko_passkey_sample(rng: random.Random, text: str, depth: float, sample_id: str, source_id: str) -> Sample:
    return passkey_sample(rng, text, depth, sample_id, source_id, language="ko")


def _held_out_fact(rng: random.Random, text: str, depth: float, sample_id: str, source_id: str) -> Sample:
    return fact_sample(rng, text, depth, sample_id, held_out=True, source_id=source_id)


def _new_kind_fact(rng: random.Random, text: str, depth: float, sample_id: str, source_id: str) -> Sample:
    return open_fact_sample(rng, text, depth, sample_id, held_out_kind=True, source_id=source_id)


def _man_haystacks(rng: random.Random, count: int) -> list[SourceDocument]:
    try:  # three pages a sample covers the 2k-token cells; fewer is fine, documents are reused
        return man_pages(rng, max(3 * count, 8), minimum=1)
    except ValueError as exc:
        raise DatasetError(f"ood-facts: {exc}") from None


def _niah(tokenizer, language: str, limit: int | None, seed: int, lengths: Sequence[int],
          depths: Sequence[float], plant_needle=None, name: str | None = None, documents=None) -> list[Sample]:
    """Needle-in-a-haystack samples: a passkey by default, or what ``plant_needle`` plants, in test
    documents of ``language``, or in ``documents(rng, count)``."""
    if not lengths or any(n < 64 for n in lengths):
        raise DatasetError(f"NIAH lengths must be token counts of at least 64, got {list(lengths)}")
    if not depths or any(not 0 < d < 1 for d in depths):
        raise DatasetError(f"NIAH depths must lie strictly between 0 and 1, got {list(depths)}")
    name = name or ("niah" if language == "en" else "niah-ko")
    cells = [(n, d) for n in lengths for d in depths]
    count = len(cells) if limit is None else limit
    rng = random.Random(f"{name}:{seed}")  # a str seed is hashed the same way on every platform
    pool = documents(rng, count) if documents else _test_documents(language, rng)
    plant_key = plant_needle or (passkey_sample if language == "en" else _ko_passkey_sample)
    samples, at = [], 0
    for i in range(count):
        n_tokens, depth = cells[i % len(cells)]
        # The haystack: test documents in seeded order, joined until long enough (the 4k cells
        # need more than one document), then cut to n_tokens at a sentence end.
        parts, used, have = [], [], 0
        while have < n_tokens:
            doc = pool[at % len(pool)]
            at += 1
            parts.append(doc.text)
            used.append(doc.doc_id)
            have += len(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        haystack = trim_to_tokens(tokenizer, "\n\n".join(parts), n_tokens)
        sample = plant_key(rng, haystack, depth, f"{name}-{i:04d}", source_id="+".join(used))
        sample.meta.update(context_length=n_tokens, language=language)
        samples.append(sample)
    return samples


def _themes(tokenizer, count: int, seed: int, max_tokens: int) -> list[Sample]:
    rng = random.Random(f"theme:{seed}")
    pool, samples = _test_documents("en", rng), []
    # One document per source work first (a speech cut in three parts is one work), then the rest.
    first = {}
    for d in pool:
        first.setdefault(d.source, d.doc_id)
    ordered = sorted(pool, key=lambda d: d.doc_id != first[d.source])  # stable: keeps seeded order
    for i in range(count):
        doc = ordered[i % len(ordered)]
        sample = theme_sample(rng, doc, trim_to_tokens(tokenizer, doc.text, max_tokens), f"theme-{i:04d}")
        sample.meta["context_length"] = max_tokens
        samples.append(sample)
    return samples


def _software_themes(tokenizer, count: int, seed: int, max_tokens: int) -> list[Sample]:
    rng = random.Random(f"ood-theme:{seed}")
    pool = package_descriptions()
    if not pool:
        raise DatasetError("ood-theme: no installed Python package has a long description and a summary")
    rng.shuffle(pool)
    samples = []
    for i in range(count):
        doc, reference = pool[i % len(pool)]
        sample = Sample(f"ood-theme-{i:04d}", "theme", trim_to_tokens(tokenizer, doc.text, max_tokens),
                        rng.choice(SOFTWARE_QUESTIONS), reference,
                        source_id=doc.doc_id, meta={"collection": "package-descriptions", "title": doc.title,
                                                    "language": "en", "context_length": max_tokens})
        samples.append(sample)
    return samples


# --------------------------------------------------------------------------- JSONL files
def _from_longbench(obj: dict) -> dict:
    answers = obj.get("answers")
    answer = answers[0] if isinstance(answers, list) and answers else answers
    return {"id": obj.get("_id"), "task": "qa", "context": obj.get("context"), "question": obj.get("input"),
            "answer": answer, "meta": {k: obj[k] for k in ("dataset", "length", "answers") if k in obj}}


def load_jsonl(path: str | Path, limit: int | None = None) -> list[Sample]:
    """Read samples from a JSONL file; every bad line raises a DatasetError naming line and field."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist")
    samples: list[Sample] = []
    ids: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if limit is not None and len(samples) >= limit:
                break
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            if "input" in obj and "answers" in obj and "question" not in obj:
                obj = _from_longbench(obj)
            samples.append(_sample_from(obj, where))
            if samples[-1].id in ids:
                raise DatasetError(f"{where}: id {samples[-1].id!r} is already used on line {ids[samples[-1].id]}")
            ids[samples[-1].id] = lineno
    if not samples:
        raise DatasetError(f"dataset file {path} has no samples; write one JSON object per line "
                           f"with the fields {', '.join(_REQUIRED)}")
    return samples


def _sample_from(obj: dict, where: str) -> Sample:
    for key in _REQUIRED:
        if obj.get(key) is None:
            raise DatasetError(f"{where}: missing field {key!r} (every line needs {', '.join(_REQUIRED)})")
    for key in ("task", "context", "question", "answer"):
        if not isinstance(obj[key], str):
            raise DatasetError(f"{where}: field {key!r} must be a string, got {type(obj[key]).__name__}")
    if obj["task"] not in TASKS:
        raise DatasetError(f"{where}: field 'task' is {obj['task']!r}; expected one of {', '.join(TASKS)}")
    if not obj["context"].strip():
        raise DatasetError(f"{where}: field 'context' is empty")
    position = obj.get("needle_position")
    if position is not None and (not isinstance(position, (int, float)) or not 0 <= position <= 1):
        raise DatasetError(f"{where}: field 'needle_position' must be a number in [0, 1], got {position!r}")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return Sample(str(obj["id"]), obj["task"], obj["context"], obj["question"], obj["answer"],
                  obj.get("needle"), None if position is None else float(position),
                  str(obj.get("source_id", "")), meta)


def write_jsonl(samples: Sequence[Sample], path: str | Path) -> Path:
    """Write ``samples`` in the format :func:`load_jsonl` reads (so a run's data can be re-run)."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for s in samples:
            row = {"id": s.id, "task": s.task, "context": s.context, "question": s.question, "answer": s.answer,
                   "needle": s.needle, "needle_position": s.needle_position, "source_id": s.source_id,
                   "meta": s.meta}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
