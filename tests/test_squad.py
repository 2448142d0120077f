"""SQuAD 1.1/2.0 conversion: documents, gold items, title rule, file writing and malformed input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from rag.errors import CorpusError, GoldFormatError
from rag.squad import (
    GoldItem,
    check_squad_index_dir,
    load_squad,
    safe_title,
    squad_to_corpus_and_gold,
    write_corpus,
)

EXCERPT = Path(__file__).parent / "data" / "squad2-dev-excerpt.json"

CTX0 = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy."
CTX1 = "Rollo, the Norse leader, agreed to swear fealty to King Charles III of West Francia."
CTX_SKY = "Formed in November 1990 by the merger of Sky Television and British Satellite Broadcasting."


def tiny() -> dict[str, Any]:
    """A minimal SQuAD 2.0 file: two articles, three paragraphs, answerable and impossible questions."""
    return {
        "version": "v2.0",
        "data": [
            {
                "title": "Normans",
                "paragraphs": [
                    {
                        "context": CTX0,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "When were the Normans in Normandy?",
                                "answers": [
                                    {"text": "10th and 11th centuries", "answer_start": 39},
                                    {"text": "in the 10th and 11th centuries", "answer_start": 32},
                                    {"text": "10th and 11th centuries", "answer_start": 39},
                                ],
                                "is_impossible": False,
                            },
                            {
                                "id": "q2",
                                "question": "Who gave their name to Normandy in the 1000s?",
                                "plausible_answers": [{"text": "Normans", "answer_start": 4}],
                                "answers": [],
                                "is_impossible": True,
                            },
                        ],
                    },
                    {
                        "context": CTX1,
                        "qas": [
                            {
                                "id": "q3",
                                "question": "Who was the Norse leader?",
                                "answers": [{"text": "Rollo", "answer_start": 0}],
                                "is_impossible": False,
                            }
                        ],
                    },
                ],
            },
            {
                "title": "Sky_(United_Kingdom)",
                "paragraphs": [
                    {
                        "context": CTX_SKY,
                        "qas": [
                            {
                                "id": "q4",
                                "question": "When was the company formed?",
                                "answers": [{"text": "November 1990", "answer_start": 10}],
                                "is_impossible": False,
                            }
                        ],
                    }
                ],
            },
        ],
    }


def test_tiny_offsets_are_right() -> None:
    # guard for the fixture itself
    for article in tiny()["data"]:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                for a in qa["answers"]:
                    assert p["context"][a["answer_start"] :].startswith(a["text"])


def test_convert_tiny_squad2() -> None:
    docs, gold = squad_to_corpus_and_gold(tiny())
    assert docs == [
        ("Normans/0.txt", CTX0),
        ("Normans/1.txt", CTX1),
        ("Sky_(United_Kingdom)/0.txt", CTX_SKY),
    ]
    assert gold == [
        {
            "id": "q1",
            "question": "When were the Normans in Normandy?",
            # deduplicated, first-seen order
            "answers": ["10th and 11th centuries", "in the 10th and 11th centuries"],
            "doc_ids": ["Normans/0.txt"],
            "split": "test",
        },
        {
            "id": "q2",
            "question": "Who gave their name to Normandy in the 1000s?",
            "answers": [],  # impossible: plausible_answers are ignored
            "doc_ids": [],
            "split": "test",
        },
        {
            "id": "q3",
            "question": "Who was the Norse leader?",
            "answers": ["Rollo"],
            "doc_ids": ["Normans/1.txt"],
            "split": "test",
        },
        {
            "id": "q4",
            "question": "When was the company formed?",
            "answers": ["November 1990"],
            "doc_ids": ["Sky_(United_Kingdom)/0.txt"],
            "split": "test",
        },
    ]


def test_convert_squad11_without_is_impossible() -> None:
    data = tiny()
    del data["data"][0]["paragraphs"][0]["qas"][1]  # SQuAD 1.1 has no impossible questions ...
    for article in data["data"]:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                del qa["is_impossible"]  # ... and no is_impossible key
    data["version"] = "1.1"
    docs, gold = squad_to_corpus_and_gold(data)
    assert len(docs) == 3
    assert [g["id"] for g in gold] == ["q1", "q3", "q4"]
    assert all(g["answers"] and g["doc_ids"] for g in gold)


def test_impossible_question_with_answers_still_gets_none() -> None:
    data = tiny()
    qa = data["data"][0]["paragraphs"][0]["qas"][1]
    qa["answers"] = [{"text": "Normans", "answer_start": 4}]
    _, gold = squad_to_corpus_and_gold(data)
    assert gold[1]["answers"] == [] and gold[1]["doc_ids"] == []


def test_excerpt_of_real_squad2_dev() -> None:
    raw = json.loads(EXCERPT.read_text(encoding="utf-8"))
    docs, items = load_squad(EXCERPT)
    texts = dict(docs)
    assert list(texts) == ["Normans/0.txt", "Normans/1.txt", "Sky_(United_Kingdom)/0.txt"]
    assert len(items) == 27
    assert sum(not it.answerable for it in items) == 14
    assert all(isinstance(it, GoldItem) and it.split == "test" and it.type == "" for it in items)
    by_id = {it.id: it for it in items}
    checked = 0
    for article in raw["data"]:
        for n, p in enumerate(article["paragraphs"]):
            doc_id = f"{safe_title(article['title'])}/{n}.txt"
            assert texts[doc_id] == p["context"]
            for qa in p["qas"]:
                item = by_id[qa["id"]]
                assert item.question == qa["question"]
                if qa["is_impossible"]:
                    assert item.answers == () and item.doc_ids == ()
                    continue
                assert item.doc_ids == (doc_id,)
                assert list(item.answers) == list(dict.fromkeys(a["text"] for a in qa["answers"]))
                for a in qa["answers"]:  # the answer is in the document at its original offset
                    start = a["answer_start"]
                    assert texts[doc_id][start : start + len(a["text"])] == a["text"]
                    checked += 1
    assert checked > 20


def test_written_corpus_reads_back_identically(tmp_path: Path) -> None:
    docs, _ = load_squad(EXCERPT)
    out = write_corpus(docs, tmp_path / "corpus")
    assert out == tmp_path / "corpus"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt")) == sorted(d for d, _ in docs)
    for doc_id, text in docs:
        assert (out / doc_id).read_text(encoding="utf-8") == text


def test_carriage_returns_become_newlines_and_answers_stay_valid(tmp_path: Path) -> None:
    ctx = "First line.\r\nSecond: Rollo.\rThird\r\n\r\nFourth: Paris"
    answers = [
        {"text": "Rollo", "answer_start": ctx.index("Rollo")},
        {"text": "Third\r\n\r\nFourth", "answer_start": ctx.index("Third")},
        {"text": "Paris", "answer_start": ctx.index("Paris")},
    ]
    data = {
        "data": [
            {
                "title": "T",
                "paragraphs": [{"context": ctx, "qas": [{"id": "x", "question": "q?", "answers": answers}]}],
            }
        ]
    }
    docs, gold = squad_to_corpus_and_gold(data)
    text = docs[0][1]
    assert text == "First line.\nSecond: Rollo.\nThird\n\nFourth: Paris"
    assert gold[0]["answers"] == ["Rollo", "Third\n\nFourth", "Paris"]
    assert all(a in text for a in gold[0]["answers"])
    out = write_corpus(docs, tmp_path / "c")
    assert (out / "T" / "0.txt").read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Normans", "Normans"),
        ("Sky_(United_Kingdom)", "Sky_(United_Kingdom)"),
        ("Beyoncé", "Beyoncé"),
        ("Kanye_West's_album,_2004", "Kanye_West's_album,_2004"),
        ("AC/DC", "AC_DC"),
        ("a:b*c?d", "a_b_c_d"),
        ('say "x" <y> | z\\w', "say _x_ _y_ _ z_w"),
        ("tab\there", "tab_here"),
        (".hidden", "_hidden"),
        ("Inc.", "Inc_"),
        ("trail. ", "trail__"),
        ("..", "__"),
        ("", "_"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Console", "Console"),
    ],
)
def test_safe_title(title: str, expected: str) -> None:
    assert safe_title(title) == expected


def test_colliding_titles_get_distinct_folders() -> None:
    data = tiny()
    second = copy.deepcopy(data["data"][1])
    for qa in second["paragraphs"][0]["qas"]:
        qa["id"] += "-b"
    third = copy.deepcopy(second)
    for qa in third["paragraphs"][0]["qas"]:
        qa["id"] += "-c"
    third["title"] = "sky_(united_kingdom)"  # differs only in case
    data["data"] += [second, third]
    docs, gold = squad_to_corpus_and_gold(data)
    ids = [d for d, _ in docs]
    assert ids[-3:] == [
        "Sky_(United_Kingdom)/0.txt",
        "Sky_(United_Kingdom)~2/0.txt",
        "sky_(united_kingdom)~3/0.txt",
    ]
    assert gold[-1]["doc_ids"] == ["sky_(united_kingdom)~3/0.txt"]


# --- malformed input


def _qa(data: dict[str, Any]) -> dict[str, Any]:
    return data["data"][0]["paragraphs"][0]["qas"][0]


def _set(path: tuple, value: Any):  # noqa: ANN202
    def mutate(data: dict[str, Any]) -> Any:
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return data

    return mutate


_DELETE = object()
Q0 = ("data", 0, "paragraphs", 0, "qas", 0)
LOC_Q0 = r"data\[0\] \(title 'Normans'\) paragraphs\[0\] qas\[0\] \(id 'q1'\)"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["data"], r"SQuAD data: expected a JSON object, got a list"),
        (_set(("data",), _DELETE), r'missing key "data"'),
        (_set(("data",), {"a": 1}), r'"data" must be a list of articles, not an object'),
        (_set(("data", 0, "title"), _DELETE), r'data\[0\]: missing key "title"'),
        (
            _set(("data", 1, "title"), 7),
            r'data\[1\]: "title" must be the article title, a string, not an integer',
        ),
        (
            _set(("data", 0, "paragraphs"), "x"),
            r"data\[0\] \(title 'Normans'\): \"paragraphs\" must be a list",
        ),
        (
            _set(("data", 0, "paragraphs", 1, "context"), None),
            r"paragraphs\[1\]: \"context\" must be .*not null",
        ),
        (_set(("data", 0, "paragraphs", 1, "qas"), _DELETE), r"paragraphs\[1\]: missing key \"qas\""),
        (_set(("data", 0, "paragraphs", 0, "qas", 0, "id"), _DELETE), r"qas\[0\]: missing key \"id\""),
        (_set((*Q0, "id"), ""), r"qas\[0\] \(id ''\): \"id\" is empty"),
        (_set((*Q0, "question"), " "), LOC_Q0 + r': "question" is empty'),
        (_set((*Q0, "answers"), {"text": "x"}), LOC_Q0 + r': "answers" must be a list of answers'),
        (_set((*Q0, "answers"), []), LOC_Q0 + r': "answers" is empty but the question is not marked'),
        (_set((*Q0, "is_impossible"), "no"), LOC_Q0 + r': "is_impossible" must be true or false'),
        (
            _set((*Q0, "answers", 0, "answer_start"), 5),
            LOC_Q0 + r" answers\[0\]: answer_start 5 points at 'ormans were",
        ),
        (_set((*Q0, "answers", 1, "answer_start"), -1), r"answers\[1\]: answer_start -1 points at None"),
        (_set((*Q0, "answers", 0, "answer_start"), 10_000), r"answer_start 10000 points at ''"),
        (_set((*Q0, "answers", 0, "answer_start"), "40"), r'"answer_start" must be a character offset'),
        (_set((*Q0, "answers", 0, "answer_start"), True), r'"answer_start" must be .* not a boolean'),
        (_set((*Q0, "answers", 0, "text"), _DELETE), r'answers\[0\]: missing key "text"'),
        (_set((*Q0, "answers", 0, "text"), ""), r'answers\[0\]: "text" is empty'),
        (_set(("data", 1, "paragraphs", 0, "qas", 0, "id"), "q1"), r"id 'q1' is already used at data\[0\]"),
        (_set(("data", 0, "paragraphs", 0, "context"), "a\x00b"), r"NUL character"),
    ],
)
def test_malformed_squad_raises_with_location(mutate, message: str) -> None:  # noqa: ANN001
    with pytest.raises(GoldFormatError, match=message):
        squad_to_corpus_and_gold(mutate(tiny()))


def test_malformed_squad_file_names_the_file(tmp_path: Path) -> None:
    bad = tiny()
    bad["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(GoldFormatError) as err:
        load_squad(path)
    assert str(err.value).startswith(f"{path}: data[0] (title 'Normans') paragraphs[0] qas[0] (id 'q1')")


def test_squad_file_not_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": "x",\n  oops}\n]}', encoding="utf-8")
    with pytest.raises(GoldFormatError, match=r"broken\.json: not valid JSON \(.* at line 3, column 3\)"):
        load_squad(path)


def test_squad_file_missing(tmp_path: Path) -> None:
    with pytest.raises(GoldFormatError, match=r"SQuAD file not found: .*nope\.json"):
        load_squad(tmp_path / "nope.json")


def test_squad_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"data": [], "t": "café"}'.encode("latin-1"))
    with pytest.raises(GoldFormatError, match=r"not UTF-8"):
        load_squad(path)


# --- write_corpus


def test_write_corpus_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("stale", encoding="utf-8")
    with pytest.raises(CorpusError, match="not an empty folder"):
        write_corpus([("a.txt", "x")], tmp_path)


def test_write_corpus_into_existing_empty_folder(tmp_path: Path) -> None:
    write_corpus([("A/0.txt", "x\ny")], tmp_path)
    assert (tmp_path / "A" / "0.txt").read_bytes() == b"x\ny"


@pytest.mark.parametrize("doc_id", ["../escape.txt", "/abs.txt", "a/../../b.txt", "a\\b.txt", ""])
def test_write_corpus_rejects_paths_outside(tmp_path: Path, doc_id: str) -> None:
    with pytest.raises(CorpusError, match="not a relative path"):
        write_corpus([(doc_id, "x")], tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_answer_offset_check_raises_instead_of_asserting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The converted-offset check is an explicit GoldFormatError, so it survives ``python -O``."""
    import rag.squad

    monkeypatch.setattr(rag.squad, "_shifted", lambda context, offset: offset + 1)  # a broken mapping
    with pytest.raises(GoldFormatError, match=r"qas\[0\] \(id 'q1'\) answers\[0\]: the answer '10th and 11th "):
        squad_to_corpus_and_gold(tiny())


