"""Hostile files (issue 25): what is opened is checked, not the path; nothing outside the corpus, no hang."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from rag.corpus import read_files, scan_corpus

SECRET = "The vault code is 4711."


def _corpus(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("Gallium is refined in Perth.", encoding="utf-8")
    (root / "b.txt").write_text("Germanium is refined in Hobart.", encoding="utf-8")
    (root / "sub" / "c.txt").write_text("Indium is refined in Darwin.", encoding="utf-8")
    (root / "link.txt").symlink_to(root / "a.txt")  # inside the corpus: allowed
    return root, outside


def _swapping(swap):
    """A ``read`` for scan_corpus that swaps files between the scan and the read (the race, made certain)."""

    def read(jobs, max_bytes, progress):
        swap()
        return read_files(jobs, max_bytes, progress)

    return read


def _texts(scan) -> str:
    return "\n".join(d.text for d in scan.documents)


def test_a_file_swapped_for_a_symlink_out_of_the_corpus_after_the_scan_is_not_read(tmp_path, caplog):
    root, outside = _corpus(tmp_path)

    def swap() -> None:
        (root / "b.txt").unlink()
        (root / "b.txt").symlink_to(outside / "secret.txt")

    with caplog.at_level("WARNING", logger="rag"):
        scan = scan_corpus([root], read=_swapping(swap))
    assert SECRET not in _texts(scan)
    assert sorted(d.doc_id for d in scan.documents) == ["a.txt", "link.txt", "sub/c.txt"]
    assert scan.skipped == (("b.txt", "it became a symlink after the scan (not followed)"),)
    assert any(r.getMessage().startswith("skipped b.txt: ") for r in caplog.records)


def test_an_allowed_link_repointed_out_of_the_corpus_after_the_scan_is_not_read(tmp_path):
    root, outside = _corpus(tmp_path)

    def swap() -> None:
        (root / "link.txt").unlink()
        (root / "link.txt").symlink_to(outside / "secret.txt")

    scan = scan_corpus([root], read=_swapping(swap))
    assert SECRET not in _texts(scan)
    assert [doc_id for doc_id, _ in scan.skipped] == ["link.txt"]
    assert "replaced after the scan" in scan.skipped[0][1]


def test_a_folder_swapped_for_a_symlink_out_of_the_corpus_after_the_scan_is_not_read(tmp_path):
    root, outside = _corpus(tmp_path)
    (outside / "c.txt").write_text(SECRET, encoding="utf-8")

    def swap() -> None:
        (root / "sub").rename(tmp_path / "old-sub")
        (root / "sub").symlink_to(outside, target_is_directory=True)

    scan = scan_corpus([root], read=_swapping(swap))
    assert SECRET not in _texts(scan)
    assert [doc_id for doc_id, _ in scan.skipped] == ["sub/c.txt"]


def _unblock_fifo_later(path: Path, after_s: float, for_s: float = 30.0) -> threading.Thread:
    """From ``after_s`` on, keep opening the FIFO's writing end (for ``for_s`` at most), so that code blocking
    on it (the old code) ends, and the test with it: new code never waits for this."""

    def run() -> None:
        time.sleep(after_s)
        end = time.monotonic() + for_s
        while time.monotonic() < end and os.path.lexists(path):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # no reader waiting: nothing blocked
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_fifo_swapped_in_after_the_scan_never_blocks_the_read(tmp_path):
    root, _ = _corpus(tmp_path)
    fifo = root / "b.txt"

    def swap() -> None:
        fifo.unlink()
        os.mkfifo(fifo)
        _unblock_fifo_later(fifo, 8.0)  # only old code that blocks on the FIFO needs this

    t0 = time.monotonic()
    scan = scan_corpus([root], read=_swapping(swap))
    assert time.monotonic() - t0 < 5.0
    assert dict(scan.skipped)["b.txt"].startswith(("a FIFO", "it was replaced"))
    assert sorted(d.doc_id for d in scan.documents) == ["a.txt", "link.txt", "sub/c.txt"]


def test_fifos_sockets_and_unreadable_folders_met_in_the_scan_are_named_and_counted(tmp_path, monkeypatch, caplog):
    root, _ = _corpus(tmp_path)
    os.mkfifo(root / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "talk.md"))
    (root / "locked").mkdir()
    (root / "locked" / "inside.txt").write_text("Never listed.", encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path):  # root ignores file modes, so an unreadable folder is simulated
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    try:
        with caplog.at_level("WARNING", logger="rag"):
            scan = scan_corpus([root])
    finally:
        sock.close()
    skipped = dict(scan.skipped)
    assert skipped["pipe.txt"] == "a FIFO (named pipe), not a regular file"
    assert skipped["talk.md"] == "a socket, not a regular file"
    assert skipped["locked"].startswith("a folder that cannot be read (Permission denied)")
    assert len(scan.skipped) == 3
    lines = sorted(r.getMessage() for r in caplog.records)
    assert [line.split(":")[0] for line in lines] == ["skipped locked", "skipped pipe.txt", "skipped talk.md"]
    assert "3 skipped" in scan.summary()


def test_a_symlink_to_a_hidden_file_inside_the_corpus_is_left_out(tmp_path):
    root, _ = _corpus(tmp_path)
    (root / ".private").mkdir()
    (root / ".private" / "keys.txt").write_text(SECRET, encoding="utf-8")
    (root / ".env.txt").write_text(SECRET, encoding="utf-8")
    (root / "keys.txt").symlink_to(root / ".private" / "keys.txt")
    (root / "env.txt").symlink_to(root / ".env.txt")
    scan = scan_corpus([root])
    assert SECRET not in _texts(scan)
    assert dict(scan.skipped) == {
        "env.txt": "a symlink to a hidden file (hidden files are left out)",
        "keys.txt": "a symlink to a hidden file (hidden files are left out)",
    }


def test_a_link_to_a_device_is_not_read_even_when_external_links_are_followed(tmp_path):
    root, _ = _corpus(tmp_path)
    (root / "zero.txt").symlink_to("/dev/zero")
    t0 = time.monotonic()
    scan = scan_corpus([root], follow_external_symlinks=True, max_bytes=10_000_000)
    assert time.monotonic() - t0 < 5.0
    assert dict(scan.skipped)["zero.txt"] == "a symlink to a device, not a regular file"


def test_reading_is_bounded_by_the_limit(tmp_path):
    from rag.safe_open import TooLarge, read_checked

    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 100)
    assert read_checked(path, limit=100)[0] == b"x" * 100
    with pytest.raises(TooLarge):
        read_checked(path, limit=99)


# --------------------------------------------------------------------------------------------- index files
@pytest.fixture()
def small_index(tmp_path, settings_factory, embedder):
    from rag.store import build_index

    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text("Gallium is refined in Perth. It is used in chips.", encoding="utf-8")
    (root / "b.txt").write_text("Germanium is refined in Hobart. It is used in optics.", encoding="utf-8")
    idx = tmp_path / "index"
    settings = settings_factory(index_dir=idx, corpus_dir=root)
    build_index([root], settings, idx, embedder)
    return root, idx, settings


def _timed(fn, limit_s: float):
    """Run ``fn`` and return (what it returned or raised, seconds taken)."""
    t0 = time.monotonic()
    try:
        got = fn()
    except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
        got = exc
    return got, time.monotonic() - t0


def test_a_manifest_that_is_a_fifo_is_damage_at_once_and_rag_index_recovers(small_index, embedder):
    from rag.errors import IndexCorrupt
    from rag.generations import MANIFEST, files_of
    from rag.store import build_index, load_index

    root, idx, settings = small_index
    manifest = files_of(idx) / MANIFEST
    manifest.unlink()
    os.mkfifo(manifest)
    _unblock_fifo_later(manifest, 8.0)  # only old code that blocks on the FIFO needs this
    got, took = _timed(lambda: load_index(idx, settings), 5.0)
    assert took < 5.0 and isinstance(got, IndexCorrupt), (got, took)
    assert "not a regular file" in str(got) and "rag index" in str(got)
    _unblock_fifo_later(manifest, 8.0)
    got, took = _timed(lambda: build_index([root], settings, idx, embedder), 60.0)
    assert not isinstance(got, Exception), got
    assert took < 8.0
    assert set(load_index(idx, settings).documents) == {"a.txt", "b.txt"}


def test_a_pointer_that_is_a_fifo_is_damage_at_once_and_rag_index_repairs_it(small_index, embedder):
    from rag.errors import IndexCorrupt
    from rag.generations import POINTER
    from rag.store import build_index, load_index

    root, idx, settings = small_index
    (idx / POINTER).unlink()
    os.mkfifo(idx / POINTER)
    _unblock_fifo_later(idx / POINTER, 8.0)
    got, took = _timed(lambda: load_index(idx, settings), 5.0)
    assert took < 5.0 and isinstance(got, IndexCorrupt), (got, took)
    _unblock_fifo_later(idx / POINTER, 8.0)
    got, took = _timed(lambda: build_index([root], settings, idx, embedder), 60.0)
    assert not isinstance(got, Exception) and took < 8.0, (got, took)
    assert set(load_index(idx, settings).documents) == {"a.txt", "b.txt"}


_LOAD_IN_A_SMALL_PROCESS = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # old code read /dev/zero until memory ran out
from rag.config import Settings
from rag.errors import RagError
from rag.store import load_index
try:
    load_index(Path(sys.argv[1]), Settings(_env_file=None, index_dir=sys.argv[1]))
except RagError as exc:
    print("error:", exc)
"""


