"""A folder mixing every format rag reads, plus the bad files people have: one `rag index`, a clear summary,
re-indexing that skips unchanged files, and answers from a PDF whose citation names its page and checks
out against `GET /documents/{id}` on a real `rag serve`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.corpus import scan_corpus
from rag.generations import files_of
from tests.docfiles import NEWS_HTML, encrypt_pdf, make_docx, make_pdf
from tests.servers import ROOT, free_port, running_server, serve_command

PDF_PAGES = [
    [
        "Annual review of the minerals alliance",
        "Delegates from eleven countries met in Ottawa to agree common stockpiles for critical minerals and a",
        "shared reporting standard for refiners, which most members signed without objection.",
    ],
    [
        "Dissent",
        "The proposed gallium export levy was opposed by the Norwegian delegation, which called it a tariff in",
        "disguise and asked for a review of its effect on smaller refiners before any vote.",
    ],
]
BAD_FILES = {  # name -> (kind, words of the reason)
    "scanned.pdf": ("skipped", "no text layer"),
    "locked.pdf": ("skipped", "encrypted PDF"),
    "broken.pdf": ("failed", "damaged or not really a PDF"),
    "empty.txt": ("skipped", "empty file"),
    "zip-not-word.docx": ("failed", "not a Word document"),
    "huge.pdf": ("skipped", "over the 1 MB limit"),
    "photo.png": None,  # another format: counted, not read
}


def make_folder(root: Path) -> Path:
    """Five good documents, one per format (and a legacy encoding), and the bad files of BAD_FILES."""
    import zipfile

    root.mkdir()
    (root / "notes.md").write_text("# Notes\nThe lithium auction closes on Friday.\n", encoding="utf-8")
    (root / "legacy.txt").write_bytes("The café in Zürich sells crème brûlée for nine francs.\r\n".encode("cp1252"))
    (root / "review.pdf").write_bytes(make_pdf(PDF_PAGES))
    (root / "news.html").write_text(NEWS_HTML, encoding="utf-8")
    make_docx(root / "report.docx")
    (root / "scanned.pdf").write_bytes(make_pdf([["x"]], text_layer=False))
    (root / "locked.pdf").write_bytes(encrypt_pdf(make_pdf(PDF_PAGES)))
    (root / "broken.pdf").write_bytes(make_pdf(PDF_PAGES)[:250])
    (root / "empty.txt").write_bytes(b"")
    with zipfile.ZipFile(root / "zip-not-word.docx", "w") as z:
        z.writestr("readme.txt", "not a word file")
    with (root / "huge.pdf").open("wb") as f:  # sparse: 2 MB on paper, nothing on disk
        f.truncate(2_000_000)
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def test_unreadable_files_are_named_and_counted_and_the_scan_goes_on(tmp_path, monkeypatch, caplog):
    folder = make_folder(tmp_path / "docs")
    (folder / "secret.txt").write_text("Readable only by its owner.", encoding="utf-8")
    import rag.corpus

    real_read = rag.corpus.read_checked

    def read_checked(path: Path, **kw):  # root ignores file modes, so a permission error is simulated
        if Path(path).name == "secret.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(path, **kw)

    monkeypatch.setattr(rag.corpus, "read_checked", read_checked)
    with caplog.at_level("WARNING", logger="rag"):
        scan = scan_corpus([folder], max_bytes=1_000_000)
    assert sorted(d.doc_id for d in scan.documents) == [
        "legacy.txt",
        "news.html",
        "notes.md",
        "report.docx",
        "review.pdf",
    ]
    problems = {doc_id: ("skipped", reason) for doc_id, reason in scan.skipped}
    problems |= {doc_id: ("failed", reason) for doc_id, reason in scan.failed}
    expected = {name: v for name, v in BAD_FILES.items() if v is not None}
    expected["secret.txt"] = ("failed", "cannot read it (Permission denied)")
    assert set(problems) == set(expected)
    for name, (kind, words) in expected.items():
        assert problems[name][0] == kind and words in problems[name][1], (name, problems[name])
    assert scan.other_files == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(expected)  # one line per bad file, naming it
    for name in expected:
        assert sum(f" {name}: " in line for line in lines) == 1
    assert scan.summary() == "5 files read, 4 skipped, 3 failed, 1 of other formats ignored"


@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory) -> tuple[Path, Path, str]:
    """`rag index` over the mixed folder (real bundled model); returns (folder, index dir, its output)."""
    tmp = tmp_path_factory.mktemp("formats")
    folder = make_folder(tmp / "docs")
    idx = tmp / "index"
    r = CliRunner().invoke(app, ["index", str(folder), "--index-dir", str(idx)], env={"RAG_MAX_FILE_MB": "1"})
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output
    return folder, idx, r.output


@pytest.mark.slow
def test_a_mixed_folder_indexes_in_one_command_with_a_summary(mixed_index):
    folder, idx, output = mixed_index
    assert "indexed 5 documents" in output
    assert "files: 5 indexed, 4 skipped, 2 failed, 1 of other formats ignored (the warnings above say why)" in output
    docs = json.loads((files_of(idx) / "manifest.json").read_text(encoding="utf-8"))["documents"]
    assert docs["review.pdf"]["extractor"].startswith("pdf/1 pypdfium2 ")
    assert docs["review.pdf"]["pages"][0] == 0 and len(docs["review.pdf"]["pages"]) == 2
    assert docs["legacy.txt"]["encoding"] == "cp1252" and docs["notes.md"]["encoding"] is None
    assert docs["news.html"]["title"] == "Gallium refinery opens in Perth"
    assert docs["report.docx"]["extractor"].startswith("docx/1 python-docx ")


@pytest.mark.slow
def test_reindexing_extracts_only_changed_files_and_a_new_extractor_reextracts(mixed_index, monkeypatch):
    import rag.corpus
    from rag.embedding import load_embedder
    from rag.store import build_index

    folder, idx, _ = mixed_index
    s = Settings(_env_file=None, index_dir=idx, max_file_mb=1)
    calls: list[str] = []
    real_extract = rag.corpus.extract

    def counting_extract(data, fmt):
        calls.append(fmt)
        return real_extract(data, fmt)

    monkeypatch.setattr(rag.corpus, "extract", counting_extract)
    embedder = load_embedder(s)
    report = build_index([folder], s, idx, embedder)
    # the five indexed files are not extracted again; the bad ones are tried again (they may have been fixed)
    bad_formats = ["docx", "pdf", "pdf", "pdf", "text"]  # zip-not-word, broken, locked, scanned, empty
    assert sorted(calls) == bad_formats and len(report.unchanged) == 5
    assert report.embedded == 0
    calls.clear()

    real_id = rag.corpus.extractor_id
    monkeypatch.setattr(rag.corpus, "extractor_id", lambda fmt: real_id(fmt) + ("+new" if fmt == "pdf" else ""))
    report = build_index([folder], s, idx, embedder)
    assert sorted(calls) == sorted([*bad_formats, "pdf"])  # a new PDF extractor: review.pdf is read again
    assert report.embedded == 0  # ... and its text did not change, so nothing is embedded again


@pytest.mark.slow
def test_an_answer_only_in_the_pdf_cites_its_page_and_checks_out_over_http(mixed_index, tmp_path):
    _, idx, _ = mixed_index
    port = free_port()
    pythonpath = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [*serve_command(), "--host", "127.0.0.1", "--port", str(port), "--index-dir", str(idx)]
    with running_server(cmd, env, tmp_path / "serve.log", f"http://127.0.0.1:{port}") as base:
        body = httpx.post(f"{base}/ask", json={"question": "Who opposed the gallium export levy?"}, timeout=30).json()
        listing = {d["doc_id"]: d for d in httpx.get(f"{base}/documents", timeout=10).json()}
        doc = httpx.get(f"{base}/documents/review.pdf", timeout=10).json()
    assert listing["review.pdf"]["pages"] == 2 and listing["news.html"]["title"] == "Gallium refinery opens in Perth"
    assert "pages" not in listing["notes.md"] and "title" not in listing["notes.md"]
    assert doc["pages"] == 2 and doc["page_starts"][0] == 0 and "page_starts" not in listing["review.pdf"]
    assert doc["text"][doc["page_starts"][1] :].startswith("Dissent")  # where page 2 begins
    top = body["answers"][0]
    assert "Norwegian delegation" in top["text"]
    cite = top["citations"][0]
    assert cite["doc_id"] == "review.pdf" and cite["page"] == 2
    text = doc["text"]
    assert text[cite["start"] : cite["end"]] == top["text"]
    assert text[cite["quote_start"] : cite["quote_end"]] == cite["quote"]
    assert "Norwegian delegation" in cite["quote"]
    for a in body["answers"]:  # only citations of paged documents carry a page
        for c in a["citations"]:
            assert ("page" in c) == (c["doc_id"] == "review.pdf")
