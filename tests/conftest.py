from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"

# Tests must never reach a model hub; the bundled model is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory):
    """Tests (CLI runs included) export the ONNX model into a temporary cache, never the user's."""
    os.environ["RAG_MODEL_CACHE_DIR"] = str(tmp_path_factory.mktemp("onnx-cache"))
    yield
    os.environ.pop("RAG_MODEL_CACHE_DIR", None)


@pytest.fixture(scope="session")
def settings_factory():
    """Settings for tests: the seeds as corpus."""
    from rag.config import Settings

    def make(**kw):
        kw.setdefault("corpus_dir", SEEDS)
        return Settings(_env_file=None, **kw)

    return make


@pytest.fixture(scope="session")
def embedder(settings_factory):
    from rag.embedding import load_embedder

    return load_embedder(settings_factory())


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, settings_factory, embedder) -> Path:
    """The seeds indexed once per test session with the real bundled model."""
    from rag.store import build_index

    d = tmp_path_factory.mktemp("seed-index") / "index"
    build_index([SEEDS], settings_factory(index_dir=d), d, embedder)
    return d


@pytest.fixture(scope="session")
def heuristic_pipeline(seed_index_dir, settings_factory, embedder):
    """The seed pipeline with the heuristic reader (tests of its rules, and of code that needs a fast reader)."""
    from rag.pipeline import Pipeline
    from rag.store import load_index

    s = settings_factory(index_dir=seed_index_dir, reader="heuristic")
    return Pipeline.from_index(load_index(seed_index_dir, s), s, embedder)


@pytest.fixture(scope="session")
def pipeline(seed_index_dir, settings_factory, embedder):
    from rag.pipeline import Pipeline
    from rag.store import load_index

    s = settings_factory(index_dir=seed_index_dir)
    return Pipeline.from_index(load_index(seed_index_dir, s), s, embedder)
