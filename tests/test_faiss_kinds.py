"""The HNSW, IVF and IVF-PQ vector indexes: building, recall, loading, searching, the load-time settings check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.errors import IndexMismatch
from rag.generations import files_of
from rag.manifest import ChunkingInfo, EmbeddingInfo, FaissInfo, Manifest
from rag.store import build_index, check_compatible, index_command, ivf_nlist_for, load_index, make_faiss_index
from rag.vector_index import measure_recall, read_faiss, search

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

DOCS = {
    "magnets.txt": "Alpha Corp makes rare earth magnets in Ohio. The plant employs 400 people and opened in 2021.",
    "gallium.md": "# Gallium\nBeta Ltd refines gallium in Perth. Its output doubled after the export curbs of 2023.",
    "lithium.txt": "Gamma Inc mines lithium in Nevada. Brine ponds cover twelve square miles of desert.",
    "cobalt.txt": "Delta Mining sells cobalt from Zambia. Most of it is shipped to battery makers in Korea.",
}


def _unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ------------------------------------------------------------------------------ no model needed
@pytest.mark.parametrize(
    ("chunks", "requested", "expected"),
    [(0, 64, 1), (10, 64, 1), (65, 64, 1), (77, 64, 1), (78, 64, 2), (200, 64, 5), (100_000, 64, 64), (200, 3, 3)],
)
def test_ivf_nlist_is_capped_at_one_list_per_39_chunks(chunks, requested, expected):
    assert ivf_nlist_for(chunks, requested) == expected


@pytest.mark.parametrize(("n", "nlist"), [(50, 1), (200, 5)])
def test_make_ivf_index_records_trained_and_requested_nlist(settings_factory, n, nlist):
    import faiss

    vectors = _unit_vectors(n)
    index, info = make_faiss_index(vectors, settings_factory(faiss_index="ivf"))
    # nprobe 8 >= nlist: every list is searched, so the measured recall is that of an exact search
    assert info == FaissInfo(kind="ivf", ivf_nlist=nlist, ivf_nlist_requested=64, recall_at_10=1.0)
    assert faiss.extract_index_ivf(index).nlist == nlist and index.ntotal == n
    faiss.extract_index_ivf(index).nprobe = nlist  # every list: exact
    _, rows = index.search(vectors[:20], 1)
    assert rows[:, 0].tolist() == list(range(20))


def test_make_hnsw_index_finds_each_vector_itself(settings_factory):
    vectors = _unit_vectors(300)
    index, info = make_faiss_index(vectors, settings_factory(faiss_index="hnsw", hnsw_m=16))
    assert info.kind == "hnsw" and info.hnsw_m == 16 and 0.9 <= info.recall_at_10 <= 1.0
    assert index.hnsw.nb_neighbors(1) == 16  # level-0 links are 2 * M, upper levels M
    index.hnsw.efSearch = 64  # a wide search, so the test does not hinge on one greedy walk
    _, rows = index.search(vectors, 1)
    assert rows[:, 0].tolist() == list(range(300))


def _manifest(faiss: FaissInfo, chunks: int = 30) -> Manifest:
    return Manifest(
        rag_version="test",
        corpus=[str(SEEDS)],
        embedding=EmbeddingInfo(model="sentence-transformers/all-MiniLM-L6-v2", backend="onnx", dim=384),
        chunking=ChunkingInfo(max_chars=600, overlap_sentences=1),
        faiss=faiss,
        documents={},
        counts={"documents": 1, "chunks": chunks, "sentences": chunks},
        files={},
    )


FLAT = FaissInfo(kind="flat")
HNSW32 = FaissInfo(kind="hnsw", hnsw_m=32)
IVF1 = FaissInfo(kind="ivf", ivf_nlist=1, ivf_nlist_requested=64)
IVF5 = FaissInfo(kind="ivf", ivf_nlist=5, ivf_nlist_requested=64)
IVF5_OLD = FaissInfo(kind="ivf", ivf_nlist=5)  # written before ivf_nlist_requested was recorded


@pytest.mark.parametrize(
    ("built", "chunks", "settings", "why", "restore"),
    [
        (
            FLAT,
            30,
            {"faiss_index": "hnsw"},
            "faiss_index='flat' but the settings say faiss_index='hnsw'",
            "RAG_FAISS_INDEX=flat",
        ),
        (
            FLAT,
            30,
            {"faiss_index": "ivf"},
            "faiss_index='flat' but the settings say faiss_index='ivf'",
            "RAG_FAISS_INDEX=flat",
        ),
        (
            HNSW32,
            30,
            {"faiss_index": "flat"},
            "faiss_index='hnsw' but the settings say faiss_index='flat'",
            "RAG_FAISS_INDEX=hnsw",
        ),
        (
            IVF1,
            30,
            {"faiss_index": "hnsw"},
            "faiss_index='ivf' but the settings say faiss_index='hnsw'",
            "RAG_FAISS_INDEX=ivf",
        ),
        (
            HNSW32,
            30,
            {"faiss_index": "hnsw", "hnsw_m": 16},
            "hnsw_m=32 but the settings say hnsw_m=16",
            "RAG_HNSW_M=32",
        ),
        (
            IVF5,
            200,
            {"faiss_index": "ivf", "ivf_nlist": 3},
            "ivf_nlist=5 but the settings give ivf_nlist=3 for its 200 chunks "
            "(RAG_IVF_NLIST=3, capped at one IVF list per 39 chunks)",
            "RAG_IVF_NLIST=64",
        ),
    ],
)
def test_faiss_settings_that_shape_the_file_must_match(settings_factory, built, chunks, settings, why, restore):
    idx = Path("/srv/rag/my-index")
    with pytest.raises(IndexMismatch) as exc:
        check_compatible(_manifest(built, chunks), settings_factory(**settings), idx)
    assert str(exc.value) == (
        f"The index in {idx} was built with {why}. Run `rag index --rebuild --index-dir /srv/rag/my-index` to "
        f"rebuild it with the current settings, or set {restore} back."
    )


@pytest.mark.parametrize(
    ("built", "chunks", "settings"),
    [
        (FLAT, 30, {"faiss_index": "flat", "hnsw_m": 8, "ivf_nlist": 2, "ivf_nprobe": 1}),  # unused knobs
        (HNSW32, 30, {"faiss_index": "hnsw", "ivf_nlist": 2}),
        (IVF1, 30, {"faiss_index": "ivf", "ivf_nlist": 8}),  # 30 chunks: one list either way
        (IVF1, 30, {"faiss_index": "ivf", "ivf_nprobe": 1, "hnsw_m": 8}),  # nprobe is applied at load
        (IVF5, 200, {"faiss_index": "ivf", "ivf_nlist": 1000}),  # 200 chunks: capped at 5 either way
        (IVF5_OLD, 200, {"faiss_index": "ivf"}),
    ],
)
def test_faiss_settings_that_do_not_shape_the_file_are_ignored(settings_factory, built, chunks, settings):
    check_compatible(_manifest(built, chunks), settings_factory(**settings), Path("index"))


def test_old_ivf_manifest_mismatch_suggests_the_trained_nlist(settings_factory):
    with pytest.raises(IndexMismatch) as exc:
        check_compatible(_manifest(IVF5_OLD, 400), settings_factory(faiss_index="ivf", ivf_nlist=8), Path("index"))
    assert str(exc.value) == (
        "The index in index was built with ivf_nlist=5 but the settings give ivf_nlist=8 for its 400 chunks "
        "(RAG_IVF_NLIST=8, capped at one IVF list per 39 chunks). Run `rag index --rebuild` to rebuild it with "
        "the current settings, or set RAG_IVF_NLIST=5 back."
    )


@pytest.mark.parametrize(
    ("index_dir", "kw", "expected"),
    [
        (Path("index"), {}, "`rag index`"),
        (Path("index"), {"rebuild": True}, "`rag index --rebuild`"),
        (Path("my-index"), {"rebuild": True}, "`rag index --rebuild --index-dir my-index`"),
        (Path("/data/my index"), {}, "`rag index --index-dir '/data/my index'`"),
        (
            Path("idx"),
            {"rebuild": True, "corpus": ["docs", "notes.md"]},
            "`rag index docs notes.md --rebuild --index-dir idx`",
        ),
    ],
)
def test_index_command_names_a_non_default_index_dir_and_corpus(index_dir, kw, expected):
    assert index_command(index_dir, **kw) == expected


def _clustered(n: int, dim: int = 64, centers: int = 40, seed: int = 1) -> np.ndarray:
    """Unit vectors around ``centers`` directions (real embeddings cluster too; uniform noise has no neighbours)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    v = c[rng.integers(0, centers, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_ivfpq_is_trained_on_a_sample_and_its_recall_is_measured(settings_factory):
    import faiss

    vectors = _clustered(4000)
    s = settings_factory(faiss_index="ivfpq", ivf_nlist=32, ivf_nprobe=8, pq_m=16, faiss_train_sample=2000)
    index, info = make_faiss_index(vectors, s)
    assert isinstance(index, faiss.IndexIVFPQ) and index.ntotal == 4000
    assert (info.ivf_nlist, info.pq_m, info.pq_bits) == (32, 16, 5)  # trained on 2000: 2000 // 39 = 51 >= 2**5
    assert index.pq.M == 16 and index.code_size == 10  # 16 codes of 5 bits: 10 bytes a vector instead of 256
    truth = measure_recall(index, vectors, rerank=s.pq_rerank)
    assert info.recall_at_10 == round(truth, 4) and info.recall_at_10 >= 0.8
    without = measure_recall(index, vectors, rerank=1)
    assert without < info.recall_at_10  # the exact re-scoring is what makes PQ usable


def test_pq_m_must_divide_the_dimension(settings_factory):
    from rag.errors import IndexWriteError

    with pytest.raises(IndexWriteError, match="RAG_PQ_M=10 does not divide the vectors' dimension 64"):
        make_faiss_index(_clustered(500), settings_factory(faiss_index="ivfpq", pq_m=10))


def test_reranked_search_equals_exact_search_when_every_row_is_a_candidate():
    import faiss

    vectors = _clustered(300, dim=32)
    coarse = faiss.IndexIVFPQ(faiss.IndexFlatIP(32), 32, 1, 4, 4, faiss.METRIC_INNER_PRODUCT)
    coarse.train(vectors)
    coarse.add(vectors)
    exact = faiss.IndexFlatIP(32)
    exact.add(vectors)
    q = vectors[:7] + 0.01
    want_scores, want_rows = exact.search(q, 5)
    scores, rows = search(coarse, q, 5, vectors, rerank=60)  # 5 x 60 >= 300: every row is re-scored
    assert rows.tolist() == want_rows.tolist()
    assert np.allclose(scores, want_scores, atol=1e-5)
    _, approx = search(coarse, q, 5, vectors, rerank=1)  # PQ scores only: 4 bytes a vector, not exact
    assert approx.tolist() != want_rows.tolist()


def test_index_files_are_memory_mapped_on_load(tmp_path):
    import faiss

    vectors = _clustered(500)
    index = faiss.IndexFlatIP(64)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "v.faiss"))
    loaded = read_faiss(tmp_path / "v.faiss")
    _, rows = loaded.search(vectors[:3], 1)
    assert rows[:, 0].tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------ with the real model
