"""Micro-batching in the service (api/batching.py) and batched reading (Pipeline.ask_batch, the learned
reader's model calls): batches form under load, never delay a lone question, answer as asking alone would,
and one bad question fails alone."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.batching import MicroBatcher, answer_together
from api.main import create_app
from rag.config import Settings
from rag.reader.learned import model_calls
from rag.types import Result

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """A pipeline that answers with the question, takes ``seconds`` per call and records its batches; the
    question 'bad' raises."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.batches, self.lock = seconds, [], threading.Lock()
        self.max_question_chars, self.index = 1000, None

    def ask(self, question: str, top_k: int | None = None) -> Result:
        return self.ask_batch([question], [top_k])[0]

    def ask_batch(self, questions: list[str], top_k: list[int | None] | None = None) -> list[Result]:
        with self.lock:
            self.batches.append(list(questions))
        time.sleep(self.seconds)
        if "bad" in questions:
            raise RuntimeError("a bad question")
        return [Result(q, ()) for q in questions]


async def _ask_all(batcher: MicroBatcher, pipeline: Any, questions: list[str], gap: float = 0.0) -> list[Any]:
    jobs = []
    for q in questions:
        jobs.append(asyncio.ensure_future(batcher.ask(pipeline, q)))
        await asyncio.sleep(gap)
    return await asyncio.gather(*jobs, return_exceptions=True)


def test_questions_that_arrive_while_a_batch_runs_are_answered_together() -> None:
    p = Recorder(seconds=0.2)
    with ThreadPoolExecutor(1) as ex:
        out = asyncio.run(_ask_all(MicroBatcher(ex, max_questions=4), p, [f"q{i}" for i in range(7)]))
    assert [r.question for r in out] == [f"q{i}" for i in range(7)]
    assert p.batches == [["q0"], ["q1", "q2", "q3", "q4"], ["q5", "q6"]]  # the first alone, then at most 4


def test_a_lone_question_is_not_kept_waiting() -> None:
    p = Recorder()
    with ThreadPoolExecutor(1) as ex:
        b = MicroBatcher(ex, max_questions=16)
        t0 = time.perf_counter()
        out = asyncio.run(_ask_all(b, p, ["only"]))
        took = time.perf_counter() - t0
    assert out[0].question == "only" and p.batches == [["only"]]
    assert took < 1.0  # no wait for company (batch_wait_ms is 0 by default); generous for a loaded machine


def test_the_optional_wait_gathers_questions_arriving_close_together() -> None:
    p = Recorder()
    with ThreadPoolExecutor(1) as ex:
        asyncio.run(_ask_all(MicroBatcher(ex, max_questions=8, wait_s=0.5), p, ["a", "b", "c"], gap=0.01))
    assert p.batches == [["a", "b", "c"]]


def test_a_failing_batch_is_answered_again_one_by_one() -> None:
    p = Recorder(seconds=0.1)
    with ThreadPoolExecutor(1) as ex:
        out = asyncio.run(_ask_all(MicroBatcher(ex, max_questions=8), p, ["first", "x", "bad", "y"]))
    assert isinstance(out[2], RuntimeError)
    assert [r.question for i, r in enumerate(out) if i != 2] == ["first", "x", "y"]
    assert p.batches == [["first"], ["x", "bad", "y"], ["x"], ["bad"], ["y"]]


def test_answer_together_without_ask_batch_asks_one_by_one() -> None:
    class Plain:
        def ask(self, question: str, top_k: int | None = None) -> Result:
            if question == "bad":
                raise ValueError("no")
            return Result(question, ())

    out = answer_together(Plain(), ["a", "bad"], [None, 2])
    assert out[0].question == "a" and isinstance(out[1], ValueError)


