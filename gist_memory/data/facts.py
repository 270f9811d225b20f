"""Open-vocabulary synthetic facts: many kinds, many phrasings, values nobody can guess.

The first fact task (``tasks.fact_sample``) drew its answers from short lists (20 cities, 10
colours, 7 days): a model can learn to pick from the list instead of reading its context, and out
of domain it answered "Tallinn" where the text said "Marseille". Here every value is generated
(invented names and places, numbers of 1-8 digits, codes, clock times, dates, quantities with
units), so the only way to the answer is the text.

A kind pairs a value generator with attribute nouns and phrasings. Whole kinds are held out
(:data:`HELD_OUT_KINDS`): the trainer never plants them, so evaluation on them measures reading,
not the memory of a relation seen in training.
"""

from __future__ import annotations

import random
import string
import zlib
from dataclasses import dataclass
from typing import Callable

from .tasks import _ANSWER_SLOT, ANIMALS, CITIES, COLORS, DAYS, FACT_KINDS, FIRST, JOBS, LAST, OBJECTS, PLACES, Sample, plant

_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kl", "l", "m", "n", "p", "pr",
           "r", "s", "sh", "st", "t", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_CODAS = ["", "", "n", "r", "l", "s", "m", "th", "nd", "rk", "x"]
_PLACE_ENDS = ["holm", "ford", "ville", "burg", "ovo", "stad", "mouth", "wick", "ara", "heim", "port", "dale"]
_BASE_COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "grey", "black",
                 "white", "teal", "amber", "violet", "olive", "maroon", "ivory", "indigo", "coral",
                 "crimson", "ochre", "magenta", "cyan", "beige", "lilac", "silver", "gold", "rust"]
_SHADES = ["pale", "deep", "dusty", "bright", "dark", "light", "muted", "warm", "cool", "smoky"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_ADJECTIVES = ["brass", "wooden", "glass", "copper", "velvet", "striped", "folding", "antique", "tiny",
               "heavy", "painted", "silver", "woollen", "cracked", "carved", "enamel", "paper", "iron"]
_NOUNS = ["lantern", "compass", "kettle", "clock", "mirror", "drum", "flute", "globe", "stool", "basket",
          "spoon", "teapot", "whistle", "hammer", "bell", "chest", "vase", "scarf", "map", "jar"]
_UNITS = ["kg", "metres", "litres", "grams", "km", "hours", "minutes", "tonnes", "centimetres", "pounds"]


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def invented_name(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    """A pronounceable capitalised word that is in no list: 'Drailmor', 'Kouvesta'."""
    return "".join(_syllable(rng) for _ in range(rng.randint(*syllables))).capitalize()


def person(rng: random.Random) -> str:
    return f"{invented_name(rng, (1, 2))} {invented_name(rng, (2, 3))}"


def _number(rng: random.Random) -> str:
    digits = rng.randint(1, 8)
    return str(rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1))


def _code(rng: random.Random) -> str:
    parts = ["".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(rng.randint(2, 4)))
             for _ in range(rng.randint(1, 3))]
    return "-".join(parts)


def _colour(rng: random.Random) -> str:
    base = rng.choice(_BASE_COLOURS)
    return f"{rng.choice(_SHADES)} {base}" if rng.random() < 0.5 else base


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.choice(range(0, 60, rng.choice([1, 5, 15]))):02d}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(1700, 2099)}"


def _object(rng: random.Random) -> str:
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"


def _quantity(rng: random.Random) -> str:
    value = rng.randint(2, 999) if rng.random() < 0.6 else round(rng.uniform(0.5, 99.9), 1)
    return f"{value} {rng.choice(_UNITS)}"


def _place(rng: random.Random) -> str:
    return invented_name(rng, (1, 2)) + rng.choice(_PLACE_ENDS)


def _combination(rng: random.Random) -> str:
    return "-".join(str(rng.randint(0, 59)) for _ in range(3))


