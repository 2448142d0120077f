"""When the documents disagree: compare the top answers by value, across documents (pure functions).

Amounts (:func:`parse_amount`: 'US$1,200 million' is 1.2e9 US dollars; 'about 30', 'over 17,000', '17,000–18,000'
are intervals), dates (:func:`parse_date`: a year, a month and year or a day; relative dates are not comparable)
and names (:func:`parse_name`: case, punctuation, 'the' and possessives set aside). The same value written two
ways is one answer (:func:`merge_same_values`); different values from different documents are a
:class:`~rag.types.Conflict` (:func:`find_conflict`, where the rule is). A value that cannot be parsed is never
part of either. A false alarm is worse than a miss, so the rule is narrow; its constants were chosen on data
built for them (``python eval/conflicts.py --dev``: the planted corpus ``tests/data/conflicts/`` and the SQuAD
sample ``eval/data/squad2-dev-sample.json``, whose documents do not disagree), not on the seeds' gold set.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from rag.reader.entities import entity_kind
from rag.reader.quantities import _MONTH, _NUM, _SCALE
from rag.reader.spans import DESCRIBE_NAME, question_type
from rag.text import stem, terms
from rag.types import Answer, Citation, Conflict, ConflictKind

# An answer is a live candidate when it scores at least this fraction of the best answer. With the learned
# reader the planted disagreements' other answers scored 0.55-1.00 of the best, and 0.6 misses one; 0.5 keeps
# room for a re-exported model. Lower adds false alarms on the SQuAD sample (0.3: 9 questions, 0.5: 7).
LIVE_FRACTION = 0.5
# An answer answers the same question as the best one when its quotes hold at least this fraction of the
# question's words that the best answer's quotes hold: 'Finance Minister Ana Petrov said ...' does not
# answer "Who is Norland's interior minister?" as 'Norland's interior minister, Tomas Brandt, ...' does
# (with 3 such words none may be missing, with 4 or more one may). Without it (0) two planted ministers
# are false alarms (they scored 0.62 and 0.84 of the best) and the SQuAD sample has 13, not 7.
COVERAGE = 0.75
# Amounts whose intervals are closer than this (relative) are rounding ('1.2 billion', '1,234 million').
TOLERANCE = 0.05


# ------------------------------------------------------------------------------------------- text
def _clean(text: str) -> str:
    """NFKC, one kind of apostrophe and dash, single spaces, no surrounding punctuation."""
    t = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    t = re.sub(r"[\u2010-\u2015\u2212]", "-", t)
    return " ".join(t.split()).strip(" .,;:!?\"'()[]")


# ------------------------------------------------------------------------------------------- amounts
@dataclass(frozen=True)
class Amount:
    """A quantity as the interval ``[low, high]`` it states ('about 30' is 27..33, 'over 17,000' 17,000..inf)."""

    low: float
    high: float
    currency: str | None  # ISO code; "$": a dollar of an unstated country; "¥": yen or yuan; None: no money
    unit: str | None  # "percent", "tonn" (stemmed), ...; None: a bare number or sum of money
    exact: bool  # one figure, without 'about', 'over' or a range

    @property
    def explicit(self) -> bool:
        """Whether the currency is stated ('US$', 'A$', '€'), not only a '$' or '¥'."""
        return self.currency is not None and self.currency not in ("$", "¥")


_DOLLARS = {"US": "USD", "A": "AUD", "AU": "AUD", "C": "CAD", "CA": "CAD", "NZ": "NZD", "HK": "HKD", "S": "SGD"}
_SYMBOLS = {"€": "EUR", "£": "GBP", "¥": "¥", "₹": "INR", "$": "$"}
_CODES = "USD EUR GBP AUD CAD NZD HKD SGD JPY CNY RMB INR CHF".split()
_CURRENCY_WORDS = {"us dollars": "USD", "australian dollars": "AUD", "canadian dollars": "CAD", "dollars": "$"}
_CURRENCY_WORDS |= {"euros": "EUR", "euro": "EUR", "pounds": "GBP", "pounds sterling": "GBP", "yen": "JPY"}
_CURRENCY_WORDS |= {"yuan": "CNY", "renminbi": "CNY", "rupees": "INR"}
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}
_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
_WORD_NUMBERS = {w: i for i, w in enumerate(f"{_NUMBER_WORDS} sixteen seventeen eighteen nineteen twenty".split())}
_WORD_NUMBERS |= {w: 10 * i for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)}
_WORD_NUMBERS |= {"a dozen": 12, "a hundred": 100, "hundred": 100, "a thousand": 1000}
# qualifier -> (low factor, high factor) around the stated figure
_QUALIFIERS = {
    **dict.fromkeys(["about", "around", "roughly", "approximately", "some", "an estimated", "estimated"], (0.9, 1.1)),
    **dict.fromkeys(["nearly", "almost", "close to", "just under"], (0.9, 1.0)),
    **dict.fromkeys(["over", "more than", "above", "at least", "just over", "upwards of"], (1.0, float("inf"))),
    **dict.fromkeys(["under", "less than", "below", "up to", "at most"], (0.0, 1.0)),
    **dict.fromkeys(["only", "just", "exactly"], (1.0, 1.0)),
}


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


_FIGURE = rf"(?:{_NUM}|{_alternation(_WORD_NUMBERS)})"
_CURRENCY_BEFORE = rf"(?:(?:{'|'.join(_DOLLARS)})?\$|[€£¥₹]|(?:{'|'.join(_CODES)})\b)"
_AMOUNT_RE = re.compile(
    rf"""(?ix)
    (?:(?P<q>{_alternation(_QUALIFIERS)}|between)\s+)?
    (?P<cur>{_CURRENCY_BEFORE})?\s*
    (?P<n1>{_FIGURE})(?:\s*(?P<s1>{_SCALE})\b)?
    (?:\s*(?P<sep>-|to|and)\s*(?:{_CURRENCY_BEFORE})?\s*(?P<n2>{_FIGURE})(?:\s*(?P<s2>{_SCALE})\b)?)?
    (?:\s*(?P<pct>%|percent|per\s+cent))?
    (?:\s+(?P<curw>{_alternation(_CURRENCY_WORDS)}))?
    (?:\s+(?P<unit>[a-z][a-z\-]*(?:\s+[a-z][a-z\-]*)?))?
    """
)
_UNIT_ALIASES = {"ton": "tonn", "t": "tonn"}  # stemmed: tonne, tonnes -> tonn


def _figure(text: str) -> float:
    t = " ".join(text.lower().split())
    return float(_WORD_NUMBERS[t]) if t in _WORD_NUMBERS else float(t.replace(",", ""))


def _currency_code(symbol: str | None) -> str | None:
    s = (symbol or "").strip()
    if s.endswith("$"):
        return _DOLLARS.get(s[:-1].upper(), "$")
    return _SYMBOLS.get(s) or {"RMB": "CNY", "": None}.get(s.upper(), s.upper())


def _unit(text: str | None) -> str | None:
    return " ".join(_UNIT_ALIASES.get(stem(w), stem(w)) for w in text.lower().split()) if text else None


@lru_cache(maxsize=4096)
def parse_amount(text: str) -> Amount | None:
    """The quantity an answer states, or None when it is not just one ('$1.2 billion' → 1.2e9, currency "$";
    'US$1,200 million' → 1.2e9 USD; 'A$1.2 billion' → AUD; 'over 17,000 tonnes' → 17,000..inf tonnes;
    '12%' → 12 percent; 'seven categories' → 7 'category'). Anything around it but a unit of one or two words
    ('US$1,200 million over five years'), a vague count ('dozens') or a year alone makes it None."""
    t = _clean(text)
    m = _AMOUNT_RE.fullmatch(t)
    if m is None or ((m.group("q") or "").lower() == "between") != (m.group("sep") == "and"):
        return None  # 'between 1 and 2' is a range, '1 and 2' is not
    if re.fullmatch(r"(?:1[5-9]|20)\d\d", m.group("n1")) and not (m.group("cur") or m.group("unit") or m.group("s1")):
        return None  # a year is a date
    scale1, scale2 = (_SCALES[m[g].lower()] if m[g] else None for g in ("s1", "s2"))
    low = _figure(m.group("n1")) * (scale1 or scale2 or 1.0)  # '1.2-1.5 billion': the scale of both
    high = _figure(m.group("n2")) * (scale2 or scale1 or 1.0) if m.group("n2") else low
    if high < low:
        return None
    lo_f, hi_f = _QUALIFIERS.get(" ".join((m["q"] or "").lower().split()), (1.0, 1.0))
    currency = _currency_code(m["cur"]) or _CURRENCY_WORDS.get(" ".join((m["curw"] or "").lower().split()))
    if m["pct"] and m["unit"]:
        return None  # '12% of exports': a share of something else
    unit = "percent" if m["pct"] else _unit(m["unit"])
    exact = not m.group("n2") and (lo_f, hi_f) == (1.0, 1.0)
    return Amount(low * lo_f, high * hi_f, currency, unit, exact)


_STATED = [
    (re.compile(r"\bUS\$|\bUSD\b|\bU\.?S\.? dollars?\b", re.I), "USD"),
    (re.compile(r"\bA\$|\bAUD\b|\bAustralian dollars?\b", re.I), "AUD"),
    (re.compile(r"\bC\$|\bCAD\b|\bCanadian dollars?\b", re.I), "CAD"),
    (re.compile(r"\bNZ\$|\bNZD\b|\bNew Zealand dollars?\b", re.I), "NZD"),
]


def stated_dollar(quotes: Iterable[str]) -> str | None:
    """The one dollar currency the sentences around an answer state ('US$', 'Australian dollars'), if any."""
    found = {code for q in quotes for pattern, code in _STATED if pattern.search(q)}
    return found.pop() if len(found) == 1 else None


def _same_currency(a: str | None, b: str | None) -> bool:
    return a == b or a is None or b is None


def _compatible_currency(a: str | None, b: str | None) -> bool:
    """Could be the same currency: equal, one unstated, or a bare '$' (or '¥') beside a dollar (or yen, yuan)."""
    pair = {a, b}
    dollars = "$" in pair and all(c == "$" or (c or "").endswith("D") for c in pair)
    return _same_currency(a, b) or dollars or pair in ({"¥", "JPY"}, {"¥", "CNY"})


def _units_match(a: Amount, b: Amount) -> bool:
    return a.unit == b.unit or a.unit is None or b.unit is None


def same_amount(a: Amount, b: Amount) -> bool:
    """The same figure written two ways: both exact and equal, in a currency and unit that may be the same."""
    equal = a.exact and b.exact and abs(a.low - b.low) <= 1e-9 * max(abs(a.low), 1.0)
    return equal and _units_match(a, b) and _compatible_currency(a.currency, b.currency)


def amounts_differ(a: Amount, b: Amount) -> str | None:
    """How two amounts disagree: "value" (intervals apart by more than :data:`TOLERANCE`, one currency),
    "currency" (the same figure in two stated currencies), or None (agree, one contains the other, or they
    cannot be compared: other units, or currencies that may differ: '$' beside 'A$', 'A$' beside 'US$800m')."""
    if not _units_match(a, b):
        return None
    if a.explicit and b.explicit and a.currency != b.currency:
        return "currency" if a.exact and b.exact and a.low == b.low else None
    if not _same_currency(a.currency, b.currency):
        return None
    if a.high * (1 + TOLERANCE) < b.low or b.high * (1 + TOLERANCE) < a.low:
        return "value"
    return None


# ------------------------------------------------------------------------------------------- dates
@dataclass(frozen=True)
class DateValue:
    """A calendar date as precise as it is written: a year, a month (and year), or a day."""

    year: int | None
    month: int | None = None
    day: int | None = None
    part: str | None = None  # "early", "mid", "late": of the year or month, so not one day


_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_DAY_NAME = r"(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?"
_ORD = r"(?:st|nd|rd|th)?"
_DATE_RE = re.compile(
    rf"""(?ix)
    (?:(?:in|on|during)\s+)?(?:{_DAY_NAME},?\s+)?
    (?:(?P<part>early|mid|late)[\s-]+)?
    (?:(?:(?P<d1>\d{{1,2}}){_ORD}\s+(?:of\s+)?)?(?P<m>{_MONTH})(?:\s+(?P<d2>\d{{1,2}}){_ORD})?(?:,?\s+(?:of\s+)?(?P<y1>\d{{4}}))?
      | (?P<y2>\d{{4}}))
    (?:,?\s+\d{{1,2}}:\d\d(?:\s*[ap]\.?m\.?)?)?
    """
)
_ISO_DATE = re.compile(r"(?P<y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)")


@lru_cache(maxsize=4096)
def parse_date(text: str) -> DateValue | None:
    """The date an answer states, or None ('March 2024' and 'in March of 2024' → 2024-03; '1 February 2026',
    'February 1, 2026' and '2026-02-01' → 2026-02-01; 'late 2024' → 2024, late). Relative dates ('last April',
    'April last year', 'this week'), weekdays alone, decades and anything with more words are None."""
    t = _clean(text)
    if m := _ISO_DATE.fullmatch(t):
        y, mo, d = int(m["y"]), int(m["m"]), int(m["d"])
        return DateValue(y, mo, d) if 1 <= mo <= 12 and 1 <= d <= 31 else None
    m = _DATE_RE.fullmatch(t)
    if m is None:
        return None
    y, d = (int(v) if v else None for v in (m["y1"] or m["y2"], m["d1"] or m["d2"]))
    if (y is not None and not 1000 <= y <= 2999) or (d is not None and not 1 <= d <= 31):
        return None
    return DateValue(y, _MONTHS[m["m"][:3].lower()] if m["m"] else None, d, (m["part"] or "").lower() or None)


def dates_differ(a: DateValue, b: DateValue) -> bool:
    """Whether two dates cannot both be right: a field both state differs (a year, then the month, then the
    day). One with a year and one without cannot be compared; '2024' contains 'March 2024'; 'late 2024'
    (a part) differs from a year only two or more years away, and from no month of its year."""
    if (a.year is None) != (b.year is None):
        return False
    loose = a.part is not None or b.part is not None
    if a.year is not None and a.year != b.year:
        return not loose or abs(a.year - (b.year or 0)) >= 2
    if loose or a.month is None or b.month is None:
        return False
    if a.month != b.month:
        return True
    return a.day is not None and b.day is not None and a.day != b.day


# ------------------------------------------------------------------------------------------- names
@dataclass(frozen=True)
class NameValue:
    """A proper name: its words normalised (case, punctuation, 'the', possessive), and what it names."""

    words: tuple[str, ...]
    kind: str  # rag.reader.entities.EntityKind: "person", "org", "country" or "unknown"


_CONNECTORS = frozenset("of for and de da del la le van von the on &".split())
_HONORIFICS = frozenset("mr mrs ms dr prof sir dame president minister secretary".split())
_COUNTRY_ALIASES = dict.fromkeys(["us", "usa", "america", "united states of america"], "united states")
_COUNTRY_ALIASES |= dict.fromkeys(["uk", "britain", "great britain"], "united kingdom")
_COUNTRY_ALIASES |= {"prc": "china", "holland": "netherlands", "burma": "myanmar", "türkiye": "turkey"}


@lru_cache(maxsize=4096)
def parse_name(text: str) -> NameValue | None:
    """A proper name's normalised words ('The Guardian' → guardian; 'China's' → china; 'U.S.' → united
    states), or None for anything that does not look like one name: a list ('Japan, Australia'), lower-case
    words other than connectors, digits, more than six words."""
    t = _clean(text)
    t = re.sub(r"'s?$", "", t)
    if not t or re.search(r"[\d,;:()/]", t):
        return None
    raw = t.replace("-", " ").split()
    if raw and raw[0].lower() == "the":
        raw = raw[1:]
    if not raw or len(raw) > 6 or not raw[0][:1].isupper():
        return None
    if not all(w[:1].isupper() or w.lower() in _CONNECTORS for w in raw):
        return None
    words = tuple(w.lower().replace(".", "") for w in raw)
    alias = _COUNTRY_ALIASES.get(" ".join(words))
    if alias:
        return NameValue(tuple(alias.split()), "country")
    return NameValue(words, entity_kind(" ".join(raw)))


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def names_differ(a: NameValue, b: NameValue) -> bool:
    """Whether two names are different ones of one kind (both people, organisations or countries). Not when
    one is part of the other ('Burgum' in 'Doug Burgum', 'Doug Burgum' in 'Interior Secretary Doug Burgum'),
    two people share a surname ('D. Burgum'), or one is the other's initials ('EU', 'European Union')."""
    if a.kind != b.kind or a.kind not in ("person", "org", "country") or a.words == b.words:
        return False
    x = tuple(w for w in a.words if w not in _HONORIFICS) or a.words
    y = tuple(w for w in b.words if w not in _HONORIFICS) or b.words
    if _contains(x, y) or _contains(y, x) or x[-1] == y[-1]:
        return False
    for short, long in ((x, y), (y, x)):
        initials = "".join(w[0] for w in long if w not in _CONNECTORS)
        if len(short) == 1 and short[0] == initials:
            return False
    return True


