"""When the reader abstains, the answer shows the closest evidence: ``closest``, the evidence stage's best
windows, each checkable like a citation (the pipeline, the answer JSON, ``rag ask``; HTTP: test_api.py,
the page: test_page.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rag.cli import app
from rag.evidence import select_windows
from rag.pipeline import Pipeline
from rag.types import Answer, Citation, Passage, Result

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
OFF_TOPIC = "What is the price of bananas on Mars?"
ANSWERED = "Who opposed the price floor?"  # the heuristic reader answers it (tests/test_pipeline.py)


def assert_checkable(closest: tuple[Passage, ...], pipeline: Pipeline) -> None:
    assert pipeline.index is not None
    for p in closest:
        text = pipeline.index.documents[p.doc_id].text
        assert 0 <= p.start < p.end <= len(text)
        assert text[p.start : p.end] == p.text
        assert (SEEDS / p.doc_id).read_text(encoding="utf-8")[p.start : p.end] == p.text  # the file, as cited


# ------------------------------------------------------------------------------------------- contract
def test_result_json_has_closest_only_without_answers() -> None:
    passage = Passage("a.txt", 3, 9, "abcdef")
    cite = Citation("a.txt", 3, 4, "abcdef", 3, 9)
    assert Result("q", (), closest=(passage,)).to_dict() == {
        "question": "q",
        "answers": [],
        "closest": [{"doc_id": "a.txt", "start": 3, "end": 9, "text": "abcdef"}],
    }
    assert Result("q", (), closest=()).to_dict()["closest"] == []  # nothing retrieved: an empty list
    answered = Result("q", (Answer("a", 0.5, (cite,)),), closest=(passage,)).to_dict()
    assert set(answered) == {"question", "answers"}  # with answers, no closest
    assert set(Result("q", ()).to_dict()) == {"question", "answers"}  # not worked out (no evidence stage)


# ------------------------------------------------------------------------------------------- pipeline
@pytest.mark.slow
@pytest.mark.parametrize("which", ["heuristic_pipeline", "pipeline"])
def test_abstaining_shows_the_best_windows_read(request: pytest.FixtureRequest, which: str) -> None:
    pipeline: Pipeline = request.getfixturevalue(which)
    result = pipeline.ask(OFF_TOPIC)
    assert result.answers == ()
    assert result.closest is not None and 1 <= len(result.closest) <= pipeline.closest_k == 3
    assert_checkable(result.closest, pipeline)
    # exactly the evidence stage's top windows, best first
    q = pipeline.queries([OFF_TOPIC])[0]
    assert pipeline.evidence is not None
    hits = pipeline.retriever.retrieve(q, pipeline.retrieve_k)
    windows = select_windows(q, hits, pipeline.evidence, 3, distinct=True, headings=False)
    assert [(p.doc_id, p.start, p.end) for p in result.closest] == [(w.doc_id, w.start, w.end) for w in windows]
    body = result.to_dict()
    assert body["answers"] == [] and [c["text"] for c in body["closest"]] == [p.text for p in result.closest]


@pytest.mark.slow
def test_an_answer_comes_without_closest(heuristic_pipeline: Pipeline) -> None:
    result = heuristic_pipeline.ask(ANSWERED)
    assert result.answers and result.closest is None
    assert "closest" not in result.to_dict()


class NoHits:
    def retrieve(self, query: Any, k: int) -> list:
        return []


@pytest.mark.slow
def test_nothing_retrieved_is_an_empty_closest_list(heuristic_pipeline: Pipeline) -> None:
    p = heuristic_pipeline
    empty = Pipeline(NoHits(), p.reader, p.embedder, index=p.index, evidence=p.evidence)  # type: ignore[arg-type]
    result = empty.ask(ANSWERED)
    assert result.answers == () and result.closest == ()
    assert result.to_dict()["closest"] == []


@pytest.mark.slow
@pytest.mark.parametrize("n", [0, 1])
def test_how_many_is_a_setting(seed_index_dir: Path, settings_factory: Any, embedder: Any, n: int) -> None:
    from rag.store import load_index

    s = settings_factory(index_dir=seed_index_dir, reader="heuristic", closest_passages=n)
    result = Pipeline.from_index(load_index(seed_index_dir, s), s, embedder).ask(OFF_TOPIC)
    assert result.answers == () and result.closest is not None and len(result.closest) == n


# ------------------------------------------------------------------------------------------- rag ask
runner = CliRunner()


def ask(*args: str, env: dict[str, str] | None = None) -> Any:
    r = runner.invoke(app, ["ask", *args], env={"RAG_CORPUS_DIR": str(SEEDS), **(env or {})})
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.slow
def test_rag_ask_prints_the_closest_passages(seed_index_dir: Path, pipeline: Pipeline) -> None:
    r = ask(OFF_TOPIC, "--index-dir", str(seed_index_dir))
    lines = r.stdout.splitlines()
    assert lines[:2] == ["The documents do not answer this question.", "The closest passages read:"]
    expected = pipeline.ask(OFF_TOPIC).closest
    assert expected and len(lines) == 2 + len(expected)
    for line, p in zip(lines[2:], expected):
        m = re.fullmatch(r"   \[(\S+) (\d+):(\d+)\] (.+)", line)
        assert m, line
        doc_id, start, end, shown = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        assert (doc_id, start, end) == (p.doc_id, p.start, p.end)
        text = (SEEDS / doc_id).read_text(encoding="utf-8")
        assert shown == " ".join(text[start:end].split())  # the passage, on one line


@pytest.mark.slow
def test_rag_ask_json_is_the_answer_json(seed_index_dir: Path, pipeline: Pipeline) -> None:
    data = json.loads(ask(OFF_TOPIC, "--json", "--index-dir", str(seed_index_dir)).stdout)
    assert data == pipeline.ask(OFF_TOPIC).to_dict()
    assert data["answers"] == [] and data["closest"]
    for c in data["closest"]:
        assert set(c) == {"doc_id", "start", "end", "text"}
        assert (SEEDS / c["doc_id"]).read_text(encoding="utf-8")[c["start"] : c["end"]] == c["text"]
