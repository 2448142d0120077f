"""Pure parts of the default reader: question typing, candidate spans, trimming, merging answers."""

from __future__ import annotations

import pytest

from rag.reader.answers import SpanPrediction, drop_enclosing, merge_predictions, support_score
from rag.reader.heuristic import _ASKS_OBJECT, acts_on_question, beside_name, in_enumeration, trim_question_words
from rag.reader.quantities import date_fits_unit, date_spans, number_fits_unit, number_spans
from rag.reader.spans import (
    Candidate,
    Lexicon,
    candidates,
    enumeration_spans,
    is_adjective_use,
    name_spans,
    noun_phrase_spans,
    question_type,
)
from rag.retrieval import near_duplicates
from rag.types import Answer, Citation


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who opposed the price floor?", ("name", None)),
        ("When did China introduce export controls?", ("date", None)),
        ("Where was the salon held?", ("place", None)),
        ("How many countries attend?", ("number", "countries")),
        ("How much money is Australia putting in?", ("number", "money")),
        ("How much gallium did China export?", ("number", None)),
        ("How many permanent magnets does the US import?", ("number", "magnets")),
        ("How many people attended?", ("number", "people")),
        ("Which country produces the most?", ("name", "country")),
        ("In which year did it start?", ("date", "year")),
        ("On which weekday did the paper report it?", ("date", "weekday")),
        # the head noun comes after modifiers
        ("Which US official is hosting the gathering?", ("name", "official")),
        ("Which Center for China and Globalization expert did they interview?", ("name", "expert")),
        ("Which territory does the US want to buy?", ("place", "territory")),
        # ... but only up to the verb: "said" ends the search, so "tariffs" stays a phrase
        ("Which tariffs said to hurt exporters were dropped by the country?", ("phrase", "tariffs")),
        # "what kind of X" asks for a description, not a name
        ("What kind of G7 ministers took part?", ("phrase", "g7")),
        ("Describe the deal.", ("sentence", None)),
        # who someone named is: their role, a phrase
        ("Who is He Weiwen?", ("phrase", None)),
        ("What is the G7?", ("phrase", None)),
        ("Who is the spokesman?", ("name", None)),
    ],
)
def test_question_type(question: str, expected: tuple[str, str | None]) -> None:
    assert question_type(question) == expected


def test_date_spans_join_adjacent_parts() -> None:
    s = "In April last year, China acted; on December 18, 2025 and in January it did more."
    assert [s[a:b] for a, b in date_spans(s)] == ["April last year", "December 18, 2025", "January"]


def test_number_spans_skip_digits_inside_words() -> None:
    s = "Talks with around 20 countries, including G7 members and the B2B arm, went on."
    assert [s[a:b] for a, b in number_spans(s)] == ["around 20 countries"]


def test_number_spans_keep_currency_scale_and_unit() -> None:
    s = "Australia will spend A$1.2 billion and import over 17,000 tonnes."
    assert [s[a:b] for a, b in number_spans(s)] == ["A$1.2 billion", "over 17,000 tonnes"]


def test_trim_question_words() -> None:
    s = "US Interior Secretary Doug Burgum said so."
    cand = Candidate(0, len("US Interior Secretary Doug Burgum"), "name")
    trimmed = trim_question_words(s, cand, frozenset({"us", "interior", "secretari", "secretary"}))
    assert trimmed is not None and s[trimmed.start : trimmed.end] == "Doug Burgum"
    # nothing but question words: no candidate
    only = Candidate(0, len("US Interior"), "name")
    assert trim_question_words(s, only, frozenset({"us", "interior"})) is None
    # numbers and dates are never trimmed
    num = Candidate(0, 2, "number")
    assert trim_question_words(s, num, frozenset({"us"})) is num


DOCS = {"a.txt": "Rubio hosts. Rubio hosts. Canberra waits.", "b.txt": "Rubio hosts."}


def test_merge_predictions_groups_places_and_sums_support() -> None:
    preds = [
        SpanPrediction("a.txt", 0, 5, 0, 12, 0.6),  # "Rubio" in a sentence ...
        SpanPrediction("a.txt", 13, 18, 13, 25, 0.5),  # ... repeated verbatim: same quote, counts once
        SpanPrediction("b.txt", 0, 5, 0, 12, 0.4),  # the same quote in another document
        SpanPrediction("a.txt", 26, 34, 26, 41, 0.3),  # "Canberra", below the threshold
    ]
    answers = merge_predictions(preds, DOCS, top_k=3, threshold=0.35)
    assert [a.text for a in answers] == ["Rubio"]
    assert answers[0].score == pytest.approx(0.6)  # one distinct quote: no extra support
    assert [(c.doc_id, c.start, c.end) for c in answers[0].citations] == [
        ("a.txt", 0, 5),
        ("a.txt", 13, 18),
        ("b.txt", 0, 5),
    ]
    assert support_score([0.5, 0.4, 0.3, 0.6]) == pytest.approx(0.6 + 0.2 * 0.5 + 0.1 * 0.4)
    assert support_score([2.0]) == 1.0