# A name question with one right answer: who holds a role, or which one thing is something.
_ONE_HOLDER = re.compile(
    r"""(?ix)^\s*(?:who|which\s+[\w'’\- ]{1,40}?)\s+
    (?:leads|led|heads|headed|chairs|chaired|runs|ran|directs|directed|governs|governed|owns|owned|founded|
       manages|managed|presides|presided|(?:is|was)\s+in\s+charge
     | (?:is|was)\s+(?:the\s+)?(?:[\w\-]+['’]s?\s+)?(?:[\w\-]+\s+){0,3}?
       (?:minister|secretary|president|chair|chairman|chairwoman|chairperson|head|leader|director|ceo|chief|
          governor|mayor|founder|owner|editor|spokesman|spokeswoman|spokesperson|premier|chancellor|
          commissioner|ambassador|manager|capital|largest|biggest|top|first|only)\b)""",
)


def comparable_kinds(question: str | None) -> tuple[ConflictKind, ...]:
    """Which kinds of values a question's answers may disagree on: amounts for 'how much/many' and
    'what amount', dates for 'when' and 'which year', names only for a question with one right name
    ('Who leads X?', 'Who is the minister of Y?'), amounts and dates for other 'what' questions."""
    if question is None:
        return ("amount", "date")
    kind, _ = question_type(question)
    if kind == "number":
        return ("amount",)
    if kind == "date":
        return ("date",)
    if kind in ("name", "place"):
        return ("name",) if _ONE_HOLDER.search(question) else ()
    if kind == "phrase" and not DESCRIBE_NAME.match(question):  # not "Who is He Weiwen?" (a description)
        return ("amount", "date")
    return ()