def test_a_manifest_linked_to_dev_zero_is_damage_at_once_without_filling_memory(small_index):
    import subprocess
    import sys

    from rag.generations import MANIFEST, files_of

    _, idx, _ = small_index
    manifest = files_of(idx) / MANIFEST
    manifest.unlink()
    manifest.symlink_to("/dev/zero")
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_A_SMALL_PROCESS, str(idx)], capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - t0 < 30
    assert out.stdout.startswith("error: The index manifest") and "damaged (a symlink" in out.stdout, (
        out.stdout,
        out.stderr,
    )


def test_an_indexed_file_replaced_by_a_fifo_is_reported_changed_without_blocking(small_index):
    from rag.freshness import stale_documents
    from rag.store import load_index

    root, idx, settings = small_index
    documents = load_index(idx, settings).manifest.documents
    (root / "b.txt").unlink()
    os.mkfifo(root / "b.txt")
    _unblock_fifo_later(root / "b.txt", 8.0)
    got, took = _timed(lambda: stale_documents(documents), 5.0)
    assert took < 5.0 and got.changed == ("b.txt",), (got, took)


# --------------------------------------------------------------------------------------------- invariants
def _tamper(idx: Path, name: str, edit) -> None:  # noqa: ANN001 - edit: bytes -> bytes
    """Edit one file of the current generation and recompute its checksum in the manifest (as an attacker
    who knows the format would): only the invariants checked at load can notice."""
    import hashlib
    import json

    from rag.generations import MANIFEST, files_of

    folder = files_of(idx)
    path = folder / name
    data = edit(path.read_bytes())
    path.unlink()  # a new file: the generation's files may be hard links
    path.write_bytes(data)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if name != MANIFEST:
        manifest["files"][name] = hashlib.sha256(data).hexdigest()
        (folder / MANIFEST).unlink()
        (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def _edit_jsonl(line: int, **changes):  # noqa: ANN202
    import json

    def edit(data: bytes) -> bytes:
        rows = [json.loads(x) for x in data.decode("utf-8").splitlines() if x.strip()]
        rows[line].update(changes)
        return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode("utf-8")

    return edit


def _edit_manifest(**faiss):  # noqa: ANN202
    import json

    def edit(data: bytes) -> bytes:
        m = json.loads(data)
        m["faiss"].update(faiss)
        return json.dumps(m).encode("utf-8")

    return edit


TAMPERED = [
    ("chunks.jsonl", _edit_jsonl(0, doc_id="nowhere.txt"), "not among the documents"),
    ("chunks.jsonl", _edit_jsonl(0, start=0, end=10_000), "not its text"),
    ("chunks.jsonl", _edit_jsonl(0, row=7), "chunk row 7"),
    ("chunks.jsonl", _edit_jsonl(0, start="zero"), "wrong type"),
    ("sentences.jsonl", _edit_jsonl(0, start=5_000, end=5_010), "outside the document"),
    ("sentences.jsonl", _edit_jsonl(0, doc_id="nowhere.txt"), "not among the documents"),
    ("chunk_vectors.npy", lambda data: b"", "cannot be read (EOFError)"),  # was click's "Aborted!"
    ("documents.jsonl", _edit_jsonl(0, text="short"), "not its text"),
]


@pytest.mark.parametrize(("name", "edit", "words"), TAMPERED, ids=[f"{n}:{w}" for n, _, w in TAMPERED])
def test_a_tampered_file_with_a_recomputed_checksum_is_one_damage_line(small_index, name, edit, words):
    from rag.errors import IndexCorrupt
    from rag.store import load_index

    _, idx, settings = small_index
    _tamper(idx, name, edit)
    with pytest.raises(IndexCorrupt) as err:
        load_index(idx, settings)
    assert words in str(err.value) and "--rebuild" in str(err.value), str(err.value)


def test_a_manifest_naming_another_faiss_kind_is_damage_and_rag_index_rebuilds(small_index, embedder, caplog):
    from rag.errors import IndexCorrupt
    from rag.generations import MANIFEST
    from rag.store import build_index, load_index

    root, idx, settings = small_index
    _tamper(idx, MANIFEST, _edit_manifest(kind="hnsw", hnsw_m=settings.hnsw_m))
    with pytest.raises(IndexCorrupt, match="is not the 'hnsw' index its manifest names"):
        load_index(idx, settings.model_copy(update={"faiss_index": "hnsw"}))
    with caplog.at_level("WARNING", logger="rag"):
        build_index([root], settings, idx, embedder)  # `rag index` without --rebuild
    assert any("rebuilding from scratch" in r.getMessage() for r in caplog.records)
    assert set(load_index(idx, settings).documents) == {"a.txt", "b.txt"}


def test_a_fifo_in_place_of_the_lock_file_never_makes_a_reader_wait(tmp_path):
    from rag.index_dir import lock_path, wait_for_writer

    idx = tmp_path / "index"
    lock = lock_path(idx)
    lock.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(lock)
    _unblock_fifo_later(lock, 8.0)  # only old code that blocks on the FIFO needs this
    got, took = _timed(lambda: wait_for_writer(idx), 5.0)
    assert took < 5.0 and got is None, (got, took)