TABLE = {"r.docx": "Revenue | 42 | +8%\nCosts | 30 | -2%\n"}


def test_an_answer_stays_inside_one_table_cell() -> None:
    preds = [
        SpanPrediction("r.docx", 10, 18, 0, 18, 0.6),  # "42 | +8%": the cell it starts in, "42"
        SpanPrediction("r.docx", 7, 13, 0, 18, 0.5),  # " | 42 " starts on a separator: "42" again
        SpanPrediction("r.docx", 27, 29, 19, 36, 0.5),  # "30" inside one cell: as it is
        SpanPrediction("r.docx", 29, 32, 19, 36, 0.9),  # " | " alone: no answer
    ]
    answers = merge_predictions(preds, TABLE, top_k=3, threshold=0.35)
    assert [a.text for a in answers] == ["42", "30"]
    assert [(c.start, c.end) for c in answers[0].citations] == [(10, 12)]
    for a in answers:
        for c in a.citations:
            assert TABLE["r.docx"][c.start : c.end] == a.text and c.quote_start <= c.start < c.end <= c.quote_end


def _answer(text: str, score: float, *places: tuple[str, int, int]) -> Answer:
    return Answer(text, score, tuple(Citation(d, s, e, "", s, e) for d, s, e in places))


def test_drop_enclosing_removes_a_sentence_around_a_better_answer() -> None:
    name = _answer("Rubio", 0.5, ("a.txt", 4, 9))
    sentence = _answer("The host, Rubio, spoke.", 0.4, ("a.txt", 0, 23))
    elsewhere = _answer("The host, Rubio, spoke.", 0.4, ("a.txt", 0, 23), ("c.txt", 0, 23))
    other = _answer("Canberra", 0.3, ("b.txt", 0, 8))
    assert drop_enclosing([name, sentence, other]) == [name, other]
    # a place the better answer does not cover keeps the answer
    assert drop_enclosing([name, elsewhere]) == [name, elsewhere]
    # the same span is not "enclosing" (identical texts are merged earlier, never dropped here)
    same = _answer("Rubio", 0.4, ("a.txt", 4, 9))
    assert drop_enclosing([name, same]) == [name, same]


def test_near_duplicates() -> None:
    a = "China imposed export controls on seven categories of rare earth items last April."
    assert near_duplicates(a, a + " Officials said more may follow.", 0.8)
    assert not near_duplicates(a, "Australia is building a strategic reserve of critical minerals.", 0.8)


def test_in_enumeration_tells_lists_from_appositions() -> None:
    def item(sentence: str, name: str) -> bool:
        i = sentence.index(name)
        return in_enumeration(sentence, i, i + len(name))

    s = "Ministers from the US, EU, the UK, Japan, Australia and New Zealand will meet"
    assert [item(s, n) for n in ("US", "EU", "UK", "Japan", "Australia", "New Zealand")] == [True] * 6
    assert not item("The US Secretary of State, Marco Rubio, is convening this meeting", "Marco Rubio")
    assert not item("However, Washington has recently stepped back", "Washington")


def _names(sentence: str) -> list[str]:
    return [sentence[a:b] for a, b in name_spans(sentence)]


def test_name_spans_skip_calendar_words_and_nationality_adjectives() -> None:
    s = "On December 18, the Ministry of Commerce said Chinese exporters met on Sunday."
    assert _names(s) == ["Ministry of Commerce"]
    # a nationality word that is the subject (no noun after it) or part of a longer name stays
    assert _names("Most buyers were Chinese, said the European Union.") == ["Chinese", "European Union"]


def test_is_adjective_use() -> None:
    assert is_adjective_use("Australian", "mining")
    assert is_adjective_use("Western", "economies")
    assert not is_adjective_use("Australian", "said")  # a verb or stopword follows: no noun described
    assert not is_adjective_use("Australian", None)
    assert not is_adjective_use("Japan", "imports")  # a country, not an adjective


def test_name_spans_keep_the_last_point_of_initials() -> None:
    assert _names("The U.S. recently headed a meeting with the U.K.") == ["U.S.", "U.K."]
    assert _names("It met the US. Then it left.") == ["US"]  # a full stop after a plain name is not kept


def test_date_fits_unit() -> None:
    assert date_fits_unit("on Sunday", "weekday")
    assert not date_fits_unit("this week", "weekday")
    assert date_fits_unit("April last year", "month") and date_fits_unit("in 2025", "year")
    assert not date_fits_unit("last October", "year")
    assert date_fits_unit("this week", None)  # the question names no unit: anything fits


def _acts(sentence: str, name: str, *question_words: str) -> bool:
    i = sentence.index(name)
    positions = [(sentence.index(w), sentence.index(w) + len(w)) for w in question_words]
    return acts_on_question(sentence, i, i + len(name), positions)


def test_acts_on_question_finds_the_doer_of_a_question_word() -> None:
    s = "The US Secretary of State, Marco Rubio, is convening this meeting."
    assert _acts(s, "Marco Rubio", "convening")
    assert not _acts(s, "US Secretary of State", "convening")  # another clause stands between
    assert _acts("The talks were convened by Marco Rubio.", "Marco Rubio", "convened")
    assert _acts("Washington opposed the floor.", "Washington", "opposed")
    assert not _acts("Washington opposed the floor.", "Washington", "floor")


