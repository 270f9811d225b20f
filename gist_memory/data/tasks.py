"""Question-answer tasks over real text, shared by the trainer and the evaluation harness.

Every sample is a real document (``gist_memory.data.corpus``) cut to a target length, sometimes with
a planted sentence (a passkey or a synthetic fact), and a question whose reference answer is
short enough to score by containment:

- ``niah``: a 5-digit passkey sentence planted at a chosen depth (needle in a haystack).
- ``fact``: a sentence stating a fact about a person, place, object, time or quantity, and a
  question that paraphrases it. Phrasings are split: ``TRAIN`` templates are used for training,
  ``HELD_OUT`` ones never are, so evaluation on them measures generalisation.
- ``qa``: a cloze question on a sentence of the real text itself ("which word fills the blank").
- ``recon``: regenerate the beginning of the text (training only, as ICAE pretrains).

Builders are deterministic given their ``random.Random``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

PASSKEY_TEMPLATE = "The pass key is {key}. Remember it. {key} is the pass key."
PASSKEY_QUESTION = "What is the pass key?"
KO_PASSKEY_TEMPLATE = "비밀번호는 {key}입니다. 기억하세요. {key}이 비밀번호입니다."
KO_PASSKEY_QUESTION = "비밀번호는 무엇입니까?"


@dataclass
class Sample:
    """One question over one context. ``needle_position`` is the planted sentence's depth, 0..1."""

    id: str
    task: str
    context: str
    question: str
    answer: str
    needle: str | None = None
    needle_position: float | None = None
    source_id: str = ""
    meta: dict = field(default_factory=dict)


