"""Out-of-domain evaluation text: the two genres reserved from training, read on this machine.

The trainer refuses these genres (``trainers.config.RESERVED_GENRES``) and nothing in
``gist_memory`` or ``trainers`` imports this module, so an adapter has never seen a line of them:

- **manual pages** (``man-pages``): the section-1 and section-8 pages under ``/usr/share/man`` (or
  ``$GIST_MAN_DIR``), their roff source turned into plain text here (no ``man`` or ``groff`` is
  run, so the text does not depend on their versions); the SYNOPSIS, which is command syntax
  rather than prose, is left out.
- **software package descriptions** (``package-descriptions``): the long description of every
  Python distribution installed in the running interpreter (``importlib.metadata``), with its
  one-line ``Summary`` as the reference of "what is this software for?".

Both are whatever this machine has installed, so a report names every document it used
(``source_id``); the same image and environment rebuild the same set for a seed.
"""

from __future__ import annotations

import gzip
import importlib.metadata as _metadata
import os
import re
from pathlib import Path

from gist_memory.data.corpus import SourceDocument

__all__ = ["SOFTWARE_QUESTIONS", "man_page_groups", "man_pages", "man_to_text", "package_descriptions",
           "read_man_page", "software_reference"]

#: Paraphrases of the theme question for a software description.
SOFTWARE_QUESTIONS = (
    "What is this software for?",
    "What does this software do?",
    "In one sentence, what is this package for?",
)

_MAN_SECTIONS = ("man1", "man8")
_MIN_CHARS = 2500  # about 600 tokens: shorter pages cannot hold a 1k-token haystack on their own


# --------------------------------------------------------------------------- manual pages
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes: \fB \fI \fR \fP \f(CW \f[CR]
    (re.compile(r"\\s[+-]?\d+"), ""),  # size changes
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),  # string interpolations
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),  # other named glyphs
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^%:]"), ""),  # zero-width marks
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\[nk](\(..|\[[^\]]*\]|.)"), ""),  # number registers, marks
    (re.compile(r"\\."), ""),  # anything else escaped
]
_TEXT_MACROS = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB"}
_BREAK_MACROS = {"PP", "LP", "P", "TP", "IP", "HP", "sp", "br", "TQ", "RS", "RE", "nf", "fi", "EX", "EE", "in"}


def _unescape(line: str) -> str:
    line = line.replace("\\\\", "\x00")
    for pattern, repl in _ESCAPES:
        line = pattern.sub(repl, line)
    return line.replace("\x00", "\\")


def _macro_args(rest: str) -> list[str]:
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]


def man_to_text(source: str) -> str:
    """Plain text of a roff manual page: headings and prose, paragraphs split by blank lines.

    Comments, requests that only format (``.TH``, ``.ad``, ``.de`` blocks ...) and the SYNOPSIS
    section are dropped; text macros (``.B``, ``.IR`` ...) keep their words; escapes become the
    characters they stand for, or nothing.
    """
    paragraphs: list[list[str]] = [[]]
    section = ""
    in_def = False
    for raw in source.splitlines():
        if in_def:
            in_def = not raw.startswith("..")
            continue
        if raw.startswith((".\\\"", "'\\\"", "\\\"")):  # comments
            continue
        words = ""
        if raw.startswith((".", "'")):
            name, _, rest = raw[1:].strip().partition(" ")
            if name in ("de", "de1", "am", "ig"):
                in_def = True
                continue
            if name in ("SH", "SS"):
                heading = " ".join(_macro_args(_unescape(rest)))
                section = heading.upper() if name == "SH" else section
                if section != "SYNOPSIS":
                    paragraphs += [[heading.capitalize() + "."], []]
                else:
                    paragraphs.append([])
                continue
            if name in _BREAK_MACROS:
                paragraphs.append([])
                words = " ".join(_macro_args(_unescape(rest))) if name == "IP" else ""  # .IP's tag
                if not words:
                    continue
            elif name in _TEXT_MACROS:
                words = " ".join(_macro_args(_unescape(rest)))
            else:
                continue
        else:
            words = _unescape(raw)
        if section == "SYNOPSIS":
            continue
        words = " ".join(words.split())
        if words:
            paragraphs[-1].append(words)
    text = "\n\n".join(" ".join(p) for p in paragraphs if p)
    return re.sub(r"[ \t]+", " ", text).strip()


def _man_root() -> Path:
    return Path(os.environ.get("GIST_MAN_DIR", "/usr/share/man"))