@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny") / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_corpus, settings_factory, embedder) -> dict[str, Path]:
    """The tiny corpus indexed once with each FAISS kind."""
    out = {}
    for kind in ("flat", "hnsw", "ivf", "ivfpq"):
        idx = tmp_path_factory.mktemp(kind) / "index"
        report = build_index([tiny_corpus], settings_factory(faiss_index=kind, pq_m=96), idx, embedder)
        assert report.documents == len(DOCS)
        out[kind] = idx
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_kind_loads_and_a_chunk_text_finds_its_own_chunk(built, settings_factory, embedder, kind):
    from rag.retrieval import DenseRetriever, Query

    idx = built[kind]
    data = load_index(idx, settings_factory(faiss_index=kind))
    assert data.manifest.faiss.kind == kind
    assert data.faiss_index.ntotal == len(data.chunks) == len(DOCS)  # one chunk per short document
    vectors = embedder.encode([c.text for c in data.chunks])
    dense = DenseRetriever(data.faiss_index)
    for chunk, vector in zip(data.chunks, vectors):
        hits = dense.search(Query.make(chunk.text, vector), 3)
        assert hits[0][0] == chunk.row and hits[0][1] > 0.99
        assert len(hits) == 3 and len({row for row, _ in hits}) == 3
        assert all(score < 0.9 for _, score in hits[1:])


