"""Gold question sets: the eval JSON-lines format, and conversion of SQuAD 1.1 / 2.0 files into a corpus.

Gold JSON lines (``eval/gold.jsonl``): one object per line with keys ``id``, ``question``, ``answers``
(acceptable answer strings; ``[]`` = the corpus cannot answer it), ``doc_ids`` (supporting documents;
``[]`` exactly when ``answers`` is), ``split`` (``dev`` or ``test``) and optionally ``type``.

SQuAD: each paragraph becomes one document whose text is exactly its ``context``; its doc id is
``<title>/<n>.txt`` with ``n`` the paragraph's 0-based position in its article and ``<title>`` the article
title made safe as a folder name by :func:`safe_title` (SQuAD's own titles, like ``Normans`` or
``Sky_(United_Kingdom)``, are kept unchanged). Every question becomes a gold item of split ``test``.

The conversion functions are pure; only :func:`load_squad`, :func:`load_gold`, :func:`write_corpus`,
:func:`write_gold` and :func:`check_squad_index_dir` touch files. Malformed input raises :class:`rag.errors.GoldFormatError` naming the file,
the line or item, and what to fix.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rag.errors import CorpusError, GoldFormatError, IndexCorrupt
from rag.generations import resolve

__all__ = [
    "GoldItem",
    "SPLITS",
    "assign_splits",
    "check_squad_index_dir",
    "gold_item_from_dict",
    "load_gold",
    "load_squad",
    "safe_title",
    "select_split",
    "squad_to_corpus_and_gold",
    "write_corpus",
    "write_gold",
]

SPLITS = ("dev", "test")
_REQUIRED_KEYS = ("id", "question", "answers", "doc_ids")
_ALLOWED_KEYS = frozenset((*_REQUIRED_KEYS, "split", "type"))


@dataclass(frozen=True)
class GoldItem:
    """One gold question. ``answers == ()`` (and ``doc_ids == ()``) means the corpus cannot answer it."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_ids: tuple[str, ...]
    split: str | None = None  # "dev" or "test"; None: in no split (evaluated only with split "all")
    type: str = ""  # who / what / when / ...; "" when unknown (SQuAD)

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines record (key order as in ``eval/gold.jsonl``; no ``split`` key when it is None)."""
        out: dict[str, Any] = {"id": self.id}
        if self.split is not None:
            out["split"] = self.split
        out.update(
            {"type": self.type, "question": self.question, "answers": list(self.answers), "doc_ids": list(self.doc_ids)}
        )
        return out


# --------------------------------------------------------------------------------------------------------
# Gold JSON lines


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}
    return names.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def _string_list(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj[key]
    if not isinstance(value, list):
        raise GoldFormatError(f'{where}: "{key}" must be a list of strings, not {_type_name(value)}.')
    for i, s in enumerate(value):
        if not isinstance(s, str) or not s.strip():
            shown = repr(s) if isinstance(s, str) else _type_name(s)
            raise GoldFormatError(f'{where}: "{key}"[{i}] must be a non-empty string, not {shown}.')
    return tuple(value)


def gold_item_from_dict(obj: Any, where: str = "gold item") -> GoldItem:
    """Validate one gold record (a decoded JSON line); ``where`` prefixes error messages."""
    if not isinstance(obj, dict):
        raise GoldFormatError(f"{where}: expected a JSON object, got {_type_name(obj)}.")
    unknown = sorted(set(obj) - _ALLOWED_KEYS)
    if unknown:
        raise GoldFormatError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed keys are {', '.join(sorted(_ALLOWED_KEYS))}."
        )
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if missing:
        raise GoldFormatError(f"{where}: missing key(s) {', '.join(map(repr, missing))}.")
    for key in ("id", "question"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            shown = repr(obj[key]) if isinstance(obj[key], str) else _type_name(obj[key])
            raise GoldFormatError(f'{where}: "{key}" must be a non-empty string, not {shown}.')
    answers = _string_list(obj, "answers", where)
    doc_ids = _string_list(obj, "doc_ids", where)
    if answers and not doc_ids:
        raise GoldFormatError(
            f'{where}: an answerable question needs at least one supporting document in "doc_ids" '
            '(or set "answers": [] if the corpus cannot answer it).'
        )
    if doc_ids and not answers:
        raise GoldFormatError(
            f'{where}: "answers" is empty (unanswerable) but "doc_ids" is not; '
            'an unanswerable question has "doc_ids": [].'
        )
    split = obj.get("split")
    if "split" in obj and split not in SPLITS:
        raise GoldFormatError(
            f'{where}: "split" must be "dev" or "test" (or left out: the item then belongs to no split), not {split!r}.'
        )
    qtype = obj.get("type", "")
    if not isinstance(qtype, str):
        raise GoldFormatError(f'{where}: "type" must be a string such as "who", not {_type_name(qtype)}.')
    return GoldItem(obj["id"], obj["question"], answers, doc_ids, split, qtype)


def _read_text(path: Path, what: str, example: str) -> str:
    """The file's text; a gzip-compressed file (``.gz``, SQuAD files often come so) is decompressed."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise GoldFormatError(f"{path}: a damaged gzip file ({exc}); copy it again.") from None
        return raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise GoldFormatError(f"{what} not found: {path}. Pass an existing file, e.g. {example}.") from None
    except IsADirectoryError:
        raise GoldFormatError(f"{what} {path} is a folder; pass the file itself, e.g. {example}.") from None
    except UnicodeDecodeError as exc:
        raise GoldFormatError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise GoldFormatError(f"{what} {path} cannot be read: {exc.strerror or exc}.") from None


