"""Text helpers shared by the corpus loaders: cutting works into balanced documents, cleaning."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Callable, Sequence, TypeVar

from .corpus import HARD_MAX_CHARS, MIN_CHARS, TARGET_MAX_CHARS, SourceDocument

_T = TypeVar("_T")


def _pack(
    items: Sequence[_T],
    size: Callable[[_T], int],
    max_chars: int = TARGET_MAX_CHARS,
    min_chars: int = MIN_CHARS,
    hard_max: int = HARD_MAX_CHARS,
) -> list[list[_T]]:
    """Group consecutive items into groups of balanced total size <= ``max_chars``."""
    sizes = [size(it) + 2 for it in items]
    total = sum(sizes)
    if total <= max_chars:
        return [list(items)] if items else []
    target = total / math.ceil(total / max_chars)
    groups: list[list[_T]] = []
    cur: list[_T] = []
    cur_size = 0
    for it, s in zip(items, sizes):
        if cur and cur_size + s > max_chars:
            groups.append(cur)
            cur, cur_size = [], 0
        cur.append(it)
        cur_size += s
        if cur_size >= target:
            groups.append(cur)
            cur, cur_size = [], 0
    if cur:
        groups.append(cur)
    if len(groups) > 1:
        last = sum(size(it) + 2 for it in groups[-1])
        prev = sum(size(it) + 2 for it in groups[-2])
        if last < min_chars and last + prev <= hard_max:
            groups[-2].extend(groups.pop())
    return groups


_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")


def _split_long_paragraph(par: str, max_chars: int = TARGET_MAX_CHARS) -> list[str]:
    """Cut a paragraph longer than ``max_chars`` at sentence (else word) boundaries."""
    if len(par) <= max_chars:
        return [par]
    pieces: list[str] = []
    for sent in _SENTENCE_END.split(par):
        while len(sent) > max_chars:  # pathological: no sentence ends at all
            cut = sent.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(sent[:cut].strip())
            sent = sent[cut:].strip()
        if sent:
            pieces.append(sent)
    return [" ".join(g) for g in _pack(pieces, lambda s: len(s) - 1, max_chars, 0)]


def _documents_from_paragraphs(
    paragraphs: list[str],
    *,
    id_prefix: str,
    title: str,
    language: str,
    source: str,
) -> list[SourceDocument]:
    """Cut one work, given as paragraphs, into balanced documents."""
    pars: list[str] = []
    for p in paragraphs:
        pars.extend(_split_long_paragraph(p))
    text_len = sum(len(p) + 2 for p in pars) - 2
    if text_len < MIN_CHARS:
        return []
    groups = _pack(pars, len)
    out = []
    for i, group in enumerate(groups, 1):
        part = f" (part {i}/{len(groups)})" if len(groups) > 1 else ""
        out.append(
            SourceDocument(
                doc_id=f"{id_prefix}-p{i:02d}",
                title=title + part,
                text="\n\n".join(group),
                language=language,
                source=source,
            )
        )
    return out


_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\xa0\u3000\u2002\u2003\u2009\u202f]+")


def _normalize(text: str) -> str:
    """NFC, unified newlines, invisible characters removed, spaces collapsed."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def _blank_line_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines; line breaks inside become spaces."""
    pars = [" ".join(block.split("\n")).strip() for block in re.split(r"\n\s*\n", text)]
    return [p for p in pars if p]