def _frequency(rng: random.Random) -> str:
    return f"{round(rng.uniform(87.5, 108.0), 1)} MHz"


@dataclass(frozen=True)
class OpenFactKind:
    """A kind of fact: how its value is drawn, what it is called, how it is stated and asked.

    Templates use ``{owner}``, ``{attr}`` and ``{value}``.
    """

    name: str
    value: Callable[[random.Random], str]
    attributes: tuple[str, ...]
    statements: tuple[str, ...]
    questions: tuple[str, ...]


_HAS = ("{owner}'s {attr} is {value}.", "The {attr} of {owner} is {value}.",
        "For the record, {owner} gave {value} as the {attr}.", "{value} is the {attr} of {owner}.",
        "It was noted that the {attr} belonging to {owner} is {value}.",
        "Everyone knew {owner}'s {attr}: {value}.")
_ASK = ("What is {owner}'s {attr}?", "What is the {attr} of {owner}?", "Tell me the {attr} of {owner}.",
        "Which {attr} does {owner} have?", "What {attr} was given for {owner}?")

KINDS = (
    OpenFactKind("number", _number, ("badge number", "room number", "account number", "ticket number",
                                     "order number", "seat number", "case number", "membership number"),
                 _HAS, _ASK),
    OpenFactKind("code", _code, ("access code", "reference code", "booking code", "serial code",
                                 "voucher code", "project code"), _HAS, _ASK),
    OpenFactKind("person", person, ("doctor", "lawyer", "landlord", "tutor", "business partner", "neighbour",
                                    "manager", "cousin"),
                 _HAS + ("{owner} hired {value} as a {attr}.",),
                 _ASK + ("Who is {owner}'s {attr}?", "Who is the {attr} of {owner}?")),
    OpenFactKind("place", _place, ("home town", "birthplace", "destination", "winter residence",
                                   "favourite village"),
                 _HAS + ("{owner} always returned to {value}, the {attr}.",),
                 _ASK + ("Where is {owner}'s {attr}?",)),
    OpenFactKind("colour", _colour, ("favourite colour", "car colour", "door colour", "coat colour"),
                 _HAS + ("{owner} painted it {value}: that is the {attr}.",), _ASK),
    OpenFactKind("time", _time, ("meeting time", "alarm time", "departure time", "opening time"),
                 _HAS + ("{owner} set the {attr} to {value}.",),
                 _ASK + ("At what time is {owner}'s {attr}?", "When is {owner}'s {attr}?")),
    OpenFactKind("date", _date, ("wedding date", "start date", "deadline", "anniversary"),
                 _HAS + ("{owner} marked {value} as the {attr}.",),
                 _ASK + ("When is {owner}'s {attr}?", "On what date is the {attr} of {owner}?")),
    OpenFactKind("object", _object, ("lucky charm", "prized possession", "birthday present",
                                     "missing item"),
                 _HAS + ("{owner} treasured a {value}, the {attr}.",), _ASK),
    OpenFactKind("quantity", _quantity, ("daily allowance", "load limit", "recorded distance",
                                         "measured weight"), _HAS, _ASK),
    # held-out kinds: relations and value shapes the trainer never plants
    OpenFactKind("pet", lambda rng: invented_name(rng, (2, 2)), ("dog", "cat", "parrot", "pony"),
                 ("{owner} has a {attr} called {value}.", "The {attr} that lives with {owner} is named {value}."),
                 ("What is the name of {owner}'s {attr}?", "What is {owner}'s {attr} called?")),
    OpenFactKind("combination", _combination, ("locker combination", "safe combination"),
                 ("The {attr} of {owner} is {value}.", "{owner} opens the lock with the {attr} {value}."),
                 ("What is {owner}'s {attr}?", "Which {attr} does {owner} use?")),
    OpenFactKind("frequency", _frequency, ("radio frequency", "station frequency"),
                 ("{owner} listens on the {attr} {value}.", "The {attr} {owner} tunes to is {value}."),
                 ("What {attr} does {owner} tune to?", "Which {attr} does {owner} listen on?")),
    OpenFactKind("dock", lambda rng: str(rng.randint(1, 299)), ("dock number", "berth number"),
                 ("{owner}'s boat is moored at {attr} {value}.", "Look for {owner} at {attr} {value}."),
                 ("At which {attr} is {owner}'s boat?", "What is {owner}'s {attr}?")),
)

