"""How the held-out answers miss: each validation file's misses sorted into a few kinds.

A validation pass (``trainers.validation``) writes one JSON line per sample (``task``,
``expected``, ``answer``, ``hit``) to ``<run>/validation/step-NNNNN.jsonl``. Exact match says
how many are wrong; this says how, which is what decides the next change to a recipe::

    python -m trainers.misses runs/pool-k8g/validation

Kinds of miss (the first that applies):

- ``stopped early``: the answer is a strict beginning of the expected value (``40`` for
  ``40-11-32``): the gists held the start, the answer ended too soon;
- ``same shape``: the right form, wrong content (``89525525`` for ``89552395``, ``11:15`` for
  ``11:10``): the value is blurred;
- ``other shape``: another form (``15:15`` for ``15-53-15``, ``14 April 1914`` for ``164``),
  mostly the one the question suggests instead of the text's.

Across all three, ``first group right`` counts the misses whose first run of letters or digits
is the expected one's (``40``, ``11:15`` and ``15:15`` above): how often the start was read.
Over the samples whose expected value is all digits (pass keys), hits included, ``numbers``
counts them, ``length right`` the answers with as many digits, and ``first 5 digits right`` the
answers whose digits begin with the expected's first five (all of them, for shorter keys):
whether a number's digits and its end were read (``trainers.probe --key_lengths`` writes such
answer files).
A shape writes every run of digits as ``9`` and of letters as ``a``, keeping the separators.
It prints one JSON object: per file (step) and task, the samples, hits and the miss counts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from trainers.runlog import read_answers

KINDS = ("stopped early", "same shape", "other shape")
_GROUP = re.compile(r"[^\W_]+")


def shape(value: str) -> str:
    """``value``'s form: each run of digits ``9``, each run of letters ``a``, separators kept."""
    s = re.sub(r"\d+", "9", value.strip().lower())
    return re.sub(r"[^\W\d_]+", "a", s)


def miss_kind(expected: str, answer: str) -> str:
    """Which of ``KINDS`` a wrong ``answer`` to ``expected`` is (see the module docstring)."""
    e, a = expected.strip().lower(), answer.strip().lower()
    if a and e.startswith(a):
        return "stopped early"
    return "same shape" if shape(e) == shape(a) else "other shape"


def first_group_right(expected: str, answer: str) -> bool:
    """Whether ``answer`` starts with ``expected``'s first run of letters or digits."""
    e, a = _GROUP.findall(expected.lower()), _GROUP.findall(answer.lower())
    return bool(e and a and e[0] == a[0])


def number_read(expected: str, answer: str) -> tuple[bool, bool]:
    """For an all-digit ``expected``: whether ``answer`` has as many digits, and whether its digits
    begin with ``expected``'s first five."""
    digits = re.sub(r"\D", "", answer)
    return len(digits) == len(expected), digits.startswith(expected[:5])


def tally(rows: list[dict]) -> dict[str, dict]:
    """Per task: ``n``, ``hits``, the count of each kind of miss, ``first group right`` and, where
    expected values are all digits, ``numbers``, ``length right`` and ``first 5 digits right``."""
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["task"], {"n": 0, "hits": 0, **{k: 0 for k in KINDS}, "first group right": 0})
        t["n"] += 1
        if r["expected"].isdigit():
            length, start = number_read(r["expected"], r["answer"])
            for key, add in (("numbers", 1), ("length right", length), ("first 5 digits right", start)):
                t[key] = t.get(key, 0) + add
        if r["hit"]:
            t["hits"] += 1
        else:
            t[miss_kind(r["expected"], r["answer"])] += 1
            t["first group right"] += first_group_right(r["expected"], r["answer"])
    return out


def main(path: str) -> dict[str, dict]:
    """Tally one validation file, or every ``step-*.jsonl`` in a folder (keyed by file stem)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: pass a run's validation folder or one of its step-*.jsonl files")
    files = sorted(p.glob("step-*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"{p} holds no step-*.jsonl validation files")
    result = {f.stem: tally(read_answers(f)) for f in files}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=True)