# ------------------------------------------------------------------------------------------- answers
def _docs(answer: Answer) -> list[str]:
    return list(dict.fromkeys(c.doc_id for c in answer.citations))


def _amount(answer: Answer) -> Amount | None:
    """The answer's amount; a bare '$' is the dollar that the sentences quoting that very text state (not
    those of another wording merged into it, 'US$2,000 million' beside '$2 billion')."""
    a = parse_amount(answer.text)
    if a is not None and a.currency == "$":
        quotes = (
            c.quote for c in answer.citations if c.quote[c.start - c.quote_start : c.end - c.quote_start] == answer.text
        )
        code = stated_dollar(quotes)
        if code is not None:
            a = replace(a, currency=code)
    return a


def _how_they_differ(kind: ConflictKind, a: Answer, b: Answer) -> str | None:
    if kind == "amount":
        x, y = _amount(a), _amount(b)
        return amounts_differ(x, y) if x is not None and y is not None else None
    if kind == "date":
        d, e = parse_date(a.text), parse_date(b.text)
        return "value" if d is not None and e is not None and dates_differ(d, e) else None
    n, o = parse_name(a.text), parse_name(b.text)
    return "value" if n is not None and o is not None and names_differ(n, o) else None


def _where(answer: Answer) -> str:
    docs = _docs(answer)
    shown = ", ".join(docs[:3]) + (f" and {len(docs) - 3} more" if len(docs) > 3 else "")
    return f'"{answer.text}" ({shown})'


