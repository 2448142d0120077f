"""The Python API (rag.index, rag.open, QA): light import, settings by name, named errors, the README example,
and answers identical to the CLI's JSON. Tests marked ``slow`` use the real bundled model."""

from __future__ import annotations

import json
import pydoc
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import rag
from rag.cli import app
from rag.conflict import same_value
from rag.generations import files_of

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
GOLD = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines() if line]


def test_import_rag_loads_nothing_heavy():
    heavy = ("numpy", "faiss", "onnxruntime", "torch", "transformers", "pydantic", "tokenizers")
    code = f"import sys, rag; rag.open, rag.index, rag.IndexNotFound; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_named_exceptions_are_exported_and_aliased():
    for name in (
        "IndexNotFound",
        "IndexDamaged",
        "IndexMismatch",
        "IndexBusy",
        "InvalidQuestion",
        "InvalidSetting",
        "ModelError",
        "CorpusError",
        "DocumentNotFound",
        "IndexWriteError",
    ):
        assert issubclass(getattr(rag, name), rag.RagError), name
    assert rag.IndexNotFound is rag.IndexMissing and rag.IndexDamaged is rag.IndexCorrupt
    assert issubclass(rag.InvalidSetting, ValueError) and issubclass(rag.DocumentNotFound, LookupError)
    assert set(rag.__all__) <= set(dir(rag))
    star: dict = {}
    exec("from rag import *", star)
    assert "open" not in star and "InvalidQuestion" in star  # a star import never shadows the builtin open()


def test_py_typed_is_shipped():
    assert (ROOT / "rag" / "py.typed").is_file()
    line = next(x for x in (ROOT / "pyproject.toml").read_text().splitlines() if x.startswith("rag = ["))
    assert '"py.typed"' in line  # package-data of the rag package


def test_help_teaches():
    text = pydoc.render_doc(rag.open, renderer=pydoc.plaintext)
    for needed in ("index_dir", "reader=", "IndexNotFound", "TypeError", "Never builds"):
        assert needed in text, needed
    assert "to_dict()" in pydoc.render_doc(rag.QA.ask, renderer=pydoc.plaintext)


def test_unknown_setting_is_a_type_error_listing_the_valid_ones(tmp_path):
    with pytest.raises(TypeError) as err:
        rag.open(tmp_path / "idx", topk=5)
    msg = str(err.value)
    assert "'topk' (did you mean 'top_k'?)" in msg and "Valid settings:" in msg and "reader" in msg
    with pytest.raises(TypeError, match="rag.index"):
        rag.index([tmp_path], index_dir=tmp_path / "idx", chunk_size=3)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(("name", "value"), [("reader", "gpt"), ("top_k", 0), ("retrieve_k", "many")])
def test_bad_setting_value_is_invalid_setting(tmp_path, name, value):
    with pytest.raises(rag.InvalidSetting, match=f"bad setting {name}="):
        rag.open(tmp_path / "idx", **{name: value})


def test_bad_setting_from_the_environment_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "99")
    with pytest.raises(rag.InvalidSetting, match="RAG_TOP_K"):
        rag.open(tmp_path / "idx")


