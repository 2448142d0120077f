"""Dates and quantities inside a sentence, and whether one is of the kind a question asks for (pure).

Dates: month and day names, years (older ones after a preposition: 'in 1066'), centuries, BC/AD years,
relative expressions ('last October', 'this week', 'in recent years'). Numbers: figures and number words
with their currency, scale and unit ('A$1.2 billion', 'over 17,000 tonnes', 'seven categories').
"""

from __future__ import annotations

import re

from rag.text import STOPWORDS, stem, words

# ---------------------------------------------------------------------------------------- dates
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_ORDINAL = (
    r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
    r"fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty-first)"
)
# after a year, only a function word may follow ('in 1066 and', 'by 911, the'); 'in 300 mines' is a quantity
_FUNCTION_WORD = (
    r"(?:and|or|but|to|when|where|while|as|the|a|an|in|on|at|by|of|for|with|after|before|until|that|which|"
    r"he|she|it|they|we|was|were|is|had|has|during|under)"
)


def _after(*prepositions: str) -> str:
    return "(?:" + "|".join(rf"(?<=\b{p}\s)" for p in prepositions) + ")"


_AFTER_PREPOSITION = _after("in", "In", "by", "By", "since", "until", "from", "after", "before", "around", "circa")
_AFTER_IN = _after("in", "In", "since", "until", "circa")  # 3-digit years: 'from 100 to 200' is a quantity
_NO_QUANTITY = rf"(?!\s*(?:%|percent|per\s+cent))(?!\s+(?!{_FUNCTION_WORD}\b)[a-z])"
_DATE_RE = re.compile(
    rf"""(?x)
    (?:(?:early|mid|late|earlier|later)[\s-]+)?(?:(?:this|last|next)\s+)?{_MONTH}(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?
    | \d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?
    | (?:(?:early|mid|late|earlier|later)[\s-]+(?:in\s+)?)?(?:the\s+)?(?:1[5-9]|20)\d{{2}}s?
    | (?:(?:on|last|this|next)\s+)?{_DAY}
    | (?:earlier|later)?\s*(?:this|last|next|the\s+same|the\s+previous|the\s+following)\s+(?:week|month|year|decade|weekend)
    | (?:in\s+)?recent\s+(?:years|months|weeks|decades)
    | (?:today|yesterday|tomorrow)
    | \d{{1,2}}:\d{{2}}\s*(?:[ap]\.?m\.?)?
    | (?:(?:early|mid|late)[\s-]+)?(?:the\s+)?(?:\d{{1,2}}(?:st|nd|rd|th)|{_ORDINAL})[\s-]+centur(?:y|ies)(?:\s+(?:BC|BCE|AD|CE)\b)?
    | \d{{1,4}}\s*(?:BC|BCE|AD|CE)\b | \bA\.?D\.?\s*\d{{1,4}}\b
    | (?:{_AFTER_PREPOSITION}1[0-4]\d\d|{_AFTER_IN}[1-9]\d\d)\b{_NO_QUANTITY}  # 'by 1091', 'in 911': years
    | (?:within|over|in|for)\s+(?:the\s+)?(?:next|past|coming|last)\s+(?:\w+\s+)?(?:days|weeks|months|years|decades)
    """
)


_DATE_UNIT_FITS = {
    "year": re.compile(r"\b(?:1[5-9]|20)\d{2}\b|\byear\b", re.I),
    "decade": re.compile(r"\b(?:1[5-9]|20)\d0s\b|\bdecade\b", re.I),
    "century": re.compile(r"centur", re.I),
    "month": re.compile(rf"\b{_MONTH}|\bmonth\b", re.I),
    "weekday": re.compile(rf"\b{_DAY}\b", re.I),
    "day": re.compile(rf"\b{_DAY}\b|\b{_MONTH}\s+\d|\d\s+{_MONTH}|\b(?:today|yesterday|tomorrow)\b", re.I),
    "hour": re.compile(r"\d:\d\d|\b[ap]\.?m\b", re.I),
    "time": re.compile(r"\d:\d\d|\b[ap]\.?m\b", re.I),
}


