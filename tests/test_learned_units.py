"""Fast unit tests of the learned reader's pure parts and its training data path (no torch, no model)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ModelError
from rag.reader.learned import sentence_bounds, widen_to_words
from rag.reader.learned_model import (
    CALIBRATION,
    MANIFEST,
    Calibration,
    _check_files,
    _manifest,
    load_calibration,
)
from rag.reader.qa_windows import (
    Encoded,
    assemble,
    batch_arrays,
    best_window_spans,
    encode_windows,
    load_tokenizer,
    token_span,
    window_around,
)
from rag.train.data import Example, TrainingDataError, load_examples
from rag.train.features import Feature, batches, make_features
from rag.train.loop import TrainConfig, lr_factor
from rag.train.validate import ValItem, ValPrediction, scores
from rag.train.windows import (
    _SWAPPABLE,
    TrainWindow,
    WindowRates,
    answer_window,
    build_windows,
    neighbour_window,
    sentence_spans,
    swapped_question,
)
from rag.types import Span

SPECIALS = (101, 102)


@pytest.fixture(scope="module")
def tok():
    from rag.config import BUNDLED_MODEL
    from rag.reader.learned_model import base_model_path

    return load_tokenizer(Path(base_model_path(BUNDLED_MODEL)) / "tokenizer.json")


# --------------------------------------------------------------------------------------------------
# rag/reader/qa_windows.py
# --------------------------------------------------------------------------------------------------


def test_window_around_clips_at_both_ends():
    sents = [Span(i * 10, i * 10 + 9) for i in range(5)]
    assert window_around(sents, 0) == (0, 2)
    assert window_around(sents, 4) == (3, 5)
    assert window_around(sents, 2) == (1, 4)
    assert window_around(sents, 2, before=2, after=0) == (0, 3)
    assert window_around(sents, 1, before=5, after=5) == (0, 5)
    assert window_around(sents[:1], 0) == (0, 1)


def test_assemble_layout_types_and_absolute_offsets():
    enc = assemble([7, 8], [20, 21, 22], [(0, 3), (4, 6), (7, 9)], 100, 20, SPECIALS)
    assert enc.ids == (101, 7, 8, 102, 20, 21, 22, 102)
    assert enc.type_ids == (0, 0, 0, 0, 1, 1, 1, 1)
    assert enc.offsets == ((0, 0),) * 4 + ((100, 103), (104, 106), (107, 109), (0, 0))
    assert (enc.first, enc.last) == (4, 6)
    assert enc.truncated is False
    assert len(enc) == 8


def test_assemble_exact_fit_is_not_truncated():
    enc = assemble([7, 8], [20, 21, 22], [(0, 3), (4, 6), (7, 9)], 0, 8, SPECIALS)
    assert len(enc) == 8
    assert enc.truncated is False
    assert enc.last == 6


def test_assemble_cuts_the_window_to_max_length():
    enc = assemble([7, 8], [20, 21, 22], [(0, 3), (4, 6), (7, 9)], 100, 7, SPECIALS)
    assert enc.ids == (101, 7, 8, 102, 20, 21, 102)
    assert len(enc) == 7
    assert enc.type_ids == (0, 0, 0, 0, 1, 1, 1)
    assert enc.offsets[4:] == ((100, 103), (104, 106), (0, 0))
    assert (enc.first, enc.last) == (4, 5)
    assert enc.truncated is True


def _enc(max_length: int = 20) -> Encoded:
    return assemble([7, 8], [20, 21, 22], [(0, 3), (4, 6), (7, 9)], 100, max_length, SPECIALS)


def test_token_span_covers_the_answer_characters():
    enc = _enc()
    assert token_span(enc, 104, 106) == (5, 5)
    assert token_span(enc, 100, 109) == (4, 6)
    assert token_span(enc, 101, 105) == (4, 5)  # starts and ends inside tokens
    assert token_span(enc, 107, 109) == (6, 6)
    assert token_span(enc, 200, 210) is None  # not in the window
    assert token_span(enc, 0, 0) is None  # question/special tokens are never an answer


def test_token_span_is_none_when_truncation_cuts_the_answer():
    enc = _enc(max_length=7)  # keeps only the window tokens (100,103), (104,106)
    assert token_span(enc, 104, 106) == (5, 5)
    assert token_span(enc, 107, 109) is None  # entirely cut off
    assert token_span(enc, 104, 109) is None  # partly cut off


def test_batch_arrays_pads_to_the_longest():
    a = assemble([7, 8], [20, 21, 22], [(0, 3), (4, 6), (7, 9)], 0, 20, SPECIALS)
    b = assemble([7], [20], [(0, 3)], 0, 20, SPECIALS)
    arr = batch_arrays([a, b])
    assert set(arr) == {"input_ids", "attention_mask", "token_type_ids"}
    for v in arr.values():
        assert v.shape == (2, 8)
        assert v.dtype == np.int64
    assert arr["input_ids"][0].tolist() == list(a.ids)
    assert arr["input_ids"][1].tolist() == [101, 7, 102, 20, 102, 0, 0, 0]
    assert arr["attention_mask"].tolist() == [[1] * 8, [1] * 5 + [0] * 3]
    assert arr["token_type_ids"][1].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert batch_arrays([b], pad_id=9)["input_ids"].shape == (1, 5)


def _long_enc(n_window: int = 9) -> Encoded:
    w_ids = list(range(1000, 1000 + n_window))
    offs = [(i * 5, i * 5 + 4) for i in range(n_window)]
    return assemble([7, 8, 9], w_ids, offs, 0, 64, SPECIALS)


def test_best_window_spans_properties():
    enc = _long_enc(9)  # window tokens 5..13 of 15
    rng = np.random.default_rng(0)
    s, e = rng.normal(size=len(enc)) * 2, rng.normal(size=len(enc)) * 2
    s[1] = e[1] = 50.0  # a question token: must never be picked
    spans = best_window_spans(s, e, enc, max_answer_tokens=4, n=1000)
    # every valid (i, j) with 0 <= j - i < 4 inside the 9 window tokens
    assert len(spans) == sum(min(4, 9 - i) for i in range(9))
    assert all(enc.first <= i <= j <= enc.last and j - i < 4 for i, j, _ in spans)
    probs = [p for _, _, p in spans]
    assert probs == sorted(probs, reverse=True)
    assert all(0 < p <= 1 for p in probs)
    assert sum(probs) <= 1 + 1e-9
    # the probability is p_start * p_end, softmaxed over the window tokens only
    ws, we = s[enc.first : enc.last + 1], e[enc.first : enc.last + 1]
    ps, pe = np.exp(ws) / np.exp(ws).sum(), np.exp(we) / np.exp(we).sum()
    i, j, p = spans[0]
    assert p == pytest.approx(ps[i - enc.first] * pe[j - enc.first], rel=1e-9)
    # with no length limit the span probabilities sum to P(start <= end) <= 1
    everything = best_window_spans(s, e, enc, max_answer_tokens=100, n=10_000)
    assert len(everything) == 9 * 10 // 2
    total = sum(p for _, _, p in everything)
    expected = sum(ps[a] * pe[b] for a in range(9) for b in range(a, 9))
    assert total == pytest.approx(expected, rel=1e-9)
    assert total <= 1 + 1e-9


def test_best_window_spans_finds_a_planted_peak_and_respects_length():
    enc = _long_enc(9)
    s, e = np.zeros(len(enc)), np.zeros(len(enc))
    s[6], e[8] = 10.0, 10.0
    assert best_window_spans(s, e, enc, 30, 1)[0][:2] == (6, 8)
    top = best_window_spans(s, e, enc, 2, 3)  # (6, 8) is 3 tokens long: not allowed
    assert len(top) == 3
    assert all(j - i < 2 for i, j, _ in top)
    assert (6, 8) not in [(i, j) for i, j, _ in top]
    assert best_window_spans(s, e, enc, 30, 0) == []


def test_best_window_spans_empty_window():
    enc = assemble([7], [], [], 0, 20, SPECIALS)
    assert enc.last < enc.first
    assert best_window_spans(np.zeros(len(enc)), np.zeros(len(enc)), enc, 30, 5) == []


def test_encode_windows_offsets_map_back_to_the_text(tok):
    text = "Rome is old. The bridge was built in 1887 by Hans Weber. It spans the river Tiber. Nothing else."
    sents = sentence_spans(text)
    lo, hi = window_around(sents, 1)
    window = (sents[lo].start, sents[hi - 1].end)
    (enc,) = encode_windows(tok, "Who built the bridge?", [text], [window], 128, 40)
    assert enc.ids[0] == tok.token_to_id("[CLS]")
    assert enc.ids[enc.first - 1] == tok.token_to_id("[SEP]") == enc.ids[-1]
    assert set(enc.type_ids[: enc.first]) == {0}
    assert set(enc.type_ids[enc.first :]) == {1}
    assert all(o == (0, 0) for o in enc.offsets[: enc.first])
    assert not enc.truncated
    checked = 0
    for i in range(enc.first, enc.last + 1):
        a, b = enc.offsets[i]
        assert window[0] <= a < b <= window[1]
        token = tok.id_to_token(enc.ids[i])
        assert text[a:b].lower() == token.removeprefix("##")
        checked += 1
    assert checked == enc.last - enc.first + 1 >= 15
    covered = text[enc.offsets[enc.first][0] : enc.offsets[enc.last][1]]
    assert covered == text[window[0] : window[1]]
    span = token_span(enc, text.index("Hans Weber"), text.index("Hans Weber") + len("Hans Weber"))
    assert span is not None
    assert text[enc.offsets[span[0]][0] : enc.offsets[span[1]][1]] == "Hans Weber"


def test_encode_windows_truncation_and_question_cap(tok):
    text = " ".join(f"Word{i} is here." for i in range(40))
    q = "What is the first word of this very long question about many things?"
    n_q = len(tok.encode(q, add_special_tokens=False).ids)
    (enc,) = encode_windows(tok, q, [text], [(0, len(text))], 32, 5)
    assert n_q > 5
    assert enc.first == 5 + 2  # [CLS] + 5 question tokens + [SEP]
    assert len(enc) == 32
    assert enc.truncated is True
    (whole,) = encode_windows(tok, "Short?", [text[:30]], [(0, 30)], 64, 5)
    assert whole.truncated is False


# --------------------------------------------------------------------------------------------------
# rag/train/data.py
# --------------------------------------------------------------------------------------------------

CTX0 = "Alice Smith founded the Acme Company in 1901. It made bicycles in Leeds."
CTX1 = "The Thames flows through London. The Thames Barrier was completed in 1982."


def _squad() -> dict:
    return {
        "version": "v2.0",
        "data": [
            {
                "title": "Acme",
                "paragraphs": [
                    {
                        "context": CTX0,
                        "qas": [
                            {
                                "id": "a1",
                                "question": " Who founded the Acme Company? ",
                                "answers": [{"text": "Alice Smith", "answer_start": 0}],
                                "is_impossible": False,
                            },
                            {
                                "id": "a2",
                                "question": "Where were bicycles made?",
                                "answers": [
                                    {"text": "Leeds", "answer_start": CTX0.index("Leeds")},
                                    {"text": "Leeds", "answer_start": CTX0.index("Leeds")},  # duplicate
                                    {"text": "in Leeds", "answer_start": CTX0.index("in Leeds")},
                                ],
                            },
                        ],
                    },
                    {
                        "context": CTX1,
                        "qas": [
                            {
                                "id": "b1",
                                "question": "Who closed the Barrier?",
                                "answers": [],
                                "plausible_answers": [{"text": "1982", "answer_start": CTX1.index("1982")}],
                                "is_impossible": True,
                            },
                        ],
                    },
                ],
            }
        ],
    }


def test_load_examples_plain_file(tmp_path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps(_squad()), encoding="utf-8")
    exs = load_examples(f)
    assert [e.qid for e in exs] == ["a1", "a2", "b1"]
    a1, a2, b1 = exs
    assert a1.question == "Who founded the Acme Company?"
    assert a1.answers == ((0, 11),)
    assert a1.context[slice(*a1.answers[0])] == "Alice Smith"
    assert a1.title == "Acme"
    assert a1.paragraph == "train.json#0/0"
    i = CTX0.index("Leeds")
    j = CTX0.index("in Leeds")
    assert a2.answers == ((i, i + 5), (j, j + 8))  # the duplicate is dropped
    assert a2.answerable
    assert b1.answers == ()
    assert not b1.answerable
    assert b1.paragraph == "train.json#0/1"
    assert b1.context == CTX1


def test_load_examples_gzip_file_matches_plain(tmp_path):
    plain, gz = tmp_path / "t.json", tmp_path / "t.json.gz"
    plain.write_text(json.dumps(_squad()), encoding="utf-8")
    gz.write_bytes(gzip.compress(json.dumps(_squad()).encode("utf-8")))
    a, b = load_examples(plain), load_examples(gz)
    assert [(e.qid, e.question, e.answers) for e in a] == [(e.qid, e.question, e.answers) for e in b]
    assert len(b) == 3


def _error(path: Path) -> str:
    with pytest.raises(TrainingDataError) as info:
        load_examples(path)
    return str(info.value)


def test_load_examples_missing_file(tmp_path):
    msg = _error(tmp_path / "nope.json")
    assert "nope.json" in msg
    assert "not found" in msg


def test_load_examples_truncated_json(tmp_path):
    f = tmp_path / "cut.json"
    text = json.dumps(_squad())
    f.write_text(text[: len(text) // 2], encoding="utf-8")
    msg = _error(f)
    assert str(f) in msg
    assert "not valid JSON" in msg


def test_load_examples_truncated_gzip(tmp_path):
    f = tmp_path / "cut.json.gz"
    raw = gzip.compress(json.dumps(_squad()).encode("utf-8"))
    f.write_bytes(raw[: len(raw) // 2])
    msg = _error(f)
    assert str(f) in msg
    assert "gzip" in msg


def test_load_examples_missing_question_names_record_and_field(tmp_path):
    d = _squad()
    del d["data"][0]["paragraphs"][0]["qas"][1]["question"]
    f = tmp_path / "noq.json"
    f.write_text(json.dumps(d), encoding="utf-8")
    msg = _error(f)
    assert str(f) in msg
    assert "data[0].paragraphs[0].qas[1]" in msg
    assert "'question'" in msg


def test_load_examples_wrong_answer_start_names_record_and_field(tmp_path):
    d = _squad()
    d["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 3
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(d), encoding="utf-8")
    msg = _error(f)
    assert str(f) in msg
    assert "data[0].paragraphs[0].qas[1].answers[0]" in msg
    assert "answer_start" in msg
    assert "'Leeds'" in msg


def test_load_examples_wrong_type_names_field(tmp_path):
    d = _squad()
    d["data"][0]["paragraphs"][1]["context"] = 42
    f = tmp_path / "type.json"
    f.write_text(json.dumps(d), encoding="utf-8")
    msg = _error(f)
    assert "data[0].paragraphs[1]" in msg
    assert "'context'" in msg


def test_load_examples_no_questions(tmp_path):
    f = tmp_path / "empty.json"
    f.write_text(json.dumps({"data": [{"title": "x", "paragraphs": [{"context": "Hi.", "qas": []}]}]}))
    msg = _error(f)
    assert str(f) in msg
    assert "no questions" in msg


# --------------------------------------------------------------------------------------------------
# rag/train/windows.py
# --------------------------------------------------------------------------------------------------

P1 = (
    "Alice Smith founded the Acme Company in 1901. The company made bicycles in Leeds. "
    "Later it moved to Manchester in 1925. It closed in 1970."
)
P2 = (
    "The river Thames flows through London. Its length is 346 kilometres. "
    "The Thames Barrier was completed in 1982. The height of its gates is 20 metres."
)
P3 = (
    "Mount Everest is the highest mountain on Earth. Its height is 8849 metres. "
    "Tenzing Norgay and Edmund Hillary reached the summit in 1953. A company completed a barrier on its slopes in 1982."
)


def _ex(qid: str, question: str, context: str, answer: str | None, para: str = "p") -> Example:
    spans = () if answer is None else ((context.index(answer), context.index(answer) + len(answer)),)
    return Example(qid, question, context, spans, para, "t")


def _examples() -> list[Example]:
    return [
        _ex("1a", "Who founded the Acme Company?", P1, "Alice Smith", "f#0/0"),
        _ex("1b", "In which city did the Acme Company make bicycles?", P1, "Leeds", "f#0/0"),
        _ex("2a", "When was the Thames Barrier completed?", P2, "1982", "f#0/1"),
        _ex("2b", "How long is the river Thames?", P2, "346 kilometres", "f#0/1"),
        _ex(
            "3a", "Who reached the summit of Mount Everest with Edmund Hillary in 1953?", P3, "Tenzing Norgay", "f#0/2"
        ),
        _ex("3b", "What is the height of Mount Everest?", P3, "8849 metres", "f#0/2"),
    ]


def test_answer_window_holds_the_answer_and_whole_sentences():
    sents = sentence_spans(P1)
    starts, ends = {s.start for s in sents}, {s.end for s in sents}
    for ex in _examples()[:2]:
        for seed in range(30):
            w = answer_window(ex, sents, random.Random(seed))
            assert w is not None
            assert w.kind == "answer"
            assert w.answer == ex.answers[0]
            ws, we = w.window
            assert ws <= w.answer[0] and w.answer[1] <= we
            assert ws in starts and we in ends


def test_neighbour_window_never_overlaps_the_answer():
    sents = sentence_spans(P1)
    for ex in _examples()[:2]:
        seen = set()
        for seed in range(40):
            w = neighbour_window(ex, sents, random.Random(seed))
            assert w is not None
            assert w.answer is None and w.kind == "neighbour"
            ws, we = w.window
            s, e = ex.answers[0]
            assert e <= ws or s >= we
            seen.add(w.window)
        assert seen  # at least one free window exists in a 4-sentence paragraph
    one = _ex("x", "Who founded it?", "Alice Smith founded it.", "Alice Smith")
    assert neighbour_window(one, sentence_spans(one.context), random.Random(0)) is None


def _check_swap(ex: Example, out: str) -> str:
    """``out`` is ``ex.question`` with exactly one name/number match replaced; return the replacement."""
    for m in _SWAPPABLE.finditer(ex.question):
        if m.start() == 0:
            continue
        head, tail = ex.question[: m.start()], ex.question[m.end() :]
        if out.startswith(head) and out.endswith(tail) and len(out) >= len(head) + len(tail):
            new = out[len(head) : len(out) - len(tail)]
            if new and new != m.group() and _SWAPPABLE.fullmatch(new):
                return new
    raise AssertionError(f"{out!r} is not {ex.question!r} with one name/number swapped")


def test_swapped_question_changes_one_name_never_to_the_answer():
    ex = _ex("s", "When did Alice Smith move the company to Manchester?", P1, "1925")
    outs = set()
    for seed in range(40):
        out = swapped_question(ex, random.Random(seed))
        assert out is not None and out != ex.question
        new = _check_swap(ex, out)
        assert new in {"Acme Company", "Leeds"}  # names of the passage that are not sentence-initial
        outs.add(out)
    assert len(outs) >= 3


def test_swapped_question_numbers_never_come_from_the_answer():
    ex = _ex("n", "When did the company that moved in 1925 close?", P1, "1970")
    for seed in range(20):
        out = swapped_question(ex, random.Random(seed))
        assert out is not None
        new = _check_swap(ex, out)
        assert new == "1901"  # 1925 is the question's own, 1970 is the answer
        assert "1970" not in out


def test_swapped_question_none_without_names_or_numbers():
    assert swapped_question(_ex("a", "Who founded it?", P1, "Alice Smith"), random.Random(0)) is None
    assert swapped_question(_ex("b", "What happened later?", P1, "1925"), random.Random(0)) is None
    # the only candidate would be the answer itself
    only = _ex("c", "Where did Bob live?", "Bob lived in Paris.", "Paris")
    assert swapped_question(only, random.Random(0)) is None


def _as_tuples(ws: list[TrainWindow]) -> list[tuple]:
    return [(w.qid, w.kind, w.question, w.window, w.answer, w.context) for w in ws]


def test_build_windows_deterministic_without_retrieval():
    exs = _examples() + [_ex("u", "Who closed the Thames Barrier?", P2, None, "f#0/1")]
    rates = WindowRates(neighbour=0.5, retrieved=0.5, swapped=0.5)
    a = build_windows(exs, seed=3, rates=rates, retrieval=False)
    b = build_windows(exs, seed=3, rates=rates, retrieval=False)
    assert _as_tuples(a) == _as_tuples(b)
    assert not any(w.kind == "retrieved" for w in a)
    assert [w.qid for w in a if w.kind == "answer"] == ["1a", "1b", "2a", "2b", "3a", "3b"]
    (u,) = [w for w in a if w.qid == "u"]
    assert u.kind == "unanswerable" and u.answer is None
    for w in a:
        if w.answer is not None:
            assert w.window[0] <= w.answer[0] < w.answer[1] <= w.window[1]
    runs = {tuple(_as_tuples(build_windows(exs, seed=s, rates=rates, retrieval=False))) for s in range(6)}
    assert len(runs) > 1  # the seed matters


def test_build_windows_retrieval_deterministic_and_without_the_answer():
    exs = _examples()
    rates = WindowRates(neighbour=0.0, retrieved=1.0, swapped=0.0)
    a = build_windows(exs, seed=5, rates=rates, retrieval=True)
    b = build_windows(exs, seed=5, rates=rates, retrieval=True)
    assert _as_tuples(a) == _as_tuples(b)
    retrieved = [w for w in a if w.kind == "retrieved"]
    # BM25 ranks another paragraph for 1a, 1b (P3 shares "company") and 3b (P2 shares "height"); for 2a the
    # only other paragraph sharing terms (P3) holds its answer "1982", so 2a gets none.
    assert sorted(w.qid for w in retrieved) == ["1a", "1b", "3b"]
    assert {w.qid: w.context for w in retrieved} == {"1a": P3, "1b": P3, "3b": P2}
    by_qid = {ex.qid: ex for ex in exs}
    for w in retrieved:
        ex = by_qid[w.qid]
        assert w.answer is None
        assert w.context != ex.context  # another paragraph
        answer = ex.context[slice(*ex.answers[0])]
        assert answer.lower() not in w.context[slice(*w.window)].lower()
        assert answer.lower() not in w.context.lower()


# --------------------------------------------------------------------------------------------------
# rag/train/features.py
# --------------------------------------------------------------------------------------------------


def _tw(question: str, context: str, window: tuple[int, int], answer: str | None, kind: str = "answer") -> TrainWindow:
    span = None
    if answer is not None:
        s = context.index(answer, window[0])
        span = (s, s + len(answer))
    return TrainWindow(question, context, window, span, kind, "q")


def test_make_features_marks_the_answer_tokens(tok):
    text = "Hans Müller built the bridge in 1887. It spans the river."
    wins = [
        _tw("Who built the bridge?", text, (0, len(text)), "Hans Müller"),
        _tw("When was the bridge built?", text, (0, 36), "1887"),
        _tw("What does it span?", text, (37, len(text)), "the river"),
        _tw("Who built it?", text, (37, len(text)), None, "neighbour"),
    ]
    feats = make_features(wins, tok, 64, 20)
    assert len(feats) == 4
    for w, f in zip(wins[:3], feats[:3]):
        assert f.has_answer
        assert f.enc.first <= f.start <= f.end <= f.enc.last
        assert text[f.enc.offsets[f.start][0] : f.enc.offsets[f.end][1]] == text[slice(*w.answer)]
    assert tok.decode(list(feats[1].enc.ids[feats[1].start : feats[1].end + 1])) == "1887"
    assert tok.decode(list(feats[2].enc.ids[feats[2].start : feats[2].end + 1])) == "the river"
    assert tok.decode(list(feats[0].enc.ids[feats[0].start : feats[0].end + 1])) == "hans muller"
    neg = feats[3]
    assert (neg.start, neg.end, neg.has_answer, neg.kind) == (0, 0, False, "neighbour")


def test_make_features_drops_answers_cut_off_by_max_length(tok):
    text = " ".join(f"Sentence number {i} talks about stuff." for i in range(30)) + " The end is Zanzibar."
    whole = (0, len(text))
    wins = [
        _tw("Where is the end?", text, whole, "Zanzibar"),  # at the very end: cut off
        _tw("What number?", text, whole, "number 1 talks"),  # near the start: kept
        _tw("Where is the end?", text, whole, None, "retrieved"),  # truncated negative: kept
    ]
    feats = make_features(wins, tok, 48, 10, batch=2)
    assert [f.has_answer for f in feats] == [True, False]
    assert feats[0].enc.truncated and feats[1].enc.truncated
    assert feats[1].kind == "retrieved"
    assert all(len(f.enc) == 48 for f in feats)
    assert make_features(wins[:1], tok, 512, 10)[0].has_answer  # room enough: kept


def _fake_features(n: int, seed: int = 0) -> list[Feature]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(8, 160)
        enc = Encoded(tuple(range(length)), (0,) * length, ((0, 0),) * length, 1, length - 2, False)
        out.append(Feature(enc, 0, 0, False, "neighbour"))
    return out


def _waste(feats: list[Feature], bs: list[list[int]]) -> int:
    return sum(max(len(feats[i].enc) for i in b) * len(b) - sum(len(feats[i].enc) for i in b) for b in bs)


def test_batches_cover_every_index_once_and_are_deterministic():
    feats = _fake_features(1003)
    bs = batches(feats, 16, seed=7, pool=10)
    flat = [i for b in bs for i in b]
    assert sorted(flat) == list(range(1003))
    assert all(1 <= len(b) <= 16 for b in bs)
    assert sum(len(b) < 16 for b in bs) <= 2  # only the pools' last batches may be short
    assert bs == batches(feats, 16, seed=7, pool=10)
    assert bs != batches(feats, 16, seed=8, pool=10)
    for b in bs:
        lengths = [len(feats[i].enc) for i in b]
        assert lengths == sorted(lengths)


def test_batches_pad_less_than_random_batching():
    feats = _fake_features(1000, seed=1)
    bs = batches(feats, 16, seed=3, pool=10)
    order = list(range(1000))
    random.Random(3).shuffle(order)
    rand = [order[i : i + 16] for i in range(0, 1000, 16)]
    assert _waste(feats, bs) * 4 < _waste(feats, rand)


# --------------------------------------------------------------------------------------------------
# rag/train/loop.py
# --------------------------------------------------------------------------------------------------


def test_lr_factor_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(4, 100, 0.1) == pytest.approx(0.5)
    assert lr_factor(9, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 100, 0.1) == 0.0
    assert lr_factor(150, 100, 0.1) == 0.0
    values = [lr_factor(s, 100, 0.1) for s in range(101)]
    assert max(values) == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:10], values[1:10]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert lr_factor(0, 10, 0.0) == pytest.approx(1.0)  # no warm-up: at least one step


def test_fingerprint_ignores_cadence_not_training_options(tmp_path):
    base = TrainConfig(base_model="m", checkpoint_dir=tmp_path / "a")
    same = TrainConfig(
        base_model="m", checkpoint_dir=tmp_path / "b", eval_every=7, checkpoint_every=3, threads=9, val_questions=5
    )
    assert base.fingerprint() == same.fingerprint()
    assert "checkpoint_dir" not in base.fingerprint()
    assert base.fingerprint()["lr"] == 1e-4
    assert TrainConfig(base_model="m", checkpoint_dir=tmp_path, lr=2e-4).fingerprint() != base.fingerprint()
    assert TrainConfig(base_model="m", checkpoint_dir=tmp_path, seed=14).fingerprint() != base.fingerprint()
    assert TrainConfig(base_model="m", checkpoint_dir=tmp_path, max_length=128).fingerprint() != base.fingerprint()
    json.dumps(base.fingerprint())  # stored in checkpoints: plain data


# --------------------------------------------------------------------------------------------------
# rag/train/validate.py
# --------------------------------------------------------------------------------------------------


def _item(answers: tuple[str, ...]) -> ValItem:
    return ValItem("q", "question?", "context", answers, ((0, 7),))


def test_scores_answerable_f1_and_best_threshold():
    items = [_item(("Paris",)), _item(("Eiffel Tower",)), _item(())]
    preds = [ValPrediction("Paris", 0.9), ValPrediction("Eiffel", 0.8), ValPrediction("Lyon", 0.12)]
    out = scores(items, preds)
    assert out["f1_answerable"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    # any threshold in (0.12, 0.8] answers both answerable ones and abstains on the third: the first is 0.15
    assert out["threshold"] == pytest.approx(0.15)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 3)


def test_scores_abstaining_beats_wrong_answers():
    items = [_item(("Paris",)), _item(()), _item(())]
    preds = [ValPrediction("Paris", 0.3), ValPrediction("Rome", 0.7), ValPrediction("Oslo", 0.6)]
    out = scores(items, preds)
    assert out["f1_answerable"] == pytest.approx(100.0)
    # t <= 0.3: 1 + 0 + 0; 0.3 < t <= 0.6: 0 + 0 + 1; 0.6 < t <= 0.7: 0 + 0 + 1 ... t > 0.7: 0 + 1 + 1 = 2
    assert out["threshold"] == pytest.approx(0.75)
    assert out["f1"] == pytest.approx(100 * 2 / 3)


def test_scores_wrong_answers_and_empty():
    items = [_item(("Paris",)), _item(("Berlin",))]
    preds = [ValPrediction("Lyon", 0.9), ValPrediction("", 0.0)]
    out = scores(items, preds)
    assert out["f1_answerable"] == 0.0
    assert out["f1"] == 0.0
    assert out["threshold"] == pytest.approx(0.05)  # ties keep the first threshold
    assert scores([], [])["f1_answerable"] == 0.0


# --------------------------------------------------------------------------------------------------
# rag/reader/learned.py
# --------------------------------------------------------------------------------------------------


def test_widen_to_words():
    text = "Hans Müller built it."
    assert widen_to_words(text, 5, 9) == (5, 11)  # 'Müll' -> 'Müller'
    assert text[slice(*widen_to_words(text, 7, 9))] == "Müller"  # starts inside the word too
    assert widen_to_words(text, 4, 12) == (5, 11)  # ' Müller ' trimmed
    assert widen_to_words(text, 0, 11) == (0, 11)  # already whole words
    assert text[slice(*widen_to_words(text, 13, 15))] == "built"
    assert widen_to_words(text, 11, 12) == (12, 12)  # only whitespace: empty
    assert widen_to_words("in 1887.", 3, 5) == (3, 7)  # stops at punctuation
    assert widen_to_words("x", 0, 1) == (0, 1)


def test_widen_to_words_keeps_a_currency_signs_country_prefix():
    def widened(text: str, part: str) -> str:
        start = text.index(part)
        return text[slice(*widen_to_words(text, start, start + len(part)))]

    assert widened("a A$1.2 billion reserve", "$1.2 billion") == "A$1.2 billion"
    assert widened("(US$5 million)", "$5 million") == "US$5 million"
    assert widened("HK$3", "$3") == "HK$3"  # at the start of the text
    assert widened("a $5 fee", "$5") == "$5"  # no prefix
    assert widened("THEUSD$5", "$5") == "$5"  # four capitals: a word, not a country prefix
    assert widened("paid$5", "$5") == "$5"  # lower case: not a prefix


def test_sentence_bounds():
    sents = [Span(0, 10), Span(11, 20), Span(21, 30)]
    assert sentence_bounds(sents, 12, 15) == (11, 20)
    assert sentence_bounds(sents, 5, 15) == (0, 20)  # across two sentences
    assert sentence_bounds(sents, 0, 30) == (0, 30)
    assert sentence_bounds(sents, 10, 11) == (10, 11)  # touches none: the span itself
    assert sentence_bounds([], 3, 4) == (3, 4)


# --------------------------------------------------------------------------------------------------
# rag/reader/learned_model.py
# --------------------------------------------------------------------------------------------------


def test_calibration_identity_monotonic_bounded():
    xs = [1e-4, 0.01, 0.2, 0.5, 0.77, 0.99, 0.9999]
    ident = Calibration()
    assert max(abs(ident(x) - x) for x in xs) < 1e-9
    assert isinstance(ident(0.3), float)
    for cal in (Calibration(2.0, -1.0), Calibration(0.5, 0.3), Calibration(1.0, 2.0), Calibration(1.0, 0.0, 2.0)):
        ys = [cal(x) for x in np.linspace(0.0, 1.0, 101)]
        assert np.all(np.diff(ys) >= 0)
        assert np.all(np.diff([cal(x) for x in xs]) > 0)
        assert all(0 < y < 1 for y in ys)
    assert Calibration(1.0, 1.0)(0.5) == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert Calibration(2.0, 0.0)(0.5) == pytest.approx(0.5)
    # the ranking score moves the probability in the direction of its weight
    assert Calibration(1.0, 0.0, 2.0)(0.4, rank=0.8) > Calibration(1.0, 0.0, 2.0)(0.4, rank=0.1)


def test_fit_logistic_recovers_known_weights():
    from rag.reader.calibration import expected_calibration_error, fit_logistic, fit_platt

    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.99, 20000)
    rank = rng.uniform(0, 1, 20000)
    z = 1.5 * np.log(raw / (1 - raw)) + 2.0 * rank - 1.0
    right = rng.uniform(0, 1, 20000) < 1 / (1 + np.exp(-z))
    w = fit_logistic(np.column_stack([np.log(raw / (1 - raw)), rank]), right)
    assert np.allclose(w, [1.5, 2.0, -1.0], atol=0.15)
    a, b = fit_platt(raw, right)
    assert a > 0
    probs = 1 / (1 + np.exp(-z))
    assert expected_calibration_error(probs, right) < 0.02  # the true probabilities are calibrated
    assert expected_calibration_error(np.clip(probs + 0.3, 0, 1), right) > 0.2  # shifted ones are not


def test_load_calibration(tmp_path):
    assert load_calibration(tmp_path, "abc") is None  # no file
    f = tmp_path / CALIBRATION
    f.write_text(json.dumps({"model_sha256": "abc", "a": 1.5, "b": -0.25}), encoding="utf-8")
    assert load_calibration(tmp_path, "abc") == Calibration(1.5, -0.25)
    assert load_calibration(tmp_path, "other") is None  # fitted for another model
    for damaged in (
        '{"model_sha256": "abc", "a": 1.5',
        '{"model_sha256": "abc", "b": 0}',
        "[1, 2]",
        '{"model_sha256": "abc", "a": "x", "b": 0}',
    ):
        f.write_text(damaged, encoding="utf-8")
        with pytest.raises(ModelError, match=CALIBRATION):
            load_calibration(tmp_path, "abc")


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "reader"
    d.mkdir()
    payload = b"not really an onnx model\n" * 10
    (d / "reader.onnx").write_bytes(payload)
    manifest = {
        "files": {"reader.onnx": {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}},
        "max_length": 160,
        "max_question_tokens": 40,
        "embedding_sha256": "0" * 64,
        "embedding_initializer": "embeddings.word_embeddings.weight",
    }
    (d / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return d


def test_manifest_and_files_ok(tmp_path):
    d = _model_dir(tmp_path)
    m = _manifest(d)
    assert m["max_length"] == 160
    _check_files(d, m)  # no error


def test_manifest_missing_directory(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as info:
        _manifest(tmp_path / "gone")
    assert str(tmp_path / "gone") in str(info.value)


def test_manifest_missing_file(tmp_path):
    d = _model_dir(tmp_path)
    (d / MANIFEST).unlink()
    with pytest.raises(ModelError) as info:
        _manifest(d)
    assert str(d / MANIFEST) in str(info.value)


def test_manifest_damaged_json(tmp_path):
    d = _model_dir(tmp_path)
    text = (d / MANIFEST).read_text(encoding="utf-8")
    (d / MANIFEST).write_text(text[:-20], encoding="utf-8")
    with pytest.raises(ModelError, match="damaged") as info:
        _manifest(d)
    assert str(d / MANIFEST) in str(info.value)


def test_manifest_lacking_fields(tmp_path):
    d = _model_dir(tmp_path)
    m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    del m["embedding_sha256"]
    (d / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ModelError, match="lacks fields") as info:
        _manifest(d)
    assert str(d / MANIFEST) in str(info.value)


def test_check_files_listed_file_missing(tmp_path):
    d = _model_dir(tmp_path)
    m = _manifest(d)
    (d / "reader.onnx").unlink()
    with pytest.raises(ModelError, match="missing") as info:
        _check_files(d, m)
    assert str(d / "reader.onnx") in str(info.value)


def test_check_files_truncated(tmp_path):
    d = _model_dir(tmp_path)
    m = _manifest(d)
    f = d / "reader.onnx"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(ModelError, match="truncated") as info:
        _check_files(d, m)
    assert str(f) in str(info.value)
    assert str(m["files"]["reader.onnx"]["bytes"]) in str(info.value)


def test_check_files_altered_same_size(tmp_path):
    d = _model_dir(tmp_path)
    m = _manifest(d)
    f = d / "reader.onnx"
    raw = bytearray(f.read_bytes())
    raw[3] ^= 0x01
    f.write_bytes(bytes(raw))
    assert f.stat().st_size == m["files"]["reader.onnx"]["bytes"]
    with pytest.raises(ModelError, match="sha256") as info:
        _check_files(d, m)
    assert str(f) in str(info.value)


def test_load_examples_rejects_negative_or_boolean_answer_start(tmp_path):
    for bad in (-6, True):
        d = _squad()
        d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = bad
        f = tmp_path / f"bad{bad}.json"
        f.write_text(json.dumps(d), encoding="utf-8")
        assert "answer_start" in _error(f)


def test_load_examples_corrupt_gzip_is_one_clear_error(tmp_path):
    raw = bytearray(gzip.compress(json.dumps(_squad()).encode("utf-8")))
    for i in range(20, 40):
        raw[i] ^= 0xFF
    f = tmp_path / "corrupt.json.gz"
    f.write_bytes(bytes(raw))
    msg = _error(f)
    assert str(f) in msg and "gzip" in msg


def test_load_examples_trims_whitespace_around_answers(tmp_path):
    d = _squad()
    qa = d["data"][0]["paragraphs"][0]["qas"][0]
    qa["answers"] = [{"text": "Alice Smith ", "answer_start": 0}]
    f = tmp_path / "space.json"
    f.write_text(json.dumps(d), encoding="utf-8")
    ex = next(e for e in load_examples(f) if e.qid == "a1")
    assert ex.answers == ((0, len("Alice Smith")),)


def test_check_files_rejects_a_manifest_of_the_wrong_shape(tmp_path):
    d = _model_dir(tmp_path)
    m = _manifest(d)
    for files in (["reader.onnx"], {"reader.onnx": "abc"}):
        with pytest.raises(ModelError, match="damaged"):
            _check_files(d, {**m, "files": files})


def test_stat_cache_hashes_a_file_once_until_it_changes(tmp_path):
    import os

    from rag.digests import StatCache, sha256_file

    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 1000)
    calls = []

    def compute():
        calls.append(1)
        return sha256_file(f)

    cache_file = tmp_path / "cache" / "digests.json"

    def digest() -> str:  # a new process each time: a fresh StatCache over the same file
        cache = StatCache(cache_file)
        value = cache.digest(f, "table", compute)
        cache.save()
        return value

    first = digest()
    assert digest() == first and len(calls) == 1
    f.write_bytes(b"b" * 1000)  # same size, new content: a new modification time, hashed again
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1))
    assert digest() == sha256_file(f) != first and len(calls) == 2
    cache_file.write_text("{not json", encoding="utf-8")  # a damaged cache is only a cost
    assert digest() == sha256_file(f) and len(calls) == 3
    assert StatCache(None).digest(f, "table", compute) == sha256_file(f) and len(calls) == 4


def test_stat_cache_writers_sharing_a_file_keep_each_others_entries(tmp_path):
    """The embedder and the reader model (loaded on another thread) save to one cache file."""
    from rag.digests import StatCache

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    cache_file = tmp_path / "digests.json"
    first, second = StatCache(cache_file), StatCache(cache_file)  # both read the file before either saves
    first.digest(a)
    second.digest(b)
    first.save()
    second.save()
    calls = []
    fresh = StatCache(cache_file)
    for f in (a, b):
        fresh.digest(f, None, lambda: calls.append(1) or "recomputed")
    assert calls == []  # both entries survived


def test_preloaded_reader_model_reports_a_damaged_model_when_asked(tmp_path, settings_factory):
    from rag.errors import ModelError
    from rag.reader.learned import preload

    d = tmp_path / "model"
    d.mkdir()
    pending = preload(settings_factory(learned_reader_model=d))
    with pytest.raises(ModelError, match="manifest"):
        pending.result(timeout=60)


def test_calibration_can_weigh_the_answerability_of_the_window():
    from rag.reader.learned_model import Calibration

    fit = Calibration(a=0.5, b=-0.2, d=1.5)
    assert fit(0.4, p_answer=0.9) > fit(0.4, p_answer=0.2)  # same raw score, surer window: higher
    assert Calibration(a=0.5, b=-0.2)(0.4, p_answer=0.9) == Calibration(a=0.5, b=-0.2)(0.4, p_answer=0.2)
    z = 0.5 * np.log(0.4 / 0.6) + 1.5 * np.log(0.9 / 0.1) - 0.2
    assert fit(0.4, p_answer=0.9) == pytest.approx(1 / (1 + np.exp(-z)))


def test_a_failed_start_leaves_no_reader_loading_thread(tmp_path, settings_factory):
    import threading

    from rag.errors import IndexMissing
    from rag.pipeline import Pipeline

    s = settings_factory(index_dir=tmp_path / "no-index")
    with pytest.raises(IndexMissing):
        Pipeline.from_settings(s, build_if_missing=False)
    assert not [t for t in threading.enumerate() if t.name == "rag-reader-load"]
