"""The evaluation runner (rag.evaluate): variants, metrics, outputs, threshold sweeps and warnings.

Pure parts run on hand-made records; tests marked ``slow`` answer a small gold list with the real seeds
pipeline from tests/conftest.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag import evaluate
from rag.evaluate import FULL, Record, VariantRun
from rag.squad import GoldItem
from rag.types import Answer, Citation, Result

VARIANTS = [
    "hybrid + reader (full)",
    "bm25 + reader",
    "dense + reader",
    "hybrid + first sentence (naive)",
    "always abstain (reference)",
]
METRIC_KEYS = {
    "questions",
    "answerable",
    "unanswerable",
    "exact_match",
    "f1",
    "f1_answerable",
    "f1_at_3",
    "recall_at_5",
    "mrr",
    "citations",
    "invalid_citations",
    "citation_validity",
    "abstention_unanswerable",
    "false_abstention_answerable",
    "latency_p50_ms",
    "latency_p95_ms",
}
RATES = METRIC_KEYS - {"questions", "answerable", "unanswerable", "citations", "invalid_citations"}
RATES -= {"latency_p50_ms", "latency_p95_ms"}

RUBIO_DOC = "001_9d22b42193b165a8.txt"
ITEMS = [
    GoldItem("g1", "Who is the US Secretary of State?", ("Marco Rubio",), (RUBIO_DOC,), "test", "who"),
    GoldItem(
        "g2",
        "How big is Australia's strategic reserve of critical minerals?",
        ("A$1.2 billion", "$1.2 billion"),
        ("004_237733e5469944db.txt", RUBIO_DOC),
        "dev",
        "how_much",
    ),
    GoldItem("g3", "What is the price of bananas on Mars?", (), (), None, "how_much"),  # no split
]


@pytest.fixture()
def warnings_of_evaluate() -> Iterator[list[logging.LogRecord]]:
    """Records logged on "rag.evaluate" (own handler: the CLI may have stopped "rag" from propagating)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger, handler = logging.getLogger("rag.evaluate"), Keep(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------------------------------- pure
def test_unknown_doc_ids_warns_once_with_count_and_example(warnings_of_evaluate: list[logging.LogRecord]) -> None:
    items = [
        *ITEMS,
        GoldItem("g4", "Who?", ("X",), (RUBIO_DOC, "seeds/001.txt"), "dev"),
        GoldItem("g5", "Who else?", ("Y",), ("other.txt",), "dev"),
    ]
    known = {RUBIO_DOC, "004_237733e5469944db.txt"}
    assert [it.id for it in evaluate.unknown_doc_ids(items, known)] == ["g4", "g5"]
    assert [r.levelno for r in warnings_of_evaluate] == [logging.WARNING]
    assert warnings_of_evaluate[0].getMessage() == (
        "2 of 5 gold questions name supporting documents that are not in the index (e.g. 'seeds/001.txt' in "
        "'g4'); their recall and MRR count only indexed documents. Check that the gold file's doc_ids are paths "
        "relative to the indexed corpus folder, or index the documents they name."
    )


def test_unknown_doc_ids_is_silent_when_all_are_indexed(warnings_of_evaluate: list[logging.LogRecord]) -> None:
    assert evaluate.unknown_doc_ids(ITEMS, [RUBIO_DOC, "004_237733e5469944db.txt"]) == []
    assert warnings_of_evaluate == []


TEXT = "Paris is the capital of France. Bern is the Swiss capital."


def cite(text: str, doc_id: str = "a.txt", quote: str | None = None) -> Citation:
    start = TEXT.index(text)
    q_end = TEXT.index(".", start) + 1
    q_start = TEXT.rfind(". ", 0, start) + 2 if ". " in TEXT[:start] else 0
    return Citation(doc_id, start, start + len(text), quote or TEXT[q_start:q_end], q_start, q_end)


def record(item: GoldItem, *answers: tuple[str, Citation], docs: tuple[str, ...] = ("a.txt",)) -> Record:
    result = Result(item.question, tuple(Answer(text, 0.5, (c,)) for text, c in answers))
    return Record(item, result, list(docs))


def test_metrics_count_invalid_citations_and_warn() -> None:
    paris = GoldItem("p", "Capital of France?", ("Paris",), ("a.txt",))
    bern = GoldItem("b", "Swiss capital?", ("Bern",), ("a.txt",))
    none = GoldItem("n", "Capital of Mars?", (), ())
    good = VariantRun("good", [record(paris, ("Paris", cite("Paris"))), record(none, docs=())])
    bad = VariantRun(
        "bad",
        [
            record(paris, ("Paris", cite("Paris", quote="Paris is the capital of Spain."))),  # quote altered
            record(bern, ("Bern", cite("Bern", doc_id="gone.txt"))),  # cites a document not in the index
            record(none, ("Paris", cite("Paris"))),
        ],
    )
    documents = {"a.txt": TEXT}
    mg, mb = evaluate.metrics(good, documents), evaluate.metrics(bad, documents)
    assert set(mg) == set(mb) == METRIC_KEYS
    assert (mg["citations"], mg["invalid_citations"], mg["citation_validity"]) == (1, 0, 1.0)
    assert (mb["citations"], mb["invalid_citations"], mb["citation_validity"]) == (3, 2, 1 / 3)
    assert (mg["exact_match"], mg["abstention_unanswerable"], mg["latency_p50_ms"]) == (1.0, 1.0, None)
    assert (mb["exact_match"], mb["abstention_unanswerable"]) == (2 / 3, 0.0)
    assert evaluate.citation_warnings({"good": mg}) == []
    assert evaluate.citation_warnings({"good": mg, "bad": mb}) == [
        "bad: 2 of 3 citations are invalid (citation validity 33.3%, expected 100%): their offsets or quotes do "
        "not match the document text, which is a bug; please report it."
    ]


def test_sweep_thresholds_on_hand_made_records() -> None:
    def rec(item_id: str, answers: tuple[str, ...], scored: tuple[tuple[str, float], ...]) -> Record:
        item = GoldItem(item_id, "q?", answers, ("d.txt",) if answers else ())
        return Record(item, Result("q?", ()), [], None, scored)

    records = [
        rec("a", ("Paris",), (("Paris", 0.8), ("Lyon", 0.3))),
        rec("u", (), (("Rome", 0.4),)),  # unanswerable
        rec("c", ("Bern",), (("Geneva", 0.6), ("Bern", 0.2))),
    ]
    third, two_thirds = 1 / 3, 2 / 3
    top1 = evaluate.sweep_thresholds(records, steps=10, k=1)
    assert [t for t, _ in top1] == [i / 10 for i in range(11)]
    assert [f for _, f in top1] == pytest.approx([third] * 5 + [two_thirds] * 4 + [third] * 2)
    top3 = evaluate.sweep_thresholds(records, steps=10, k=3)
    assert [f for _, f in top3] == pytest.approx([two_thirds] * 3 + [third] * 2 + [two_thirds] * 4 + [third] * 2)
    # a higher threshold only ever abstains more: F1 never falls on the unanswerable question, never rises
    # on the answerable ones
    for k in (1, 3):
        unans = [f for _, f in evaluate.sweep_thresholds(records[1:2], steps=50, k=k)]
        ans = [f for _, f in evaluate.sweep_thresholds([records[0], records[2]], steps=50, k=k)]
        assert unans == sorted(unans) and unans[0] == 0.0 and unans[-1] == 1.0
        assert ans == sorted(ans, reverse=True) and ans[-1] == 0.0
    assert evaluate.sweep_thresholds([], steps=2) == [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0)]


