"""`rag index` killed with SIGKILL at random moments (issue 12, item 2): after each kill the index loads, is
either the old or the new state, answers exactly as a clean build of that state does, and temporary
folders never accumulate. Bounded for CI: a tiny corpus, 30 kills at seeded random moments spread over a
clean build's duration (loading, reading, embedding, writing, the swap), plus kills during the ONNX export
of a fresh model cache."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import ROOT

QUESTIONS = ["Where is gallium refined?", "When does the lithium auction close?", "Who owns the port?"]
STATE_A = {
    "a.txt": "Gallium is refined in Perth. The refinery opened in March.\n",
    "b.md": "# Ports\nThe port of Fremantle is owned by the state government.\n",
}
STATE_B = {**STATE_A, "c.txt": "The lithium auction closes on Friday, officials said.\n"}
KILLS = 30


def write_corpus(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def index_cmd(corpus: Path, idx: Path) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "index", str(corpus), "--index-dir", str(idx)]


def fingerprint(idx: Path, embedder) -> tuple:  # noqa: ANN001 - the session's embedder
    """What a user sees of an index: its documents and the heuristic reader's answers (with citations)."""
    from rag.config import Settings
    from rag.pipeline import Pipeline
    from rag.store import load_index

    s = Settings(_env_file=None, index_dir=idx, reader="heuristic")
    pipeline = Pipeline.from_index(load_index(idx, s), s, embedder)
    docs = tuple(sorted((d.doc_id, d.sha256) for d in pipeline.index.documents.values()))
    return docs, tuple(repr(pipeline.ask(q).to_dict()["answers"]) for q in QUESTIONS)  # not the build time


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".index.") and p.name != ".index.lock")


@pytest.mark.slow
def test_index_killed_at_random_moments_is_always_the_old_or_the_new_one(tmp_path: Path, embedder) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    corpora = {"A": write_corpus(tmp_path / "A", STATE_A), "B": write_corpus(tmp_path / "B", STATE_B)}
    clean: dict[str, tuple] = {}
    durations = []
    for name, corpus in corpora.items():  # clean builds of both states (and the shared ONNX export)
        t0 = time.monotonic()
        subprocess.run(
            index_cmd(corpus, tmp_path / f"clean-{name}"), cwd=ROOT, env=env, check=True, capture_output=True
        )
        durations.append(time.monotonic() - t0)
        clean[name] = fingerprint(tmp_path / f"clean-{name}", embedder)
    assert clean["A"] != clean["B"]

    work = tmp_path / "work"
    work.mkdir()
    idx = work / "index"
    subprocess.run(index_cmd(corpora["A"], idx), cwd=ROOT, env=env, check=True, capture_output=True)
    state = "A"
    rng = random.Random(20261202)
    span = max(durations)
    for trial in range(KILLS):
        target = "B" if state == "A" else "A"
        proc = subprocess.Popen(
            index_cmd(corpora[target], idx), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.0, span * 1.1))
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
        got = fingerprint(idx, embedder)
        assert got in (clean["A"], clean["B"]), f"trial {trial}: the index is neither state"
        state = "A" if got == clean["A"] else "B"
        assert len(leftovers(work)) <= 2, f"trial {trial}: temporary folders accumulate: {leftovers(work)}"
    subprocess.run(index_cmd(corpora[state], idx), cwd=ROOT, env=env, check=True, capture_output=True)
    assert leftovers(work) == []  # the next complete run removed what the kills left
    from rag.generations import files_of, generation_names

    assert generation_names(idx) == [files_of(idx).name]  # also the generations the killed builds wrote


@pytest.mark.slow
def test_index_killed_during_the_onnx_export_leaves_a_cache_that_the_next_run_repairs(tmp_path: Path, embedder) -> None:
    corpus = write_corpus(tmp_path / "A", STATE_A)
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAG_MODEL_CACHE_DIR": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    idx = tmp_path / "index"
    for trial in range(3):
        proc = subprocess.Popen(
            index_cmd(corpus, idx), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while not list(cache.rglob(".tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the export has started writing into its temporary folder
        time.sleep(0.5 * trial)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
    done = subprocess.run(index_cmd(corpus, idx), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(cache.rglob(".tmp-*")) and not list(cache.rglob(".trash-*"))  # dead exports' folders removed
    fingerprint(idx, embedder)  # loads