def _command(path: Path) -> str:
    """The command a page belongs to: ``gcloud`` for ``gcloud_storage_restore.1.gz``."""
    return re.split(r"[_.-]", path.name, maxsplit=1)[0].lower()


def man_page_groups(root: str | Path | None = None) -> dict[str, list[Path]]:
    """The page files of sections 1 and 8 under ``root`` (default ``$GIST_MAN_DIR`` or
    ``/usr/share/man``), grouped by command and sorted, so that a draw of one page per command
    keeps one tool with hundreds of pages (``gcloud``) from making up the whole set."""
    root = Path(root) if root is not None else _man_root()
    groups: dict[str, list[Path]] = {}
    for section in _MAN_SECTIONS:
        folder = root / section
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    groups.setdefault(_command(path), []).append(path)
    return groups


def read_man_page(path: Path, min_chars: int = _MIN_CHARS) -> SourceDocument | None:
    """One manual page as a document, or None when it is shorter than ``min_chars`` of prose,
    only points at another page (``.so``), or cannot be read."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    source = raw.decode("utf-8", errors="replace")
    if source.lstrip().startswith(".so "):
        return None
    text = man_to_text(source)
    if len(text) < min_chars:
        return None
    name = path.name[:-3] if path.suffix == ".gz" else path.name
    return SourceDocument(f"man-{path.parent.name}-{name}", f"manual page {name}", text, "en",
                          f"man-pages:{path.parent.name}/{name}")


def man_pages(rng, count: int, min_chars: int = _MIN_CHARS, root: str | Path | None = None,
              minimum: int | None = None) -> list[SourceDocument]:
    """Up to ``count`` manual pages drawn with ``rng``: commands in a seeded order, one page of each.

    Raises ValueError when the machine has fewer than ``minimum`` (default ``count``) usable
    pages; the message says where it looked.
    """
    needed = count if minimum is None else minimum
    groups = man_page_groups(root)
    commands = sorted(groups)
    rng.shuffle(commands)
    docs: list[SourceDocument] = []
    for command in commands:
        doc = read_man_page(rng.choice(groups[command]), min_chars)
        if doc is not None:
            docs.append(doc)
            if len(docs) == count:
                return docs
    if len(docs) >= needed:
        return docs
    where = Path(root) if root is not None else _man_root()
    raise ValueError(f"found {len(docs)} manual pages of at least {min_chars} characters under "
                     f"{where}/man1 and man8, {needed} needed; install man pages or set GIST_MAN_DIR")


# --------------------------------------------------------------------------- package descriptions
_BADGE = re.compile(r"^\s*(\[!\[|!\[|\.\. (image|figure|\|)|<img|<a |<p |</?div|</?picture|<source)", re.I)
_CODE_FENCE = re.compile(r"^\s*(```|~~~)")


def _description_text(body: str) -> str:
    """A long description as prose: badges, images, HTML lines and fenced code blocks removed."""
    lines, in_code = [], False
    for line in body.splitlines():
        if _CODE_FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or _BADGE.match(line):
            continue
        line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)  # markdown links keep their words
        line = re.sub(r"<[^>]+>", "", line)
        lines.append(line.rstrip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip()


def software_reference(name: str, summary: str) -> str:
    """The reference answer of "what is this software for?": the distribution's own summary."""
    summary = summary.strip().rstrip(".")
    return f"{name} is software for this: {summary}."


_OWN = {"gist-memory"}  # this project's own README is no test of reading unseen text


def package_descriptions(min_chars: int = _MIN_CHARS) -> list[tuple[SourceDocument, str]]:
    """(document, reference) for each distribution installed in this interpreter whose long
    description has at least ``min_chars`` characters of prose and that has a summary, the
    reference being :func:`software_reference`; sorted by name, one per distribution name."""
    seen: dict[str, tuple[SourceDocument, str]] = {}
    for dist in _metadata.distributions():
        meta = dist.metadata
        name = (meta.get("Name") or "").strip()
        key = name.lower()
        summary = (meta.get("Summary") or "").strip()
        if not name or not summary or summary.upper() == "UNKNOWN" or key in seen or key in _OWN:
            continue
        body = meta.get_payload() if hasattr(meta, "get_payload") else None
        text = _description_text(str(body or meta.get("Description") or ""))
        if len(text) < min_chars:
            continue
        seen[key] = (SourceDocument(f"pkg-{key}", f"package {name}", text, "en", f"package-descriptions:{key}"),
                     software_reference(name, summary))
    return [seen[k] for k in sorted(seen)]