HELD_OUT_KINDS = ("pet", "combination", "frequency", "dock")
TRAIN_KINDS = tuple(k.name for k in KINDS if k.name not in HELD_OUT_KINDS)
_BY_NAME = {k.name: k for k in KINDS}


@dataclass(frozen=True)
class OpenFact:
    """One planted fact: the sentence, a question about it and the answer."""

    kind: str
    needle: str
    question: str
    answer: str
    owner: str = ""


#: Ask for a planted sentence back, word for word, by the person it names (the trainer's
#: ``quote`` task: a target that holds the value in its own format, whatever its kind).
QUOTE_QUESTIONS = ("Repeat word for word the sentence about {owner}.",
                   "Quote the sentence that mentions {owner}.",
                   "What exactly does the text say about {owner}? Quote it.")


def quote_question(fact: OpenFact) -> str:
    """A question whose answer is ``fact.needle`` verbatim; the phrasing is a function of the fact
    (no random draw, so adding quote questions leaves every other draw of a builder unchanged)."""
    return QUOTE_QUESTIONS[zlib.crc32(fact.needle.encode()) % len(QUOTE_QUESTIONS)].format(owner=fact.owner)


def open_fact(rng: random.Random, held_out_kind: bool = False) -> OpenFact:
    """Draw a fact of a trained kind, or (``held_out_kind``) of a kind training never plants."""
    kind = _BY_NAME[rng.choice(HELD_OUT_KINDS if held_out_kind else TRAIN_KINDS)]
    slots = {"owner": person(rng), "attr": rng.choice(kind.attributes), "value": kind.value(rng)}
    needle = rng.choice(kind.statements).format(**slots)
    return OpenFact(kind.name, needle[0].upper() + needle[1:], rng.choice(kind.questions).format(**slots),
                    slots["value"], slots["owner"])


def open_fact_sample(rng: random.Random, text: str, depth: float, sample_id: str, held_out_kind: bool = False,
                     source_id: str = "") -> Sample:
    """Plant one open-vocabulary fact in ``text`` at ``depth`` and ask about it (task ``fact``)."""
    fact = open_fact(rng, held_out_kind)
    return Sample(sample_id, "fact", plant(text, fact.needle, depth), fact.question, fact.answer, fact.needle,
                  depth, source_id, {"kind": fact.kind, "held_out_kind": held_out_kind})


# --------------------------------------------------------------------------- the relations of tasks.FACT_KINDS
_CONTAINERS = ["cupboard", "drawer", "trunk", "cabinet", "crate", "wardrobe", "locker", "sideboard", "toolbox",
               "hatbox", "dresser", "coal shed", "sewing box", "bread bin"]
_LISTED_PEOPLE = [f"{first} {last}" for first in FIRST for last in LAST]  # the 576 names of tasks.fact_sample
_MORE_JOBS = ["nurse", "plumber", "tailor", "chemist", "farrier", "auditor", "florist", "jeweller", "mason",
              "potter", "ranger", "welder", "curator", "notary", "chef", "librarian", "optician", "weaver"]


def _either(rng: random.Random, listed: list[str], drawn: Callable[[random.Random], str]) -> str:
    """A value from the relation's short list or, as often, one drawn from an open vocabulary."""
    return rng.choice(listed) if rng.random() < 0.5 else drawn(rng)


