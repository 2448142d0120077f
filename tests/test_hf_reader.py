"""The Hugging Face reader, with a tiny randomly initialised BERT QA model built here (nothing downloaded).

A random model answers nonsense, so these tests check the contract, not the answers: exact character
offsets into the source files (multi-byte text included), quotes, whitespace, scores, windowing of long
passages, duplicate passages, errors and the pipeline wiring.
"""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rag.chunking import split_sentences
from rag.config import Settings
from rag.errors import ModelError
from rag.reader.hf import HFReader, best_spans, quote_bounds, trim
from rag.retrieval import Query, collapse_duplicates
from rag.store import build_index, load_index
from rag.types import Chunk, Hit

SHARED = (
    "The Zürich café™ opened in 1998 — its founder, Ana Müller, said “coffee is a craft.” "
    "It’s run today by her son Luis, who roasts beans every Tuesday 😀.\n"
)
DOCS = {
    "a.txt": SHARED + "\nPrices rose 12% in 2024 — the first rise since 2019. The café’s rival, Brew Co., sits "
    "across the street.\n\n東京 has a branch too, opened by Kenji Sato in 2021.\n",
    "b.txt": "# Coffee news\n\n" + SHARED + "\nBrew Co. sells tea as well — mostly green tea from Japan.\n",
    "long/c.txt": " ".join(
        f"In {1990 + i} the roaster in Zürich sold {i * 7} tonnes of beans to café owners in town {i}."
        for i in range(12)
    )
    + "\n",
}
QUESTION = "Who founded the café in Zürich?"


class FakeEmbedder:
    """Deterministic hash-based unit vectors: no model is loaded."""

    model_name = "fake"
    backend = "torch"
    dim = 8

    def encode(self, texts, batch_size=32, progress=False):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            digest = hashlib.sha256(t.encode("utf-8")).digest()
            v = np.frombuffer(digest[: self.dim * 4], dtype=np.uint32).astype(np.float64) / 2**32 - 0.5
            out[i] = v / np.linalg.norm(v)
        return out


def _vocab(texts) -> list[str]:
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    chars = list(string.ascii_lowercase + string.digits)
    punct = list(".,?!%#'’“”—-")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return list(dict.fromkeys(specials + chars + ["##" + c for c in chars] + punct + words))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny-qa")
    vocab = _vocab([*DOCS.values(), QUESTION])
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    try:  # transformers 5 takes the vocabulary file as `vocab`, 4.x as `vocab_file`
        tok = BertTokenizerFast(vocab=str(d / "vocab.txt"))
    except TypeError:  # pragma: no cover - transformers 4.x
        tok = BertTokenizerFast(vocab_file=str(d / "vocab.txt"))
    assert len(tok) == len(vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertForQuestionAnswering(config).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hf-corpus")
    for name, text in DOCS.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text, encoding="utf-8")
    return d


def _settings(model_dir: Path, index_dir: Path, **kw) -> Settings:
    kw.setdefault("hf_max_length", 48)
    kw.setdefault("hf_doc_stride", 12)
    kw.setdefault("abstain_threshold", 0.0)
    return Settings(
        _env_file=None,
        embedding_model="fake",
        index_dir=index_dir,
        chunk_max_chars=120,
        reader="hf",
        hf_reader_model=str(model_dir),
        **kw,
    )


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory, model_dir):
    idx = tmp_path_factory.mktemp("hf-index") / "index"
    s = _settings(model_dir, idx)
    build_index([corpus], s, idx, FakeEmbedder())
    return load_index(idx, s)


@pytest.fixture(scope="module")
def reader(index, model_dir):
    return HFReader.from_settings(_settings(model_dir, index.path), index)


def all_hits(index) -> list[Hit]:
    return collapse_duplicates([(c, 1.0) for c in index.chunks], k=len(index.chunks))


def _in_word(text: str, i: int) -> bool:
    """A letter or digit of a word (CJK characters are words of their own for BERT)."""
    return 0 <= i < len(text) and text[i].isalnum() and ord(text[i]) < 0x2E80


def assert_contract(answers, corpus: Path) -> None:
    for a in answers:
        assert 0.0 <= a.score <= 1.0
        assert a.text and a.text == a.text.strip()
        assert a.citations
        for c in a.citations:
            text = (corpus / c.doc_id).read_text(encoding="utf-8")
            assert text[c.quote_start : c.quote_end] == c.quote
            assert c.quote_start <= c.start < c.end <= c.quote_end
            assert text[c.start : c.end] == a.text
            assert not (_in_word(text, c.start - 1) and _in_word(text, c.start)), "starts inside a word"
            assert not (_in_word(text, c.end - 1) and _in_word(text, c.end)), "ends inside a word"
    scores = [a.score for a in answers]
    assert scores == sorted(scores, reverse=True)