def load_gold(path: str | Path) -> list[GoldItem]:
    """Read a gold JSON-lines file (blank lines are skipped); ids must be unique."""
    path = Path(path)
    text = _read_text(path, "Gold file", "eval/gold.jsonl")
    items: list[GoldItem] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldFormatError(
                f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object."
            ) from None
        item = gold_item_from_dict(obj, where)
        if item.id in seen:
            raise GoldFormatError(
                f"{where}: id {item.id!r} is already used on line {seen[item.id]}; ids must be unique."
            )
        seen[item.id] = lineno
        items.append(item)
    if not items:
        raise GoldFormatError(f"{path}: holds no questions; it needs one JSON object per line.")
    return items


def select_split(items: Iterable[GoldItem], split: str) -> list[GoldItem]:
    """The items of ``split``: ``"dev"`` or ``"test"`` keep the items of that split (items without a split
    are left out), ``"all"`` keeps every item."""
    if split == "all":
        return list(items)
    if split not in SPLITS:
        raise GoldFormatError(f"split must be dev, test or all, not {split!r}.")
    return [it for it in items if it.split == split]


def write_gold(items: Iterable[GoldItem], path: str | Path) -> Path:
    """Write gold items as JSON lines (UTF-8, ``\\n`` line ends); returns the path."""
    path = Path(path)
    lines = [json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items]
    path.write_bytes("".join(lines).encode("utf-8"))
    return path


def assign_splits(items: Iterable[GoldItem | Mapping[str, Any]]) -> dict[str, str]:
    """The deterministic, stratified dev/test split of ``eval/gold.jsonl``: ``{id: split}``.

    Items are grouped by (answerable, type). The groups are taken answerable ones first, each kind by type
    name, and, inside a group, items in id order; they are dealt alternately to dev and test, the
    alternation carrying over from one group to the next. So every group, the answerable and the
    unanswerable questions, and the whole set are each split as evenly as possible (off by at most one).
    """
    groups: dict[tuple[str, bool], list[str]] = {}
    for it in items:
        if isinstance(it, GoldItem):
            key, item_id = (it.type, it.answerable), it.id
        else:
            key, item_id = (str(it.get("type", "")), bool(it["answers"])), str(it["id"])
        groups.setdefault(key, []).append(item_id)
    out: dict[str, str] = {}
    turn = 0
    for key in sorted(groups, key=lambda k: (not k[1], k[0])):
        for item_id in sorted(groups[key]):
            out[item_id] = SPLITS[turn % 2]
            turn += 1
    return out


# --------------------------------------------------------------------------------------------------------
# SQuAD

_UNSAFE_CHARS = frozenset('/\\:*?"<>|')
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)


def safe_title(title: str) -> str:
    """An article title as a folder name; titles that are already safe come back unchanged.

    Rule: each of ``/ \\ : * ? " < > |`` and each control character becomes ``_``; a leading ``.`` (hidden,
    skipped by the corpus loader) and trailing dots and spaces (dropped by Windows) become ``_``; an empty
    title and Windows device names (``CON``, ``NUL``, ``COM1``, ...) get a ``_`` in front.
    Everything else, parentheses, commas, apostrophes and non-ASCII letters included, is kept.
    """
    chars = ["_" if c in _UNSAFE_CHARS or ord(c) < 32 or ord(c) == 127 else c for c in title]
    if chars and chars[0] == ".":
        chars[0] = "_"
    i = len(chars)
    while i > 0 and chars[i - 1] in ". ":
        i -= 1
    chars[i:] = ["_"] * (len(chars) - i)
    name = "".join(chars)
    if not name or name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name


