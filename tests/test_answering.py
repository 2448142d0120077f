"""Answer when the documents answer, abstain when they do not cover the question (issue 20), with the
shipped model over the seeds: paraphrased questions, off-topic questions, the design card's question."""

from __future__ import annotations

import pytest

from rag.conflict import same_value
from rag.metrics import f1


def _check_citations(pipeline, answer) -> None:  # noqa: ANN001
    docs = {d: doc.text for d, doc in pipeline.index.documents.items()}
    for c in answer.citations:
        text = docs[c.doc_id]
        assert text[c.quote_start : c.quote_end] == c.quote
        assert c.quote_start <= c.start < c.end <= c.quote_end
        assert text[c.start : c.end] == answer.text or same_value(text[c.start : c.end], answer.text)  # issue 24


@pytest.mark.slow
def test_the_shipped_reader_reads_with_shared_scoring_and_a_guided_window(pipeline):
    r = pipeline.reader
    assert r.shared and r.model.manifest["span_normalisation"] == "shared"
    assert r.guide is not None and r.guided == 1 and r.windows == 3 and r.distinct and not r.headings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "answers"),
    [
        ("When did China restrict rare earth exports?", ["April last year", "last April"]),
        ("What did Washington rule out?", ["such guarantees", "price guarantees"]),
        ("Who is Lin Jian?", ["spokesperson of the Chinese Foreign Ministry"]),
        ("How big is Australia's strategic reserve?", ["A$1.2 billion", "$1.2 billion"]),
    ],
)
def test_answers_what_the_seeds_answer(pipeline, question, answers):
    result = pipeline.ask(question)
    assert result.answers, f"abstained on {question!r}"
    top = result.answers[0]
    assert f1(top.text, answers) >= 0.5, top.text
    _check_citations(pipeline, top)


@pytest.mark.slow
@pytest.mark.parametrize(
    "question",
    ["What is the capital of Peru?", "Who won the 2018 World Cup?", "How tall is the Eiffel Tower?", "What is photosynthesis?"],
)
def test_abstains_on_what_the_seeds_do_not_cover_and_shows_the_closest_passages(pipeline, question):
    result = pipeline.ask(question)
    assert result.answers == ()
    docs = {d: doc.text for d, doc in pipeline.index.documents.items()}
    assert result.closest
    for p in result.closest:
        assert docs[p.doc_id][p.start : p.end] == p.text


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known miss (issue 20, item 4): the model answers 'US Interior Secretary Doug Burgum' (who proposed "
    "the floor) or abstains; the documents say Washington 'stepped back' and 'ruled out such guarantees'",
)
def test_the_design_card_question(pipeline):
    result = pipeline.ask("Who opposed the price floor?")
    assert result.answers and f1(result.answers[0].text, ["Washington", "the US"]) >= 0.5