@pytest.mark.parametrize(
    ("question", "asks_object"),
    [
        ("Who convened the Washington meeting?", False),
        ("Which US official is hosting the gathering?", False),
        ("Whom did the minister meet?", True),
        ("Which territory has the US administration signalled it wants to buy?", True),
        ("Who is the spokesman of the ministry?", True),
    ],
)
def test_questions_asking_for_a_doer(question: str, asks_object: bool) -> None:
    assert bool(_ASKS_OBJECT.search(question)) is asks_object


def test_sentence_initial_names_the_corpus_says_nothing_about() -> None:
    # a corpus that writes 'critical' in lower case and capitalises only 'Washington' mid-sentence
    lex = Lexicon(frozenset({"critical"}), frozenset({"Washington"}))

    def names(s: str) -> list[str]:
        return [s[a:b] for a, b in name_spans(s, lex)]

    assert names("Paris is the capital of France.") == ["Paris", "France"]  # a verb follows: a subject
    assert names("Marco Rubio said so.") == ["Marco Rubio"]  # two capitalised words
    assert names("Critical minerals matter.") == []  # written in lower case elsewhere
    assert names("Analysts warned of risks.") == []  # a plural before a plural verb
    assert names("Internal debates emerged.") == []  # an adjective before its noun
    assert names("Importantly, Canberra is acting.") == ["Canberra"]  # an adverb; the name after it counts


def test_noun_phrase_spans() -> None:
    def nps(s: str) -> list[str]:
        return [s[a:b] for a, b in noun_phrase_spans(s)]

    assert nps("The EU is ready to sign a memorandum of understanding with the US.") == [
        "EU",
        "ready",
        "sign",
        "memorandum of understanding",
        "US",
    ]
    # adverbs split, a leading past participle is dropped, the comma of a number is kept
    assert nps("Europe consumes roughly 20,000 tonnes of magnets.") == ["Europe consumes", "20,000 tonnes of magnets"]
    assert nps("Australia has announced plans for non-China supply chains.") == [
        "Australia",
        "plans",
        "non-China supply chains",
    ]


def test_number_candidates_skip_the_day_of_a_date() -> None:
    s = "On December 18, officials approved 12 applications."
    assert [s[c.start : c.end] for c in candidates(s, "number")] == ["12 applications"]


@pytest.mark.parametrize(
    ("sentence", "dates"),
    [
        ("The Normans took England in 1066 and Sicily by 1091.", ["1066", "1091"]),
        ("In 911, Rollo signed a treaty.", ["911"]),
        (
            "In the 10th century they settled; the nineteenth century saw more.",
            ["the 10th century", "the nineteenth century"],
        ),
        ("It was built in 300 BC, not AD 45.", ["300 BC", "AD 45"]),
        # quantities stay quantities
        ("It went from 100 to 200 tonnes, in 300 mines, up by 250 percent.", []),
    ],
)
def test_date_spans_older_years_and_centuries(sentence: str, dates: list[str]) -> None:
    assert [sentence[a:b] for a, b in date_spans(sentence)] == dates


def test_number_fits_unit() -> None:
    assert number_fits_unit("around 20 countries", "countries")
    assert not number_fits_unit("seven categories", "countries")
    assert number_fits_unit("A$1.2 billion", "money") and number_fits_unit("3 million euros", "money")
    assert not number_fits_unit("one focus", "money")
    assert number_fits_unit("12%", "percentage") and not number_fits_unit("12 tonnes", "percentage")
    assert number_fits_unit("17,000 tonnes", "quantity")  # 'what quantity' takes any measure
    assert number_fits_unit("seven", None)


def test_enumeration_spans() -> None:
    s = "The meeting includes G7 members - the UK, the US, Japan and Canada - as well as India and Mexico."
    names = name_spans(s)
    assert [s[a:b] for a, b in enumeration_spans(s, names)] == ["UK, the US, Japan and Canada", "India and Mexico"]
    one = "Only Japan attended, said Reuters."
    assert enumeration_spans(one, name_spans(one)) == []  # no list: one name, then an attribution


def test_beside_name_finds_appositions_and_titles() -> None:
    def beside(sentence: str, span: str, name: str) -> bool:
        i, n = sentence.index(span), sentence.index(name)
        return beside_name(sentence, i, i + len(span), [(n, n + len(name))])

    s = "He Weiwen, a senior fellow at the Center, said so."
    assert beside(s, "senior fellow at the Center", "Weiwen")
    assert not beside(s, "said so", "Weiwen")
    assert beside("US Interior Secretary Doug Burgum said it.", "US Interior Secretary", "Doug")
    assert beside("The US Secretary of State, Marco Rubio, is convening.", "US Secretary of State", "Marco")
    assert beside("Lynas is a rare earths miner.", "rare earths miner", "Lynas")