def trim_to_tokens(tokenizer, text: str, n_tokens: int) -> str:
    """The longest prefix of ``text`` with at most ``n_tokens`` tokens, ending at a sentence if possible."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n_tokens]
    cut = tokenizer.decode(ids)
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("? "), cut.rfind("! "))
    return cut[:end + 1] if end > len(cut) // 2 else cut


def plant(text: str, sentence: str, depth: float) -> str:
    """Insert ``sentence`` at the sentence boundary nearest to ``depth`` (0..1) of ``text``."""
    bounds = [m.end() for m in re.finditer(r"[.!?]\s+", text)] or [len(text)]
    target = depth * len(text)
    at = min([0] + bounds, key=lambda b: abs(b - target))
    return f"{text[:at]}{sentence} {text[at:]}" if at else f"{sentence} {text}"


def passkey_sample(rng: random.Random, text: str, depth: float, sample_id: str, source_id: str = "",
                   language: str = "en", digits: tuple[int, int] = (5, 5)) -> Sample:
    """Plant a pass key sentence (English or Korean) at ``depth`` and ask for the key: 5 digits, or
    a length drawn from ``digits`` (lo, hi) (the evaluation's keys are always 5 digits)."""
    n = digits[0] if digits[0] == digits[1] else rng.randint(*digits)  # (5, 5) draws as keys always did
    key = str(rng.randint(10 ** (n - 1), 10 ** n - 1))
    template, question = (PASSKEY_TEMPLATE, PASSKEY_QUESTION) if language == "en" else \
        (KO_PASSKEY_TEMPLATE, KO_PASSKEY_QUESTION)
    needle = template.format(key=key)
    return Sample(sample_id, "niah", plant(text, needle, depth), question, key, needle, depth, source_id)


# --------------------------------------------------------------------------- synthetic facts
FIRST = ["Amara", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiroshi", "Ingrid", "Jonas", "Keira",
         "Lukas", "Mei", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Stefan", "Tomas", "Ulla", "Viktor",
         "Wanda", "Xavier", "Yusuf", "Zofia", "Aiden", "Beatrix", "Cormac", "Delphine", "Emeka", "Fiona"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Alvarez", "Kowalski", "Brennan", "Haddad", "Novak",
        "Petrov", "Schmidt", "Rossi", "Nakamura", "Fischer", "Delacroix", "Mbeki", "Larsen", "Costa"]
CITIES = ["Lisbon", "Nairobi", "Osaka", "Valparaiso", "Tallinn", "Marrakesh", "Winnipeg", "Hobart", "Bergen",
          "Cusco", "Tbilisi", "Lyon", "Dakar", "Busan", "Krakow", "Adelaide", "Porto", "Quito", "Graz", "Izmir"]
COLORS = ["crimson", "teal", "amber", "violet", "olive", "turquoise", "maroon", "ivory", "indigo", "coral"]
OBJECTS = ["brass telescope", "silver locket", "red notebook", "old violin", "wooden chess set", "blue umbrella",
           "leather satchel", "copper kettle", "spare key", "family album", "pocket watch", "green lamp"]
PLACES = ["attic", "garden shed", "cellar", "top drawer of the desk", "hall cupboard", "glovebox of the car",
          "bookshelf in the study", "kitchen pantry", "blue suitcase", "piano bench"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ANIMALS = ["goats", "parrots", "horses", "rabbits", "cats", "beehives", "sheep", "ducks"]
JOBS = ["architect", "beekeeper", "cartographer", "dentist", "glassblower", "pilot", "surveyor", "violinist",
        "geologist", "baker", "translator", "locksmith"]


@dataclass(frozen=True)
class FactKind:
    """A kind of fact: statement and question phrasings, split into trained and held-out sets."""

    name: str
    statements: tuple[str, ...]
    questions: tuple[str, ...]
    held_out_statements: tuple[str, ...]
    held_out_questions: tuple[str, ...]


FACT_KINDS = (
    FactKind("birthplace",
             ("{person} was born in {city}.", "{person} comes from {city} and was born there.",
              "The birthplace of {person} is {city}.", "{city} is the city where {person} was born."),
             ("Where was {person} born?", "What is the birthplace of {person}?", "In which city was {person} born?"),
             ("Records show that {person} first saw the light of day in {city}.",),
             ("Which city is {person} originally from?", "Name the town {person} was born in.")),
    FactKind("color",
             ("{person}'s favourite colour is {color}.", "The colour {person} likes best is {color}.",
              "Of all colours, {person} prefers {color}."),
             ("What is {person}'s favourite colour?", "Which colour does {person} like best?"),
             ("Ask {person} about colours and the answer is always {color}.",),
             ("What colour would {person} pick above all others?",)),
    FactKind("location",
             ("The {object} is kept in the {place}.", "Someone put the {object} in the {place}.",
              "You will find the {object} in the {place}."),
             ("Where is the {object} kept?", "Where can the {object} be found?"),
             ("The {place} is where the {object} has been stored all along.",),
             ("If I want the {object}, where should I look?", "In what place is the {object}?")),
    FactKind("time",
             ("The meeting with {person} is on {day}.", "{person} has an appointment every {day}.",
              "{person} will arrive on {day}."),
             ("On which day is the meeting with {person}?", "What day does {person} come?"),
             ("Mark the calendar: {day} is the day {person} is expected.",),
             ("When is {person} expected, which day of the week?",)),
    FactKind("quantity",
             ("{person} owns {number} {animal}.", "There are {number} {animal} on {person}'s farm.",
              "{person} keeps {number} {animal}."),
             ("How many {animal} does {person} own?", "How many {animal} does {person} keep?"),
             ("Counting them all, {person}'s {animal} number {number}.",),
             ("What is the number of {animal} that belong to {person}?",)),
    FactKind("job",
             ("{person} works as a {job}.", "By profession, {person} is a {job}.",
              "{person} earns a living as a {job}."),
             ("What is {person}'s job?", "What does {person} do for a living?"),
             ("Every morning {person} goes off to work as a {job}.",),
             ("What is the occupation of {person}?",)),
)

_ANSWER_SLOT = {"birthplace": "city", "color": "color", "location": "place", "time": "day",
                "quantity": "number", "job": "job"}


def fact_sample(rng: random.Random, text: str, depth: float, sample_id: str, held_out: bool,
                source_id: str = "") -> Sample:
    """Plant one synthetic fact in ``text`` and ask about it in another phrasing.

    With ``held_out`` both the statement and the question use phrasings never used in training.
    """
    kind = rng.choice(FACT_KINDS)
    slots = {"person": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "city": rng.choice(CITIES),
             "color": rng.choice(COLORS), "object": rng.choice(OBJECTS), "place": rng.choice(PLACES),
             "day": rng.choice(DAYS), "number": str(rng.randint(3, 97)), "animal": rng.choice(ANIMALS),
             "job": rng.choice(JOBS)}
    statements = kind.held_out_statements if held_out else kind.statements
    questions = kind.held_out_questions if held_out else kind.questions
    needle = rng.choice(statements).format(**slots)
    question = rng.choice(questions).format(**slots)
    answer = slots[_ANSWER_SLOT[kind.name]]
    return Sample(sample_id, "fact", plant(text, needle, depth), question, answer, needle, depth, source_id,
                  {"kind": kind.name, "held_out_phrasing": held_out})


# --------------------------------------------------------------------------- cloze QA and reconstruction
_WORD = re.compile(r"(?<![\w'])([A-Z][a-z]{3,}|\d[\d,]*\d|[a-z]{7,})(?![\w'])")


def cloze_sample(rng: random.Random, text: str, sample_id: str, source_id: str = "") -> Sample | None:
    """Blank out one informative word (a name, a number or a long word) of a sentence of ``text``."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 40 <= len(s.strip()) <= 240]
    rng.shuffle(sentences)
    for sent in sentences:
        words = [m for m in _WORD.finditer(sent) if m.start() > 0]
        if words:
            m = rng.choice(words)
            blanked = f"{sent[:m.start()]}____{sent[m.end():]}"
            question = f'Which word fills the blank in this sentence from the text? "{blanked}"'
            return Sample(sample_id, "qa", text, question, m.group(1), sent, text.find(sent) / max(len(text), 1),
                          source_id)
    return None


def recon_sample(tokenizer, text: str, sample_id: str, n_tokens: int = 48, source_id: str = "") -> Sample:
    """Ask for the opening of the text back (first ``n_tokens`` tokens)."""
    return Sample(sample_id, "recon", text, "Repeat the beginning of the text word for word.",
                  trim_to_tokens(tokenizer, text, n_tokens), source_id=source_id)
