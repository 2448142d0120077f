"""The pure parts of eval/calibrate.py: the article halves, the threshold rule, AUC, evidence hits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def calibrate():
    spec = importlib.util.spec_from_file_location("rag_eval_calibrate", ROOT / "eval" / "calibrate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_article_halves_are_fixed_disjoint_and_cover_every_article(calibrate):
    titles = [f"T{i}" for i in range(16)] * 3
    a, b = calibrate.article_halves(titles)
    assert a.isdisjoint(b) and a | b == set(titles) and len(a) == len(b) == 8
    assert (a, b) == calibrate.article_halves(list(reversed(titles)))  # order of the questions does not matter
    assert (a, b) != calibrate.article_halves(titles, seed=calibrate.SPLIT_SEED + 1)


def test_highest_threshold_keeps_false_abstention_within_the_limit_on_every_set(calibrate):
    rows = [{"role": "answerable"}] * 20 + [{"role": "off_topic"}] * 5
    scores = [i / 20 for i in range(20)] + [0.0] * 5  # answerable scores 0.00 .. 0.95
    t = calibrate.highest_threshold([(rows, scores)], limit=0.05)
    assert sum(s < t for s in scores[:20]) / 20 <= 0.05 < sum(s < t + 0.01 for s in scores[:20]) / 20
    other = ([{"role": "answerable"}] * 2, [0.0, 0.9])  # a second set where one answer scores 0
    assert calibrate.highest_threshold([(rows, scores), other], limit=0.05) == 0.0


def test_auc_counts_ties_half(calibrate):
    assert calibrate.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert calibrate.auc([0.1], [0.9]) == 0.0
    assert calibrate.auc([0.5], [0.5]) == 0.5
    assert calibrate.auc([], [0.5]) is None


def test_evidence_hit_after_normalisation(calibrate):
    docs = {"a": "In April last year, China announced export controls."}
    assert calibrate.evidence_hit(("april last year",), [("a", 0, len(docs["a"]))], docs)
    assert not calibrate.evidence_hit(("April last year",), [("a", 20, len(docs["a"]))], docs)
    assert not calibrate.evidence_hit(("",), [("a", 0, 10)], docs)
