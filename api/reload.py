"""Serving while re-indexing: notice a newly written index and swap the pipeline between requests.

`rag index` publishes each build as a new generation of the index folder (rag.generations), so a new
index shows as a new generation name in its pointer. The watcher reads it every ``index_poll_s`` seconds; on a change it
loads the new index beside the running one (the embedding model is shared, not reloaded), warms it on the
inference thread, and swaps ``state.pipeline``. A request holds the pipeline it started with, so requests
in flight finish on the old one and none mixes two indexes. A new index that cannot be loaded is logged
and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from api.deps import ServiceState
from rag.errors import RagError
from rag.generations import stamp as generation_stamp
from rag.pipeline import Pipeline
from rag.store import load_index

log = logging.getLogger("rag.api")


def manifest_stamp(state: ServiceState) -> str | None:
    """The identity of the index's current generation now, or None if there is none."""
    return generation_stamp(state.settings.index_dir)


def load_new(state: ServiceState) -> Pipeline:
    """A pipeline over the index now on disk, sharing the running pipeline's embedding model and (for the
    learned reader) its reader model: both depend on the settings only, which a swap does not change, and
    opening them again on every swap left RSS ~120 MB higher after 8 swaps (issue 25)."""
    embedder = state.pipeline.embedder if state.pipeline is not None else None
    reader_model: Future[Any] | None = None
    session = getattr(getattr(state.pipeline, "reader", None), "model", None)
    if state.settings.reader == "learned" and session is not None:
        reader_model = Future()
        reader_model.set_result(session)  # used on the inference thread only, like the running one's
    index = load_index(state.settings.index_dir, state.settings)
    return Pipeline.from_index(index, state.settings, embedder, reader_model)


def release_memory() -> None:
    """Collect the replaced pipeline's cycles and hand freed heap pages back to the OS (glibc's malloc_trim;
    without it RSS keeps the old index's arenas)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


async def check_once(state: ServiceState, warm: Callable[[Pipeline], None]) -> bool:
    """Swap in the index on disk if it is not the one being served; True if a swap happened."""
    stamp = manifest_stamp(state)
    if stamp is None or stamp == state.index_stamp:
        return False
    state.index_stamp = stamp  # tried once per new manifest: a broken one is not reloaded every poll
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    try:
        fresh = await loop.run_in_executor(None, load_new, state)
    except RagError as exc:
        serving = "the previous index keeps serving" if state.pipeline is not None else "still no index"
        log.error("a new index in %s cannot be loaded (%s); %s", state.settings.index_dir, exc, serving)
        return False
    await state.run(warm, fresh)  # on the inference thread, between questions
    old = state.pipeline
    state.pipeline, state.unavailable = fresh, None
    had_old = old is not None
    del old  # requests in flight keep their own reference; the rest of it is freed now
    await state.run(release_memory)
    idx = fresh.index
    built = idx.manifest.created_at.isoformat() if idx is not None else "?"
    log.info(
        "swapped in the new index in %s (built %s: %d documents, %d chunks) after %.1f s%s",
        state.settings.index_dir,
        built,
        len(idx.documents) if idx is not None else 0,
        len(idx.chunks) if idx is not None else 0,
        time.perf_counter() - t0,
        "" if had_old else "; the service is now available",
    )
    return True


async def watch(state: ServiceState, warm: Callable[[Pipeline], None]) -> None:
    """Poll for a new index every ``index_poll_s`` seconds until cancelled."""
    while True:
        await asyncio.sleep(state.settings.index_poll_s)
        try:
            await check_once(state, warm)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the watcher must outlive any one failed reload
            log.exception("checking for a new index failed; the current one keeps serving")
