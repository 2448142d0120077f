"""rag.metrics on hand-made cases with exact expected values."""

from __future__ import annotations

import numpy as np
import pytest

from rag.metrics import (
    abstained,
    aggregate,
    best_of_k_exact_match,
    best_of_k_f1,
    citation_valid,
    exact_match,
    f1,
    normalize,
    percentile,
    recall_at_k,
    reciprocal_rank,
    tokens,
)
from rag.types import Citation

# --- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Guardian", "guardian"),
        ("  A  quick,\tbrown   fox. ", "quick brown fox"),
        ("THE an A", ""),
        ("U.S.-led club!", "usled club"),
        ("another theme", "another theme"),  # articles only as whole words
        ("Canberra and Athens", "canberra and athens"),
        ("O’Carroll", "ocarroll"),  # curly apostrophe is punctuation
        ("“dominant” player", "dominant player"),  # curly double quotes
        ("17,000–18,000 tonnes", "1700018000 tonnes"),  # en dash
        ("liability—not", "liabilitynot"),  # em dash
        ("A$1.2 billion", "a12 billion"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_curly_and_straight_punctuation_normalise_alike() -> None:
    assert normalize("Lisa O’Carroll") == normalize("Lisa O'Carroll") == "lisa ocarroll"
    assert normalize("17,000–18,000") == normalize("17,000-18,000")
    assert normalize("“de-risking”") == normalize('"de-risking"') == "derisking"


def test_tokens() -> None:
    assert tokens("The U.S.-led club") == ["usled", "club"]
    assert tokens("an apple, a pear") == ["apple", "pear"]
    assert tokens(None) == []
    assert tokens("") == []


def test_abstained() -> None:
    assert abstained(None) and abstained("") and abstained("  \n")
    assert not abstained("the")


# --- exact match and F1


def test_exact_match_answerable() -> None:
    assert exact_match("the Guardian", ["The Guardian"]) == 1.0
    assert exact_match("Guardian.", ["The Guardian"]) == 1.0
    assert exact_match("Reuters", ["Bloomberg"]) == 0.0
    assert exact_match("The Guardian newspaper", ["The Guardian"]) == 0.0


def test_exact_match_takes_best_of_several_answers() -> None:
    assert exact_match("US", ["Washington", "the US", "US"]) == 1.0
    assert exact_match("the United States", ["Washington", "the US"]) == 0.0


def test_exact_match_empty_prediction_on_answerable_is_zero() -> None:
    assert exact_match(None, ["Reuters"]) == 0.0
    assert exact_match("", ["Reuters"]) == 0.0
    assert exact_match("   ", ["Reuters"]) == 0.0


def test_exact_match_unanswerable() -> None:
    assert exact_match(None, []) == 1.0
    assert exact_match("", []) == 1.0
    assert exact_match("Washington", []) == 0.0


def test_f1_partial_overlap() -> None:
    # pred {doug, burgum, said} vs gold {doug, burgum}: P = 2/3, R = 1
    assert f1("Doug Burgum said", ["Doug Burgum"]) == pytest.approx(0.8)
    # pred {around, 20, countries} vs gold {nearly, 20}: P = 1/3, R = 1/2
    assert f1("around 20 countries", ["nearly 20"]) == pytest.approx(0.4)
    assert f1("Reuters", ["Bloomberg"]) == 0.0
    assert f1("The Guardian", ["guardian"]) == 1.0


def test_f1_best_of_several_answers() -> None:
    # vs "around 20 countries": P = 1, R = 2/3 -> 0.8;  vs "nearly 20": P = R = 1/2 -> 0.5
    assert f1("20 countries", ["around 20 countries", "nearly 20"]) == pytest.approx(0.8)


def test_f1_counts_repeated_tokens_once_per_match() -> None:
    # pred [cat, cat] vs gold [cat]: 1 common token, P = 1/2, R = 1
    assert f1("the cat the cat", ["cat"]) == pytest.approx(2 / 3)


def test_f1_prediction_of_only_articles_or_punctuation() -> None:
    assert f1("the", ["Guardian"]) == 0.0
    assert f1("...", ["Guardian"]) == 0.0


def test_f1_abstentions() -> None:
    assert f1(None, []) == 1.0
    assert f1("", []) == 1.0
    assert f1("some answer", []) == 0.0
    assert f1(None, ["Reuters"]) == 0.0
    assert f1("", ["Reuters"]) == 0.0


def test_best_of_k() -> None:
    assert best_of_k_f1(["Bloomberg", "Reuters"], ["Reuters"]) == 1.0
    assert best_of_k_f1(["Doug Burgum said", "Bloomberg"], ["Doug Burgum"]) == pytest.approx(0.8)
    assert best_of_k_f1([], ["Reuters"]) == 0.0
    assert best_of_k_f1([], []) == 1.0
    assert best_of_k_f1([None, ""], []) == 1.0
    assert best_of_k_f1(["", "Reuters"], []) == 0.0
    assert best_of_k_f1(["anything"], []) == 0.0
    assert best_of_k_exact_match(["Bloomberg", "the Reuters"], ["Reuters"]) == 1.0
    assert best_of_k_exact_match(["Doug Burgum said"], ["Doug Burgum"]) == 0.0
    assert best_of_k_exact_match([], []) == 1.0


# --- retrieval


def test_recall_at_k() -> None:
    ranked = ["a.txt", "b.txt", "c.txt"]
    assert recall_at_k(ranked, ["c.txt"], 2) == 0.0
    assert recall_at_k(ranked, ["c.txt"], 3) == 1.0
    assert recall_at_k(ranked, ["c.txt"], 10) == 1.0
    assert recall_at_k(ranked, ["z.txt", "a.txt"], 1) == 1.0
    assert recall_at_k([], ["a.txt"], 5) == 0.0


def test_reciprocal_rank() -> None:
    ranked = ["a.txt", "b.txt", "c.txt"]
    assert reciprocal_rank(ranked, ["a.txt"]) == 1.0
    assert reciprocal_rank(ranked, ["c.txt", "b.txt"]) == 0.5
    assert reciprocal_rank(ranked, ["c.txt"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, ["z.txt"]) == 0.0


def test_retrieval_metrics_undefined_for_unanswerable() -> None:
    with pytest.raises(ValueError, match="answerable"):
        recall_at_k(["a.txt"], [], 5)
    with pytest.raises(ValueError, match="answerable"):
        reciprocal_rank(["a.txt"], [])
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(["a.txt"], ["a.txt"], 0)


# --- percentile


def test_percentile_exact_values() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20], 95) == 19.5
    assert percentile([3, 1, 2], 0) == 1
    assert percentile([3, 1, 2], 100) == 3
    assert percentile([7.0], 95) == 7.0