# ------------------------------------------------------------------------------------------ pure parts
def test_best_spans_respects_order_length_context_and_null():
    start = np.array([0.0, 5.0, 1.0, 4.0, 0.0, 9.0])
    end = np.array([0.0, 1.0, 5.0, 0.0, 4.0, 9.0])
    context = np.array([False, True, True, True, True, False])  # 0 is CLS, 5 a separator
    spans = best_spans(start, end, context, 0, max_answer_tokens=2, n=10)
    assert spans[0][:2] == (1, 2)
    for i, j, p in spans:
        assert 1 <= i <= j <= 4 and j - i + 1 <= 2 and 0.0 < p <= 1.0
    assert [p for *_, p in spans] == sorted((p for *_, p in spans), reverse=True)
    # a strong no-answer logit removes every span; a negative margin lets them back
    start[0] = end[0] = 20.0
    assert best_spans(start, end, context, 0, 2, 10) == []
    assert best_spans(start, end, context, 0, 2, 10, null_margin=-100.0)
    assert best_spans(start, end, np.zeros(6, dtype=bool), 0, 2, 10) == []


def test_trim_and_quote_bounds():
    text = "  One two.  Three four.  "
    assert trim(text, 0, len(text)) == (2, 23) and trim(text, 0, 2) == (2, 2)
    spans = tuple(split_sentences(text))
    chunk = Chunk(0, "d", spans[0].start, spans[-1].end, text[spans[0].start : spans[-1].end], spans)
    assert quote_bounds(chunk, 6, 9) == (2, 10)
    assert quote_bounds(chunk, 6, 17) == (2, 23)  # crosses into the second sentence
    assert quote_bounds(Chunk(0, "d", 2, 23, text[2:23], ()), 6, 9) == (2, 23)


# ------------------------------------------------------------------------------------------ the reader
def test_answers_satisfy_the_citation_contract(reader, index, corpus):
    answers = reader.read(Query.make(QUESTION), all_hits(index), top_k=5)
    assert answers, "abstain_threshold=0 and a random model: something must come back"
    assert len(answers) <= 5
    assert_contract(answers, corpus)


def test_identical_passages_are_cited_in_every_copy(reader, index, corpus):
    copies = [c for c in index.chunks if "roasts beans" in c.text]
    assert [c.doc_id for c in copies] == ["a.txt", "b.txt"] and copies[0].text == copies[1].text
    answers = reader.read(Query.make(QUESTION), [Hit(copies[0], 1.0, 0, (copies[1],))], top_k=3)
    assert answers
    assert_contract(answers, corpus)
    assert all(sorted(c.doc_id for c in a.citations) == ["a.txt", "b.txt"] for a in answers)


def test_near_duplicates_with_other_text_are_read_too(reader, index, corpus):
    near = [c for c in index.chunks if "Ana Müller" in c.text]
    assert {c.doc_id for c in near} == {"a.txt", "b.txt"} and near[0].text != near[1].text
    answers = reader.read(Query.make(QUESTION), [Hit(near[0], 1.0, 0, (near[1],))], top_k=10)
    assert_contract(answers, corpus)
    assert {c.doc_id for a in answers for c in a.citations} == {"a.txt", "b.txt"}


def test_long_passage_is_read_in_overlapping_windows(model_dir, index, corpus):
    s = _settings(model_dir, index.path, hf_null_margin=-1e9)  # every window answers
    reader = HFReader.from_settings(s, index)
    text = index.documents["long/c.txt"].text
    sents = tuple(split_sentences(text))
    chunk = Chunk(0, "long/c.txt", sents[0].start, sents[-1].end, text[sents[0].start : sents[-1].end], sents)
    windows = reader._windows(QUESTION, [chunk.text])
    assert len(windows) > 3 and all(len(w.ids) <= 48 for w in windows)
    first_end = max(e for (_, e), p in zip(windows[0].offsets, windows[0].passage) if p)
    spans = reader.predict(QUESTION, [chunk.text], per_window=2)[0]
    assert any(s >= first_end for s, _, _ in spans), "later windows must contribute spans"
    answers = reader.read(Query.make(QUESTION), [Hit(chunk, 1.0, 0)], top_k=20)
    assert len(answers) > 3
    assert_contract(answers, corpus)
    assert any(c.start >= chunk.start + first_end for a in answers for c in a.citations)


def test_threshold_withholds_and_empty_hits(model_dir, index):
    assert HFReader.from_settings(_settings(model_dir, index.path), index).read(Query.make(QUESTION), [], 3) == []
    strict = HFReader.from_settings(_settings(model_dir, index.path, abstain_threshold=1.0), index)
    assert strict.read(Query.make(QUESTION), all_hits(index), top_k=3) == []