def relation_fact(rng: random.Random) -> OpenFact:
    """A fact of one of the relations of :data:`tasks.FACT_KINDS` (birthplace, colour, where an
    object is kept, the day of a meeting, how many animals, a job), in its *trained* phrasings
    only (the held-out ones stay for evaluation), with values half from the relation's short list
    and half open-vocabulary (invented towns, shaded colours, invented objects and containers,
    numbers 2-999, more jobs), so the list is no shortcut. ``owner`` is the person (or the object,
    for a location), the name a quote question asks by."""
    kind = rng.choice(FACT_KINDS)
    slots = {"person": _either(rng, _LISTED_PEOPLE, person),
             "city": _either(rng, CITIES, _place), "color": _either(rng, COLORS, _colour),
             "object": _either(rng, OBJECTS, _object),
             "place": _either(rng, PLACES, lambda r: f"{r.choice(_ADJECTIVES)} {r.choice(_CONTAINERS)}"),
             "day": rng.choice(DAYS), "number": str(rng.randint(2, 999)), "animal": rng.choice(ANIMALS),
             "job": _either(rng, JOBS, lambda r: r.choice(_MORE_JOBS))}
    needle = rng.choice(kind.statements).format(**slots)
    owner = slots["object"] if kind.name == "location" else slots["person"]
    return OpenFact(f"relation-{kind.name}", needle[0].upper() + needle[1:],
                    rng.choice(kind.questions).format(**slots), slots[_ANSWER_SLOT[kind.name]], owner)


# --------------------------------------------------------------------------- facts of any kind
# A fact whose relation and value shape are themselves drawn (the trainer's task ``generic``):
# the nine kinds above are nine relations with nine value shapes, and an adapter trained on them
# learns each kind's answer shape (a new kind's "44-49-5" came back as "4458", "97.4 MHz" as
# "985"). Here the attribute is a modifier and a noun, the value one of many shapes, so a value
# can only be copied. The held-out kinds stay held out: none of their attribute words or
# relations (pets, locks, radio, moorings), no value of three hyphen-joined numbers (a
# combination's shape) and no hertz (a frequency's). A dock's number and a pet's name share their
# shapes with trained kinds already (numbers, invented names), as before.
_MODIFIERS = ["spare", "backup", "office", "garden", "winter", "summer", "travel", "workshop", "library",
              "bank", "gym", "school", "ferry", "hotel", "storage", "parking", "laboratory", "archive",
              "family", "club", "studio", "kitchen", "warehouse", "clinic", "theatre", "market", "farm",
              "chapel", "museum", "railway", "harbour office", "village hall", "night shift", "tram",
              "allotment", "bakery", "observatory", "boathouse", "printing", "weather"]
_ATTR_NOUNS = ["number", "code", "password", "label", "tag", "nickname", "signal", "plate", "key number",
               "token", "mark", "setting", "reading", "figure", "address", "motto", "symbol", "rate",
               "budget", "score", "record", "serial", "pin", "level", "quota", "password hint", "badge",
               "extension", "postcode", "call sign", "ledger entry", "stamp", "marker", "shelf mark"]
_HELD_OUT_WORDS = ("combination", "frequency", "dock", "berth", "dog", "cat", "parrot", "pony", "radio", "station")
_GENERIC_UNITS = ["kg", "g", "mg", "m", "cm", "mm", "km", "litres", "ml", "%", "degrees", "volts", "watts",
                  "amps", "bar", "psi", "knots", "acres", "hectares", "pages", "points", "calories", "seconds",
                  "days", "weeks", "years", "feet", "inches", "miles", "ounces", "pints", "bytes", "MB",
                  "pixels", "euros", "dollars", "crowns", "shillings", "tickets", "boxes", "sheets", "rounds"]
