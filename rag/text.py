"""Small pure text helpers shared by chunking, BM25 and the reader: words, stopwords, a light stemmer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

WORD_RE = re.compile(r"[A-Za-z0-9\u00C0-\u024F]+(?:[’'.\-][A-Za-z0-9\u00C0-\u024F]+)*")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom whose why will
    with would you your yours yourself yourselves s t don let lets many much one did get got says said
    say tell told according""".split()
)


def words(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield (word, start, end) for every word in ``text``; offsets are string indices."""
    for m in WORD_RE.finditer(text):
        yield m.group(), m.start(), m.end()


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A deliberately light suffix stripper: enough to match guarantee/guarantees, meet/meeting."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 3:
        return w
    for suffix, repl in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ings", ""),
        ("ing", ""),
        ("edly", ""),
        ("ed", ""),
        ("es", "e"),
        ("s", ""),
    ):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                return w
            w = w[: len(w) - len(suffix)] + repl
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w


@lru_cache(maxsize=100_000)
def terms(text: str) -> tuple[str, ...]:
    """Lower-cased, stemmed content words: the unit of lexical matching (BM25 and the reader).

    Cached: passages and sentences are analysed once, not on every question.
    """
    out = []
    for w, _, _ in words(text):
        lw = w.lower().replace("’", "'")
        if lw in STOPWORDS:
            continue
        out.append(stem(lw))
    return tuple(out)


@lru_cache(maxsize=50_000)
def word_terms(text: str) -> tuple[tuple[str, int, int], ...]:
    """(term, start, end) for every content word of ``text`` (cached), for locating question words."""
    out = []
    for w, s, e in words(text):
        t = terms(w)
        if t:
            out.append((t[0], s, e))
    return tuple(out)
