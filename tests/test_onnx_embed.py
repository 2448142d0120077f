"""The ONNX Runtime embedder: equivalence with sentence-transformers, the export cache, damage, no torch.

The model is exported once per session into a temporary cache (about 10 s on two cores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag import digests, onnx_export
from rag.config import BUNDLED_MODEL, Settings
from rag.embedding import TorchEmbedder, load_embedder, resolve_model_path
from rag.errors import ModelError
from rag.onnx_embed import OnnxEmbedder
from rag.onnx_export import (
    DATA_FILE,
    META_FILE,
    ONNX_FILE,
    entry_dir,
    export_id_for,
    fingerprint_model_dir,
    read_model_spec,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
QUESTIONS = [
    "Who opposed the price floor?",
    "How big is Australia's critical minerals reserve?",
    "Which countries will meet in Washington to discuss critical minerals?",
    "How many tonnes of permanent magnets does the EU use each year?",
    "Who is convening the critical minerals meeting?",
    "Why did shares in Australian mining companies fall?",
    "What did analysts say about cooperation with China?",
    "Which minerals will the Australian strategic reserve include?",
    "What tariffs does the US want the European Union to drop?",
    "When did China restrict rare earth exports?",
]


def _settings(cache: Path, model: str = BUNDLED_MODEL) -> Settings:
    return Settings(embedding_model=model, model_cache_dir=cache, embedding_backend="auto")


def _seed_texts() -> list[str]:
    """Sentences, paragraphs, 600-char pieces and whole documents (> 256 tokens: truncation is exercised)."""
    texts: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        doc = path.read_text(encoding="utf-8")
        texts += [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", doc) if len(s.strip()) > 2]
        texts += [p.strip() for p in doc.split("\n") if len(p.strip()) > 200]
        texts += [doc[i : i + 600] for i in range(0, len(doc), 600)]
        texts.append(doc)
    return list(dict.fromkeys(texts))


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def onnx_embedder(onnx_cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_settings(_settings(onnx_cache))


@pytest.fixture(scope="session")
def torch_embedder() -> TorchEmbedder:
    return TorchEmbedder(BUNDLED_MODEL)


@pytest.fixture(scope="session")
def seed_texts() -> list[str]:
    return _seed_texts()


# ------------------------------------------------------------------------------------------ fast checks


def test_model_spec_of_bundled_model() -> None:
    spec = read_model_spec(resolve_model_path(BUNDLED_MODEL))
    assert (spec.pooling, spec.max_seq_length, spec.dim, spec.normalize) == ("mean", 256, 384, True)


def test_unsupported_module_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])
    )
    with pytest.raises(ModelError, match="RAG_EMBEDDING_BACKEND=torch"):
        read_model_spec(tmp_path)


def test_fingerprint_is_content_based_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "README.md").write_text("docs do not count")
    cache = tmp_path / "cache"
    first = fingerprint_model_dir(model, root=cache)
    (model / "README.md").write_text("edited docs")
    # unchanged files are not read again: their hashes come from the stat cache
    monkeypatch.setattr(digests, "sha256_file", lambda p: pytest.fail(f"re-hashed {p}"))
    assert fingerprint_model_dir(model, root=cache) == first
    monkeypatch.undo()
    (model / "config.json").write_text('{"hidden_size": 8} ')
    assert fingerprint_model_dir(model, root=cache) != first


def test_missing_model_dir_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="RAG_EMBEDDING_MODEL"):
        OnnxEmbedder.from_settings(_settings(tmp_path / "cache", model=str(tmp_path / "no-such-model")))


def test_auto_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object, **kwargs: object) -> OnnxEmbedder:
        raise ModelError("export broken; set RAG_EMBEDDING_BACKEND=torch")

    class FakeTorch:
        backend = "torch"

        def __init__(self, model_name: str) -> None:
            self.model_name = model_name

    monkeypatch.setattr(OnnxEmbedder, "from_settings", broken)
    monkeypatch.setattr("rag.embedding.TorchEmbedder", FakeTorch)
    settings = Settings(embedding_model=BUNDLED_MODEL)
    with caplog.at_level("WARNING"):
        assert isinstance(load_embedder(settings, "auto"), FakeTorch)
    assert "using torch" in caplog.text
    with pytest.raises(ModelError, match="export broken"):
        load_embedder(settings, "onnx")
    assert isinstance(load_embedder(settings, "torch"), FakeTorch)


# ------------------------------------------------------------------------------------------ real model


@pytest.mark.slow
def test_attributes_and_edge_inputs(onnx_embedder: OnnxEmbedder) -> None:
    e = onnx_embedder
    assert (e.backend, e.dim, e.model_name) == ("onnx", 384, BUNDLED_MODEL)
    assert len(e.fingerprint) == 64 and e.export_id == export_id_for(e.fingerprint)
    assert e.meta["pooling"] == "mean" and e.meta["max_seq_length"] == 256
    assert e.meta["exporter"].startswith("torch.onnx.export")
    assert e.encode([]).shape == (0, 384)
    v = e.encode(["", "a", "x " * 5000])
    assert v.shape == (3, 384) and v.dtype == np.float32 and v.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    with pytest.raises(TypeError):
        e.encode("a single string")


@pytest.mark.slow
def test_equivalence_with_sentence_transformers(
    onnx_embedder: OnnxEmbedder, torch_embedder: TorchEmbedder, seed_texts: list[str]
) -> None:
    assert len(seed_texts) >= 200
    a = onnx_embedder.encode(seed_texts, batch_size=16)
    b = torch_embedder.encode(seed_texts, batch_size=16)
    assert a.shape == b.shape == (len(seed_texts), 384)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() >= 0.9999, f"worst row {int(cosines.argmin())}: {cosines.min()}"
    # batching must not matter: one by one, or in one big padded batch, gives the same rows
    single = np.vstack([onnx_embedder.encode([t]) for t in seed_texts[:20]])
    np.testing.assert_allclose(single, a[:20], atol=1e-5)
    budget = onnx_embedder.max_batch_tokens
    try:
        onnx_embedder.max_batch_tokens = 10**6
        np.testing.assert_allclose(onnx_embedder.encode(seed_texts[:64], batch_size=64), a[:64], atol=1e-5)
    finally:
        onnx_embedder.max_batch_tokens = budget

    qa, qb = onnx_embedder.encode(QUESTIONS), torch_embedder.encode(QUESTIONS)
    assert np.sum(qa * qb, axis=1).min() >= 0.9999
    top_a = np.argsort(-(qa @ a.T), axis=1, kind="stable")[:, :10]
    top_b = np.argsort(-(qb @ b.T), axis=1, kind="stable")[:, :10]
    for q, ra, rb in zip(QUESTIONS, top_a, top_b, strict=True):
        assert ra.tolist() == rb.tolist(), q


@pytest.mark.slow
def test_second_load_does_not_re_export(
    onnx_embedder: OnnxEmbedder, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx_file = onnx_embedder.export_dir / ONNX_FILE
    before = onnx_file.stat().st_mtime_ns
    monkeypatch.setattr(onnx_export, "_export_to_dir", lambda *a, **k: pytest.fail("exported again"))
    again = OnnxEmbedder.from_settings(_settings(onnx_cache))
    assert (again.export_id, again.export_dir) == (onnx_embedder.export_id, onnx_embedder.export_dir)
    assert onnx_file.stat().st_mtime_ns == before
    assert [p.name for p in onnx_cache.iterdir() if p.is_dir()] == [onnx_embedder.export_dir.name]


@pytest.mark.slow
def test_changed_model_is_exported_again(
    onnx_embedder: OnnxEmbedder, onnx_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Path(resolve_model_path(BUNDLED_MODEL))
    copy = tmp_path / "minilm-copy"
    for src in original.rglob("*"):
        if src.is_file():
            dst = copy / src.relative_to(original)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.name == "config.json" and src.parent == original:
                dst.write_text(src.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # harmless change
            else:
                os.symlink(src, dst)

    calls: list[str] = []
    real_export = onnx_export._export_to_dir

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("export")
        return real_export(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_export, "_export_to_dir", counting)
    changed = OnnxEmbedder.from_settings(_settings(onnx_cache, model=str(copy)))
    assert calls == ["export"]
    assert changed.fingerprint != onnx_embedder.fingerprint
    assert changed.export_dir != onnx_embedder.export_dir and changed.export_dir.parent == onnx_cache
    probe = ["Who opposed the price floor?"]
    np.testing.assert_allclose(changed.encode(probe), onnx_embedder.encode(probe), atol=1e-5)
    OnnxEmbedder.from_settings(_settings(onnx_cache, model=str(copy)))
    assert calls == ["export"]
    assert not [p for p in onnx_cache.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.slow
def test_truncated_export_gives_a_helpful_model_error(onnx_embedder: OnnxEmbedder, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    damaged = entry_dir(cache, BUNDLED_MODEL, onnx_embedder.export_id)
    shutil.copytree(onnx_embedder.export_dir, damaged)
    onnx_file = damaged / ONNX_FILE
    with open(onnx_file, "r+b") as fh:
        fh.truncate(onnx_file.stat().st_size // 3)
    with pytest.raises(ModelError) as info:
        OnnxEmbedder.from_settings(_settings(cache))
    message = str(info.value)
    assert str(damaged) in message and "rag index --rebuild" in message and "truncated" in message

    # even if meta.json agrees with the damaged file, onnxruntime's failure becomes a ModelError
    meta = json.loads((damaged / META_FILE).read_text())
    meta["onnx_size"] = onnx_file.stat().st_size
    meta["onnx_sha256"] = digests.sha256_file(onnx_file)
    (damaged / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="rag index --rebuild"):
        OnnxEmbedder.from_settings(_settings(cache))
    # and auto falls back to torch rather than failing
    assert load_embedder(_settings(cache), "auto").backend == "torch"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_weights_file_gives_a_helpful_model_error(
    onnx_embedder: OnnxEmbedder, tmp_path: Path, damage: str
) -> None:
    assert (onnx_embedder.export_dir / DATA_FILE).stat().st_size > 10 * (
        onnx_embedder.export_dir / ONNX_FILE
    ).stat().st_size
    cache = tmp_path / "cache"
    damaged = entry_dir(cache, BUNDLED_MODEL, onnx_embedder.export_id)
    shutil.copytree(onnx_embedder.export_dir, damaged)
    data = damaged / DATA_FILE
    if damage == "truncate":
        with open(data, "r+b") as fh:
            fh.truncate(data.stat().st_size - 4096)
        why = "truncated"
    elif damage == "flip":
        with open(data, "r+b") as fh:
            fh.seek(1000)
            byte = fh.read(1)
            fh.seek(1000)
            fh.write(bytes([byte[0] ^ 0xFF]))
        why = "sha256"
    else:
        data.unlink()
        why = "missing"
    with pytest.raises(ModelError) as info:
        OnnxEmbedder.from_settings(_settings(cache))
    message = str(info.value)
    assert str(damaged) in message and DATA_FILE in message and why in message and "rag index --rebuild" in message


@pytest.mark.slow
def test_query_path_never_imports_torch(onnx_embedder: OnnxEmbedder, onnx_cache: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from rag.config import Settings
        from rag.embedding import load_embedder
        from rag.onnx_embed import OnnxEmbedder

        settings = Settings(model_cache_dir={str(onnx_cache)!r}, embedding_backend="onnx")
        direct = OnnxEmbedder.from_settings(settings)
        direct.encode(["Who opposed the price floor?"])
        via_factory = load_embedder(settings)
        assert via_factory.backend == "onnx", via_factory
        v = via_factory.encode(["How big is Australia's critical minerals reserve?", "second text"])
        assert v.shape == (2, 384)
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print("HEAVY", heavy)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("RAG_")}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
