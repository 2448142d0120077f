"""Readers never race writers (issue 21): a reader sees one whole index, never a half-swapped one or parts of
two builds, never builds or rebuilds an index that exists, and answers say which index they came from.

The race tests are bounded: a few small builds (a couple of seconds each on a busy 2-core machine) while a
reader loops, with a slowed reader to widen the window in which a swap can land in the middle of a load.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import app
from rag.errors import IndexCorrupt, IndexMissing, RagError
from rag.generations import POINTER, files_of, generation_names, publish, resolve
from rag.index_dir import writer_lock
from rag.store import build_index, load_index, read_manifest
from tests.servers import ROOT

pytestmark = pytest.mark.slow

VERSIONS = 6  # builds a writer publishes while readers load


def write_version(corpus: Path, version: int) -> None:
    """Three documents; every one says which version it is, so a chunk of another version is visible."""
    corpus.mkdir(parents=True, exist_ok=True)
    for name, fact in (("a.txt", "Gallium is refined in Perth."), ("b.txt", "The port is in Fremantle.")):
        (corpus / name).write_text(f"{fact} This is version {version}.\n", encoding="utf-8")
    (corpus / "c.txt").write_text(" ".join(f"Sentence {i} of version {version}." for i in range(version + 3)) + "\n")


def check_whole(index) -> int:  # noqa: ANN001 - an IndexData
    """Assert the loaded index is one build: every chunk is its document's slice, one version throughout."""
    for c in index.chunks:
        assert index.documents[c.doc_id].text[c.start : c.end] == c.text, "a chunk of another build"
    versions = {d.text.rsplit("version ", 1)[1].split(".")[0] for d in index.documents.values()}
    assert len(versions) == 1, f"documents of several builds: {versions}"
    assert len(index.documents) == index.manifest.counts["documents"] == 3
    assert len(index.chunks) == index.manifest.counts["chunks"] == index.faiss_index.ntotal
    return int(versions.pop())