def test_markdown_table_shape() -> None:
    table = evaluate.markdown_table(
        {"sys": {"exact_match": 0.5, "f1": 2 / 3, "latency_p50_ms": 12.34}, "other": {"citation_validity": 1.0}}
    )
    lines = table.split("\n")
    assert lines[0] == (
        "| system | EM | F1 | F1@3 | F1 ans. | R@5 | MRR | cite ok % | abstain (unans.) % | false abstain % "
        "| p50 ms | p95 ms |"
    )
    assert lines[1] == "|---|" + "---:|" * 11
    assert lines[2] == "| sys | 50.0 | 66.7 | – | – | – | – | – | – | – | 12.3 | – |"
    assert lines[3] == "| other | – | – | – | – | – | – | 100.0 | – | – | – | – |"
    assert len(lines) == 4 and all(line.count("|") == 13 for line in lines)


# ------------------------------------------------------------------------------------------- real pipeline
@pytest.fixture(scope="module")
def evaluated(heuristic_pipeline: Any) -> tuple[list[VariantRun], dict[str, dict[str, Any]], list[int]]:
    pipeline = heuristic_pipeline  # the harness under test; the heuristic reader keeps it fast and its answers known
    progress: list[int] = []
    runs = evaluate.run(pipeline, ITEMS, on_progress=progress.append)
    documents = {d: doc.text for d, doc in pipeline.index.documents.items()}
    return runs, {r.name: evaluate.metrics(r, documents) for r in runs}, progress