@pytest.mark.parametrize("p", [0, 5, 25, 50, 90, 95, 99, 99.9, 100])
@pytest.mark.parametrize(
    "values", [[5.0], [1.0, 10.0], [12.5, 3.0, 7.25, 100.0, 0.5], [float(x * x % 17) for x in range(41)]]
)
def test_percentile_matches_numpy(values: list[float], p: float) -> None:
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-12, abs=1e-12)


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


# --- citations

TEXT = "Australia plans a $1.2 billion reserve. Washington has so far ruled out such guarantees."
SENT = "Australia plans a $1.2 billion reserve."


def cite(**kw) -> Citation:
    base = dict(doc_id="d.txt", start=18, end=30, quote=SENT, quote_start=0, quote_end=len(SENT))
    base.update(kw)
    return Citation(**base)


def test_citation_valid() -> None:
    assert TEXT[18:30] == "$1.2 billion"
    assert citation_valid(cite(), TEXT)
    assert citation_valid(cite(start=0, end=len(SENT)), TEXT)  # the answer may be the whole quote
    i = TEXT.index("Washington")
    assert citation_valid(cite(start=i, end=i + 10, quote=TEXT[i:], quote_start=i, quote_end=len(TEXT)), TEXT)


@pytest.mark.parametrize(
    "kw",
    [
        {"quote": SENT.upper()},  # quote differs from the text
        {"quote": SENT[:-1]},  # quote shorter than its range
        {"start": 18, "end": 18},  # empty answer
        {"start": 30, "end": 18},  # reversed
        {"start": 0, "quote_start": 1, "quote": SENT[1:]},  # answer starts before the quote
        {"end": len(SENT) + 1},  # answer ends after the quote
        {"quote_end": len(TEXT) + 5, "end": len(TEXT) + 2, "quote": TEXT},  # beyond the text
        {"quote_start": -len(TEXT), "quote_end": len(SENT), "quote": SENT},  # negative offset
        {"start": True},  # not an integer offset
    ],
)
def test_citation_invalid(kw: dict) -> None:
    assert not citation_valid(cite(**kw), TEXT)


def test_citation_valid_accepts_answer_json_mapping() -> None:
    c = {"doc_id": "d.txt", "start": 18, "end": 30, "quote": SENT, "quote_start": 0, "quote_end": len(SENT)}
    assert citation_valid(c, TEXT)
    assert not citation_valid({**c, "quote": "x"}, TEXT)
    assert not citation_valid({k: v for k, v in c.items() if k != "quote_end"}, TEXT)


# --- aggregate


def test_aggregate_means_skip_undefined() -> None:
    rows = [
        {"f1": 1.0, "exact_match": 1.0, "recall_at_5": None},
        {"f1": 0.5, "exact_match": 0.0, "recall_at_5": 1.0},
        {"f1": 0.0, "exact_match": 0.0, "recall_at_5": 0.0},
    ]
    out = aggregate(rows)
    assert out["n"] == 3
    assert out["f1"] == pytest.approx(0.5)
    assert out["exact_match"] == pytest.approx(1 / 3)
    assert out["recall_at_5"] == pytest.approx(0.5)
    assert out["n_recall_at_5"] == 2
    assert aggregate([]) == {"n": 0}
    assert aggregate([{"mrr": None}]) == {"n": 1, "mrr": None, "n_mrr": 0}