def date_fits_unit(span: str, unit: str | None) -> bool:
    """Whether a date span is of the granularity the question names ('which year' → a year, 'on which
    weekday' → a day name); True when the question names none."""
    pattern = _DATE_UNIT_FITS.get(unit or "")
    return pattern is None or pattern.search(span) is not None


_CURRENCY = re.compile(
    r"[$€£¥]|\b(?:dollars?|euros?|pounds?|yuan|yen|renminbi|rupees?|francs?|cents?|USD|EUR|GBP|CNY|AUD)\b", re.I
)


_ANY_NUMBER = frozenset("amount number figure quantity size value total".split())  # 'what quantity': any
_PERCENT = re.compile(r"%|\bper\s?cent\b", re.I)


def number_fits_unit(span: str, unit: str | None) -> bool:
    """Whether a number span is of what the question counts: 'How many countries' → '20 countries',
    'How much money' → '$1.2 billion'; True when the question names nothing."""
    if unit is None or unit in _ANY_NUMBER:
        return True
    if unit in ("money", "price", "cost"):
        return _CURRENCY.search(span) is not None
    if unit in ("percentage", "percent", "share", "proportion"):
        return _PERCENT.search(span) is not None
    u = stem(unit)
    return any(stem(w) == u for w, _, _ in words(span))


def date_spans(sentence: str) -> list[tuple[int, int]]:
    out = []
    for m in _DATE_RE.finditer(sentence):
        s, e = m.start(), m.end()
        while s < e and sentence[s].isspace():
            s += 1
        while e > s and sentence[e - 1] in ". ":
            e -= 1
        if e > s:
            if out and sentence[out[-1][1] : s].strip() == "":  # "April" + "last year" is one date
                s = out.pop()[0]
            out.append((s, e))
    return out


# ---------------------------------------------------------------------------------------- numbers
_SCALE = r"(?:thousand|million|billion|trillion|bn|mn|m|k)"
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_WORDNUM = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundred|dozens?|hundreds|thousands|millions|billions|half|a\s+third|a\s+quarter)"
)
_NUMBER_RE = re.compile(
    rf"""(?x)
    (?:(?:about|around|roughly|nearly|almost|over|more\s+than|less\s+than|up\s+to|some|at\s+least|only)\s+)?
    (?:(?:[A-Z]{{1,3}})?[$€£¥]\s?{_NUM}(?:\s*{_SCALE}\b)?
      | (?<![A-Za-z0-9_.,]){_NUM}(?:\s*(?:%|percent|per\s+cent)|\s*{_SCALE}\b)?  # not the 7 of "G7"
      | \b{_WORDNUM}\b)
    """
)
_UNIT_RE = re.compile(r"\s*(?:[a-z][\w\-]*\s+){0,1}[a-z][\w\-]*")


def number_spans(sentence: str, unit: str | None = None) -> list[tuple[int, int]]:
    """Numbers with their currency, scale and (when it follows) unit word, e.g. '$1.2 billion', '20,000 tonnes'."""
    out = []
    unit_stem = stem(unit) if unit else None
    for m in _NUMBER_RE.finditer(sentence):
        s, e = m.start(), m.end()
        text = m.group()
        if re.fullmatch(r"(?:1[5-9]|20)\d{2}", text.strip()):
            continue  # a year is a date, not a quantity
        if not any(ch.isdigit() for ch in text) and not re.search(_WORDNUM, text):
            continue
        um = _UNIT_RE.match(sentence, e)
        has_scale = re.search(rf"[$€£¥%]|{_SCALE}\b|percent|per\s+cent", text) is not None
        if um and not has_scale:
            unit_words = um.group().split()
            # keep up to the unit word the question names, else one non-stopword noun-ish word
            if unit_stem and any(stem(w) == unit_stem for w in unit_words):
                idx = next(i for i, w in enumerate(unit_words) if stem(w) == unit_stem)
                e = sentence.index(unit_words[idx], e) + len(unit_words[idx])
            elif unit_words and unit_words[0] not in STOPWORDS:
                e = sentence.index(unit_words[0], e) + len(unit_words[0])
        out.append((s, e))
    return out
