"""`rag serve` picks up a newly written index without a restart, and keeps serving the old one when the new
one is broken (issue 12, item 3). Real `rag serve` processes over small indexes built here."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.generations import files_of, publish
from tests.servers import ROOT, free_port, running_server


def wait_for(check, timeout: float = 90.0, every: float = 0.2):  # noqa: ANN001, ANN201 - test helper
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


@pytest.mark.slow
def test_a_new_index_is_swapped_in_and_a_broken_one_is_not(tmp_path: Path, settings_factory, embedder) -> None:
    from rag.store import build_index

    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The gallium refinery is in Perth.\n", encoding="utf-8")
    idx = tmp_path / "index"
    s = settings_factory(index_dir=idx, corpus_dir=corpus)
    build_index([corpus], s, idx, embedder)

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "RAG_INDEX_POLL_S": "0.3",
        "RAG_READER": "heuristic",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    log_path = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(idx)]
    with running_server(cmd, env, log_path, f"http://127.0.0.1:{port}", timeout=120) as base:
        first = httpx.get(f"{base}/health", timeout=10).json()
        assert first["documents"] == 1

        (corpus / "b.txt").write_text("The lithium auction closes on Friday.\n", encoding="utf-8")
        build_index([corpus], s, idx, embedder)  # what `rag index` does while the service runs
        health = wait_for(lambda: (h := httpx.get(f"{base}/health", timeout=10).json())["documents"] == 2 and h)
        assert health, log_path.read_text()
        assert health["index_built_at"] > first["index_built_at"]
        assert {d["doc_id"] for d in httpx.get(f"{base}/documents", timeout=10).json()} == {"a.txt", "b.txt"}
        answer = httpx.post(f"{base}/ask", json={"question": "When does the lithium auction close?"}, timeout=30)
        assert answer.json()["answers"][0]["citations"][0]["doc_id"] == "b.txt"
        assert wait_for(lambda: "swapped in the new index" in log_path.read_text(), timeout=10)

        broken = idx / "gen-000099-broken"  # a complete copy with one damaged file, published by the pointer
        shutil.copytree(files_of(idx), broken)
        chunks = broken / "chunks.jsonl"
        chunks.write_text(chunks.read_text(encoding="utf-8").replace("lithium", "LITHIUM"), encoding="utf-8")
        publish(idx, broken.name)
        assert wait_for(lambda: "cannot be loaded" in log_path.read_text(), timeout=30), log_path.read_text()
        assert "the previous index keeps serving" in log_path.read_text()
        assert httpx.get(f"{base}/health", timeout=10).json() == health  # still the good one
        again = httpx.post(f"{base}/ask", json={"question": "When does the lithium auction close?"}, timeout=30)
        assert again.json() == answer.json()