def _unique_folder(title: str, used: set[str]) -> str:
    """:func:`safe_title`, plus ``~2``, ``~3``, ... when another article already took that folder name
    (compared case-insensitively, for case-insensitive file systems)."""
    base = safe_title(title)
    name, n = base, 1
    while name.casefold() in used:
        n += 1
        name = f"{base}~{n}"
    used.add(name.casefold())
    return name


def _universal_newlines(text: str) -> str:
    """What ``Path.read_text`` returns for a file holding ``text``: ``\\r\\n`` and ``\\r`` become ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _shifted(context: str, offset: int) -> int:
    """``offset`` in ``context`` mapped into ``_universal_newlines(context)`` (each ``\\r\\n`` loses one)."""
    return offset - context.count("\r\n", 0, offset + 1)


def _expect(obj: Any, key: str, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(obj, dict):
        raise GoldFormatError(f"{where}: expected a JSON object, got {_type_name(obj)}.")
    if key not in obj:
        raise GoldFormatError(f'{where}: missing key "{key}" ({what}).')
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GoldFormatError(f'{where}: "{key}" must be {what}, not {_type_name(value)}.')
    return value


def squad_to_corpus_and_gold(
    data: Any, source: str = "SQuAD data"
) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Convert decoded SQuAD 1.1/2.0 JSON into ``([(doc_id, text)], [gold dict])``, pure.

    Gold dicts have keys ``id``, ``question``, ``answers`` (answer texts, duplicates dropped, first-seen
    order), ``doc_ids`` (the question's paragraph) and ``split`` (``"test"``). A question marked
    ``is_impossible`` gets ``answers: []`` and ``doc_ids: []`` (``plausible_answers`` are ignored).
    Every answer's ``answer_start`` must point at its text in the context.

    A context holding carriage returns is stored with ``\\n`` line ends (what ``Path.read_text`` would return
    anyway); answers stay valid. ``source`` names the input in error messages.
    """
    articles = _expect(data, "data", list, source, "a list of articles")
    docs: list[tuple[str, str]] = []
    gold: list[dict[str, Any]] = []
    used_folders: set[str] = set()
    seen_ids: dict[str, str] = {}
    for i, article in enumerate(articles):
        where_a = f"{source}: data[{i}]"
        title = _expect(article, "title", str, where_a, "the article title, a string")
        where_a = f"{where_a} (title {title!r})"
        paragraphs = _expect(article, "paragraphs", list, where_a, "a list of paragraphs")
        folder = _unique_folder(title, used_folders)
        for j, paragraph in enumerate(paragraphs):
            where_p = f"{where_a} paragraphs[{j}]"
            context = _expect(paragraph, "context", str, where_p, "the paragraph text, a string")
            qas = _expect(paragraph, "qas", list, where_p, "a list of questions")
            if "\x00" in context:
                raise GoldFormatError(f"{where_p}: the context contains a NUL character; remove it.")
            doc_id = f"{folder}/{j}.txt"
            text = _universal_newlines(context)
            docs.append((doc_id, text))
            for k, qa in enumerate(qas):
                where_q = f"{where_p} qas[{k}]"
                qid = _expect(qa, "id", str, where_q, "the question id, a string")
                where_q = f"{where_q} (id {qid!r})"
                if not qid:
                    raise GoldFormatError(f'{where_q}: "id" is empty; give every question a unique id.')
                if qid in seen_ids:
                    raise GoldFormatError(
                        f"{where_q}: id {qid!r} is already used at {seen_ids[qid]}; ids must be unique."
                    )
                seen_ids[qid] = where_q.removeprefix(f"{source}: ")
                question = _expect(qa, "question", str, where_q, "the question text, a string")
                if not question.strip():
                    raise GoldFormatError(f'{where_q}: "question" is empty.')
                answers = _expect(qa, "answers", list, where_q, "a list of answers")
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise GoldFormatError(
                        f'{where_q}: "is_impossible" must be true or false, not {_type_name(impossible)}.'
                    )
                texts: list[str] = []
                if not impossible:
                    if not answers:
                        raise GoldFormatError(
                            f'{where_q}: "answers" is empty but the question is not marked '
                            '"is_impossible": true; add an answer or mark it impossible.'
                        )
                    for m, ans in enumerate(answers):
                        where_m = f"{where_q} answers[{m}]"
                        ans_text = _expect(ans, "text", str, where_m, "the answer text, a string")
                        start = _expect(ans, "answer_start", int, where_m, "a character offset, an integer")
                        if not ans_text:
                            raise GoldFormatError(f'{where_m}: "text" is empty.')
                        found = context[start : start + len(ans_text)] if start >= 0 else None
                        if found != ans_text:
                            raise GoldFormatError(
                                f"{where_m}: answer_start {start} points at {found!r}, not at the answer "
                                f"text {ans_text!r}; fix answer_start (a 0-based character offset into "
                                f"the context, which has {len(context)} characters)."
                            )
                        norm = _universal_newlines(ans_text)
                        new_start = _shifted(context, start)
                        if text[new_start : new_start + len(norm)] != norm:  # a bug here, not in the data
                            raise GoldFormatError(
                                f"{where_m}: the answer {ans_text!r} at answer_start {start} is not found at "
                                f"offset {new_start} after converting line ends to \\n; please report this "
                                "with the file, or remove carriage returns from the context and answer."
                            )
                        if norm not in texts:
                            texts.append(norm)
                gold.append(
                    {
                        "id": qid,
                        "question": question,
                        "answers": texts,
                        "doc_ids": [doc_id] if texts else [],
                        "split": "test",
                    }
                )
    return docs, gold


