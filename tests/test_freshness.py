"""Noticing documents that changed on disk after indexing (pure checks, then the CLI warning)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import app
from rag.corpus import read_document
from rag.freshness import Staleness, describe, stale_documents
from rag.manifest import DocumentInfo


def _info(path: Path) -> DocumentInfo:
    doc = read_document(path, path.name)
    assert doc is not None and doc.source is not None
    src = doc.source
    return DocumentInfo(
        sha256=doc.sha256, chars=len(doc.text), chunks=1, source=src.path, size=src.size, mtime_ns=src.mtime_ns
    )


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("Paris is the capital of France.", encoding="utf-8")
    b.write_text("Rome is the capital of Italy.", encoding="utf-8")
    return a, b


def test_unchanged_and_merely_touched_files_are_fresh(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    docs = {"a.txt": _info(a), "b.txt": _info(b)}
    assert stale_documents(docs) == Staleness((), ())
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched, same text: hashed, not reported
    assert not stale_documents(docs)


def test_edited_and_removed_files_are_reported(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    docs = {"a.txt": _info(a), "b.txt": _info(b), "old.txt": DocumentInfo(sha256="x", chars=1, chunks=1)}
    a.write_text("Intro. Paris is the capital of France.", encoding="utf-8")
    b.unlink()
    # old.txt has no recorded source (an index written before sources were recorded): not checked
    assert stale_documents(docs) == Staleness(("a.txt",), ("b.txt",))


def test_an_index_whose_files_are_all_elsewhere_reports_nothing(two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    docs = {"a.txt": _info(a), "b.txt": _info(b)}
    a.unlink()
    b.unlink()  # the index was moved to another machine or folder, most likely
    assert not stale_documents(docs)


def test_describe() -> None:
    cmd = "`rag index docs`"
    assert describe(Staleness(("a.txt",), ()), cmd) == (
        "a.txt changed since the index was built: answers quote the indexed text, whose offsets may not "
        "match the files now. Run `rag index docs` to update the index."
    )
    many = Staleness(("a", "b", "c", "d"), ("e",))
    assert describe(many, cmd).startswith("4 files changed (a, b, c and 1 more) and e was removed since")


@pytest.mark.slow
def test_rag_ask_warns_about_an_edited_file_and_still_answers(tmp_path: Path, embedder) -> None:  # noqa: ARG001
    corpus, idx = tmp_path / "docs", tmp_path / "idx"
    corpus.mkdir()
    doc = corpus / "a.txt"
    doc.write_text("Paris is the capital of France. Berlin is the capital of Germany.", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(corpus), "--index-dir", str(idx)]).exit_code == 0
    question = ["ask", "What is the capital of Germany?", "--index-dir", str(idx)]
    fresh = runner.invoke(app, question, env={"RAG_READER": "heuristic"})
    assert fresh.exit_code == 0 and "warning" not in fresh.stderr
    doc.write_text("Intro. " + doc.read_text(encoding="utf-8"), encoding="utf-8")
    stale = runner.invoke(app, question, env={"RAG_READER": "heuristic"})
    assert stale.exit_code == 0 and "Berlin" in stale.stdout
    assert stale.stderr.strip() == (
        "warning: a.txt changed since the index was built: answers quote the indexed text, whose offsets may "
        f"not match the files now. Run `rag index {corpus} --index-dir {idx}` to update the index."
    )
