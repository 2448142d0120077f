"""Dependencies handed to the routes: the loaded service state and its pipeline.

They are ``async`` only because they never block: FastAPI then calls them on the event loop instead of
sending each through the threadpool.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request

from api.batching import Asker, MicroBatcher
from rag.config import Settings
from rag.pipeline import Pipeline, clean_question
from rag.store import IndexData
from rag.types import Result

T = TypeVar("T")


def _inference_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-inference")


@dataclass
class ServiceState:
    """What the lifespan loaded: the pipeline, or why there is none (then every query answers 503).

    Every pipeline call runs on one dedicated inference thread, one call at a time; questions that arrive
    while it is busy are answered together in the next call (``batcher``, :mod:`api.batching`). The pipeline is
    CPU-bound (torch, then GIL-bound Python), so parallel calls gain nothing: on 2 cores they measured
    ~20% less throughput than serial ones, because each extra thread that runs torch brings its own
    OpenMP worker team that competes for the cores. Serial calls also make answers trivially independent
    of concurrency; requests wait their turn on the event loop, which keeps serving the other routes.
    """

    settings: Settings
    pipeline: Pipeline | None = None
    unavailable: str | None = None  # the 503 detail when pipeline is None
    executor: ThreadPoolExecutor = field(default_factory=_inference_thread)
    index_stamp: str | None = None  # identity of the index generation being served (api/reload.py)
    batcher: MicroBatcher = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.batcher = MicroBatcher(self.executor, s.batch_max_questions, s.batch_wait_ms / 1000)

    async def run(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Run ``fn(*args, **kwargs)`` on the inference thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def ask(self, pipeline: Asker, question: str, top_k: int | None = None) -> Result:
        """Answer ``question`` in the next batch on the inference thread (:mod:`api.batching`), with
        backpressure: when ``max_queued_requests`` questions are already waiting or running, 503 with
        Retry-After at once; a question not answered within ``request_timeout_s``, 503 too (it is dropped if
        its batch has not started; one that has started finishes, unseen, on the thread). A question the
        pipeline refuses (:class:`rag.errors.InvalidQuestion`) is refused here, before it joins a batch."""
        limit, timeout = self.settings.max_queued_requests, self.settings.request_timeout_s
        pending = self.batcher.pending
        if pending >= limit:
            raise HTTPException(
                status_code=503,
                detail=f"The service is busy ({pending} questions in the queue, the limit is {limit}; "
                "RAG_MAX_QUEUED_REQUESTS). Retry in a moment.",
                headers={"Retry-After": "1"},
            )
        question = clean_question(question, getattr(pipeline, "max_question_chars", self.settings.max_question_chars))
        try:
            return await asyncio.wait_for(self.batcher.ask(pipeline, question, top_k), timeout)
        except asyncio.TimeoutError:
            raise HTTPException(
                status_code=503,
                detail=f"The question was not answered within {timeout:g} s (RAG_REQUEST_TIMEOUT_S); the "
                "service is overloaded. Retry in a moment.",
                headers={"Retry-After": "2"},
            ) from None

    @property
    def pending(self) -> int:
        """Questions admitted and not finished on the inference thread (bounded by max_queued_requests)."""
        return self.batcher.pending


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_pipeline(state: Annotated[ServiceState, Depends(get_state)]) -> Pipeline:
    if state.pipeline is None:
        raise HTTPException(status_code=503, detail=state.unavailable or "The service is still starting.")
    return state.pipeline


async def get_index(pipeline: Annotated[Pipeline, Depends(get_pipeline)]) -> IndexData:
    if pipeline.index is None:  # a pipeline wired without an index (library use); never from the lifespan
        raise HTTPException(status_code=503, detail="The pipeline has no index to serve documents from.")
    return pipeline.index


async def require_api_key(state: Annotated[ServiceState, Depends(get_state)], request: Request) -> None:
    """With ``RAG_API_KEY`` set, the request must carry ``Authorization: Bearer <key>`` (compared in constant
    time); otherwise 401 with a JSON detail."""
    key = state.settings.api_key
    if key is None:
        return
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.get_secret_value().encode()):
        raise HTTPException(
            status_code=401,
            detail="This service needs an API key: send the header 'Authorization: Bearer <key>' "
            "(the key is the server's RAG_API_KEY).",
            headers={"WWW-Authenticate": "Bearer"},
        )


StateDep = Annotated[ServiceState, Depends(get_state)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
IndexDep = Annotated[IndexData, Depends(get_index)]