def test_long_question_is_cut_to_fit(reader, index, corpus):
    question = " ".join(["who founded the café"] * 40) + "?"
    answers = reader.read(Query.make(question), all_hits(index)[:2], top_k=3)
    assert_contract(answers, corpus)


# ------------------------------------------------------------------------------------------ a rigged model
class RiggedQA:
    """Stands in for a trained model: high start/end logits on chosen tokens (and on CLS when ``null``)."""

    def __init__(self, tokenizer, start: str, end: str, null: float = 0.0) -> None:
        self.start_id, self.end_id = tokenizer.convert_tokens_to_ids([start, end])
        self.null = null

    def __call__(self, input_ids, attention_mask, **kw):

        start = (input_ids == self.start_id).float() * 10.0
        end = (input_ids == self.end_id).float() * 10.0
        start[:, 0] = end[:, 0] = self.null
        return SimpleNamespace(start_logits=start, end_logits=end)


def _rigged(reader, index, start, end, **kw) -> HFReader:
    model = RiggedQA(reader.tokenizer, start, end, kw.pop("null", 0.0))
    docs = {d: doc.text for d, doc in index.documents.items()}
    return HFReader(
        model, reader.tokenizer, docs, threshold=kw.pop("threshold", 0.3), max_length=48, doc_stride=12, **kw
    )


def test_a_confident_model_answers_with_the_exact_span_and_its_sentence(reader, index, corpus):
    hits = all_hits(index)
    answers = _rigged(reader, index, "kenji", "sato").read(Query.make("Who opened the branch?"), hits, top_k=3)
    assert answers[0].text == "Kenji Sato" and answers[0].score > 0.9
    (c,) = answers[0].citations
    assert c.doc_id == "a.txt" and c.quote == "東京 has a branch too, opened by Kenji Sato in 2021."
    assert_contract(answers, corpus)


def test_a_span_ending_inside_a_word_is_widened_to_the_word(reader, index, corpus):
    near = [c for c in index.chunks if "Ana Müller" in c.text and c.doc_id == "a.txt"]
    answers = _rigged(reader, index, "ana", "##l").read(Query.make(QUESTION), [Hit(near[0], 1.0, 0)], top_k=1)
    assert [a.text for a in answers] == ["Ana Müller"]
    assert_contract(answers, corpus)


def test_a_no_answer_prediction_abstains(reader, index):
    hits = all_hits(index)
    q = Query.make("Who opened the branch?")
    assert _rigged(reader, index, "kenji", "sato", null=30.0, threshold=0.0).read(q, hits, 3) == []
    relaxed = _rigged(reader, index, "kenji", "sato", null=30.0, threshold=0.0, null_margin=-100.0)
    answers = relaxed.read(q, hits, 3)
    assert answers and answers[0].text == "Kenji Sato" and answers[0].score < 0.01  # the null mass remains


# ------------------------------------------------------------------------------------------ errors, wiring
def test_missing_model_is_a_clear_error(tmp_path, index):
    for path, words in [(None, "needs a reader model"), (str(tmp_path / "nope"), "does not exist")]:
        s = Settings(_env_file=None, reader="hf", hf_reader_model=path)
        with pytest.raises(ModelError, match=words) as err:
            HFReader.from_settings(s, index)
        assert "RAG_HF_READER_MODEL" in str(err.value) and "RAG_READER=heuristic" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        HFReader.from_settings(Settings(_env_file=None, hf_reader_model=str(tmp_path / "empty")), index)


def test_model_without_qa_head_is_rejected(tmp_path, model_dir, index):
    import shutil

    from transformers import BertConfig, BertModel

    d = tmp_path / "base"
    BertModel(BertConfig.from_pretrained(model_dir)).save_pretrained(d)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model_dir / name, d / name)
    with pytest.raises(ModelError, match="QA head"):
        HFReader.from_settings(Settings(_env_file=None, hf_reader_model=str(d)), index)


def test_stride_too_large_is_a_clear_error(model_dir, index):
    with pytest.raises(ModelError, match="RAG_HF_DOC_STRIDE"):
        HFReader.from_settings(_settings(model_dir, index.path, hf_max_length=48, hf_doc_stride=46), index)


def test_pipeline_wires_the_hf_reader(model_dir, index, corpus):
    from rag.pipeline import Pipeline, make_ranker, make_reader
    from rag.retrieval import BM25Retriever

    s = _settings(model_dir, index.path)
    ranker = make_ranker(index, BM25Retriever([c.text for c in index.chunks]))
    assert isinstance(make_reader(s, index, ranker), HFReader)
    pipe = Pipeline.from_index(index, s, FakeEmbedder())
    assert isinstance(pipe.reader, HFReader)
    result = pipe.ask(QUESTION)
    assert result.answers
    assert_contract(result.answers, corpus)
    d = result.to_dict()
    assert d["question"] == QUESTION and len(d["answers"]) <= s.top_k
