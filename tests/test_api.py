"""The HTTP service: contract, errors, path safety, the real server, and answers under concurrency.

Fast tests run the app over a stub pipeline; tests marked ``slow`` use the real bundled model over a
small index of seeds/ built once per session.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from api.errors import describe_parse_failure
from api.main import WARMUP_QUESTION, create_app
from rag.config import Settings
from rag.conflict import same_value
from rag.generations import files_of
from rag.manifest import ChunkingInfo, EmbeddingInfo, FaissInfo, Manifest
from rag.pipeline import clean_question
from rag.types import Answer, Citation, Conflict, Document, Passage, Result
from tests.servers import free_port, running_server, serve_command

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

QUESTIONS = [
    "Who is the US Secretary of State?",
    "How big is Australia's strategic reserve of critical minerals?",
    "Which minerals will the Australian reserve include?",
    "Who is the spokesperson of the Chinese Foreign Ministry?",
    "Where will the ministers meet?",
    "Who opposed the price floor?",
    "What is the price of bananas on Mars?",
]


def api_settings(**kw: object) -> Settings:
    kw.setdefault("corpus_dir", SEEDS)
    return Settings(_env_file=None, **kw)


# ------------------------------------------------------------------------------------------- stub
DOC_ID = "news/capital.txt"
DOC_TEXT = "Intro line.\nThe capital of the United States is Washington. It has many museums — “Smithsonian” ones.\n"


class StubPipeline:
    """Answers every question with one span of one document; validates like the real pipeline."""

    def __init__(self, max_question_chars: int = 1000, fail: bool = False) -> None:
        self.max_question_chars, self.fail = max_question_chars, fail
        self.asked: list[tuple[str, int | None]] = []
        sha = hashlib.sha256(DOC_TEXT.encode()).hexdigest()
        manifest = Manifest(
            rag_version="test",
            created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            corpus=["stub"],
            embedding=EmbeddingInfo(model="stub-model", backend="torch", dim=4),
            chunking=ChunkingInfo(max_chars=600, overlap_sentences=1),
            faiss=FaissInfo(kind="flat"),
            documents={},
            counts={"documents": 1, "chunks": 2, "sentences": 3},
            files={},
        )
        self.index = SimpleNamespace(
            documents={DOC_ID: Document(DOC_ID, DOC_TEXT, sha)}, chunks=[object(), object()], manifest=manifest
        )

    def ask(self, question: str, top_k: int | None = None) -> Result:
        if self.fail:
            raise RuntimeError("boom")
        q = clean_question(question, self.max_question_chars)
        self.asked.append((q, top_k))
        qs, start = DOC_TEXT.index("The capital"), DOC_TEXT.index("Washington")
        qe = DOC_TEXT.index(".", start) + 1
        c = Citation(DOC_ID, start, start + len("Washington"), DOC_TEXT[qs:qe], qs, qe)
        return Result(q, (Answer("Washington", 0.71234, (c,)), Answer("United States", 0.2, (c,)))[:top_k])


@pytest.fixture()
def stub() -> StubPipeline:
    return StubPipeline()


@pytest.fixture()
def client(stub: StubPipeline):
    with TestClient(create_app(api_settings(), pipeline=stub), raise_server_exceptions=False) as c:
        yield c


def assert_json_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


# ------------------------------------------------------------------------------------------- fast
def test_ask_contract_with_stub(client: TestClient, stub: StubPipeline) -> None:
    r = client.post("/ask", json={"question": "  What is the capital?\n", "top_k": 1})
    assert r.status_code == 200
    assert stub.asked[-1] == ("What is the capital?", 1)
    start = DOC_TEXT.index("Washington")
    assert r.json() == {
        "question": "What is the capital?",
        "answers": [
            {
                "text": "Washington",
                "score": 0.7123,
                "citations": [
                    {
                        "doc_id": DOC_ID,
                        "start": start,
                        "end": start + 10,
                        "quote": "The capital of the United States is Washington.",
                        "quote_start": DOC_TEXT.index("The capital"),
                        "quote_end": start + 11,
                    }
                ],
            }
        ],
    }
    assert stub.asked[0] == (WARMUP_QUESTION, 1)  # warmed before the first request
    assert client.post("/ask", json={"question": "q"}).json()["answers"].__len__() == 2  # default top_k=3


class AbstainingStub(StubPipeline):
    """Answers nothing; shows the passage that came closest (or, with ``retrieved=False``, none)."""

    def __init__(self, retrieved: bool = True) -> None:
        super().__init__()
        self.retrieved = retrieved

    def ask(self, question: str, top_k: int | None = None) -> Result:
        q = clean_question(question, self.max_question_chars)
        start = DOC_TEXT.index("The capital")
        end = DOC_TEXT.index("ones.") + len("ones.")
        closest = (Passage(DOC_ID, start, end, DOC_TEXT[start:end]),) if self.retrieved else ()
        return Result(q, (), closest=closest)


def test_abstaining_answer_shows_closest_with_stub() -> None:
    start, end = DOC_TEXT.index("The capital"), DOC_TEXT.index("ones.") + len("ones.")
    with TestClient(create_app(api_settings(), pipeline=AbstainingStub())) as c:
        body = c.post("/ask", json={"question": "Where is the zoo?"}).json()
        schema = c.get("/openapi.json").json()["components"]["schemas"]
    assert body == {
        "question": "Where is the zoo?",
        "answers": [],
        "closest": [{"doc_id": DOC_ID, "start": start, "end": end, "text": DOC_TEXT[start:end]}],
    }
    assert "closest" in schema["AskResponse"]["properties"]
    assert set(schema["Passage"]["properties"]) == {"doc_id", "start", "end", "text"}
    with TestClient(create_app(api_settings(), pipeline=AbstainingStub(retrieved=False))) as c:
        assert c.post("/ask", json={"question": "Where is the zoo?"}).json()["closest"] == []


class DisagreeingStub(StubPipeline):
    """Answers with two answers whose documents disagree (issue 24), or with ``conflict=False`` none."""

    def __init__(self, conflict: bool = True) -> None:
        super().__init__()
        self.conflict = conflict

    def ask(self, question: str, top_k: int | None = None) -> Result:
        r = super().ask(question, top_k)
        note = 'The documents disagree: "Washington" (news/capital.txt) vs "United States" (news/capital.txt).'
        return replace(r, conflict=Conflict((0, 1), "name", note) if self.conflict else None)


def test_a_conflict_is_in_the_answer_json_only_when_found() -> None:
    with TestClient(create_app(api_settings(), pipeline=DisagreeingStub())) as c:
        body = c.post("/ask", json={"question": "What is the capital?"}).json()
        schema = c.get("/openapi.json").json()["components"]["schemas"]
    expected = DisagreeingStub().ask("What is the capital?", 3).to_dict()
    assert body == expected and list(body) == ["question", "answers", "conflict"]  # as rag ask --json has it
    assert body["conflict"] == {"answers": [0, 1], "kind": "name", "note": expected["conflict"]["note"]}
    assert "conflict" in schema["AskResponse"]["properties"]
    assert set(schema["Conflict"]["properties"]) == {"answers", "kind", "note"}
    assert schema["Conflict"]["properties"]["kind"]["enum"] == ["amount", "date", "name"]
    with TestClient(create_app(api_settings(), pipeline=DisagreeingStub(conflict=False))) as c:
        assert "conflict" not in c.post("/ask", json={"question": "What is the capital?"}).json()


def test_health_and_documents_with_stub(client: TestClient) -> None:
    assert client.get("/health").json() == {
        "status": "ok",
        "documents": 1,
        "chunks": 2,
        "model": "stub-model",
        "index_built_at": "2026-01-02T03:04:05Z",
    }
    listed = client.get("/documents").json()
    assert listed == [
        {
            "doc_id": DOC_ID,
            "chars": len(DOC_TEXT),
            "bytes": len(DOC_TEXT.encode("utf-8")),
            "sha256": hashlib.sha256(DOC_TEXT.encode()).hexdigest(),
        }
    ]
    assert listed[0]["bytes"] == listed[0]["chars"] + 6  # "—", "“" and "”" are 3 bytes each in UTF-8
    doc = client.get(f"/documents/{DOC_ID}").json()
    assert doc == {**listed[0], "text": DOC_TEXT}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "question"),
        ({"question": "x" * 1001}, "question"),
        ({"question": 42}, "question"),
        ({"question": None}, "question"),
        ({"question": ["a"]}, "question"),
        ({}, "question"),
        ({"question": "ok", "top_k": 0}, "top_k"),
        ({"question": "ok", "top_k": 21}, "top_k"),
        ({"question": "ok", "top_k": -1}, "top_k"),
        ({"question": "ok", "top_k": "3"}, "top_k"),
        ({"question": "ok", "top_k": 2.5}, "top_k"),
        ({"question": "ok", "top_k": True}, "top_k"),
        ({"question": "ok", "topk": 3}, "topk"),
        (["question"], "JSON object"),
        ("question", "JSON object"),
        (None, "JSON object"),  # no body at all
        (3, "JSON object"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(client: TestClient, body: object, field: str) -> None:
    detail = assert_json_error(client.post("/ask", json=body), 422)
    assert field in detail


@pytest.mark.parametrize(
    ("content", "headers", "expected"),
    [
        (b'{"question": ', {"content-type": "application/json"}, "not valid JSON"),
        (b"\xff\xfe{}", {"content-type": "application/json"}, "JSON"),
        (b'{"question": "\\ud800"}', {"content-type": "application/json"}, "question"),
        (b"question=hi", {"content-type": "application/x-www-form-urlencoded"}, "Content-Type: application/json"),
        # what `curl -d '{...}'` sends without -H: a JSON object, declared as a form
        (b'{"question": "hi"}', {"content-type": "application/x-www-form-urlencoded"}, "it was 'application/x-www"),
        (b"", {}, "JSON object"),
        (b"null", {"content-type": "application/json"}, "JSON object"),
        (b"hello", {"content-type": "text/plain"}, "Content-Type: application/json"),
    ],
)
def test_malformed_bodies_are_422(client: TestClient, content: bytes, headers: dict, expected: str) -> None:
    detail = assert_json_error(client.post("/ask", content=content, headers=headers), 422)
    assert expected in detail


NOT_UTF8 = "it is not UTF-8 (JSON bodies must be UTF-8, whatever charset the Content-Type declares)"


@pytest.mark.parametrize(
    ("content", "content_type", "problem"),
    [
        (b"[" * 50_000, "application/json", "it is nested too deeply"),  # past the parser's recursion limit
        (
            b'{"question": "q", "top_k": ' + b"9" * 5000 + b"}",
            "application/json",
            "it holds a number with too many digits",
        ),
        ('{"question": "café?"}'.encode("latin-1"), "application/json; charset=latin-1", NOT_UTF8),
        (b'{"question": "\xff"}', "application/json", NOT_UTF8),  # a raw 0xff byte
    ],
)
def test_bodies_the_parser_gives_up_on_are_422(
    client: TestClient, stub: StubPipeline, content: bytes, content_type: str, problem: str
) -> None:
    asked = len(stub.asked)
    detail = assert_json_error(client.post("/ask", content=content, headers={"content-type": content_type}), 422)
    assert detail == (
        f"Invalid request: the request body could not be parsed ({problem}). "
        'Send a JSON object like {"question": "...", "top_k": 3}.'
    )
    assert len(stub.asked) == asked  # never reached the pipeline


def test_parse_failure_of_unknown_cause_still_names_the_likely_problems() -> None:
    assert describe_parse_failure(None) == (
        "Invalid request: the request body could not be parsed (nested too deeply, a number with too many digits, "
        'or not UTF-8). Send a JSON object like {"question": "...", "top_k": 3}.'
    )


def test_longest_question_is_accepted(client: TestClient) -> None:
    assert client.post("/ask", json={"question": "x" * 1000}).status_code == 200


def test_body_over_limit_is_413(client: TestClient) -> None:
    big = json.dumps({"question": "x" * 70_000}).encode()
    detail = assert_json_error(client.post("/ask", content=big, headers={"content-type": "application/json"}), 413)
    assert "65536" in detail

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(80):
            yield b" " * 1024

    assert_json_error(client.post("/ask", content=chunks(), headers={"content-type": "application/json"}), 413)


def test_body_limit_is_a_setting(stub: StubPipeline) -> None:
    with TestClient(create_app(api_settings(max_request_bytes=2048), pipeline=stub)) as c:
        assert c.post("/ask", json={"question": "x" * 1000}).status_code == 200
        assert_json_error(c.post("/ask", json={"question": "x" * 1000, "pad": "y" * 2000}), 413)


def test_pipeline_question_limit_is_422() -> None:
    stub = StubPipeline(max_question_chars=10)
    with TestClient(create_app(api_settings(), pipeline=stub)) as c:
        assert stub.asked == [(WARMUP_QUESTION[:10], 1)]  # the warm-up fits the configured limit
        assert "limit is 10" in assert_json_error(c.post("/ask", json={"question": "x" * 11}), 422)
        assert c.post("/ask", json={"question": "x" * 10}).status_code == 200


def test_unexpected_error_is_json_500() -> None:
    app = create_app(api_settings(), pipeline=StubPipeline())
    with TestClient(app, raise_server_exceptions=False) as c:
        app.state.service.pipeline.fail = True
        assert "server log" in assert_json_error(c.post("/ask", json={"question": "q"}), 500)


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert_json_error(client.get("/nope"), 404)
    assert_json_error(client.get("/ask"), 405)
    assert_json_error(client.delete("/documents"), 405)


TRAVERSALS = [
    "../seeds/000_0ad6adc2e8399668.txt",
    "%2e%2e%2fseeds%2f000_0ad6adc2e8399668.txt",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "..%2f..%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5c..%5cetc%5cpasswd",
    "..\\..\\etc\\passwd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "C:%5cWindows%5cwin.ini",
    f"%2e/{DOC_ID}",  # ("./" and "x/../" are normalised away by the client itself; tested raw below)
    f"news/%2e%2e/{DOC_ID}",
    DOC_ID.replace("/", "%5c"),
    DOC_ID.upper(),
    f"{DOC_ID}%00",
    "news",
    "000_0ad6adc2e8399668.txt",  # a file in seeds/, but not in this index
    "",
]


@pytest.mark.parametrize("doc_id", TRAVERSALS)
def test_only_indexed_doc_ids_are_served(client: TestClient, doc_id: str) -> None:
    r = client.get(f"/documents/{doc_id}")
    assert_json_error(r, 404)


def test_missing_index_is_503_with_how_to_build(tmp_path: Path) -> None:
    s = api_settings(index_dir=tmp_path / "no-index")
    with TestClient(create_app(s, build_if_missing=False)) as c:
        for r in (
            c.post("/ask", json={"question": "Who?"}),
            c.get("/health"),
            c.get("/documents"),
            c.get(f"/documents/{DOC_ID}"),
        ):
            assert "rag index" in assert_json_error(r, 503)
    assert not (tmp_path / "no-index").exists()


def test_corrupt_index_is_503(tmp_path: Path) -> None:
    d = tmp_path / "index"
    d.mkdir()
    (d / "manifest.json").write_text("{not json", encoding="utf-8")
    with TestClient(create_app(api_settings(index_dir=d))) as c:
        detail = assert_json_error(c.post("/ask", json={"question": "Who?"}), 503)
        assert "rag index --rebuild" in detail


# ------------------------------------------------------------------------------------------- real model
@pytest.fixture(scope="session")
def api_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api-index") / "index"


@pytest.fixture(scope="session")
def api_pipeline(api_index_dir: Path):
    from rag.embedding import load_embedder
    from rag.pipeline import Pipeline
    from rag.store import build_index

    # the seeds, with the heuristic reader, whose answers to QUESTIONS these tests know (the learned
    # reader's HTTP answers: tests/test_learned_reader.py)
    s = api_settings(index_dir=api_index_dir, reader="heuristic")
    build_index([SEEDS], s, api_index_dir, lambda: load_embedder(s))
    return Pipeline.from_settings(s)


@pytest.fixture(scope="session")
def real_client(api_pipeline, api_index_dir: Path):
    with TestClient(create_app(api_settings(index_dir=api_index_dir), pipeline=api_pipeline)) as c:
        yield c


def check_contract(body: dict, question: str, top_k: int, texts: dict[str, str], sha: dict[str, str]) -> None:
    assert set(body) == {"question", "answers", "index_built_at"} | ({"closest"} if not body["answers"] else set())
    assert body["question"] == question.strip()
    answers = body["answers"]
    assert len(answers) <= top_k
    scores = [a["score"] for a in answers]
    assert scores == sorted(scores, reverse=True)
    for a in answers:
        assert set(a) == {"text", "score", "citations"}
        assert isinstance(a["score"], float) and 0.0 <= a["score"] <= 1.0
        assert a["citations"]
        for c in a["citations"]:
            assert set(c) == {"doc_id", "start", "end", "quote", "quote_start", "quote_end", "doc_sha256"}
            assert c["doc_sha256"] == sha[c["doc_id"]]  # the version of the document GET /documents serves
            text = texts[c["doc_id"]]
            assert c["quote_start"] <= c["start"] < c["end"] <= c["quote_end"] <= len(text)
            assert text[c["quote_start"] : c["quote_end"]] == c["quote"]
            span = text[c["start"] : c["end"]]
            assert span == a["text"] or same_value(span, a["text"])  # the same value in other words


def _merges_different_texts() -> bool:
    """The reader of commit 31c09ab groups "A$1.2 billion" with "$1.2 billion", so a citation's span can
    differ from its answer's text; main fixed that (answers differ unless only spacing differs)."""
    from rag.reader.answers import answer_key

    return answer_key("A$1.2 billion") == answer_key("$1.2 billion")