def _question_words(answer: Answer, asked: frozenset[str]) -> frozenset[str]:
    """The question's words (stemmed content words) that the sentences quoted for ``answer`` hold."""
    return asked.intersection(t for c in answer.citations for t in terms(c.quote))


def find_conflict(
    answers: Sequence[Answer],
    question: str | None = None,
    *,
    live_fraction: float = LIVE_FRACTION,
    coverage: float = COVERAGE,
) -> Conflict | None:
    """The disagreement among ``answers`` (best first) to ``question``, or None.

    The best answer disagrees with each other answer that (1) scores at least ``live_fraction`` of it,
    (2) cites no document the best answer cites, (3) is quoted from sentences that hold at least
    ``coverage`` of the question's words the best answer's sentences hold (it answers the same question),
    (4) holds a value of a kind the question asks for (:func:`comparable_kinds`) that parses, as the best
    answer's does, and (5) differs from it (:func:`amounts_differ`, :func:`dates_differ`,
    :func:`names_differ`). The conflict lists the best answer and every such answer of the first kind
    that has one.
    """
    if len(answers) < 2 or answers[0].score <= 0:
        return None
    best = answers[0]
    best_docs = set(_docs(best))
    asked = frozenset(terms(question)) if question else frozenset()
    best_words = _question_words(best, asked)
    for kind in comparable_kinds(question):
        found: list[tuple[int, str]] = []
        for j, other in enumerate(answers[1:], start=1):
            if other.score < live_fraction * best.score or best_docs.intersection(_docs(other)):
                continue
            if len(_question_words(other, best_words)) < coverage * len(best_words):
                continue
            how = _how_they_differ(kind, best, other)
            if how is not None:
                found.append((j, how))
        if found:
            what = " on the currency" if all(how == "currency" for _, how in found) else ""
            shown = " vs ".join(_where(answers[i]) for i in (0, *(j for j, _ in found)))
            return Conflict((0, *(j for j, _ in found)), kind, f"The documents disagree{what}: {shown}.")
    return None