def test_open_never_builds_an_index(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(SEEDS, tmp_path / "seeds")  # what the CLI's first use would build the default index from
    with pytest.raises(rag.IndexNotFound, match=r"rag index"):
        rag.open(reader="heuristic")  # the default index/, which `rag ask` would build
    with pytest.raises(rag.IndexNotFound, match=r"No index in .*typo"):
        rag.open("typo", reader="heuristic")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seeds"]  # no index, no lock file
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.slow
def test_damaged_index_is_index_damaged(seed_index_dir, tmp_path, capfd):
    broken = tmp_path / "index"
    shutil.copytree(seed_index_dir, broken)
    chunks = files_of(broken) / "chunks.jsonl"
    chunks.write_bytes(chunks.read_bytes()[:-50])
    with pytest.raises(rag.IndexDamaged, match="rag index"):
        rag.open(broken, reader="heuristic")
    assert capfd.readouterr() == ("", "")


@pytest.fixture(scope="module")
def qa(seed_index_dir):
    return rag.open(seed_index_dir, reader="heuristic", corpus_dir=SEEDS)


@pytest.mark.slow
def test_ask_answers_with_checkable_citations(qa):
    result = qa.ask("How big is Australia's strategic reserve?", top_k=2)
    assert isinstance(result, rag.Result) and 1 <= len(result.answers) <= 2
    best = result.answers[0]
    assert "1.2 billion" in best.text
    for c in best.citations:
        doc = qa.document(c.doc_id)
        span = doc.text[c.start : c.end]
        assert span == best.text or same_value(span, best.text)  # the same value in other words
        assert doc.text[c.quote_start : c.quote_end] == c.quote
        assert c.doc_sha256 == doc.sha256
    assert result.index_built_at == qa.index_built_at
    with pytest.raises(AttributeError):
        best.text = "changed"  # frozen
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


@pytest.mark.slow
def test_bad_questions_and_arguments(qa):
    with pytest.raises(rag.InvalidQuestion, match="empty"):
        qa.ask("   ")
    with pytest.raises(rag.InvalidQuestion, match="limit is 1000"):
        qa.ask("x" * 1001)
    for bad in (0, 21, 2.5, True):
        with pytest.raises(rag.InvalidSetting, match="top_k"):
            qa.ask("Who opposed the price floor?", top_k=bad)
    with pytest.raises(TypeError, match="list of questions"):
        qa.ask_batch("Who opposed the price floor?")
    with pytest.raises(rag.InvalidQuestion):  # checked before any is answered
        qa.ask_batch(["Who opposed the price floor?", ""])
    with pytest.raises(rag.DocumentNotFound, match="Did you mean '001_9d22b42193b165a8.txt'"):
        qa.document("001_9d22b42193b165a8")


@pytest.mark.slow
def test_documents_and_abstention(qa):
    assert qa.documents() == tuple(sorted(p.name for p in SEEDS.glob("*.txt")))
    result = qa.ask("What is the price of bananas on Mars?")
    assert result.answers == () and result.closest
    for p in result.closest:
        assert qa.document(p.doc_id).text[p.start : p.end] == p.text
    assert "closest" in result.to_dict()
    assert "5 documents" in repr(qa)


@pytest.mark.slow
def test_ask_batch_is_ask_for_each(qa):
    questions = GOLD[:12]
    assert [r.to_dict() for r in qa.ask_batch(questions)] == [qa.ask(q).to_dict() for q in questions]


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["learned", "heuristic"])
def test_to_dict_is_the_cli_json(seed_index_dir, reader):
    qa = rag.open(seed_index_dir, reader=reader, corpus_dir=SEEDS)
    env = {"RAG_CORPUS_DIR": str(SEEDS), "RAG_READER": reader}
    for q in [*GOLD[:3], "What is the price of bananas on Mars?"]:
        r = CliRunner().invoke(app, ["ask", q, "--json", "--index-dir", str(seed_index_dir)], env=env)
        assert r.exit_code == 0, r.output
        assert qa.ask(q).to_dict() == json.loads(r.stdout), q


@pytest.mark.slow
def test_index_returns_the_summary_and_the_warnings(tmp_path, capfd):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The reserve is worth A$1.2 billion. It was announced in January.\n")
    (corpus / "empty.txt").write_text("")
    summary = rag.index(corpus, index_dir=tmp_path / "idx")  # one path, not a list
    assert isinstance(summary, rag.IndexSummary)
    assert (summary.documents, summary.added, summary.skipped) == (1, ("a.txt",), (("empty.txt", "empty file"),))
    assert summary.warnings == ("skipped empty.txt: empty file",)
    assert str(summary).startswith("indexed 1 document into 1 chunk in ")
    again = rag.index(index_dir=tmp_path / "idx")  # the recorded corpus
    assert again.unchanged == ("a.txt",) and again.embedded == 0
    assert capfd.readouterr() == ("", "")  # nothing printed
    with pytest.raises(rag.CorpusError):
        rag.index([tmp_path / "missing"], index_dir=tmp_path / "idx2")


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # as from the repository root: seeds/ there
    shutil.copytree(SEEDS, tmp_path / "seeds")
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "indexed 5 documents" in out and "1.2 billion" in out and "Marco Rubio" in out
    assert (tmp_path / "my-index").is_dir()
