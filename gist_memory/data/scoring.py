"""The exact-match scorer behind every headline percentage (pass keys, facts, cloze).

A reference matches when, after lower-casing and turning punctuation into spaces, it appears in
the prediction as a whole run of words: "33810" is not found in "338105", "Marseille" is found in
"It is marseille." Word characters are Unicode's, so Korean and other scripts score the same way,
and digits are cut from letters next to them, so a Korean answer "12345입니다" holds "12345".
"""

from __future__ import annotations

import re


_DIGIT_EDGE = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")


def normalize(text: str) -> str:
    """Lower-case; punctuation to spaces; a space between digits and letters (Korean attaches its
    particles to numbers: "12345입니다" holds the word "12345"); runs of whitespace to one space."""
    text = _DIGIT_EDGE.sub(" ", re.sub(r"[^\w\s]", " ", text.lower()))
    return re.sub(r"\s+", " ", text).strip()


def contains_match(prediction: str, reference: str) -> bool:
    """The scoring of niah/fact/qa: the normalised reference appears in the normalised prediction."""
    ref = normalize(reference)
    return bool(ref) and f" {ref} " in f" {normalize(prediction)} "