def test_a_question_whose_request_gave_up_is_dropped_and_pipelines_are_never_mixed() -> None:
    old, new = Recorder(seconds=0.3), Recorder()

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(ex, max_questions=8)
            first = asyncio.ensure_future(b.ask(old, "running"))
            await asyncio.sleep(0.05)
            gone = asyncio.ensure_future(b.ask(old, "gave up"))
            rest = [asyncio.ensure_future(b.ask(p, q)) for p, q in [(old, "o1"), (new, "n1"), (old, "o2")]]
            await asyncio.sleep(0.05)
            gone.cancel()  # a request timeout, before its batch started
            assert b.pending == 4  # the running one and three queued; the cancelled one is not counted
            return await asyncio.gather(first, *rest)

    out = asyncio.run(scenario())
    assert [r.question for r in out] == ["running", "o1", "n1", "o2"]
    assert old.batches == [["running"], ["o1"], ["o2"]] and new.batches == [["n1"]]  # queue order kept


def test_over_http_one_bad_question_gets_its_500_and_the_rest_their_answers() -> None:
    settings = Settings(_env_file=None, index_poll_s=0, max_queued_requests=64)
    p = Recorder(seconds=0.2)
    with TestClient(create_app(settings, pipeline=p), raise_server_exceptions=False) as c:  # type: ignore[arg-type]
        with ThreadPoolExecutor(8) as pool:
            rs = list(pool.map(lambda q: c.post("/ask", json={"question": q}), ["warm", "a", "b", "bad", "c", "d"]))
    codes = [r.status_code for r in rs]
    assert codes == [200, 200, 200, 500, 200, 200], [r.text for r in rs]
    assert "detail" in rs[3].json()
    assert any(len(b) > 1 for b in p.batches), p.batches  # they did share a batch


def test_model_calls_group_longest_first_within_the_token_budget() -> None:
    calls = model_calls([10, 50, 30, 50, 20], batch_tokens=100)
    assert calls == [[1, 3], [2, 4, 0]]  # 2 × 50 ≤ 100; then 30-wide: 3 × 30 ≤ 100
    assert model_calls([500, 20], batch_tokens=100) == [[0], [1]]  # a window alone even over the budget
    assert sorted(i for c in model_calls(list(range(1, 40)), 128) for i in c) == list(range(39))
    assert model_calls([], 100) == []


@pytest.mark.slow
def test_batched_answers_are_those_of_asking_alone(pipeline: Any) -> None:
    """Every gold question, asked alone and in batches of 16 with the real learned reader: same JSON."""
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").open(encoding="utf-8")]
    alone = [pipeline.ask(q).to_dict() for q in questions]
    batched = [r.to_dict() for i in range(0, len(questions), 16) for r in pipeline.ask_batch(questions[i : i + 16])]
    assert len(batched) == len(alone) == len(questions)
    assert [a for a in alone if a["answers"]], "the reader answered nothing: not a real comparison"
    for q, a, b in zip(questions, alone, batched):
        assert a == b, q
    ks = pipeline.ask_batch(questions[:3], [1, 2, None])
    assert [len(r.answers) <= k for r, k in zip(ks, [1, 2, 3])] == [True, True, True]


@pytest.mark.slow
def test_remembering_reads_a_window_once_and_changes_no_answer(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    questions = ["Who is the US Secretary of State?", "How big is Australia's strategic reserve?"]
    reader = pipeline.reader
    before = [r.to_dict() for r in pipeline.ask_batch(questions)]
    calls: list[int] = []
    run = reader.model.run_arrays
    monkeypatch.setattr(reader.model, "run_arrays", lambda arrays: calls.append(len(arrays["input_ids"])) or run(arrays))
    with reader.remembering():
        first = [r.to_dict() for r in pipeline.ask_batch(questions)]
        read = sum(calls)
        again = [r.to_dict() for r in pipeline.ask_batch(questions)]
    assert read > 0 and sum(calls) == read  # the second time, no window went through the model
    assert before == first == again
    pipeline.ask_batch(questions[:1])
    assert sum(calls) > read  # outside the block, windows are read again
