"""The gold question set eval/gold.jsonl, and the gold JSON-lines loader's error messages."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from rag.errors import GoldFormatError
from rag.squad import GoldItem, assign_splits, load_gold, select_split, write_gold

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "eval" / "gold.jsonl"
SEEDS = ROOT / "seeds"
TYPES = {"who", "what", "when", "where", "which", "how_much", "how_many", "how_long"}


@pytest.fixture(scope="module")
def items() -> list[GoldItem]:
    return load_gold(GOLD)


@pytest.fixture(scope="module")
def seeds() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in SEEDS.iterdir() if p.is_file()}


# --- eval/gold.jsonl


def test_every_line_is_one_question(items: list[GoldItem]) -> None:
    lines = GOLD.read_text(encoding="utf-8").splitlines()
    assert all(line.strip() for line in lines)
    assert len(lines) == len(items)
    for line in lines:
        assert isinstance(json.loads(line), dict)


def test_ids_unique(items: list[GoldItem]) -> None:
    ids = [it.id for it in items]
    assert len(set(ids)) == len(ids)


def test_size_and_unanswerable_share(items: list[GoldItem]) -> None:
    assert len(items) >= 60
    assert sum(not it.answerable for it in items) >= 12


def test_types_cover_the_question_kinds(items: list[GoldItem]) -> None:
    assert {it.type for it in items} <= TYPES
    answerable_types = {it.type for it in items if it.answerable}
    assert {"who", "what", "when", "where", "which", "how_much", "how_many"} <= answerable_types


def test_supporting_docs_exist(items: list[GoldItem], seeds: dict[str, str]) -> None:
    for it in items:
        for d in it.doc_ids:
            assert d in seeds, f"{it.id}: supporting doc {d} is not in seeds/"


def test_every_answer_occurs_verbatim_in_a_supporting_doc(items: list[GoldItem], seeds: dict[str, str]) -> None:
    for it in items:
        for a in it.answers:
            assert any(a in seeds[d] for d in it.doc_ids), f"{it.id}: {a!r} not in {it.doc_ids}"


def test_every_supporting_doc_holds_an_answer(items: list[GoldItem], seeds: dict[str, str]) -> None:
    for it in items:
        for d in it.doc_ids:
            assert any(a in seeds[d] for a in it.answers), f"{it.id}: {d} holds none of {it.answers}"


def test_unanswerable_have_no_docs(items: list[GoldItem]) -> None:
    for it in items:
        assert bool(it.answers) == bool(it.doc_ids), it.id


def test_answers_are_short_spans(items: list[GoldItem]) -> None:
    for it in items:
        for a in it.answers:
            assert a == a.strip() and "\n" not in a and len(a.split()) <= 12, (it.id, a)


def test_splits_non_empty_balanced_and_reproducible(items: list[GoldItem]) -> None:
    by_split = Counter(it.split for it in items)
    assert by_split["dev"] > 0 and by_split["test"] > 0
    assert abs(by_split["dev"] - by_split["test"]) <= 1
    unans = Counter(it.split for it in items if not it.answerable)
    assert unans["dev"] > 0 and unans["test"] > 0
    assert abs(unans["dev"] - unans["test"]) <= 1
    assert assign_splits(items) == {it.id: it.split for it in items}


def test_questions_do_not_repeat(items: list[GoldItem]) -> None:
    questions = [it.question.casefold() for it in items]
    assert len(set(questions)) == len(questions)


# --- assign_splits


def test_assign_splits_is_stratified_and_order_independent() -> None:
    rows = [
        {"id": f"q{i:02d}", "type": t, "answers": ["x"] if i % 3 else []}
        for i, t in enumerate(["who", "what", "when"] * 7)
    ]
    splits = assign_splits(rows)
    assert splits == assign_splits(list(reversed(rows)))
    groups: dict[tuple, Counter] = {}
    for r in rows:
        groups.setdefault((r["type"], bool(r["answers"])), Counter())[splits[r["id"]]] += 1
    for counts in groups.values():
        assert abs(counts["dev"] - counts["test"]) <= 1
    total = Counter(splits.values())
    assert abs(total["dev"] - total["test"]) <= 1


# --- load_gold / write_gold


def _line(**kw) -> str:
    obj = {
        "id": "s1",
        "split": "dev",
        "type": "who",
        "question": "Who?",
        "answers": ["Rubio"],
        "doc_ids": ["a.txt"],
    }
    obj.update(kw)
    return json.dumps(obj)


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_gold_reads_items(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _line(),
        "",
        _line(id="s2", split="test", answers=[], doc_ids=[]),
        json.dumps({"id": "s3", "split": "dev", "question": "Q?", "answers": ["x"], "doc_ids": ["b.txt"]}),
    )
    items = load_gold(path)
    assert items == [
        GoldItem("s1", "Who?", ("Rubio",), ("a.txt",), "dev", "who"),
        GoldItem("s2", "Who?", (), (), "test", "who"),
        GoldItem("s3", "Q?", ("x",), ("b.txt",), "dev", ""),  # "type" is optional
    ]
    assert items[0].answerable and not items[1].answerable


def _issue_line(item_id: str, **kw: object) -> str:
    """A line in the issue's format: only id, question, answers and doc_ids."""
    return json.dumps({"id": item_id, "question": "Who?", "answers": ["Rubio"], "doc_ids": ["a.txt"], **kw})


