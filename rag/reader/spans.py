"""Question typing and candidate answer spans inside a sentence (pure functions, no models).

The heuristic reader narrows an answer sentence to the shortest span that fits the question type:
who → a name (person, organisation, country); when → a date or time expression; how much/many → a number
with its unit or currency; where → a place name; which/what → a name or the noun phrase after the matched
words; anything else falls back to the sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rag.reader.quantities import date_spans, number_spans
from rag.text import STOPWORDS, words

AnswerType = Literal["name", "date", "number", "place", "phrase", "sentence"]


@dataclass(frozen=True)
class Candidate:
    start: int  # offsets relative to the sentence text
    end: int
    kind: AnswerType


_NAME_HEADS = frozenset(
    """country countries nation nations company companies firm firms organisation organization
    organisations organizations agency agencies group groups person people minister ministers official
    officials leader leaders secretary president government governments state states city cities bloc
    newspaper outlet outlets publication analyst analysts expert experts economy economies member members
    ally allies partner partners region continent institute think-tank body bodies who""".split()
)
_NAME_HEADS = _NAME_HEADS | frozenset(
    """researcher researchers spokesman spokeswoman spokesperson director author fellow economist
    executive executives administration ministry ministries department""".split()
)
_PLACE_HEADS = frozenset("city cities capital place location region continent territory island province town".split())
_AUXILIARIES = frozenset(
    "is are was were be been do does did has have had will would can could may might should said says".split()
)
_MONEY_WORDS = frozenset(
    """money cost costs costing paid pay pays spend spent spending fund funds funding invest invested investment
    budget worth price priced dollars euros pounds yuan yen""".split()
)
_DATE_HEADS = frozenset("year month day weekday date week time period decade century season hour".split())
_NUMBER_HEADS = frozenset("amount number percentage percent share figure quantity size price value total".split())


# "Who is He Weiwen?", "What is Rare Earth Exchanges?": asks what a named thing is (its role or kind)
DESCRIBE_NAME = re.compile(r"\s*(?i:(?:who|what)\s+(?:is|was|are|were)(?:\s+the)?)\s+(?:[A-Z][\w.'’\-]*\s*)+\??\s*$")


def is_plural(noun: str) -> bool:
    """A regular plural ('countries', 'magnets'; not 'press')."""
    return noun.endswith("s") and not noun.endswith("ss")


def question_type(question: str) -> tuple[AnswerType, str | None]:
    """Classify a question; also return the head noun after what/which/how many (the expected unit)."""
    if DESCRIBE_NAME.match(question):
        return "phrase", None  # "Who is He Weiwen?": a description ('a senior fellow at ...'), not a name
    q = question.strip().lower().replace("’", "'")
    toks = re.findall(r"[a-z0-9']+", q)
    if not toks:
        return "sentence", None
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if t == "how" and nxt in {"much", "many", "large", "big", "long", "high", "far", "old", "often"}:
            unit = None
            if nxt == "many":  # the counted noun: the first plural in 'How many permanent magnets does ...'
                for j, w in enumerate(toks[i + 2 : i + 5]):
                    if w in _AUXILIARIES or w in STOPWORDS:
                        break
                    if j == 0:
                        unit = w  # 'How many people attended': no plural in -s
                    if is_plural(w):
                        unit = w
                        break
            if nxt == "much" and _MONEY_WORDS.intersection(toks):
                unit = "money"  # "How much money ...", "How much did it cost?": an amount of currency
            return "number", unit
        if t in {"who", "whom", "whose"}:
            return "name", None
        if t == "when":
            return "date", None
        if t == "where":
            return "place", None
        if t in {"what", "which"}:
            j = i + 1
            while j < len(toks) and toks[j] in {"kind", "type", "sort", "of", "the", "a", "an"}:
                j += 1
            head = toks[j] if j < len(toks) else None
            if head in _DATE_HEADS:
                return "date", head
            if head in _NUMBER_HEADS:
                return "number", head
            if head in _PLACE_HEADS:
                return "place", head
            if head in _NAME_HEADS:
                return "name", head
            if toks[i + 1 : i + 2] in (["kind"], ["type"], ["sort"]):
                return "phrase", head  # "what kind of ministers": a description, not a name
            # the head noun may come later: "Which US official ...", "Which Beijing think-tank researcher ..."
            for later in toks[j + 1 : j + 6]:
                if later in _AUXILIARIES:
                    break
                if later in _NAME_HEADS:
                    return "name", later
                if later in _PLACE_HEADS:
                    return "place", later
            return "phrase", head
    # no wh-word: "Name the ...", "In which year ..." handled above; default to the sentence
    return "sentence", None


# ---------------------------------------------------------------------------------------- names
_CONNECTORS = frozenset({"of", "for", "de", "&", "the", "on"})
_CAP_WORD = re.compile(r"[A-Z][\w’'.\-&]*|[A-Z]{2,}\d*|G\d+")


# single capitalised words that are never a name on their own
_CALENDAR = frozenset(
    """january february march april may june july august september october november december jan feb mar apr
    jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday""".split()
)
_DEMONYM_ENDINGS = ("ese", "ian", "ean", "ern", "ish")


_INITIALS_END = re.compile(r"(?<![\w.])[A-Z](?:\.[A-Z])+$")  # 'U.S', 'U.K' (the last point is left out by words())


def is_adjective_use(word: str, following: str | None) -> bool:
    """A nationality or regional adjective before a noun ('Chinese exporters', 'Western economies',
    'Australian mining'): it describes the noun and is no name by itself."""
    return (
        word.lower().endswith(_DEMONYM_ENDINGS)
        and following is not None
        and following[:1].islower()
        and following not in STOPWORDS
    )


def _is_cap(word: str) -> bool:
    return bool(word) and (word[0].isupper() or word[0].isdigit() and any(ch.isupper() for ch in word))


@dataclass(frozen=True)
class Lexicon:
    """What the corpus says about capitalisation: words seen in lower case, and capitalised mid-sentence."""

    common: frozenset[str] = frozenset()
    proper: frozenset[str] | None = None  # None: no evidence, accept any capitalised word


_SINGULAR_VERBS = frozenset({"is", "was", "has", "does"})
_AFTER_SUBJECT = _SINGULAR_VERBS | frozenset(
    """had have did will would can could may might should said says told announced added reported warned
    noted stated argued also""".split()
)


def _opens_name(sentence: str, toks: list[tuple[str, int, int]], i: int) -> bool:
    """Whether a capitalised word at the start of a sentence, which the corpus never writes in lower case
    nor capitalises elsewhere, still opens a name: another capitalised word follows ('Marco Rubio said'),
    or a verb does, as after a subject ('Paris is', 'Lynas announced'; for a word ending in s only a
    singular one: 'Analysts warned' is no name). 'Internal debates', 'Using the example' are none."""
    w, _, e = toks[i]
    if i + 1 >= len(toks) or sentence[e : toks[i + 1][1]] != " " or w.lower().endswith("ly"):
        return False
    nxt = toks[i + 1][0]
    if _is_cap(nxt) and nxt.lower() not in STOPWORDS:
        return True
    return nxt in (_SINGULAR_VERBS if w.endswith("s") else _AFTER_SUBJECT)


_LOWER_WORD = re.compile(r"\b([a-z][a-z’'\-]+)\b")
_MID_CAP_WORD = re.compile(r"(?<=[a-z,] )([A-Z][\w\-]*)")


def build_lexicon(texts: Iterable[str]) -> Lexicon:
    """Collect lower-case words and mid-sentence capitalised words of the corpus (see :class:`Lexicon`)."""
    common: set[str] = set()
    proper: set[str] = set()
    for t in texts:
        common.update(m.group(1) for m in _LOWER_WORD.finditer(t))
        proper.update(m.group(1) for m in _MID_CAP_WORD.finditer(t))
    return Lexicon(frozenset(common), frozenset(proper))


def lexicon_to_json(lexicon: Lexicon) -> dict[str, list[str]]:
    return {"common": sorted(lexicon.common), "proper": sorted(lexicon.proper or ())}


def lexicon_from_json(data: dict[str, list[str]]) -> Lexicon:
    return Lexicon(frozenset(data["common"]), frozenset(data["proper"]))


def name_spans(sentence: str, lexicon: Lexicon = Lexicon()) -> list[tuple[int, int]]:
    """Runs of capitalised words (with inner 'of', 'for', '&'), as (start, end) offsets.

    At the start of a sentence or clause a capital says nothing, so there a word starts a name only if
    the corpus also capitalises it mid-sentence and never writes it in lower case ('However',
    'Disagreements' and 'Ministers' are no names; 'Washington' is).
    """
    toks = list(words(sentence))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        w, s, e = toks[i]
        lw = w.lower()
        for suffix in ("'s", "’s"):
            lw = lw.removesuffix(suffix)
        # capitals at the start of a sentence or clause say nothing: there, a usually-lower-case word is no name
        initial = sentence[:s].rstrip() == "" or sentence[:s].rstrip()[-1] in ':;"“‘(•-–—'
        weak = (
            initial
            and not w.isupper()
            and (
                lw in lexicon.common
                or (lexicon.proper is not None and w not in lexicon.proper and not _opens_name(sentence, toks, i))
            )
        )
        # a capitalised stopword mid-sentence can open a name when a capitalised word follows ("He Weiwen")
        name_stop = (
            lw in STOPWORDS
            and not initial
            and i + 1 < len(toks)
            and _is_cap(toks[i + 1][0])
            and toks[i + 1][0].lower() not in STOPWORDS
            and sentence[e : toks[i + 1][1]] == " "
        )
        if not _is_cap(w) or (lw in STOPWORDS and not name_stop) or weak:
            i += 1
            continue
        j = i
        end = e
        while j + 1 < len(toks):
            nw, ns, ne = toks[j + 1]
            gap = sentence[end:ns]
            if gap.strip() not in {"", "-"}:
                break
            if _is_cap(nw) and nw.lower() not in STOPWORDS:
                j, end = j + 1, ne
                continue
            if nw.lower() in _CONNECTORS and j + 2 < len(toks) and _is_cap(toks[j + 2][0]):
                gap2 = sentence[ne : toks[j + 2][1]]
                if gap2.strip() == "" and toks[j + 2][0].lower() not in STOPWORDS:
                    j, end = j + 2, toks[j + 2][2]
                    continue
            break
        single, start_tok = j == i, i
        i = j + 1
        if single:
            following = toks[start_tok + 1][0] if start_tok + 1 < len(toks) else None
            if lw in _CALENDAR or is_adjective_use(w, following):
                continue  # 'December', 'Sunday', 'Chinese exporters': no name
        text = sentence[s:end]
        for suffix in ("’s", "'s"):
            if text.endswith(suffix):
                end -= len(suffix)
        if _INITIALS_END.search(sentence, s, end) and sentence[end : end + 1] == ".":
            end += 1  # an abbreviation keeps its last point: 'U.S.', not 'U.S'
        spans.append((s, end))
    return spans


_LIST_GAP = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:the\s+)?", re.I)


def enumeration_spans(sentence: str, names: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Lists of two or more names, from the first to the last ('the UK, the US, Japan and France'):
    the answer to a question that asks for several ('Which countries ...?')."""
    out: list[tuple[int, int]] = []
    first = last = None
    count = 0
    for s, e in names:
        if last is not None and _LIST_GAP.fullmatch(sentence, last[1], s):
            last, count = (s, e), count + 1
            continue
        if first is not None and last is not None and count >= 2:
            out.append((first[0], last[1]))
        first = last = (s, e)
        count = 1
    if first is not None and last is not None and count >= 2:
        out.append((first[0], last[1]))
    return out


