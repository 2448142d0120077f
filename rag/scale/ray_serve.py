"""``rag serve --ray [ADDRESS] --replicas N``: the same FastAPI app, replicated by Ray Serve.

The app of :func:`api.main.create_app` is the deployment's ingress, so the endpoints, the error contract and
the answers are those of ``rag serve``; each replica runs the app's lifespan (loads its own pipeline, warms
up, watches the index for a new build). Ray Serve's proxy listens on ``host:port`` and spreads requests over
the replicas; a request beyond ``max_queued_requests`` waiting ones gets 503 from Serve, as from ``rag serve``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import IndexMissing
from rag.scale.runtime import LOCAL, start_ray

log = logging.getLogger(__name__)

APP_NAME = "rag"


def absolute_paths(settings: Settings) -> Settings:
    """The settings with every path absolute: Ray workers do not start in this process's folder."""
    update: dict[str, Path] = {}
    for name in ("corpus_dir", "index_dir", "model_cache_dir", "learned_reader_model"):
        value = getattr(settings, name)
        if isinstance(value, Path):
            update[name] = value.resolve()
    return settings.model_copy(update=update)


def ensure_index(settings: Settings) -> None:
    """Build the default index here, once, when it has never existed (rather than in every replica at once);
    any other missing index is left to the replicas, which answer 503 naming the `rag index` command."""
    from rag.embedding import load_embedder
    from rag.store import open_index, read_manifest

    try:
        read_manifest(settings.index_dir)  # there is one: the replicas load it (not loaded here as well)
    except IndexMissing:
        try:
            open_index(settings, settings.index_dir, lambda: load_embedder(settings))
        except IndexMissing as exc:
            log.error("%s", exc)


def deployment(settings: Settings, replicas: int) -> Any:
    """The Ray Serve application: ``replicas`` copies of the app, each with its own pipeline."""
    from ray import serve

    from api.main import create_app

    app = create_app(settings)

    @serve.deployment(
        name="rag",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": settings.ray_replica_cpus},
        max_ongoing_requests=settings.max_queued_requests,
        max_queued_requests=settings.max_queued_requests,
        health_check_period_s=10,
    )
    @serve.ingress(app)
    class RagApp:
        """One replica: the FastAPI app; its lifespan loads the index and the reader."""

    return RagApp.bind()


def start(settings: Settings, *, host: str, port: int, replicas: int, address: str = LOCAL) -> Any:
    """Deploy on Ray (local or at ``address``) and return once every replica answers; the ray module."""
    ray = start_ray(address, timeout_s=settings.ray_connect_timeout_s)
    from ray import serve

    ensure_index(settings)  # before the paths are made absolute: only the default index is built on first use
    settings = absolute_paths(settings)
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve configures its driver logger in start()
    serve.run(deployment(settings, replicas), name=APP_NAME, route_prefix="/", blocking=False)
    return ray


def stop(address: str = LOCAL, timeout_s: float = 15.0) -> None:
    """Take the app down and leave Ray, never hanging: a local Ray (started by this process) goes with
    ``ray.shutdown()``, and so does everything deployed on it; on a cluster the app is deleted first, waiting
    at most ``timeout_s`` (Ctrl-C in a terminal may already have stopped part of Ray)."""
    import ray

    if address != LOCAL:

        def delete() -> None:
            from ray import serve

            try:
                serve.delete(APP_NAME)
            except Exception as exc:  # noqa: BLE001 - already gone or unreachable: nothing more to do
                log.debug("Ray Serve delete: %s", exc)

        worker = threading.Thread(target=delete, daemon=True)
        worker.start()
        worker.join(timeout_s)
    ray.shutdown()


def serve_forever(
    settings: Settings,
    *,
    host: str,
    port: int,
    replicas: int,
    address: str = LOCAL,
    on_ready: Callable[[str], None] = print,
) -> None:
    """``rag serve --ray``: deploy, say where it listens, and run until Ctrl-C or SIGTERM."""
    start(settings, host=host, port=port, replicas=replicas, address=address)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a stop request: leave the loop, then stop()
        signal.signal(sig, lambda *_: done.set())
    on_ready(f"serving on http://{host}:{port} with {replicas} Ray Serve replica{'s' * (replicas > 1)} (Ctrl-C stops)")
    try:
        while not done.wait(0.5):
            pass
    finally:
        stop(address)
