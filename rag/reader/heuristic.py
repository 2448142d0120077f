"""The heuristic reader: narrow each of the best-ranked sentences to the span that fits the question type.

Sentences are ranked by the evidence stage (:class:`rag.evidence.SentenceRanker`: dense similarity of
question and sentence and passage, idf-weighted term overlap, neighbours, retrieval rank). A candidate
span's score scales the sentence score by how close the span sits to the matched question words and by
how much of it is new (an answer rarely repeats the question), and for names by what the name seems to be
against what the question asks for (rag/reader/entities.py) and whether it does what the question asks
about ('Who convened ...?' → 'Marco Rubio, is convening'). With no candidate of the right type the
sentence itself is the answer, at a discount.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.evidence import Ranked, Sentence, SentenceRanker, is_heading, rank_sentences
from rag.reader.answers import SUPPORT_WEIGHTS, SpanPrediction, merge_predictions
from rag.reader.entities import AskedEntity, asked_entity, entity_fit
from rag.reader.quantities import date_fits_unit, number_fits_unit
from rag.reader.spans import (
    DESCRIBE_NAME,
    AnswerType,
    Candidate,
    build_lexicon,
    candidates,
    enumeration_spans,
    is_plural,
    question_type,
)
from rag.retrieval import Query
from rag.store import IndexData
from rag.text import terms, word_terms, words
from rag.types import Answer, Hit

_SOURCE_AFTER = re.compile(
    r"\s*,?\s*(?:has\s+|had\s+|also\s+)?(?:said|says|reported|reports|told|wrote|writes|noted|added)\b"
)
_SOURCE_BEFORE = re.compile(r"(?:\bvia|\baccording\s+to|\btold)\s+(?:the\s+)?$", re.IGNORECASE)
_ASKS_SOURCE = re.compile(
    r"\b(?:say|says|said|report\w*|told|tell|according|source|quot\w*|claim\w*|warn\w*|argu\w*|note\w*)\b", re.I
)


# "Whom did X meet?", "Which territory has the US signalled it wants?", "Who is the spokesman?": the answer is
# not the doer of the question's verb
_ASKS_OBJECT = re.compile(
    r"\b(?:did|does|do|whom)\b|\b(?:is|are|was|were|has|have|had|will|would|can|could)\s+"
    r"(?:the|a|an|its|their|his|her|this|that|these|those|[A-Z])"
)
_SUBJECT_GAP = re.compile(
    r"\s*,?\s*(?:(?:is|are|was|were|has|have|had|will|would|also|then|who|which|first|jointly)\s+)*$", re.I
)
_BY_GAP = re.compile(r"\s+by\s+(?:the\s+)?$", re.I)


def acts_on_question(sentence: str, start: int, end: int, positions: Sequence[tuple[int, int]]) -> bool:
    """True when the span is the doer of one of the question's words in the sentence: right before it
    ('Marco Rubio, is convening', 'Washington opposed') or after it with 'by' ('convened by Marco Rubio').

    ``positions`` are the (start, end) offsets of the question's words in the sentence.
    """
    for s, e in positions:
        if s >= end and _SUBJECT_GAP.fullmatch(sentence, end, s):
            return True
        if e <= start and _BY_GAP.fullmatch(sentence, e, start):
            return True
    return False


_APPOSITION_AFTER = re.compile(r"\s*,\s*(?:(?:a|an|the)\s+)?")
_COPULA_AFTER = re.compile(r"\s+(?:is|was|are|were)\s+(?:(?:a|an|the)\s+)?")
_TITLE_BEFORE = re.compile(r",?\s+")


def beside_name(sentence: str, start: int, end: int, positions: Sequence[tuple[int, int]]) -> bool:
    """True for a span that stands in apposition right after one of the question's words ('He Weiwen, a
    senior fellow ...') or as a title right before one ('Interior Secretary Doug Burgum')."""
    for s, e in positions:
        if e <= start and _APPOSITION_AFTER.fullmatch(sentence, e, start) and sentence[e : e + 1] == ",":
            return True
        if e <= start and _COPULA_AFTER.fullmatch(sentence, e, start):
            return True  # 'Rare Earth Exchanges is a ...'
        if s >= end and _TITLE_BEFORE.fullmatch(sentence, end, s):
            return True
    return False