# ---------------------------------------------------------------------------------------- phrases
_CLAUSE_SPLIT = re.compile(r"\s*(?:,(?!\d)|[;:()\"“”]|\s[–—-]\s|—)\s*")


def phrase_spans(sentence: str) -> list[tuple[int, int]]:
    """Clause-sized pieces of a sentence (between commas, colons, dashes, brackets, quotes)."""
    out = []
    pos = 0
    for m in _CLAUSE_SPLIT.finditer(sentence):
        if m.start() > pos:
            out.append((pos, m.start()))
        pos = m.end()
    if pos < len(sentence):
        out.append((pos, len(sentence)))
    trimmed = []
    for s, e in out:
        seg = sentence[s:e]
        toks = list(words(seg))
        # drop leading conjunctions/fillers ("and", "which", "including", ...)
        while toks and toks[0][0].lower() in STOPWORDS | {"including", "however", "while"}:
            toks = toks[1:]
        while toks and toks[-1][0].lower() in STOPWORDS:
            toks = toks[:-1]
        if toks:
            trimmed.append((s + toks[0][1], s + toks[-1][2]))
    return trimmed


_NOT_ADVERBS = frozenset(
    """supply family assembly monopoly anomaly rally reply apply early daily weekly monthly quarterly yearly
    likely costly friendly only holy ally belly""".split()
)