# --- check_squad_index_dir

TINY_IDS = ["Normans/0.txt", "Normans/1.txt", "Sky_(United_Kingdom)/0.txt"]
FIX = "`rag eval --squad` would replace it. Give a new or empty --index-dir, or leave it out to use a temporary one."


def fake_index(index_dir: Path, doc_ids: list[str], *, documents_jsonl: bool = True) -> Path:
    """An index folder as rag.store writes it, minus the vectors (the check must not need them)."""
    from rag.manifest import ChunkingInfo, DocumentInfo, EmbeddingInfo, FaissInfo, Manifest

    index_dir.mkdir(parents=True)
    manifest = Manifest(
        rag_version="test",
        corpus=["corpus"],
        embedding=EmbeddingInfo(model="m", backend="onnx", dim=4),
        chunking=ChunkingInfo(max_chars=600, overlap_sentences=1),
        faiss=FaissInfo(kind="flat"),
        documents={d: DocumentInfo(sha256="0" * 64, chars=1, chunks=1) for d in doc_ids},
        counts={"documents": len(doc_ids)},
        files={},
    )
    (index_dir / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    if documents_jsonl:
        rows = [json.dumps({"doc_id": d, "sha256": "0" * 64, "text": "x"}) for d in doc_ids]
        (index_dir / "documents.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return index_dir


def test_index_dir_without_an_index_is_allowed(tmp_path: Path) -> None:
    check_squad_index_dir(tmp_path / "new", TINY_IDS)  # does not exist
    (tmp_path / "empty").mkdir()
    check_squad_index_dir(tmp_path / "empty", TINY_IDS)
    assert not (tmp_path / "new").exists()


def test_index_of_the_same_squad_corpus_is_allowed(tmp_path: Path) -> None:
    check_squad_index_dir(fake_index(tmp_path / "same", TINY_IDS), TINY_IDS)
    check_squad_index_dir(fake_index(tmp_path / "part", TINY_IDS[:1]), TINY_IDS)  # an edited SQuAD file
    check_squad_index_dir(fake_index(tmp_path / "none", []), TINY_IDS)


def test_index_of_other_documents_is_refused(tmp_path: Path) -> None:
    d = fake_index(tmp_path / "seeds", ["001_x.txt", "000_y.txt"])
    with pytest.raises(CorpusError) as err:
        check_squad_index_dir(d, TINY_IDS)
    assert str(err.value) == f"{d} already holds an index of other documents (e.g. '000_y.txt' and 1 more); {FIX}"
    mixed = fake_index(tmp_path / "mixed", [*TINY_IDS, "notes.md"])
    with pytest.raises(CorpusError) as err:
        check_squad_index_dir(mixed, TINY_IDS)
    assert str(err.value) == f"{mixed} already holds an index of other documents (e.g. 'notes.md'); {FIX}"


def test_unreadable_manifest_falls_back_to_documents_jsonl(tmp_path: Path) -> None:
    same = fake_index(tmp_path / "same", TINY_IDS)
    (same / "manifest.json").write_text("{damaged", encoding="utf-8")
    check_squad_index_dir(same, TINY_IDS)
    other = fake_index(tmp_path / "other", ["001_x.txt"])
    (other / "manifest.json").write_text("{damaged", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"of other documents \(e\.g\. '001_x\.txt'\)"):
        check_squad_index_dir(other, TINY_IDS)


def test_index_whose_documents_cannot_be_read_is_refused(tmp_path: Path) -> None:
    d = fake_index(tmp_path / "broken", ["001_x.txt"], documents_jsonl=False)
    (d / "manifest.json").write_text("{damaged", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        check_squad_index_dir(d, TINY_IDS)
    assert str(err.value) == f"{d} already holds an index whose documents cannot be read; {FIX}"


@pytest.mark.slow
def test_real_seeds_index_is_refused_and_real_squad_index_reused(
    seed_index_dir: Path, settings_factory: Any, embedder: Any, tmp_path: Path
) -> None:
    from rag.store import build_index

    docs, _ = squad_to_corpus_and_gold(tiny())
    ids = [d for d, _ in docs]
    with pytest.raises(CorpusError, match=r"already holds an index of other documents \(e\.g\. '000_0ad6adc2"):
        check_squad_index_dir(seed_index_dir, ids)
    corpus = write_corpus(docs, tmp_path / "corpus")
    index_dir = tmp_path / "index"
    build_index([corpus], settings_factory(corpus_dir=corpus, index_dir=index_dir), index_dir, embedder)
    check_squad_index_dir(index_dir, ids)  # a second run on the same SQuAD file may re-index in place
    with pytest.raises(CorpusError, match=r"\(e\.g\. 'Normans/1\.txt' and 1 more\)"):
        check_squad_index_dir(index_dir, ids[:1])