def same_value(a: str, b: str) -> bool:
    """Whether two answer texts are the same value written two ways (an amount, a date or a name)."""
    x, y = parse_amount(a), parse_amount(b)
    if x is not None and y is not None:
        return same_amount(x, y)
    d, e = parse_date(a), parse_date(b)
    if d is not None and e is not None:
        return d == e
    n, o = parse_name(a), parse_name(b)
    return n is not None and o is not None and n.words == o.words


def _overlaps(c: Citation, cites: Iterable[Citation]) -> bool:
    return any(c.doc_id == k.doc_id and c.start < k.end and k.start < c.end for k in cites)


def merge_same_values(answers: Sequence[Answer]) -> list[Answer]:
    """``answers`` (best first) with each one that is the same value as a better one merged into it: the
    better one's text and score, then the other's citations of places not already cited."""
    out: list[Answer] = []
    for a in answers:
        for i, kept in enumerate(out):
            if kept.text != a.text and same_value(kept.text, a.text):
                extra = tuple(c for c in a.citations if not _overlaps(c, kept.citations))
                out[i] = replace(kept, score=max(kept.score, a.score), citations=kept.citations + extra)
                break
        else:
            out.append(a)
    return out


def reconcile(question: str, answers: Sequence[Answer]) -> tuple[list[Answer], Conflict | None]:
    """The reader's answers with the same values merged (:func:`merge_same_values`) and the disagreement
    among them (:func:`find_conflict`): what :meth:`rag.pipeline.Pipeline.answer` returns."""
    merged = merge_same_values(answers)
    return merged, find_conflict(merged, question)