@pytest.mark.slow
@pytest.mark.xfail(_merges_different_texts(), reason="reader merges answers of different text (fixed on main)")
def test_real_answers_honour_the_contract(real_client: TestClient) -> None:
    texts: dict[str, str] = {}
    sha: dict[str, str] = {}
    built_at = real_client.get("/health").json()["index_built_at"]
    answered = 0
    for q in QUESTIONS:
        body = real_client.post("/ask", json={"question": f"  {q} ", "top_k": 3}).json()
        for a in body["answers"]:
            for c in a["citations"]:
                if c["doc_id"] not in texts:
                    r = real_client.get(f"/documents/{c['doc_id']}")
                    assert r.status_code == 200
                    texts[c["doc_id"]], sha[c["doc_id"]] = r.json()["text"], r.json()["sha256"]
        check_contract(body, q, 3, texts, sha)
        assert body["index_built_at"] == built_at  # which index answered: the one /health reports
        answered += bool(body["answers"])
    assert answered >= len(QUESTIONS) - 2
    top = real_client.post("/ask", json={"question": "Who is the US Secretary of State?", "top_k": 1}).json()
    assert len(top["answers"]) == 1 and top["answers"][0]["text"] == "Marco Rubio"


@pytest.mark.slow
def test_real_health_and_documents(real_client: TestClient, api_pipeline) -> None:
    h = real_client.get("/health").json()
    assert h["status"] == "ok" and h["documents"] == 5 and h["chunks"] == len(api_pipeline.index.chunks)
    assert h["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    datetime.fromisoformat(h["index_built_at"].replace("Z", "+00:00"))
    listed = real_client.get("/documents").json()
    assert sorted(d["doc_id"] for d in listed) == sorted(p.name for p in SEEDS.glob("*.txt"))
    for d in listed:
        doc = real_client.get(f"/documents/{d['doc_id']}").json()
        assert len(doc["text"]) == d["chars"] == doc["chars"]
        assert len(doc["text"].encode("utf-8")) == d["bytes"] == doc["bytes"]
        assert hashlib.sha256(doc["text"].encode()).hexdigest() == d["sha256"]
        assert doc["text"] == (SEEDS / d["doc_id"]).read_text(encoding="utf-8")


def test_start_up_never_builds_another_index_dir(tmp_path: Path) -> None:
    """A mistyped --index-dir is 503 naming the `rag index` command, not an index of the seeds made there."""
    s = api_settings(index_dir=tmp_path / "typo")
    with TestClient(create_app(s)) as c:
        detail = assert_json_error(c.post("/ask", json={"question": "Who?"}), 503)
    assert f"rag index --index-dir {tmp_path / 'typo'}" in detail
    assert not (tmp_path / "typo").exists()


@pytest.mark.slow
def test_start_up_builds_the_default_index_the_first_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, index_dir = tmp_path / "corpus", Path("index")
    monkeypatch.chdir(tmp_path)
    corpus.mkdir()
    index_dir.mkdir()
    (index_dir / "README.md").write_text("what a fresh checkout has here", encoding="utf-8")
    (corpus / "lakes.txt").write_text("Lake Baikal is the deepest lake in the world. It lies in Siberia.\n", "utf-8")
    (corpus / "rivers.md").write_text("The Amazon carries more water than any other river.\n", encoding="utf-8")
    with TestClient(create_app(api_settings(corpus_dir=corpus, index_dir=index_dir))) as c:  # lifespan runs
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["documents"] == 2
        assert [d["doc_id"] for d in c.get("/documents").json()] == ["lakes.txt", "rivers.md"]
        body = c.post("/ask", json={"question": "What is the deepest lake in the world?", "top_k": 1}).json()
    assert (files_of(index_dir) / "manifest.json").is_file()
    assert body["answers"] and body["answers"][0]["citations"][0]["doc_id"] == "lakes.txt"


# ------------------------------------------------------------------------------------------- real server
@pytest.fixture(scope="session")
def live_server(api_pipeline, api_index_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`rag serve` (the console script, else `python -m rag.cli serve`) in a subprocess over the prebuilt
    index; yields its base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    pythonpath = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [*serve_command(), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--index-dir", str(api_index_dir)]
    with running_server(cmd, env, log_path, f"http://127.0.0.1:{port}", timeout=60) as base:
        yield base


def raw_get(base: str, path: str) -> tuple[int, dict]:
    """GET with the path sent byte for byte (no client-side dot-segment normalisation)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_serve_command_answers_over_http(live_server: str) -> None:
    r = httpx.post(f"{live_server}/ask", json={"question": "Who is the US Secretary of State?"}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    texts, sha = {}, {}
    for a in body["answers"]:
        for c in a["citations"]:
            doc = httpx.get(f"{live_server}/documents/{c['doc_id']}", timeout=10).json()
            texts[c["doc_id"]], sha[c["doc_id"]] = doc["text"], doc["sha256"]
    check_contract(body, "Who is the US Secretary of State?", 3, texts, sha)
    assert body["answers"][0]["text"] == "Marco Rubio"
    for path in [
        "/documents/../../../etc/passwd",
        "/documents/../seeds/000_0ad6adc2e8399668.txt",
        "/documents/%2e%2e/%2e%2e/etc/passwd",
        "/documents/..%2F..%2Fetc%2Fpasswd",
        "/documents/..\\..\\etc\\passwd",
        "/documents//etc/passwd",
        "/documents/%2Fetc%2Fpasswd",
        "/documents/./000_0ad6adc2e8399668.txt",
        "/documents/x/../000_0ad6adc2e8399668.txt",
        "/documents/%2e%2e%2fseeds%2f000_0ad6adc2e8399668.txt",
    ]:
        status, err = raw_get(live_server, path)
        assert status == 404 and isinstance(err["detail"], str), (path, status, err)
    status, err = raw_get(live_server, "/documents/000_0ad6adc2e8399668.txt")
    assert status == 200 and err["doc_id"] == "000_0ad6adc2e8399668.txt"


@pytest.mark.slow
def test_abstaining_over_http_shows_checkable_closest_passages(live_server: str) -> None:
    q = "What is the price of bananas on Mars?"
    r = httpx.post(f"{live_server}/ask", json={"question": q}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["answers"] == [] and 1 <= len(body["closest"]) <= 3
    assert {"question", "answers", "closest"} <= set(body)  # closest only without answers
    for p in body["closest"]:
        assert set(p) == {"doc_id", "start", "end", "text"}
        text = httpx.get(f"{live_server}/documents/{p['doc_id']}", timeout=10).json()["text"]
        assert text[p["start"] : p["end"]] == p["text"]  # checkable like a citation
    answered = httpx.post(f"{live_server}/ask", json={"question": "Who is the US Secretary of State?"}, timeout=30)
    assert answered.json()["answers"] and "closest" not in answered.json()


@pytest.mark.slow
def test_burst_gives_identical_answers(live_server: str) -> None:
    """200 requests, 16 at a time, over loopback: all 200, and the same answer for the same question."""
    questions = QUESTIONS[:5] + ["Which countries are G7 members?", "What did Lin Jian say?", "When was it published?"]
    with httpx.Client(base_url=live_server, timeout=30, limits=httpx.Limits(max_connections=16)) as http_:
        reference = {q: http_.post("/ask", json={"question": q}).json() for q in questions}  # one at a time
        jobs = [questions[i % len(questions)] for i in range(200)]

        def one(q: str) -> tuple[str, int, dict]:
            r = http_.post("/ask", json={"question": q})
            return q, r.status_code, r.json()

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(one, jobs, timeout=90))
        elapsed = time.monotonic() - t0
    assert Counter(status for _, status, _ in results) == {200: 200}
    for q, _, body in results:
        assert body == reference[q], q
    assert elapsed < 60, f"burst took {elapsed:.1f} s"


def test_an_api_key_guards_answers_and_documents_but_not_health_or_the_page(stub: StubPipeline) -> None:
    with TestClient(create_app(api_settings(api_key="s3cret key"), pipeline=stub)) as c:
        for method, path, body in [
            ("POST", "/ask", {"question": "Where is the capital?"}),
            ("GET", "/documents", None),
            ("GET", f"/documents/{DOC_ID}", None),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret key"}):
                r = c.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
                assert "Authorization: Bearer <key>" in r.json()["detail"]
            r = c.request(method, path, json=body, headers={"Authorization": "Bearer s3cret key"})
            assert r.status_code == 200, (path, r.text)
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200
        assert "401" in json.dumps(c.get("/openapi.json").json()["paths"]["/ask"]["post"]["responses"])


def test_serving_beyond_loopback_without_a_key_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import api.main
    from rag.cli import app

    monkeypatch.setattr(api.main, "serve", lambda *a, **kw: None)  # only the start-up checks run
    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env={"RAG_API_KEY": ""})
    assert r.exit_code == 0 and "warning: serving on 0.0.0.0 without RAG_API_KEY" in r.output
    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env={"RAG_API_KEY": "k"})
    assert r.exit_code == 0 and "warning" not in r.output
    r = CliRunner().invoke(app, ["serve"], env={"RAG_API_KEY": ""})
    assert r.exit_code == 0 and "warning" not in r.output  # loopback by default


class SlowStub(StubPipeline):
    """A stub whose answers take ``seconds`` each, to fill the queue."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def ask(self, question: str, top_k: int | None = None) -> Result:
        time.sleep(self.seconds)
        return super().ask(question, top_k)


def test_a_full_queue_answers_503_with_retry_after_at_once_and_health_stays_up() -> None:
    settings = api_settings(max_queued_requests=2, request_timeout_s=30)
    with TestClient(create_app(settings, pipeline=SlowStub(1.5))) as c:

        def ask(_: int) -> tuple[int, str | None]:
            r = c.post("/ask", json={"question": "Where is the capital?"})
            return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [pool.submit(ask, i) for i in range(6)]
            time.sleep(0.2)
            health = c.get("/health")  # while the inference thread is busy
            results = [j.result() for j in jobs]
        assert health.status_code == 200
        codes = Counter(code for code, _ in results)
        assert codes == {200: 2, 503: 4}, results  # one running and one waiting; the rest turned away
        assert all(retry == "1" for code, retry in results if code == 503)
        r = c.post("/ask", json={"question": "Where is the capital?"})  # the queue drained: served again
        assert r.status_code == 200


def test_a_question_over_the_time_limit_answers_503_and_frees_its_place() -> None:
    with TestClient(create_app(api_settings(request_timeout_s=0.3), pipeline=SlowStub(1.0))) as c:
        r = c.post("/ask", json={"question": "Where is the capital?"})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert "not answered within 0.3 s (RAG_REQUEST_TIMEOUT_S)" in r.json()["detail"]
        time.sleep(1.0)
        assert c.app.state.service.pending == 0


@pytest.mark.slow
def test_oversized_bodies_reach_the_client_as_413_over_a_real_connection(live_server: str) -> None:
    """A 3 MB body: the server reads and discards it, so the client gets the 413 and its detail instead of
    a reset connection; 20 times in a row, each on a fresh connection."""
    host, port = live_server.removeprefix("http://").split(":")
    body = json.dumps({"question": "x", "pad": "y" * 3_000_000}).encode()
    for _ in range(20):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", "/ask", body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 413
            assert "limit" in json.loads(resp.read())["detail"]
        finally:
            conn.close()
    assert httpx.get(f"{live_server}/health", timeout=10).status_code == 200