def test_split_is_optional(tmp_path: Path) -> None:
    path = _write(tmp_path, _issue_line("q1"), _issue_line("q2", split="dev"), _issue_line("q3", split="test"))
    items = load_gold(path)
    assert items == [
        GoldItem("q1", "Who?", ("Rubio",), ("a.txt",), None, ""),
        GoldItem("q2", "Who?", ("Rubio",), ("a.txt",), "dev", ""),
        GoldItem("q3", "Who?", ("Rubio",), ("a.txt",), "test", ""),
    ]
    assert GoldItem("q", "Q?", (), ()).split is None  # the default


def test_select_split_leaves_items_without_split_to_all(tmp_path: Path) -> None:
    items = load_gold(
        _write(tmp_path, _issue_line("q1"), _issue_line("q2", split="dev"), _issue_line("q3", split="test"))
    )
    assert [it.id for it in select_split(items, "dev")] == ["q2"]
    assert [it.id for it in select_split(items, "test")] == ["q3"]
    assert [it.id for it in select_split(items, "all")] == ["q1", "q2", "q3"]
    assert select_split(items[:1], "dev") == []
    with pytest.raises(GoldFormatError, match=r"^split must be dev, test or all, not 'train'\.$"):
        select_split(items, "train")


def test_item_without_split_round_trips_without_the_key(tmp_path: Path) -> None:
    items = [GoldItem("a", "Who?", ("X",), ("x.txt",)), GoldItem("b", "Where?", (), (), "test", "where")]
    path = write_gold(items, tmp_path / "g.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"id": "a", "type": "", "question": "Who?", "answers": ["X"], "doc_ids": ["x.txt"]}
    assert list(rows[1]) == ["id", "split", "type", "question", "answers", "doc_ids"]
    assert load_gold(path) == items


def test_gold_item_is_frozen() -> None:
    item = GoldItem("s1", "Who?", ("Rubio",), ("a.txt",), "dev", "who")
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.question = "x"  # type: ignore[misc]


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    items = [
        GoldItem("a", "Who said “hi”?", ("O’Carroll",), ("x/1.txt",), "dev", "who"),
        GoldItem("b", "Where?", (), (), "test", "where"),
    ]
    path = write_gold(items, tmp_path / "g.jsonl")
    assert load_gold(path) == items
    assert "O’Carroll" in path.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([_line(), _line(id="s2"), '{"id": "s3", '], r"line 3: not valid JSON \(.*column \d+\)"),
        ([_line(), "[1, 2]"], r"line 2: expected a JSON object, got a list"),
        ([_line(answers=None)], r'line 1: "answers" must be a list of strings, not null'),
        ([_line(answers="Rubio")], r'line 1: "answers" must be a list of strings, not a string'),
        ([_line(answers=["Rubio", ""])], r'line 1: "answers"\[1\] must be a non-empty string'),
        ([_line(doc_ids=[3])], r'line 1: "doc_ids"\[0\] must be a non-empty string, not an integer'),
        ([_line(id="")], r'line 1: "id" must be a non-empty string'),
        ([_line(id=7)], r'line 1: "id" must be a non-empty string, not an integer'),
        ([_line(question="  ")], r'line 1: "question" must be a non-empty string'),
        ([_line(split="train")], r"line 1: \"split\" must be \"dev\" or \"test\" .*, not 'train'"),
        ([_line(type=["who"])], r'line 1: "type" must be a string'),
        ([_line(doc_ids=[])], r"line 1: an answerable question needs at least one supporting document"),
        ([_line(answers=[])], r'line 1: "answers" is empty \(unanswerable\) but "doc_ids" is not'),
        ([_line(), _line(id="s2"), _line()], r"line 3: id 's1' is already used on line 1"),
        (
            ['{"id": "s1", "question": "Q?", "answers": [], "split": "dev"}'],
            r"line 1: missing key\(s\) 'doc_ids'\.$",
        ),
        (['{"question": "Q?", "answers": []}'], r"line 1: missing key\(s\) 'id', 'doc_ids'\.$"),
        ([_line(split=None)], r'line 1: "split" must be "dev" or "test" \(or left out.*\), not None'),
        ([_line(split="Dev")], r"line 1: \"split\" must be \"dev\" or \"test\" .*, not 'Dev'"),
        ([_line(answer=["x"])], r"line 1: unknown key\(s\) 'answer'; allowed keys are"),
    ],
)
def test_load_gold_errors_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write(tmp_path, *lines)
    with pytest.raises(GoldFormatError, match=message) as err:
        load_gold(path)
    assert str(err.value).startswith(str(path))


def test_load_gold_counts_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, _line(), "", "", _line(split="val"))
    with pytest.raises(GoldFormatError, match=r"gold\.jsonl, line 4: "):
        load_gold(path)


def test_load_gold_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(GoldFormatError, match=r"Gold file not found: .*missing\.jsonl"):
        load_gold(tmp_path / "missing.jsonl")
    with pytest.raises(GoldFormatError, match=r"holds no questions"):
        load_gold(_write(tmp_path, "", "  "))
    with pytest.raises(GoldFormatError, match=r"is a folder"):
        load_gold(tmp_path)