def slow_reader(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every file the loader checks takes ``seconds`` longer (whichever module the loader lives in)."""
    real = load_index.__globals__["sha256_file"]

    def slow(path):  # noqa: ANN001, ANN202
        time.sleep(seconds)
        return real(path)

    monkeypatch.setitem(load_index.__globals__, "sha256_file", slow)


def test_readers_in_a_loop_while_a_writer_reindexes_see_whole_indexes_and_no_errors(
    tmp_path, settings_factory, embedder, monkeypatch
):
    corpus, idx = tmp_path / "docs", tmp_path / "index"
    write_version(corpus, 0)
    s = settings_factory(index_dir=idx, reader="heuristic")
    build_index([corpus], s, idx, embedder)
    slow_reader(monkeypatch, 0.01)  # a load takes ~15 checks x 10 ms: swaps land inside loads
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for version in range(1, VERSIONS + 1):
                write_version(corpus, version)
                build_index([corpus], s, idx, embedder)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    loads, failures, seen = 0, [], set()
    deadline = time.monotonic() + 300
    while not done.is_set() and time.monotonic() < deadline:
        try:
            seen.add(check_whole(load_index(idx, s)))
        except RagError as exc:
            failures.append(str(exc))
        loads += 1
    thread.join(60)
    assert not errors, errors
    assert failures == [], f"{len(failures)} of {loads} loads failed: {failures[:3]}"
    assert loads >= 5 and len(seen) >= 2, (loads, seen)  # the loop did overlap the builds
    assert check_whole(load_index(idx, s)) == VERSIONS
    assert len(generation_names(idx)) <= 2  # at most one kept because a reader held it at the last swap
    build_index([corpus], s, idx, embedder)
    assert generation_names(idx) == [files_of(idx).name]  # and the next build removed it


def test_a_reader_during_the_swap_gap_keeps_the_index(tmp_path, settings_factory, embedder, monkeypatch):
    """A writer held right after its first rename (old code: the index moved aside, the new one not yet in)
    while a reader of the default index starts: the reader loads an index of the corpus, never the seeds."""
    from rag.pipeline import Pipeline

    monkeypatch.chdir(tmp_path)
    write_version(Path("docs"), 0)
    shutil.copytree(ROOT / "seeds", "seeds")  # what a reader that rebuilds would index instead
    idx = Path("index")
    s = settings_factory(index_dir=idx, corpus_dir=Path("seeds"), reader="heuristic")
    build_index([Path("docs")], s, idx, embedder)
    write_version(Path("docs"), 1)
    real_replace, in_gap, release = os.replace, threading.Event(), threading.Event()

    def replace(src, dst):  # noqa: ANN001, ANN202
        real_replace(src, dst)
        if threading.current_thread().name == "writer" and not in_gap.is_set():
            in_gap.set()
            release.wait(30)

    monkeypatch.setattr(os, "replace", replace)
    writer = threading.Thread(target=build_index, args=([Path("docs")], s, idx, embedder), name="writer")
    writer.start()
    assert in_gap.wait(60)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(Pipeline.from_settings(s, progress=False)))
    reader.start()
    reader.join(5)  # today's reader needs no lock here; one that waits for the writer is let through below
    release.set()
    reader.join(120)
    writer.join(120)
    assert result and len(result[0].index.documents) == 3  # type: ignore[attr-defined]
    assert set(read_manifest(idx).documents) == {"a.txt", "b.txt", "c.txt"}


def test_readers_while_a_new_generation_waits_to_be_published_load_the_current_one(
    tmp_path, settings_factory, embedder, monkeypatch
):
    """The writer held between its two steps (the new generation complete, the pointer not yet renamed):
    readers load the current index, whole; a reader that began before the rename finishes on it after."""
    import rag.index_load
    import rag.store

    corpus, idx = tmp_path / "docs", tmp_path / "index"
    write_version(corpus, 0)
    s = settings_factory(index_dir=idx, reader="heuristic")
    build_index([corpus], s, idx, embedder)
    write_version(corpus, 1)
    in_gap, release = threading.Event(), threading.Event()

    def hold() -> None:
        in_gap.set()
        release.wait(30)

    monkeypatch.setattr(rag.store, "before_publish_hook", hold)
    writer = threading.Thread(target=build_index, args=([corpus], s, idx, embedder))
    writer.start()
    assert in_gap.wait(60)
    assert len(generation_names(idx)) == 2  # the new one is complete, beside the current one
    assert check_whole(load_index(idx, s)) == 0
    slow_reader(monkeypatch, 0.05)
    holding = threading.Event()
    monkeypatch.setattr(rag.index_load, "opened_hook", lambda folder: holding.set())
    loaded: list[int] = []
    reader = threading.Thread(target=lambda: loaded.append(check_whole(load_index(idx, s))))
    reader.start()
    assert holding.wait(60)  # the reader holds the current generation and is checking its files
    release.set()  # the writer publishes now, while the reader is still reading
    writer.join(60)
    reader.join(60)
    assert loaded == [0]  # the one it began with, whole
    assert check_whole(load_index(idx, s)) == 1


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_writer_killed_at_its_rename_leaves_an_index_a_reader_loads_unchanged(tmp_path, embedder, moment):
    """`rag index` killed just before or just after its first rename; then `rag ask` on the default index."""
    write_version(tmp_path / "docs", 0)
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAG_READER": "heuristic"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    run = [sys.executable, "-m", "rag.cli"]
    subprocess.run([*run, "index", "docs"], cwd=tmp_path, env=env, check=True, capture_output=True)
    write_version(tmp_path / "docs", 1)
    killed_at = "real(src, dst); " if moment == "after" else ""
    code = (
        "import os, sys, time\n"
        "real = os.replace\n"
        "def stop(src, dst):\n"
        "    if not os.path.abspath(dst).startswith(os.getcwd()):\n        return real(src, dst)\n"
        f"    {killed_at}print('renaming', flush=True); time.sleep(60)\n"
        "os.replace = stop\n"
        "from rag.cli import main\nsys.argv = ['rag', 'index', 'docs']\nmain()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "renaming"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    asked = subprocess.run(
        [*run, "ask", "Where is gallium refined?", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert asked.returncode == 0, asked.stderr
    assert "building" not in asked.stderr
    assert set(read_manifest(tmp_path / "index").documents) == {"a.txt", "b.txt", "c.txt"}


def test_a_previous_index_left_aside_is_restored_for_the_default_index_and_never_replaced(
    tmp_path, settings_factory, embedder, monkeypatch
):
    """What a writer of the old layout leaves when killed between its two renames: the index moved aside."""
    from rag.pipeline import Pipeline

    monkeypatch.chdir(tmp_path)
    write_version(Path("docs"), 0)
    shutil.copytree(ROOT / "seeds", "seeds")
    build_index([Path("docs")], settings_factory(index_dir=Path("built")), Path("built"), embedder)
    aside = Path(".index.old-k1ll3d")
    aside.mkdir()
    shutil.copytree(files_of(Path("built")), aside / "index")  # the old layout: the files at the top
    other = Path(".elsewhere.old-k1ll3d")
    shutil.copytree(aside, other)

    s = settings_factory(index_dir=Path("elsewhere"), corpus_dir=Path("seeds"), reader="heuristic")
    with pytest.raises(IndexMissing, match="an interrupted `rag index` left aside .*`rag index --index-dir elsewhere`"):
        Pipeline.from_settings(s)  # not the default index: an error, nothing written
    assert not Path("elsewhere").exists() and (other / "index").is_dir()
    report = build_index(None, s, Path("elsewhere"), embedder)  # what the message says to run
    assert report.documents == 3 and not report.added and not report.removed  # restored, then updated

    s = settings_factory(index_dir=Path("index"), corpus_dir=Path("seeds"), reader="heuristic")
    pipeline = Pipeline.from_settings(s)
    assert set(pipeline.index.documents) == {"a.txt", "b.txt", "c.txt"}  # restored, not the seeds
    assert not aside.exists()


def test_the_old_layout_is_read_and_moved_into_a_generation_by_the_next_build(
    tmp_path, settings_factory, embedder, caplog
):
    corpus, idx = tmp_path / "docs", tmp_path / "old"
    write_version(corpus, 0)
    build_index([corpus], settings_factory(index_dir=tmp_path / "new"), tmp_path / "new", embedder)
    shutil.copytree(files_of(tmp_path / "new"), idx)  # the files at the top: what earlier versions wrote
    (idx / "README.md").write_text("kept", encoding="utf-8")
    s = settings_factory(index_dir=idx)
    assert resolve(idx).name is None and check_whole(load_index(idx, s)) == 0
    write_version(corpus, 1)
    with caplog.at_level("WARNING", logger="rag"):
        build_index([corpus], s, idx, embedder)
    assert [r.getMessage() for r in caplog.records if "generation layout" in r.getMessage()] == [
        f"moved the index in {idx} into the generation layout ({idx}/{files_of(idx).name}, named by CURRENT); "
        "rag versions before this one cannot read it"
    ]
    assert sorted(p.name for p in idx.iterdir()) == sorted([POINTER, "README.md", files_of(idx).name])
    assert check_whole(load_index(idx, s)) == 1


def test_a_pointer_to_a_missing_generation_is_an_error_for_readers_and_repaired_by_the_writer(
    tmp_path, settings_factory, embedder, caplog
):
    corpus, idx = tmp_path / "docs", tmp_path / "index"
    write_version(corpus, 0)
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    good = files_of(idx).name
    publish(idx, "gen-000007-gone")
    with pytest.raises(IndexCorrupt) as exc:
        load_index(idx, s)
    assert str(exc.value) == (
        f"The index in {idx} names the generation gen-000007-gone, which is missing. Run `rag index --index-dir "
        f"{idx}` to repair it (it goes back to the newest complete generation, then updates it)."
    )
    with caplog.at_level("WARNING", logger="rag"), writer_lock(idx):
        pass
    assert (
        f"the index pointer {idx / POINTER} named gen-000007-gone, which is missing; it now names {good}, "
        "the newest complete generation"
    ) in [r.getMessage() for r in caplog.records]
    assert check_whole(load_index(idx, s)) == 0


def test_a_damaged_file_fails_twice_on_the_same_generation_then_is_reported(tmp_path, settings_factory, embedder):
    corpus, idx = tmp_path / "docs", tmp_path / "index"
    write_version(corpus, 0)
    s = settings_factory(index_dir=idx)
    build_index([corpus], s, idx, embedder)
    (files_of(idx) / "chunks.jsonl").write_text("{}\n", encoding="utf-8")
    checked: list[str] = []
    real = load_index.__globals__["sha256_file"]
    load_index.__globals__["sha256_file"] = lambda p: checked.append(Path(p).name) or real(p)
    try:
        with pytest.raises(IndexCorrupt, match=r"chunks.jsonl is damaged \(checksum mismatch\). Rebuild it with"):
            load_index(idx, s)
    finally:
        load_index.__globals__["sha256_file"] = real
    assert checked.count("chunks.jsonl") == 2


def test_a_symlinked_index_dir_shares_the_lock_and_stays_a_symlink(tmp_path, settings_factory, embedder):
    from rag.errors import IndexBusy

    corpus, idx, alias = tmp_path / "docs", tmp_path / "idx", tmp_path / "idxalias"
    write_version(corpus, 0)
    build_index([corpus], settings_factory(index_dir=idx), idx, embedder)
    alias.symlink_to(idx.name)
    with writer_lock(idx):
        with pytest.raises(IndexBusy):
            build_index([corpus], settings_factory(index_dir=alias), alias, embedder, wait=False)
    write_version(corpus, 1)
    build_index([corpus], settings_factory(index_dir=alias), alias, embedder)
    assert alias.is_symlink() and idx.is_dir() and not idx.is_symlink()
    assert check_whole(load_index(idx, settings_factory(index_dir=idx))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".idx.lock", "docs", "idx", "idxalias"]


def test_index_without_a_path_reindexes_the_recorded_corpus_and_another_path_says_it_replaces_it(
    tmp_path, embedder, monkeypatch
):
    runner = CliRunner()
    docs, more, idx = tmp_path / "docs", tmp_path / "more", tmp_path / "myindex"
    write_version(docs, 0)
    more.mkdir()
    (more / "z.txt").write_text("Zinc is smelted in Hobart.\n", encoding="utf-8")
    env = {"RAG_CORPUS_DIR": str(ROOT / "seeds")}
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["index", "docs", "--index-dir", str(idx)], env=env)
    assert first.exit_code == 0, first.output
    (docs / "d.txt").write_text("Nickel is mined in Kambalda.\n", encoding="utf-8")
    monkeypatch.chdir(ROOT)  # another folder: the recorded relative path is found all the same
    again = runner.invoke(app, ["index", "--index-dir", str(idx)], env=env)
    assert again.exit_code == 0, again.output
    assert "1 added, 0 changed, 0 removed, 3 unchanged" in again.stdout and "warning" not in again.output
    assert read_manifest(idx).corpus == [str(docs)]  # from here, the relative path led elsewhere

    switched = runner.invoke(app, ["index", str(more), "--index-dir", str(idx)], env=env)
    assert switched.exit_code == 0, switched.output
    assert f"warning: the index in {idx} was built from {docs}; it is replaced by an index of {more}\n" in (
        switched.stderr
    )
    assert set(read_manifest(idx).documents) == {"z.txt"}

    shutil.rmtree(more)
    gone = runner.invoke(app, ["index", "--index-dir", str(idx)], env=env)
    assert gone.exit_code == 1 and gone.output == (
        f"error: The index in {idx} was built from {more}, which is not there now. Name the corpus to index: "
        f"`rag index PATH --index-dir {idx}`.\n"
    )
    assert set(read_manifest(idx).documents) == {"z.txt"}


def test_answers_carry_the_index_build_time_and_each_cited_document_sha(seed_index_dir):
    r = CliRunner().invoke(
        app,
        ["ask", "How big is Australia's strategic reserve?", "--json", "--index-dir", str(seed_index_dir)],
        env={"RAG_READER": "heuristic"},
    )
    assert r.exit_code == 0, r.output
    import json

    body = json.loads(r.stdout)
    manifest = read_manifest(seed_index_dir)
    assert body["index_built_at"] == manifest.created_at.isoformat().replace("+00:00", "Z")
    cites = [c for a in body["answers"] for c in a["citations"]]
    assert cites and all(c["doc_sha256"] == manifest.documents[c["doc_id"]].sha256 for c in cites)