def load_squad(path: str | Path) -> tuple[list[tuple[str, str]], list[GoldItem]]:
    """Read a SQuAD 1.1/2.0 JSON file into ``([(doc_id, text)], [GoldItem])``.

    See :func:`squad_to_corpus_and_gold` for the conversion rules.
    """
    path = Path(path)
    raw = _read_text(path, "SQuAD file", "data/squad2-dev-sample.json")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise GoldFormatError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "expected a SQuAD 1.1/2.0 file."
        ) from None
    docs, gold = squad_to_corpus_and_gold(data, str(path))
    items = [GoldItem(g["id"], g["question"], tuple(g["answers"]), tuple(g["doc_ids"]), g["split"]) for g in gold]
    return docs, items


def write_corpus(docs: Sequence[tuple[str, str]], out_dir: str | Path) -> Path:
    """Write ``(doc_id, text)`` pairs as UTF-8 files under ``out_dir`` (created; must be new or empty).

    Files are written as bytes, without newline translation, so ``Path.read_text(encoding="utf-8")`` of
    each returns its text unchanged when the text has no carriage return (converted SQuAD text never has).
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CorpusError(f"{out} already exists and is not an empty folder; pass a new or empty folder.")
    for doc_id, _ in docs:
        parts = PurePosixPath(doc_id).parts
        if not parts or doc_id.startswith("/") or "\\" in doc_id or any(p in ("", ".", "..") for p in parts):
            raise CorpusError(f"doc id {doc_id!r} is not a relative path inside the corpus folder.")
    out.mkdir(parents=True, exist_ok=True)
    for doc_id, text in docs:
        file = out.joinpath(*PurePosixPath(doc_id).parts)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(text.encode("utf-8"))
    return out


def _indexed_doc_ids(index_dir: Path) -> list[str] | None:
    """The doc ids of the index in ``index_dir`` (from ``manifest.json``, then ``documents.jsonl``), or None
    when neither can be read."""
    try:
        gen = resolve(index_dir)
    except IndexCorrupt:
        return None
    if gen is None:
        return None
    index_dir = gen.path
    try:
        manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
        documents = manifest["documents"]
        if isinstance(documents, dict) and all(isinstance(d, str) for d in documents):
            return list(documents)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass
    try:
        with (index_dir / "documents.jsonl").open(encoding="utf-8") as f:
            ids = [json.loads(line)["doc_id"] for line in f if line.strip()]
        return ids if all(isinstance(d, str) for d in ids) else None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def check_squad_index_dir(index_dir: Path, doc_ids: Collection[str]) -> None:
    """Refuse to index a SQuAD corpus into ``index_dir`` when that would replace an index of other documents.

    Allowed: a folder that does not exist, holds no index, or holds an index whose documents are
    all among ``doc_ids`` (an earlier run on this SQuAD file, re-indexed incrementally). Otherwise raises
    :class:`rag.errors.CorpusError` saying which document is foreign and how to choose another folder.
    Reads only the manifest (or ``documents.jsonl``); FAISS and the vectors are never loaded.
    """
    index_dir = Path(index_dir)
    try:
        if resolve(index_dir) is None:
            return
    except IndexCorrupt:
        pass  # a damaged pointer: an index of unknown documents is there
    fix = (
        "`rag eval --squad` would replace it. Give a new or empty --index-dir, or leave it out to use a temporary one."
    )
    indexed = _indexed_doc_ids(index_dir)
    if indexed is None:
        raise CorpusError(f"{index_dir} already holds an index whose documents cannot be read; {fix}")
    ours = doc_ids if isinstance(doc_ids, (set, frozenset, dict)) else set(doc_ids)
    foreign = sorted(d for d in indexed if d not in ours)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise CorpusError(f"{index_dir} already holds an index of other documents (e.g. {foreign[0]!r}{more}); {fix}")
