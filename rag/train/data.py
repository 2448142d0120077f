"""Read SQuAD-format files (plain or .gz) into flat, validated training examples."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import RagError


class TrainingDataError(RagError):
    """A training or validation file is missing or malformed; the message names file, record and field."""


@dataclass(frozen=True)
class Example:
    qid: str
    question: str
    context: str
    answers: tuple[tuple[int, int], ...]  # character spans into context; empty = unanswerable
    paragraph: str  # "<file>#<article>/<paragraph>": examples of one paragraph share it
    title: str

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def _open_json(path: Path) -> Any:  # noqa: ANN401
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TrainingDataError(f"Training file not found: {path}. Pass a SQuAD JSON file (plain or .gz).") from None
    except OSError as exc:
        raise TrainingDataError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8-sig"))
    except (OSError, EOFError, zlib.error) as exc:
        raise TrainingDataError(f"{path}: a damaged gzip file ({exc}); download or copy it again.") from None
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 (byte {exc.start}).") from None
    except json.JSONDecodeError as exc:
        raise TrainingDataError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "a truncated file? Copy it again."
        ) from None


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:  # noqa: ANN401
    if not isinstance(obj, dict) or key not in obj:
        raise TrainingDataError(f"{where}: missing field {key!r} (SQuAD format: data[].paragraphs[].qas[]).")
    value = obj[key]
    if not isinstance(value, kind):
        raise TrainingDataError(f"{where}: field {key!r} has the wrong type ({type(value).__name__}).")
    return value


def load_examples(path: str | Path) -> list[Example]:
    """All questions of a SQuAD 1.1/2.0 file. Answers must lie in their context (``answer_start`` checked)."""
    path = Path(path)
    top = _open_json(path)
    data = _field(top, "data", list, str(path))
    out: list[Example] = []
    for a, article in enumerate(data):
        where_a = f"{path}: data[{a}]"
        title = str(article.get("title", "")) if isinstance(article, dict) else ""
        for p, para in enumerate(_field(article, "paragraphs", list, where_a)):
            where_p = f"{where_a}.paragraphs[{p}]"
            context = _field(para, "context", str, where_p)
            for q, qa in enumerate(_field(para, "qas", list, where_p)):
                where = f"{where_p}.qas[{q}]"
                question = _field(qa, "question", str, where).strip()
                qid = str(qa.get("id", f"{a}-{p}-{q}")) if isinstance(qa, dict) else ""
                impossible = bool(qa.get("is_impossible", False))
                spans: list[tuple[int, int]] = []
                if not impossible:
                    for n, ans in enumerate(_field(qa, "answers", list, where)):
                        w = f"{where}.answers[{n}]"
                        text = _field(ans, "text", str, w)
                        start = _field(ans, "answer_start", int, w)
                        if isinstance(start, bool) or start < 0 or context[start : start + len(text)] != text:
                            raise TrainingDataError(
                                f"{w}: answer_start {start} does not point at the answer text {text[:40]!r} "
                                "in its context."
                            )
                        lead = len(text) - len(text.lstrip())  # whitespace is no part of an answer
                        span = (start + lead, start + len(text.rstrip()))
                        if span[0] < span[1] and span not in spans:
                            spans.append(span)
                    if not spans:
                        continue  # SQuAD 1.1 never has this; skip rather than teach "no answer" by accident
                out.append(Example(qid, question, context, tuple(spans), f"{path.name}#{a}/{p}", title))
    if not out:
        raise TrainingDataError(f"{path}: holds no questions.")
    return out


def load_all(paths: Sequence[str | Path]) -> list[Example]:
    return [ex for p in paths for ex in load_examples(p)]