_LOCATIVE = re.compile(r"\b(?:in|at|near|into|inside|outside|across|throughout)\s+(?:the\s+)?$", re.IGNORECASE)


@lru_cache(maxsize=100_000)
def _span_words(span: str) -> tuple[tuple[int, int, tuple[str, ...]], ...]:
    return tuple((s, e, terms(w)) for w, s, e in words(span))


def trim_question_words(sentence: str, cand: Candidate, qterms: set[str] | frozenset[str]) -> Candidate | None:
    """Drop words the question already says from both ends of a span ('US Interior Secretary Doug
    Burgum' asked as 'Who is the US Interior Secretary?' → 'Doug Burgum'); None if nothing is left."""
    if cand.kind in ("number", "date"):
        return cand
    keep = _span_words(sentence[cand.start : cand.end])

    def asked(t: tuple[str, ...]) -> bool:
        return bool(t) and all(x in qterms for x in t)

    removed = False
    while keep and (asked(keep[0][2]) or not keep[0][2]):  # a question word, or a stopword next to one
        removed |= asked(keep[0][2])
        keep = keep[1:]
    while keep and (asked(keep[-1][2]) or not keep[-1][2]):
        removed |= asked(keep[-1][2])
        keep = keep[:-1]
    if not keep:
        return None
    if not removed:
        return cand
    return Candidate(cand.start + keep[0][0], cand.start + keep[-1][1], cand.kind)


_ASKS_PLURAL = re.compile(r"\b(?:countries|nations|members|companies|allies|economies|which\s+\w+s)\b", re.I)


def in_enumeration(sentence: str, start: int, end: int) -> bool:
    """True for one item of a list of names ('the US, EU, the UK, Japan and New Zealand')."""
    before = sentence[max(0, start - 40) : start]
    after = sentence[end : end + 12]
    # the last item: "... Australia and New Zealand"
    if re.search(r"\band\s+(?:the\s+)?$", before):
        return True
    # a name follows: "Japan, Australia ..." or "Japan and ..."
    if re.match(r"\s*(?:,\s*(?:and\s+)?(?:the\s+)?[A-Z]|and\s+(?:the\s+)?[A-Z])", after):
        return True
    # two names with commas before: "the US, EU, Japan". One is not enough: "The US Secretary of State,
    # Marco Rubio, is ..." is an apposition, and "However, Washington ..." no list at all.
    return (
        re.search(r"[A-Z][\w.]*\s*,\s*(?:the\s+)?[A-Z][\w.]*(?:\s+[A-Z][\w.]*)*\s*,\s*(?:the\s+)?$", before) is not None
    )


def is_attribution(sentence: str, start: int, end: int) -> bool:
    """True for a name that only attributes the sentence: 'Reuters reported', 'via Reuters', 'X said'."""
    return bool(_SOURCE_AFTER.match(sentence, end) or _SOURCE_BEFORE.search(sentence[:start]))


@dataclass(frozen=True)
class ReaderWeights:
    """The span rules' weights (the sentence ranker's are :class:`rag.evidence.RankerWeights`)."""

    sentence_fallback: float = 0.75  # span confidence when the whole sentence is the answer
    untyped_fallback: float = 0.6  # ... further scaled when it holds no name/date/number the question asks for
    attribution: float = 0.6  # "Reuters reported": a source, not an actor, unless the question asks who said
    source_asked: float = 1.15  # ... and the likelier answer when it does ("Which outlet reported ...?")
    heading: float = 0.6  # a span in a title or heading line (no closing punctuation) rarely is an answer
    enumeration: float = 0.6  # one item of a list of names is rarely the single answer
    apposition: float = 1.25  # the title or role right beside the asked name ("Who is He Weiwen?")
    answer_list: float = 1.2  # the whole list, when the question asks for several ("Which countries ...?")
    doer: float = 1.25  # the name that does what the question asks about ("Who convened ...?")
    sentences_read: int = 6
    support: tuple[float, ...] = SUPPORT_WEIGHTS  # weights of the 1st, 2nd, 3rd supporting sentence


