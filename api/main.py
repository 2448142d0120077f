"""The HTTP service: ``create_app`` builds the FastAPI app, ``serve`` runs it with uvicorn (``rag serve``).

The model and index are loaded once, in the lifespan, and warmed with one throwaway question before the
server accepts its first request (uvicorn binds the socket only after the lifespan start-up finished).
If the index cannot be loaded, the service still starts and answers 503 with how to build one. A newly
written index is picked up without a restart (api/reload.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import ServiceState
from api.errors import BodyLimitMiddleware, install_error_handlers, unavailable_detail
from api.reload import manifest_stamp, watch
from api.routes import router
from api.slow_clients import BodyTimeoutMiddleware
from rag import __version__
from rag.config import Settings, get_settings
from rag.errors import RagError
from rag.freshness import staleness_warning
from rag.pipeline import Pipeline

log = logging.getLogger("rag.api")

WARMUP_QUESTION = "What is this collection of documents about?"


def load_pipeline(settings: Settings, *, build_if_missing: bool = True) -> Pipeline:
    """Load the index and model (building the index from ``settings.corpus_dir`` if there is none)."""
    t0 = time.perf_counter()
    log.info("loading the index in %s and the embedding model ...", settings.index_dir)
    pipeline = Pipeline.from_settings(settings, build_if_missing=build_if_missing)
    log.info("loaded in %.1f s", time.perf_counter() - t0)
    warning = staleness_warning(pipeline.index, settings, settings.index_dir)
    if warning:
        log.warning("%s", warning)
    return pipeline


def warm_up(pipeline: Pipeline) -> None:
    """Run one throwaway question so the first real request pays no lazy initialisation."""
    t0 = time.perf_counter()
    question = WARMUP_QUESTION[: getattr(pipeline, "max_question_chars", len(WARMUP_QUESTION))]
    try:
        pipeline.ask(question, top_k=1)
    except RagError as exc:  # not fatal: a real request will report the same problem as JSON
        log.warning("warm-up question failed: %s", exc)
        return
    log.info("warmed up in %.2f s", time.perf_counter() - t0)


def create_app(
    settings: Settings | None = None,
    pipeline: Pipeline | None = None,
    *,
    build_if_missing: bool = True,
) -> FastAPI:
    """Build the app. With ``pipeline`` given (tests, benchmarks) nothing is loaded at start-up."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(settings=settings, pipeline=pipeline)
        state.index_stamp = manifest_stamp(state)  # before loading: a newer index is picked up by the watcher
        try:
            if state.pipeline is None:
                state.pipeline = await state.run(load_pipeline, settings, build_if_missing=build_if_missing)
        except RagError as exc:
            state.unavailable = unavailable_detail(exc)
            log.error("%s", state.unavailable)
        else:
            if state.index_stamp is None:  # there was none: it was built at start-up
                state.index_stamp = manifest_stamp(state)
            await state.run(warm_up, state.pipeline)  # on the thread that will answer the questions
            idx = state.pipeline.index
            if idx is not None:
                log.info("ready: %d documents, %d chunks", len(idx.documents), len(idx.chunks))
        app.state.service = state
        watcher = asyncio.create_task(watch(state, warm_up)) if pipeline is None and settings.index_poll_s > 0 else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            state.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Offline extractive question answering: exact spans from your documents, with citations.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(BodyTimeoutMiddleware, seconds=settings.http_body_timeout_s)
    app.include_router(router)
    return app


def check_port(host: str, port: int) -> None:
    """Fail fast when ``host:port`` cannot be listened on (in use, not allowed, no such address), before the
    index and the models load: :class:`RagError` with how to fix it, instead of uvicorn's ``[Errno 98]`` later."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise RagError(
            f"cannot listen on {host}: {exc.strerror or exc}. Give --host an address of this machine."
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RagError(
                    f"port {port} on {host} is already in use (another `rag serve`?). Stop that process, or "
                    f"choose another port: rag serve --port {port + 1 if port < 65535 else 8000}"
                ) from None
            raise RagError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another --port "
                "(ports below 1024 need administrator rights) or --host."
            ) from None


def serve(
    settings: Settings | None = None, *, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False
) -> None:
    """Run the service with uvicorn until interrupted (one process; requests share one loaded pipeline).

    Start-up, warnings and errors are logged; one line per request only with ``access_log`` (it costs
    about a millisecond a request, a sixth of a warm answer).
    """
    import uvicorn

    from api.slow_clients import guarded_protocol

    settings = settings or get_settings()
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        lifespan="on",
        log_level="info",
        access_log=access_log,
        http=guarded_protocol(settings.http_header_timeout_s),  # type: ignore[arg-type]
        timeout_keep_alive=settings.http_keep_alive_s,  # type: ignore[arg-type]  # a float works (call_later)
        limit_concurrency=settings.http_max_connections or connection_limit(),
    )


FD_RESERVE = 256  # descriptors kept for the index files, the model, logs and the event loop


def connection_limit() -> int:
    """Connections the service can hold: the descriptor limit, raised to its hard limit, less a reserve."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                soft = want
            except (OSError, ValueError):
                pass
    except ImportError:  # pragma: no cover - not on POSIX
        return 1000
    return max(64, soft - FD_RESERVE)