@pytest.mark.slow
def test_hnsw_and_ivf_rank_like_flat(built, settings_factory, embedder):
    question = embedder.encode(["Where is gallium refined?"])
    rankings = {}
    for kind, idx in built.items():
        data = load_index(idx, settings_factory(faiss_index=kind, pq_m=96))
        _, rows = data.faiss_index.search(question, len(DOCS))
        rankings[kind] = [data.chunks[r].doc_id for r in rows[0]]
    assert rankings["flat"][0] == "gallium.md"
    assert rankings["hnsw"] == rankings["flat"] and rankings["ivf"] == rankings["flat"]


@pytest.mark.slow
def test_ivfpq_index_answers_like_flat(built, settings_factory):
    from rag.pipeline import Pipeline

    answers = {}
    for kind in ("flat", "ivfpq"):
        s = settings_factory(faiss_index=kind, pq_m=96, reader="heuristic")
        p = Pipeline.from_index(load_index(built[kind], s), s)
        answers[kind] = p.ask("Where is gallium refined?", top_k=3).to_dict()
        answers[kind].pop("index_built_at")  # two indexes, built one after the other
    m = json.loads((files_of(built["ivfpq"]) / "manifest.json").read_text(encoding="utf-8"))["faiss"]
    assert (m["kind"], m["ivf_nlist"], m["pq_m"], m["pq_bits"], m["recall_at_10"]) == ("ivfpq", 1, 96, 1, 1.0)
    assert answers["ivfpq"] == answers["flat"] and answers["flat"]["answers"]


