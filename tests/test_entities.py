"""The light entity guesses the reader uses to match a name to what the question asks for."""

from __future__ import annotations

import pytest

from rag.reader.entities import asked_entity, entity_fit, entity_kind
from rag.reader.spans import question_type


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("New Zealand", "country"),
        ("the US", "country"),
        ("U.S.", "country"),
        ("China’s", "country"),
        ("Ministry of Commerce", "org"),
        ("China's Ministry of Commerce", "org"),
        ("Beijing-based Lange Steel Information Research Center", "org"),
        ("The Guardian", "org"),
        ("Marco Rubio", "person"),
        ("He Yadong", "person"),
        ("Washington", "unknown"),
        ("Rubio", "unknown"),
    ],
)
def test_entity_kind(name: str, kind: str) -> None:
    assert entity_kind(name) == kind


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("Which US official is hosting the gathering?", "person"),
        ("Which country is the top producer?", "country"),
        ("Which capital is building a reserve?", "city"),
        ("Which outlet reported the plan?", "org"),
        ("Which Chinese government body approved the licences?", "org"),
        ("Who opposed the price floor?", None),  # a person, a country or an organisation may answer
    ],
)
def test_asked_entity(question: str, asked: str | None) -> None:
    assert asked_entity(question, question_type(question)[1]) == asked


def test_entity_fit_prefers_the_asked_kind() -> None:
    assert entity_fit("person", "Marco Rubio") > 1.0 > entity_fit("person", "New Zealand")
    assert entity_fit("city", "Canberra") > entity_fit("city", "Australia")
    assert entity_fit("org", "Ministry of Commerce") > entity_fit("org", "He Yadong")
    assert entity_fit(None, "New Zealand") == 1.0