@pytest.mark.slow
def test_run_answers_every_item_with_every_variant(evaluated: tuple) -> None:
    runs, _, progress = evaluated
    assert [r.name for r in runs] == VARIANTS
    assert progress == [3]  # one batch of three questions
    for r in runs:
        assert [rec.item for rec in r.records] == ITEMS
        assert all(rec.retrieved_docs for rec in r.records)
        assert all((rec.latency_ms is not None) == (r.name == FULL) for rec in r.records)
    full = runs[0].records
    assert full[0].result.answers[0].text == "Marco Rubio"
    assert all(0 < len(rec.unthresholded) <= 3 for rec in full)
    assert all(not rec.result.answers for rec in runs[-1].records)  # always abstain


@pytest.mark.slow
def test_metrics_of_a_real_run(evaluated: tuple) -> None:
    _, all_metrics, _ = evaluated
    assert list(all_metrics) == VARIANTS
    for name, m in all_metrics.items():
        assert set(m) == METRIC_KEYS, name
        assert (m["questions"], m["answerable"], m["unanswerable"]) == (3, 2, 1)
        for key in RATES:
            assert 0.0 <= m[key] <= 1.0, (name, key)
        assert m["citation_validity"] == 1.0 and m["invalid_citations"] == 0, name
        assert (m["latency_p50_ms"] is None) == (name != FULL)
    full = all_metrics[FULL]
    assert 0 < full["latency_p50_ms"] <= full["latency_p95_ms"]
    assert full["citations"] > 0
    assert full["recall_at_5"] == 1.0  # both answerable questions name documents retrieval finds first
    abstain = all_metrics["always abstain (reference)"]
    assert (abstain["exact_match"], abstain["f1"], abstain["f1_answerable"]) == (1 / 3, 1 / 3, 0.0)
    assert (abstain["citations"], abstain["abstention_unanswerable"], abstain["false_abstention_answerable"]) == (
        0,
        1.0,
        1.0,
    )
    assert evaluate.citation_warnings(all_metrics) == []


@pytest.mark.slow
def test_run_without_baselines_and_unknown_doc_warning(
    heuristic_pipeline: Any, warnings_of_evaluate: list[logging.LogRecord]
) -> None:
    runs = evaluate.run(heuristic_pipeline, ITEMS[2:], with_baselines=False)
    assert [r.name for r in runs] == [FULL] and len(runs[0].records) == 1
    assert warnings_of_evaluate == []
    foreign = GoldItem("x1", ITEMS[0].question, ("Marco Rubio",), ("seeds/" + RUBIO_DOC,), "test")
    evaluate.run(heuristic_pipeline, [foreign], with_baselines=False)
    assert len(warnings_of_evaluate) == 1
    assert (
        warnings_of_evaluate[0]
        .getMessage()
        .startswith(
            f"1 of 1 gold questions name supporting documents that are not in the index (e.g. 'seeds/{RUBIO_DOC}' in 'x1')"
        )
    )


@pytest.mark.slow
def test_write_outputs(evaluated: tuple, tmp_path: Path) -> None:
    runs, all_metrics, _ = evaluated
    meta = {"source": "test", "split": "all", "questions": len(ITEMS)}
    out = tmp_path / "run" / "nested"
    evaluate.write_outputs(out, runs, all_metrics, meta)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.jsonl"]
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == ["g1", "g2", "g3"]
    full = runs[0].records
    for row, rec in zip(rows, full):
        assert list(row) == ["id", *rec.result.to_dict(), "latency_ms"]  # the answer JSON, between id and latency
        assert row["question"] == rec.item.question
        assert row["answers"] == rec.result.to_dict()["answers"]
        assert row["latency_ms"] == round(rec.latency_ms, 2) and row["latency_ms"] > 0
    assert rows[0]["answers"][0]["text"] == "Marco Rubio"
    assert rows[2]["answers"] == []  # the unanswerable question is abstained on
    assert rows[2]["closest"] and "closest" not in rows[0]  # ... with the passages it read closest to it
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved == {"meta": meta, "variants": all_metrics}