def _ADVERB(word: str) -> bool:  # noqa: N802 - reads like a word class
    return len(word) > 4 and word.islower() and word.endswith("ly") and word not in _NOT_ADVERBS


def _PAST(word: str) -> bool:  # noqa: N802
    return len(word) > 4 and word.islower() and word.endswith("ed")


def noun_phrase_spans(sentence: str) -> list[tuple[int, int]]:
    """Runs of content words, as (start, end): what is left between stopwords, auxiliaries and punctuation,
    with an inner 'of' kept ('memorandum of understanding', 'global steel derivative tariffs',
    'high-tech manufacturing'). A rough noun-phrase chunker with no part-of-speech tagger."""
    toks = list(words(sentence))
    out: list[tuple[int, int]] = []
    run: list[tuple[str, int, int]] = []

    def close() -> None:
        # no past participle in front ('announced plans' → 'plans'), no dangling 'of'
        while run and (_PAST(run[0][0]) or run[0][0].lower() == "of"):
            run.pop(0)
        while run and run[-1][0].lower() == "of":
            run.pop()
        if run:
            out.append((run[0][1], run[-1][2]))
        run.clear()

    for w, s, e in toks:
        lw = w.lower()
        gap = sentence[run[-1][2] : s] if run else ""
        if run and gap.strip() not in ("", "-") and not (gap == "," and run[-1][0].isdigit() and w.isdigit()):
            close()  # punctuation between two words ends a phrase (not the comma of '20,000')
        if lw == "of" and run and run[-1][0].lower() != "of":
            run.append((w, s, e))
            continue
        if lw in STOPWORDS or lw in _AUXILIARIES or _ADVERB(w):
            close()
            continue
        run.append((w, s, e))
    close()
    return out


@lru_cache(maxsize=50_000)
def candidates(
    sentence: str, kind: AnswerType, unit: str | None = None, lexicon: Lexicon = Lexicon()
) -> tuple[Candidate, ...]:
    """Candidate answer spans of the requested kind inside ``sentence`` (cached: sentences recur)."""
    return tuple(_candidates(sentence, kind, unit, lexicon))


def _candidates(sentence: str, kind: AnswerType, unit: str | None, lexicon: Lexicon) -> list[Candidate]:
    if kind in ("name", "place"):
        return [Candidate(s, e, kind) for s, e in name_spans(sentence, lexicon)]
    if kind == "date":
        return [Candidate(s, e, "date") for s, e in date_spans(sentence)]
    if kind == "number":  # not the day of a date ('December 18' holds no quantity)
        dates = date_spans(sentence)
        return [
            Candidate(s, e, "number")
            for s, e in number_spans(sentence, unit)
            if not any(ds < e and s < de for ds, de in dates)
        ]
    if kind == "phrase":
        spans = name_spans(sentence, lexicon) + phrase_spans(sentence) + noun_phrase_spans(sentence)
        return [Candidate(s, e, "phrase") for s, e in dict.fromkeys(spans)]
    return []
