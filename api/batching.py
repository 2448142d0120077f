"""Micro-batching: questions that arrive while the models are busy are answered together.

Serving systems batch concurrent requests through their models (Ray Serve's ``@serve.batch``, Triton's
dynamic batcher). Here the event loop keeps a queue of questions; whenever the inference thread is free it
takes everything queued (at most ``batch_max_questions``, all for the same pipeline) and answers it with one
``Pipeline.ask_batch`` call: one embedding call for their queries, retrieval per question, one reader pass
over all their windows. A question that arrives while a batch runs waits for the next one, so a lone
question is never delayed (``batch_wait_ms``, 0 by default, adds an optional wait for company when idle).

A batch answers each question as asking it alone would (``Pipeline.ask_batch``). If a batch raises, its
questions are answered again one by one, so one bad question gets its own error and the others their answers.
A question whose request gave up (timeout) before its batch started is dropped; the hot index swap works
because a question keeps the pipeline its request started with and batches never mix two pipelines.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from rag.types import Result

log = logging.getLogger("rag.api")


class Asker(Protocol):
    def ask(self, question: str, top_k: int | None = None) -> Result: ...


@dataclass(eq=False)
class _Job:
    pipeline: Asker
    question: str
    top_k: int | None
    future: asyncio.Future[Result] = field(repr=False)


Outcome = Result | BaseException


def answer_together(pipeline: Asker, questions: Sequence[str], top_ks: Sequence[int | None]) -> list[Outcome]:
    """Answer ``questions`` in one ``ask_batch`` call (one ``ask`` each for a pipeline without it); when the
    batch raises, answer them again one at a time, so each question gets its own result or its own error."""
    batched = getattr(pipeline, "ask_batch", None)
    if batched is None or len(questions) == 1:
        return [_alone(pipeline, q, k) for q, k in zip(questions, top_ks, strict=True)]
    try:
        return list(batched(list(questions), list(top_ks)))
    except Exception as exc:  # noqa: BLE001 - one bad question must not fail the others
        log.warning("a batch of %d questions failed (%s); answering them one by one", len(questions), exc)
        return [_alone(pipeline, q, k) for q, k in zip(questions, top_ks, strict=True)]


def _alone(pipeline: Asker, question: str, top_k: int | None) -> Outcome:
    try:
        return pipeline.ask(question, top_k=top_k)
    except Exception as exc:  # noqa: BLE001 - handed to the question's own request
        return exc


class MicroBatcher:
    """Gathers questions on the event loop and answers them in batches on ``executor`` (one thread)."""

    def __init__(self, executor: Executor, max_questions: int = 16, wait_s: float = 0.0) -> None:
        self.executor, self.max_questions, self.wait_s = executor, max(1, max_questions), max(0.0, wait_s)
        self._queue: deque[_Job] = deque()
        self._running: list[_Job] = []
        self._busy = False  # a batch runs, or one is about to start (the optional wait)
        self._timer: asyncio.TimerHandle | None = None
        self.batches: list[int] = []  # sizes of the last batches run (for benchmarks and tests)

    @property
    def pending(self) -> int:
        """Questions queued or being answered (those whose request gave up and that have not started are
        not counted)."""
        return sum(not j.future.done() for j in self._queue) + len(self._running)

    async def ask(self, pipeline: Asker, question: str, top_k: int | None = None) -> Result:
        """Answer ``question`` with ``pipeline`` in the next batch; cancelling the await drops the question if
        its batch has not started."""
        loop = asyncio.get_running_loop()
        job = _Job(pipeline, question, top_k, loop.create_future())
        self._queue.append(job)
        if self._timer is not None and len(self._queue) >= self.max_questions:
            self._timer.cancel()  # a full batch need not wait
            self._timer = None
            self._start(loop)
        else:
            self._kick(loop)
        return await job.future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._busy or not self._queue:
            return
        self._busy = True
        if self.wait_s > 0 and len(self._queue) < self.max_questions:
            self._timer = loop.call_later(self.wait_s, self._start, loop)
        else:
            self._start(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        batch: list[_Job] = []
        while self._queue and len(batch) < self.max_questions:
            job = self._queue[0]
            if job.future.done():  # its request gave up before it started
                self._queue.popleft()
                continue
            if batch and job.pipeline is not batch[0].pipeline:  # an index swap: the next batch takes it
                break
            batch.append(self._queue.popleft())
        if not batch:
            self._busy = False
            return
        self._running = batch
        self.batches = [*self.batches[-99:], len(batch)]
        work = loop.run_in_executor(
            self.executor, answer_together, batch[0].pipeline, [j.question for j in batch], [j.top_k for j in batch]
        )
        work.add_done_callback(lambda done: self._finished(loop, batch, done))

    def _finished(self, loop: asyncio.AbstractEventLoop, batch: list[_Job], done: asyncio.Future[Any]) -> None:
        self._running = []
        self._busy = False
        try:
            outcomes: list[Outcome] = done.result()
        except BaseException as exc:  # noqa: BLE001 - the executor itself failed (shut down): tell every request
            outcomes = [exc] * len(batch)
        for job, out in zip(batch, outcomes, strict=True):
            if job.future.done():  # its request gave up meanwhile
                continue
            if isinstance(out, asyncio.CancelledError):
                job.future.cancel()
            elif isinstance(out, BaseException):
                job.future.set_exception(out)
            else:
                job.future.set_result(out)
        self._kick(loop)