@pytest.mark.slow
def test_ivf_on_a_small_corpus_has_one_list_and_applies_nprobe_at_load(built, settings_factory):
    import faiss

    idx = built["ivf"]
    manifest = json.loads((files_of(idx) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["faiss"] == {
        "kind": "ivf",
        "hnsw_m": None,
        "ivf_nlist": 1,
        "ivf_nlist_requested": 64,
        "pq_m": None,
        "pq_bits": None,
        "recall_at_10": 1.0,  # one list: an exact search
    }
    data = load_index(idx, settings_factory(faiss_index="ivf", ivf_nprobe=3, ivf_nlist=16))
    ivf = faiss.extract_index_ivf(data.faiss_index)
    assert ivf.nlist == 1 and ivf.nprobe == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "settings", "why"),
    [
        ("flat", {"faiss_index": "hnsw"}, "faiss_index='flat' but the settings say faiss_index='hnsw'"),
        ("hnsw", {"faiss_index": "flat"}, "faiss_index='hnsw' but the settings say faiss_index='flat'"),
        ("hnsw", {"faiss_index": "hnsw", "hnsw_m": 8}, "hnsw_m=32 but the settings say hnsw_m=8"),
        ("ivf", {"faiss_index": "hnsw"}, "faiss_index='ivf' but the settings say faiss_index='hnsw'"),
    ],
)
def test_loading_with_another_faiss_setting_is_a_mismatch(built, tiny_corpus, settings_factory, kind, settings, why):
    idx = built[kind]
    with pytest.raises(IndexMismatch) as exc:
        load_index(idx, settings_factory(**settings))
    message = str(exc.value)
    assert message.startswith(f"The index in {idx} was built with {why}. ")
    assert f"Run `rag index {tiny_corpus} --rebuild --index-dir {idx}` to rebuild it" in message


@pytest.mark.slow
def test_reindexing_the_seeds_as_ivf_reuses_the_vectors(seed_index_dir, tmp_path, settings_factory, embedder):
    """Switching RAG_FAISS_INDEX needs no re-embedding: `rag index` rebuilds the FAISS file from stored vectors."""
    import faiss

    idx = tmp_path / "index"
    shutil.copytree(seed_index_dir, idx)
    s = settings_factory(faiss_index="ivf")
    with pytest.raises(IndexMismatch, match="faiss_index='flat' but the settings say faiss_index='ivf'"):
        load_index(idx, s)
    report = build_index([SEEDS], s, idx, embedder)
    assert report.embedded == 0 and report.chunks < 78
    data = load_index(idx, s)
    assert data.manifest.faiss == FaissInfo(kind="ivf", ivf_nlist=1, ivf_nlist_requested=64, recall_at_10=1.0)
    assert faiss.extract_index_ivf(data.faiss_index).nprobe == 8
    flat = load_index(seed_index_dir, settings_factory())
    np.testing.assert_array_equal(data.chunk_vectors, flat.chunk_vectors)
