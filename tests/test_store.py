"""Index persistence: reload, hash-skip, changed/removed files, atomic writes, damage detection."""

from __future__ import annotations

import json
import shutil

import pytest

from rag.errors import CorpusError, IndexCorrupt, IndexMismatch, IndexMissing, RagError
from rag.store import build_index, load_index

pytestmark = pytest.mark.slow


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("Alpha Corp makes magnets in Ohio. It employs 400 people.", encoding="utf-8")
    (d / "sub" / "b.md").write_text("# Beta\nBeta Ltd refines gallium in Perth since 2019.", encoding="utf-8")
    (d / "ignored.csv").write_text("x,y", encoding="utf-8")
    return d


def test_build_and_reload(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    report = build_index([corpus], s, idx, embedder)
    assert report.documents == 2 and set(report.added) == {"a.txt", "sub/b.md"}
    data = load_index(idx, s)
    assert set(data.documents) == {"a.txt", "sub/b.md"}
    for c in data.chunks:
        assert data.documents[c.doc_id].text[c.start : c.end] == c.text
    assert data.faiss_index.ntotal == len(data.chunks)
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["embedding"]["dim"] == 384
    assert set(manifest["documents"]) == {"a.txt", "sub/b.md"}


def test_reindex_skips_unchanged_and_handles_changed_and_removed(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    calls = []

    def factory():
        calls.append(1)
        return embedder

    again = build_index([corpus], s, idx, factory)
    assert again.embedded == 0 and calls == [] and set(again.unchanged) == {"a.txt", "sub/b.md"}

    (corpus / "a.txt").write_text("Alpha Corp now makes batteries in Texas.", encoding="utf-8")
    (corpus / "sub" / "b.md").unlink()
    (corpus / "c.txt").write_text("Gamma Inc mines lithium.", encoding="utf-8")
    r = build_index([corpus], s, idx, factory)
    assert r.changed == ("a.txt",) and r.removed == ("sub/b.md",) and r.added == ("c.txt",)
    assert r.embedded > 0 and calls == [1]
    data = load_index(idx, s)
    assert set(data.documents) == {"a.txt", "c.txt"}
    assert "batteries" in data.documents["a.txt"].text


def test_interrupted_build_leaves_previous_index(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    before = (idx / "manifest.json").read_text()
    (corpus / "a.txt").write_text("Completely new text about cobalt.", encoding="utf-8")

    class Boom:
        backend, dim, model_name = "torch", 384, "x"

        def encode(self, *a, **k):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index([corpus], s, idx, Boom())
    assert (idx / "manifest.json").read_text() == before
    load_index(idx, s)  # still loads
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_readme_in_index_dir_is_kept(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "README.md").write_text("keep me")
    build_index([corpus], settings_factory(index_dir=idx), idx, embedder)
    assert (idx / "README.md").read_text() == "keep me"


def test_refuses_foreign_folder(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "mine"
    idx.mkdir()
    (idx / "thesis.docx").write_text("precious")
    with pytest.raises(RagError, match="not part of an index"):
        build_index([corpus], settings_factory(index_dir=idx), idx, embedder)
    assert (idx / "thesis.docx").read_text() == "precious"


def test_damaged_and_missing_files(seed_index_dir, tmp_path, settings_factory):
    idx = tmp_path / "copy"
    shutil.copytree(seed_index_dir, idx)
    s = settings_factory(index_dir=idx)
    with (idx / "vectors.faiss").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage")
    with pytest.raises(IndexCorrupt, match="rag index"):
        load_index(idx, s)
    (idx / "chunks.jsonl").unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        load_index(idx, s)
    (idx / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="rag index"):
        load_index(idx, s)


def test_missing_and_mismatched_index(seed_index_dir, tmp_path, settings_factory):
    with pytest.raises(IndexMissing, match="rag index"):
        load_index(tmp_path / "nothing", settings_factory())
    with pytest.raises(IndexMismatch, match="rag index"):
        load_index(seed_index_dir, settings_factory(chunk_max_chars=900))
    with pytest.raises(IndexMismatch, match="model"):
        load_index(seed_index_dir, settings_factory(embedding_model="some/other-model"))


def test_non_utf8_and_binary_files_are_skipped_with_a_warning(tmp_path, caplog):
    from rag.corpus import load_corpus

    d = tmp_path / "c"
    d.mkdir()
    (d / "ok.txt").write_text("Fine text.", encoding="utf-8")
    (d / "latin.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (d / "blob.md").write_bytes(b"\x89PNG\x00\x00\x01")
    with caplog.at_level("WARNING", logger="rag"):
        docs = load_corpus([d])
    assert [x.doc_id for x in docs] == ["ok.txt"]
    msgs = [r.getMessage() for r in caplog.records]
    assert any("latin.txt" in m and "UTF-8" in m for m in msgs)
    assert any("blob.md" in m and "binary" in m for m in msgs)


def test_empty_corpus_is_an_error(tmp_path):
    from rag.corpus import load_corpus

    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no readable text"):
        load_corpus([tmp_path])
    with pytest.raises(CorpusError, match="not found"):
        load_corpus([tmp_path / "missing"])