_CURRENCIES = ["$", "£", "€", "¥"]
_SEPARATORS = ["-", "/", ".", ":", " ", "_", "x", "#", "+"]
_GENERIC_HAS = _HAS + (
    "{owner} wrote down {value} as the {attr}.", "According to the records, {owner}'s {attr} reads {value}.",
    "The {attr} on file for {owner}: {value}.", "{owner} chose {value} for the {attr}.",
    "Ask {owner} and you will hear that the {attr} is {value}.", "{owner} keeps {value} as the {attr}.",
    "Under {attr}, the form for {owner} says {value}.", "{owner} confirmed the {attr}, {value}, twice.")
_GENERIC_ASK = _ASK + ("What did {owner} give as the {attr}?", "What does {owner}'s {attr} read?",
                       "Which value is {owner}'s {attr}?", "What was recorded as the {attr} of {owner}?",
                       "Name the {attr} of {owner}.")


def _digits(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(rng.randint(lo, hi)))


def _grouped(rng: random.Random, open_shapes: bool = False) -> str:
    sep = rng.choice(_SEPARATORS)
    # unless open_shapes, never a combination's 3 hyphen groups
    groups = rng.randint(2, 4) if sep != "-" or open_shapes else rng.choice((2, 4))
    return sep.join(_digits(rng, 1, 4) for _ in range(groups))


def _alnum(rng: random.Random) -> str:
    alphabet = rng.choice((string.ascii_uppercase + string.digits, string.ascii_lowercase + string.digits,
                           string.ascii_letters + string.digits))
    parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(1, 3))]
    return rng.choice(["-", "", ".", "/"]).join(parts)


def _measure(rng: random.Random) -> str:
    value = rng.choice((str(rng.randint(1, 99999)), f"{rng.uniform(0, 999):.{rng.randint(1, 3)}f}",
                        f"-{rng.randint(1, 99)}", f"{rng.randint(1, 999)},000"))
    unit = rng.choice(_GENERIC_UNITS)
    return f"{value}{unit}" if unit == "%" else f"{value} {unit}"


def _money(rng: random.Random) -> str:
    amount = rng.choice((f"{rng.randint(1, 9999):,}", f"{rng.uniform(0, 999):.2f}"))
    return f"{rng.choice(_CURRENCIES)}{amount}"


def _words(rng: random.Random) -> str:
    words = [invented_name(rng, (1, 3)) for _ in range(rng.randint(1, 3))]
    return " ".join(w if rng.random() < 0.5 else w.lower() for w in words)


def _word_and_number(rng: random.Random) -> str:
    return f"{invented_name(rng, (1, 2))} {rng.randint(1, 9999)}{rng.choice(['', '', 'A', 'B', 'c'])}"


_SHAPES = (_grouped, _alnum, _measure, _money, _words, _word_and_number, _number, _code, _date, _time)


def generic_fact(rng: random.Random, open_shapes: bool = False) -> OpenFact:
    """A fact of a drawn relation ("Kel Drom's ferry call sign is 71/0/388."): attribute, value
    shape, statement and question all drawn, none of the held-out kinds' words. Nor their value
    shapes, unless ``open_shapes``: then digit groups may also come in threes joined by hyphens (a
    combination's shape, among every other count and separator); the held-out kinds stay out by
    their words and relations, which is what "a kind never trained" means."""
    attr = f"{rng.choice(_MODIFIERS)} {rng.choice(_ATTR_NOUNS)}"
    shape = rng.choice(_SHAPES)
    value = shape(rng, open_shapes=True) if open_shapes and shape is _grouped else shape(rng)
    slots = {"owner": person(rng), "attr": attr, "value": value}
    needle = rng.choice(_GENERIC_HAS).format(**slots)
    if not needle.startswith(slots["value"]):  # a value keeps its case ("eP1b is ...": exact copy is the point)
        needle = needle[0].upper() + needle[1:]
    return OpenFact("generic", needle, rng.choice(_GENERIC_ASK).format(**slots),
                    slots["value"], slots["owner"])