@dataclass(frozen=True)
class _Asked:
    """What the question asks for, worked out once per question rather than once per sentence read."""

    kind: AnswerType
    unit: str | None
    terms: frozenset[str]
    source: bool  # asks who said or reported something
    plural: bool  # asks for several things ("Which countries ...")
    entity: AskedEntity | None  # the kind of name asked for ("Which US official" → person), if it says
    subject: bool  # asks who or what did something ("Who convened ...?"), not whom it was done to
    describe: bool  # asks what a named person or thing is ("Who is He Weiwen?"): their role, its kind

    @classmethod
    def of(cls, query: Query) -> _Asked:
        kind, unit = question_type(query.text)
        return cls(
            kind,
            unit,
            frozenset(query.terms),
            bool(_ASKS_SOURCE.search(query.text)),
            bool(unit and unit.endswith("s")) or bool(_ASKS_PLURAL.search(query.text)),
            asked_entity(query.text, unit),
            not _ASKS_OBJECT.search(query.text),
            bool(DESCRIBE_NAME.match(query.text)),
        )


class HeuristicReader:
    def __init__(
        self,
        index: IndexData,
        idf: dict[str, float],
        default_idf: float,
        *,
        threshold: float,
        weights: ReaderWeights | None = None,
        ranker: SentenceRanker | None = None,
    ) -> None:
        """``idf`` weighs the question's words in a sentence (span rules); ``ranker`` orders the sentences
        (default: the evidence stage's ranker over the same index and idf)."""
        self.index = index
        self.idf, self.default_idf = idf, default_idf
        self.threshold = threshold
        self.w = weights or ReaderWeights()
        self.ranker = ranker or SentenceRanker(index, idf, default_idf)
        self.docs = {d: doc.text for d, doc in index.documents.items()}
        # saved with the index (older indexes: worked out here, once)
        self.lexicon = index.lexicon or build_lexicon(list(self.docs.values()))
        self._rarities: dict[tuple[str, ...], float] = {}

    # -------------------------------------------------------------------------------- spans
    def _rarity(self, cterms: tuple[str, ...]) -> float:
        """Mean idf of a span's terms relative to an unseen term's, at most 1 (cached: idf never changes)."""
        r = self._rarities.get(cterms)
        if r is None:
            r = min(1.0, sum(self.idf.get(t, self.default_idf) for t in cterms) / len(cterms) / self.default_idf)
            if len(self._rarities) < 200_000:
                self._rarities[cterms] = r
        return r

    def _span_factors(self, q: _Asked, text: str) -> tuple[tuple[tuple[int, int, float], ...], float]:
        """Candidate spans of one sentence text with their confidence factors, and the factor of the sentence
        itself as the answer. Depends on the text and the question only, not on where the sentence stands,
        so a sentence repeated in several places is worked out once per question."""
        kind, unit, qterms = q.kind, q.unit, q.terms
        asks_source, asks_plural = q.source, q.plural
        spans: list[tuple[int, int, float]] = []
        # positions of the question's words in the sentence, weighted by how rare (telling) each word is
        match_pos, match_spans = [], []
        for t, s, e in word_terms(text):
            if t in qterms:
                match_pos.append(((s + e) / 2, self.idf.get(t, self.default_idf)))
                match_spans.append((s, e))
        match_total = sum(weight for _, weight in match_pos)
        heading = is_heading(text)
        cands = candidates(text, kind, unit, self.lexicon)
        lists: dict[Candidate, str] = {}  # a list of names, for a question that asks for several -> its first
        if kind in ("name", "place") and unit and is_plural(unit):  # "Which countries ...?"
            for s, e in enumeration_spans(text, [(c.start, c.end) for c in cands]):
                first = next(c for c in cands if c.start == s)
                lists[Candidate(s, e, kind)] = text[first.start : first.end]
        for whole in (*cands, *lists):
            cand = trim_question_words(text, whole, qterms)
            if cand is None:
                continue  # the span only repeats the question
            ctext = text[cand.start : cand.end]
            cterms = terms(ctext)
            if not cterms:
                continue
            novelty = sum(t not in qterms for t in cterms) / len(cterms)
            if novelty == 0.0:
                continue  # the span only repeats the question
            if match_pos:
                centre = (cand.start + cand.end) / 2
                prox = sum(weight / (1.0 + abs(centre - pos) / 40.0) for pos, weight in match_pos) / match_total
            else:
                prox = 0.5
            # names that are everywhere in the corpus (its topic: "China", "US") are weaker evidence
            rarity = self._rarity(cterms)
            factor = (0.8 + 0.2 * prox) * (0.6 + 0.4 * novelty) * (0.7 + 0.3 * rarity)
            if kind in ("name", "place"):
                factor *= 1.0 - 0.3 * cand.start / max(1, len(text))  # subjects come first
                if is_attribution(text, cand.start, cand.end):
                    # "Reuters reported": a source, not an actor; the answer when the question asks who said
                    factor *= self.w.source_asked if asks_source else self.w.attribution
                if whole in lists:  # "Which countries ...": the list answers, its items only in part
                    factor *= self.w.answer_list * entity_fit(q.entity, lists[whole])
                    spans.append((cand.start, cand.end, factor))
                    continue
                listed = in_enumeration(text, cand.start, cand.end)
                if listed and not asks_plural:
                    factor *= self.w.enumeration
                # the whole name, before trimming: 'Chinese' of 'Chinese Foreign Ministry' does not act on 'Foreign'
                if q.subject and not listed and acts_on_question(text, whole.start, whole.end, match_spans):
                    factor *= self.w.doer
                factor *= entity_fit(q.entity, text[whole.start : whole.end])  # "Which official": a person
            if kind == "phrase":
                factor *= 0.9 if len(cterms) > 1 else 0.7  # a lone common word is rarely the answer
                if q.describe and beside_name(text, cand.start, cand.end, match_spans):
                    factor *= self.w.apposition  # 'He Weiwen, a senior fellow at ...', 'Interior Secretary Doug Burgum'
            if kind == "date" and not date_fits_unit(ctext, unit):
                factor *= 0.8  # "On which weekday ...": 'this week' fits less than 'Sunday'
            if kind == "number" and not number_fits_unit(ctext, unit):
                factor *= 0.8  # "How much money ...": 'one focus' fits less than '$1.2 billion'
            if kind == "place" and unit is None:  # "Where ...?": 'in Baotou'; "Which city ...?" asks no preposition
                factor *= 1.0 if _LOCATIVE.search(text, 0, cand.start) else 0.8
            if heading:
                factor *= self.w.heading
            spans.append((cand.start, cand.end, factor))
        if kind == "sentence":
            fallback = self.w.sentence_fallback
        elif not spans:  # nothing of the asked type here: weak evidence unless any phrase may answer
            fallback = self.w.sentence_fallback * (1.0 if kind == "phrase" else self.w.untyped_fallback)
        else:
            fallback = self.w.sentence_fallback * 0.8
        return tuple(spans), fallback

    def _span_predictions(self, sent: Sentence, score: float, factors: tuple) -> list[SpanPrediction]:  # noqa: ANN001
        spans, fallback = factors
        doc, base, end = sent.doc_id, sent.span.start, sent.span.end
        preds = [SpanPrediction(doc, base + s, base + e, base, end, score * f) for s, e, f in spans]
        preds.append(SpanPrediction(doc, base, end, base, end, score * fallback))
        return preds

    def read(self, query: Query, hits: Sequence[Hit], top_k: int) -> list[Answer]:
        return self.read_ranked(query, rank_sentences(query, hits, self.ranker), top_k)

    def read_ranked(self, query: Query, ranked: Ranked, top_k: int) -> list[Answer]:
        """The answers among sentences the ranker has already scored (another reader's ranking reused)."""
        sents, scores = ranked.sents, ranked.scores
        if not sents:
            return []
        order = np.argsort(-scores, kind="stable")
        # identical sentence texts (repeated articles) are all read, so their places are all cited
        preds: list[SpanPrediction] = []
        asked = _Asked.of(query)
        factors: dict[str, tuple] = {}
        for i in order:
            s = sents[i]
            if s.text not in factors:
                if len(factors) >= self.w.sentences_read:
                    continue
                factors[s.text] = self._span_factors(asked, s.text)
            preds.extend(self._span_predictions(s, float(scores[i]), factors[s.text]))
        return merge_predictions(preds, self.docs, top_k, self.threshold, self.w.support)
