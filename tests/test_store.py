"""Index persistence: reload, hash-skip, changed/removed files, atomic writes, damage detection."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import rag.generations
import rag.store
from rag.errors import CorpusError, IndexCorrupt, IndexMismatch, IndexMissing, IndexWriteError, RagError
from rag.generations import files_of, generation_names
from rag.store import build_index, load_index

WRITE_FIX = "Choose another --index-dir or RAG_INDEX_DIR, check permissions and free space."

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
    manifest = json.loads((files_of(idx) / "manifest.json").read_text())
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


MARKDOWN = "# Beta\n\n**Beta Ltd** refines *gallium* in [Perth](https://example.com/perth) since 2019.\n"


def test_markdown_is_indexed_as_read_by_default_and_rendered_only_when_asked(
    tmp_path, settings_factory, embedder, monkeypatch
):
    import rag.corpus

    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("Alpha Corp makes magnets in Ohio.", encoding="utf-8")
    (d / "b.md").write_text(MARKDOWN, encoding="utf-8")
    raw = (d / "b.md").read_text(encoding="utf-8")
    calls: list[str] = []
    real_extract = rag.corpus.extract
    monkeypatch.setattr(rag.corpus, "extract", lambda data, fmt: calls.append(fmt) or real_extract(data, fmt))
    idx = tmp_path / "idx"

    def build(**kw):
        calls.clear()
        s = settings_factory(index_dir=idx, **kw)
        report = build_index([d], s, idx, embedder)
        data = load_index(idx, s)
        for c in data.chunks:  # offsets index the document's text as indexed
            assert data.documents[c.doc_id].text[c.start : c.end] == c.text
        extractor = json.loads((files_of(idx) / "manifest.json").read_text())["documents"]["b.md"]["extractor"]
        return report, data.documents["b.md"].text, extractor

    # the default: a .md file is indexed as Path.read_text reads it, exactly as a .txt file is
    report, text, extractor = build()
    assert text == raw and extractor == "text/1" and sorted(calls) == ["text", "text"]
    assert set(report.added) == {"a.txt", "b.md"}
    # unchanged: nothing extracted again
    report, text, _ = build()
    assert calls == [] and set(report.unchanged) == {"a.txt", "b.md"}
    # the opt-in: the rendered text, under another extractor id, so the .md file (only) is re-extracted
    report, text, extractor = build(markdown_rendered=True)
    assert calls == ["markdown"] and report.changed == ("b.md",) and report.unchanged == ("a.txt",)
    assert text == "Beta\n\nBeta Ltd refines gallium in Perth since 2019.\n"
    assert extractor.startswith("markdown/1 markdown-it-py ")
    report, _, _ = build(markdown_rendered=True)
    assert calls == [] and set(report.unchanged) == {"a.txt", "b.md"}
    # and back: the file's text again
    report, text, extractor = build()
    assert calls == ["text"] and report.changed == ("b.md",) and text == raw and extractor == "text/1"


def test_interrupted_build_leaves_previous_index(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    before = (files_of(idx) / "manifest.json").read_text()
    (corpus / "a.txt").write_text("Completely new text about cobalt.", encoding="utf-8")

    class Boom:
        backend, dim, model_name = "torch", 384, "x"

        def encode(self, *a, **k):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index([corpus], s, idx, Boom())
    assert (files_of(idx) / "manifest.json").read_text() == before
    load_index(idx, s)  # still loads
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert generation_names(idx) == [files_of(idx).name]  # the unfinished generation is gone


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
    gen = files_of(idx)
    with (gen / "vectors.faiss").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage")
    with pytest.raises(IndexCorrupt, match="rag index"):
        load_index(idx, s)
    (gen / "chunks.jsonl").unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        load_index(idx, s)
    (gen / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="rag index"):
        load_index(idx, s)


def test_bm25_is_saved_with_the_index_and_checked_like_every_file(seed_index_dir, tmp_path, settings_factory):
    from rag.retrieval import BM25_FILES, BM25Retriever, Query
    from rag.store import bm25_for

    s = settings_factory(index_dir=seed_index_dir)
    data = load_index(seed_index_dir, s)
    assert set(BM25_FILES.values()) <= set(data.manifest.files)
    saved, built = bm25_for(data), BM25Retriever([c.text for c in data.chunks])
    q = Query.make("Who convened the Washington meeting?")
    assert saved.search(q, 10) == built.search(q, 10) and saved.search(q, 10)
    assert saved.idf == built.idf and saved.default_idf == built.default_idf

    idx = tmp_path / "copy"
    shutil.copytree(seed_index_dir, idx)
    with (files_of(idx) / "bm25_data.npy").open("r+b") as f:
        f.seek(200)
        f.write(b"\x00garbage")
    with pytest.raises(IndexCorrupt, match="bm25_data.npy is damaged"):
        load_index(idx, s)


def test_an_index_without_bm25_and_lexicon_files_still_loads(seed_index_dir, tmp_path, settings_factory):
    """Indexes written before BM25 and the lexicon were saved: both are worked out in memory, alike."""
    from rag.reader.heuristic import HeuristicReader
    from rag.reader.spans import build_lexicon
    from rag.retrieval import BM25_FILES, Query
    from rag.store import LEXICON, bm25_for

    idx = tmp_path / "old"
    shutil.copytree(seed_index_dir, idx)
    gen = files_of(idx)
    manifest = json.loads((gen / "manifest.json").read_text())
    for name in (*BM25_FILES.values(), LEXICON):
        (gen / name).unlink()
        del manifest["files"][name]
    (gen / "manifest.json").write_text(json.dumps(manifest))
    old_data = load_index(idx, settings_factory(index_dir=idx))
    new_data = load_index(seed_index_dir, settings_factory(index_dir=seed_index_dir))
    q = Query.make("Australia strategic reserve")
    old, new = bm25_for(old_data), bm25_for(new_data)
    assert old.search(q, 5) == new.search(q, 5)
    assert old_data.lexicon is None
    assert new_data.lexicon == build_lexicon(d.text for d in new_data.documents.values())
    reader = HeuristicReader(old_data, old.idf, old.default_idf, threshold=0.35)
    assert reader.lexicon == new_data.lexicon


def test_missing_and_mismatched_index(seed_index_dir, tmp_path, settings_factory):
    with pytest.raises(IndexMissing, match="rag index"):
        load_index(tmp_path / "nothing", settings_factory())
    with pytest.raises(IndexMismatch, match="rag index"):
        load_index(seed_index_dir, settings_factory(chunk_max_chars=900))
    with pytest.raises(IndexMismatch, match="model"):
        load_index(seed_index_dir, settings_factory(embedding_model="some/other-model"))


def test_rebuild_commands_name_a_non_default_index_dir(seed_index_dir, tmp_path, settings_factory, monkeypatch):
    nothing = tmp_path / "nothing"
    with pytest.raises(IndexMissing) as exc:
        load_index(nothing, settings_factory())
    assert str(exc.value) == (
        f"No index in {nothing}. Build one with `rag index --index-dir {nothing}` "
        f"(or `rag index PATH --index-dir {nothing}` for another corpus)."
    )
    with pytest.raises(IndexMismatch) as exc:
        load_index(seed_index_dir, settings_factory(chunk_max_chars=900))
    assert f"Run `rag index --index-dir {seed_index_dir}` to re-chunk" in str(exc.value)
    with pytest.raises(IndexMismatch) as exc:
        load_index(seed_index_dir, settings_factory(embedding_model="some/other-model"))
    assert f"Run `rag index --rebuild --index-dir {seed_index_dir}` to re-embed" in str(exc.value)

    monkeypatch.chdir(tmp_path)  # the default index dir, `index`, is not named
    with pytest.raises(IndexMissing) as exc:
        load_index(Path("index"), settings_factory())
    assert str(exc.value) == "No index in index. Build one with `rag index` (or `rag index PATH` for another corpus)."
    shutil.copytree(seed_index_dir, "index")
    (files_of(Path("index")) / "chunks.jsonl").unlink()
    with pytest.raises(IndexCorrupt) as exc:
        load_index(Path("index"), settings_factory())
    assert str(exc.value) == (
        "The index in index is incomplete: chunks.jsonl is missing. Rebuild it with `rag index --rebuild`."
    )


def test_rebuild_commands_name_a_non_default_corpus(corpus, tmp_path, settings_factory, embedder):
    idx = tmp_path / "idx"
    build_index([corpus], settings_factory(), idx, embedder)  # settings_factory's corpus is the seeds
    with pytest.raises(IndexMismatch) as exc:
        load_index(idx, settings_factory(embedding_model="some/other-model"))
    assert f"Run `rag index {corpus} --rebuild --index-dir {idx}` to re-embed" in str(exc.value)
    (files_of(idx) / "documents.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(IndexCorrupt) as exc:
        load_index(idx, settings_factory())
    assert str(exc.value) == (
        f"The index file {files_of(idx) / 'documents.jsonl'} is damaged (checksum mismatch). "
        f"Rebuild it with `rag index {corpus} --rebuild --index-dir {idx}`."
    )


# ------------------------------------------------------------------------ filesystem failures while writing
def _never_embed():
    raise AssertionError("nothing should be embedded")


@pytest.mark.parametrize("under", ["regular-file", "/dev/null"])
def test_index_dir_under_a_file_is_an_error_before_any_work(corpus, tmp_path, settings_factory, under):
    blocker = tmp_path / "notes.txt" if under == "regular-file" else Path(under)
    if under == "regular-file":
        blocker.write_text("not a folder", encoding="utf-8")
    idx = blocker / "sub" / "idx"
    with pytest.raises(IndexWriteError) as exc:
        build_index([corpus], settings_factory(index_dir=idx), idx, _never_embed)
    assert str(exc.value) == (
        f"Cannot create the index folder {idx}: {blocker} is a file, not a folder. "
        "Choose another --index-dir or RAG_INDEX_DIR."
    )
    assert isinstance(exc.value, RagError)


def test_index_dir_that_is_a_file_is_an_error(corpus, tmp_path, settings_factory):
    idx = tmp_path / "idx"
    idx.write_text("x", encoding="utf-8")
    with pytest.raises(IndexWriteError, match=f"^Index path {idx} is a file, not a folder. Choose another"):
        build_index([corpus], settings_factory(index_dir=idx), idx, _never_embed)


def _leftovers(idx: Path) -> list[str]:
    """What a build left beside or in the index folder besides the lock and the current generation."""
    beside = [p.name for p in idx.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    inside = [p.name for p in idx.iterdir() if p.name not in ("CURRENT", files_of(idx).name)]
    return sorted(beside + inside)


def test_disk_full_while_writing_keeps_the_previous_index(corpus, tmp_path, settings_factory, embedder, monkeypatch):
    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    before = (files_of(idx) / "manifest.json").read_text(encoding="utf-8")

    def disk_full(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rag.store, "_write_jsonl", disk_full)
    with pytest.raises(IndexWriteError) as exc:
        build_index([corpus], s, idx, _never_embed)  # nothing changed: only the write is attempted
    message = str(exc.value)
    assert message.startswith(f"Cannot write the index {idx}: writing the new index files in {idx}/gen-000002-")
    assert message.endswith(f" failed (No space left on device). The previous index, if any, is unchanged. {WRITE_FIX}")
    assert (files_of(idx) / "manifest.json").read_text(encoding="utf-8") == before
    assert set(load_index(idx, s).documents) == {"a.txt", "sub/b.md"}
    assert _leftovers(idx) == []


def test_failed_publication_keeps_the_previous_index(corpus, tmp_path, settings_factory, embedder, monkeypatch):
    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    before = (files_of(idx) / "manifest.json").read_text(encoding="utf-8")
    (corpus / "a.txt").write_text("Alpha Corp now makes batteries in Texas.", encoding="utf-8")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((Path(src).name.split("-")[0], Path(dst).name))
        if Path(dst).name == "CURRENT":  # the pointer's rename: the one step that publishes the new index
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(rag.generations.os, "replace", replace)
    with pytest.raises(IndexWriteError) as exc:
        build_index([corpus], s, idx, embedder)
    assert calls == [(".CURRENT.tmp", "CURRENT")]  # the index folder itself is never renamed
    message = str(exc.value)
    assert message.startswith(f"Cannot write the index {idx}: publishing gen-000002-")
    assert message.endswith(
        f" as {idx / 'CURRENT'} failed (Permission denied: {idx / 'CURRENT'}). The previous index, if any, is "
        f"unchanged. {WRITE_FIX}"
    )
    assert (files_of(idx) / "manifest.json").read_text(encoding="utf-8") == before
    assert "magnets" in load_index(idx, s).documents["a.txt"].text
    assert _leftovers(idx) == []  # neither the unpublished generation nor the pointer's temporary file is left


def test_a_generation_being_read_is_kept_until_a_later_build(corpus, tmp_path, settings_factory, embedder):
    from rag.generations import reading, resolve

    idx = tmp_path / "idx"
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    first = resolve(idx)
    with reading(first):  # a reader in the middle of opening its files
        build_index([corpus], s, idx, _never_embed)
        assert generation_names(idx) == [first.name, files_of(idx).name]  # not removed under the reader
        assert (first.path / "chunks.jsonl").is_file()
    build_index([corpus], s, idx, _never_embed)
    assert len(generation_names(idx)) == 1 and first.name not in generation_names(idx)


def test_legacy_encodings_are_decoded_and_binary_files_skipped_with_a_warning(tmp_path, caplog):
    from rag.corpus import load_corpus

    d = tmp_path / "c"
    d.mkdir()
    (d / "ok.txt").write_text("Fine text.", encoding="utf-8")
    (d / "latin.txt").write_bytes("Le caf\xe9 cr\xe8me de la gare, d\xe9j\xe0 servi.".encode("latin-1"))
    (d / "blob.md").write_bytes(b"\x89PNG\x00\x00\x01")
    with caplog.at_level("WARNING", logger="rag"):
        docs = {x.doc_id: x for x in load_corpus([d])}
    assert sorted(docs) == ["latin.txt", "ok.txt"]
    assert docs["latin.txt"].text == "Le café crème de la gare, déjà servi."
    assert docs["latin.txt"].encoding == "cp1252" and docs["ok.txt"].encoding is None
    assert [r.getMessage() for r in caplog.records] == ["skipped blob.md: binary file, not text"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_decoded(tmp_path, encoding):
    from rag.corpus import load_corpus

    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    (tmp_path / "wide.txt").write_bytes(bom + "Gallium is refined in Perth.\r\n".encode(encoding))
    (doc,) = load_corpus([tmp_path])
    assert (doc.text, doc.encoding) == ("Gallium is refined in Perth.\n", encoding.removesuffix("-be"))


def test_a_file_named_directly_must_be_of_a_format_rag_reads(corpus):
    from rag.corpus import load_corpus

    with pytest.raises(CorpusError) as exc:
        load_corpus([corpus / "ignored.csv"])
    assert str(exc.value) == (
        f"{corpus / 'ignored.csv'} is not a file of a format rag reads (.txt, .md, .pdf, .html, .htm, .docx); "
        "rename it to .txt if it is plain text (e.g. ignored.txt), or pass a folder of documents."
    )
    (corpus / "data.json").write_text("{}", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"ignored.csv, .*data.json are not files of a format rag reads"):
        load_corpus([corpus / "ignored.csv", corpus / "data.json"])
    docs = load_corpus([corpus / "a.txt"])  # a .txt file named directly is fine
    assert [d.doc_id for d in docs] == ["a.txt"]


def test_a_file_of_another_format_among_other_paths_is_skipped_with_a_warning(corpus, caplog):
    from rag.corpus import load_corpus

    with caplog.at_level("WARNING", logger="rag"):
        docs = load_corpus([corpus / "ignored.csv", corpus / "a.txt", corpus / "sub"])
    assert [d.doc_id for d in docs] == ["a.txt", "sub/b.md"]
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped {corpus / 'ignored.csv'}: not a format rag reads (.txt, .md, .pdf, .html, .htm, .docx)"
    ]


def test_empty_corpus_is_an_error(tmp_path):
    from rag.corpus import load_corpus

    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no readable text"):
        load_corpus([tmp_path])
    with pytest.raises(CorpusError, match="not found"):
        load_corpus([tmp_path / "missing"])


def test_symlinks_out_of_the_corpus_loops_and_linked_folders_are_skipped_with_a_warning(tmp_path, caplog):
    from rag.corpus import scan_corpus

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.txt").write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_text("Gallium is refined in Perth.", encoding="utf-8")
    (root / "sub" / "same.txt").symlink_to(root / "ok.txt")  # inside the corpus: read
    (root / "passwd.txt").symlink_to(outside / "passwd.txt")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    (root / "gone.txt").symlink_to(root / "missing.txt")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    with caplog.at_level("WARNING", logger="rag"):
        scan = scan_corpus([root])
    assert sorted(d.doc_id for d in scan.documents) == ["ok.txt", "sub/same.txt"]
    assert sorted(r.getMessage() for r in caplog.records) == [
        "skipped elsewhere: a symlink to a folder (folders reached through a symlink are not read)",
        "skipped gone.txt: a broken symlink or a symlink loop",
        "skipped loop.txt: a broken symlink or a symlink loop",
        "skipped passwd.txt: a symlink to a file outside the corpus folder; "
        "set RAG_FOLLOW_EXTERNAL_SYMLINKS=true to index it",
    ]
    assert len(scan.skipped) == 4
    followed = scan_corpus([root], follow_external_symlinks=True)
    assert sorted(d.doc_id for d in followed.documents) == ["ok.txt", "passwd.txt", "sub/same.txt"]


@pytest.mark.slow
def test_an_outside_symlink_is_not_served(tmp_path, settings_factory, embedder):
    from rag.store import build_index, load_index

    (tmp_path / "secret.txt").write_text("The vault code is 4711.", encoding="utf-8")
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text("Gallium is refined in Perth.", encoding="utf-8")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    idx = tmp_path / "index"
    report = build_index([root], settings_factory(index_dir=idx), idx, embedder)
    assert [doc_id for doc_id, _ in report.skipped] == ["link.txt"]
    assert set(load_index(idx, settings_factory(index_dir=idx)).documents) == {"a.txt"}
