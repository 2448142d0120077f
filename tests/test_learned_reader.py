"""The shipped learned reader over the seed index: default, contract, abstention, damage, no torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import app
from rag.conflict import same_value
from rag.reader.learned_model import CALIBRATION, MANIFEST, MODEL_FILE, PACKAGED

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def test_shipped_model_is_small_checksummed_and_calibrated():
    manifest = json.loads((PACKAGED / MANIFEST).read_text(encoding="utf-8"))
    size = (PACKAGED / MODEL_FILE).stat().st_size
    assert size <= 30e6 and manifest["files"][MODEL_FILE]["bytes"] == size
    cal = json.loads((PACKAGED / CALIBRATION).read_text(encoding="utf-8"))
    assert cal["model_sha256"] == manifest["files"][MODEL_FILE]["sha256"]  # fitted for this very model
    assert (PACKAGED / "README.md").is_file()


def test_learned_is_the_default_reader(settings_factory):
    assert settings_factory().reader == "learned"


@pytest.mark.slow
def test_default_pipeline_reads_with_the_learned_model(pipeline):
    from rag.reader.learned import LearnedReader

    assert isinstance(pipeline.reader, LearnedReader)
    assert pipeline.reader.model.calibration is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "question,needle",
    [
        ("How big is Australia's strategic reserve?", "1.2 billion"),
        ("Who is the US Secretary of State?", "Rubio"),
    ],
)
def test_answers_and_citations_check(pipeline, question, needle):
    r = pipeline.ask(question)
    assert r.answers, question
    assert needle in r.answers[0].text
    scores = [a.score for a in r.answers]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    for a in r.answers:
        for c in a.citations:
            text = (SEEDS / c.doc_id).read_text(encoding="utf-8")
            assert text[c.start : c.end] == a.text or same_value(text[c.start : c.end], a.text)  # issue 24
            assert text[c.quote_start : c.quote_end] == c.quote
            assert c.quote_start <= c.start < c.end <= c.quote_end


@pytest.mark.slow
def test_same_answer_in_repeated_article_is_one_answer_with_every_place(pipeline):
    question = "How big is Australia's strategic reserve?"
    r = pipeline.ask(question, top_k=3)
    texts = [a.text for a in r.answers]
    assert len(texts) == len(set(texts))
    assert "1.2 billion" in texts[0] and len({(c.doc_id, c.start) for c in r.answers[0].citations}) >= 2
    windows = pipeline.reader.windows
    pipeline.reader.windows = 4  # reads 001 too, which holds its article twice: both copies are cited
    try:
        r = pipeline.ask(question, top_k=3)
    finally:
        pipeline.reader.windows = windows
    texts = [a.text for a in r.answers]
    assert len(texts) == len(set(texts))
    places = {(c.doc_id, c.start) for a in r.answers for c in a.citations}
    assert sum(1 for d, _ in places if d.startswith("001")) >= 2


@pytest.mark.slow
def test_abstains_when_the_documents_do_not_answer(pipeline):
    assert pipeline.ask("What is the boiling point of water on Mars?").answers == ()
    assert pipeline.ask("Who won the 1998 football world cup final?").answers == ()


def _damaged_copy(tmp_path: Path, how: str) -> Path:
    d = tmp_path / "reader"
    shutil.copytree(PACKAGED, d)
    f = d / MODEL_FILE
    if how == "missing":
        f.unlink()
    elif how == "truncated":
        f.write_bytes(f.read_bytes()[:1000])
    else:  # one byte altered, same size
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        f.write_bytes(bytes(raw))
    return d


@pytest.mark.slow
@pytest.mark.parametrize("how,word", [("missing", "missing"), ("truncated", "truncated"), ("altered", "altered")])
def test_damaged_model_is_one_clear_line(tmp_path, seed_index_dir, how, word):
    d = _damaged_copy(tmp_path, how)
    r = CliRunner().invoke(
        app,
        ["ask", "Who opposed the price floor?", "--index-dir", str(seed_index_dir)],
        env={"RAG_CORPUS_DIR": str(SEEDS), "RAG_LEARNED_READER_MODEL": str(d)},
    )
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert str(d / MODEL_FILE) in r.output and word in r.output and "RAG_READER=heuristic" in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_heuristic_reader_stays_available(seed_index_dir):
    r = CliRunner().invoke(
        app,
        ["ask", "How big is Australia's strategic reserve?", "--json", "--index-dir", str(seed_index_dir)],
        env={"RAG_CORPUS_DIR": str(SEEDS), "RAG_READER": "heuristic"},
    )
    assert r.exit_code == 0, r.output
    assert "1.2 billion" in json.loads(r.stdout)["answers"][0]["text"]


@pytest.mark.slow
def test_cold_ask_with_the_learned_reader_never_imports_torch(seed_index_dir):
    script = (
        "import sys\n"
        "from rag.cli import main\n"
        f"sys.argv = ['rag', 'ask', 'Who opposed the price floor?', '--json', '--index-dir', {str(seed_index_dir)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_MODEL_CACHE_DIR"}
    env["RAG_CORPUS_DIR"] = str(SEEDS)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["question"] == "Who opposed the price floor?"


@pytest.mark.slow
def test_http_ask_with_the_learned_reader_keeps_the_contract(pipeline, seed_index_dir, settings_factory):
    from fastapi.testclient import TestClient

    from api.main import create_app

    q = "How big is Australia's strategic reserve?"
    with TestClient(create_app(settings_factory(index_dir=seed_index_dir), pipeline=pipeline)) as client:
        body = client.post("/ask", json={"question": q, "top_k": 3}).json()
    assert body == pipeline.ask(q, top_k=3).to_dict()
    assert "1.2 billion" in body["answers"][0]["text"]
