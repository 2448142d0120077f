"""``rag index --ray``: read the files and embed the texts with Ray Data, write the index as always.

The build is :func:`rag.store.build_index` with two of its steps handed to Ray:

1. reading: the files to read go through ``map_batches`` as Ray tasks (extraction of PDF, HTML and Word is
   the costly part); a file whose bytes and extractor are unchanged comes back as "unchanged" and keeps the
   previous index's text, exactly as in a single-process build;
2. embedding: only the texts that have no vector in the previous index go through a pool of embedder actors
   (``workers`` of them, one ONNX Runtime session each with ``cpus_per_worker`` threads), in batches of
   ``batch_size`` texts.

Chunking, reuse of unchanged documents, the FAISS index, the manifest with checksums and the atomic swap are
the single-process code, run in this process. The files must be readable at the same paths on every Ray
node (one machine, or a shared file system), and ``rag`` installed there.
"""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.corpus import ReadJob, ReadResult, Unchanged, known_as, read_file, read_files
from rag.extract import Unreadable, format_of
from rag.safe_open import FileId
from rag.scale.runtime import LOCAL, cluster_cpus, quiet_ray, start_ray
from rag.store import BuildReport, build_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayPlan:
    """How a Ray build is spread: ``workers`` embedder actors of ``cpus_per_worker`` CPUs each."""

    workers: int
    cpus_per_worker: int
    batch_size: int  # texts per Ray batch handed to one actor
    read_batch: int = 16  # files per reading task


def plan_for(cpus: int, workers: int | None, batch_size: int) -> RayPlan:
    """Split ``cpus`` among ``workers`` (default: one worker per 2 CPUs, at least one)."""
    workers = max(1, workers or cpus // 2 or 1)
    return RayPlan(workers=workers, cpus_per_worker=max(1, cpus // workers), batch_size=max(1, batch_size))


def quiet_data(ray: Any, progress: bool) -> None:
    """Ray Data: a progress bar only when asked for and on a terminal, and no execution-plan log lines."""
    import sys

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress and sys.stderr.isatty()
    ctx.print_on_execution_start = False
    quiet_ray()


# --------------------------------------------------------------------------------------------- reading
def _read_batch(batch: dict[str, np.ndarray], max_bytes: int | None) -> dict[str, np.ndarray]:
    """A Ray task: read the batch's files; each result pickled (a Document, Unchanged, or (reason, kind))."""
    out = []
    rows = zip(
        batch["path"],
        batch["doc_id"],
        batch["known_sha"],
        batch["known_ext"],
        batch["markdown_rendered"],
        batch["file_id"] if "file_id" in batch else [""] * len(batch["k"]),  # the scan's FileId, as JSON
    )
    for path, doc_id, k_sha, k_ext, rendered, file_id in rows:
        known = (k_sha or None, k_ext or None) if (k_sha or k_ext) else None
        expect = FileId(*json.loads(file_id)) if file_id else None
        try:
            got: object = read_file(
                Path(path),
                str(doc_id),
                max_bytes=max_bytes,
                known_as=known,
                markdown_rendered=bool(rendered),
                expect=expect,
            )
        except Unreadable as exc:
            got = (exc.reason, exc.kind)
        out.append(pickle.dumps(got))
    return {"k": batch["k"], "result": np.array(out, dtype=object)}


def ray_reader(ray: Any, plan: RayPlan) -> Callable[[Sequence[ReadJob], int | None, bool], list[ReadResult]]:
    """A ``read`` for :func:`rag.store.build_index`: PDF, HTML and Word files are extracted in Ray tasks; plain
    text and Markdown files (as read or, with ``markdown_rendered``, rendered) are read here (decoding a text file
    costs microseconds; shipping it to a Ray task and its text back costs more than that)."""

    def read(jobs: Sequence[ReadJob], max_bytes: int | None, progress: bool) -> list[ReadResult]:
        here = [
            k for k, j in enumerate(jobs) if format_of(j.path.name, j.markdown_rendered) in (None, "text", "markdown")
        ]
        results: list[ReadResult | None] = [None] * len(jobs)
        for k, got in zip(here, read_files([jobs[k] for k in here], max_bytes, False)):
            results[k] = got
        on_ray = [k for k in range(len(jobs)) if results[k] is None]
        if on_ray:
            _read_on_ray(ray, plan, jobs, on_ray, max_bytes, results)
        return results  # type: ignore[return-value]

    return read


def _read_on_ray(
    ray: Any, plan: RayPlan, jobs: Sequence[ReadJob], todo: list[int], max_bytes: int | None, results: list
) -> None:
    """Fill ``results[k]`` for every ``k`` in ``todo`` by reading ``jobs[k]`` in Ray tasks."""
    items = []
    for k in todo:
        job = jobs[k]
        sha, ext = known_as(job.known) or (None, None)  # Arrow columns: "" stands for None
        items.append(
            {
                "k": k,
                "path": str(job.path.absolute()),  # not resolved: read_file checks the link the scan saw
                "doc_id": job.doc_id,
                "known_sha": sha or "",
                "known_ext": ext or "",
                "markdown_rendered": job.markdown_rendered,
                "file_id": json.dumps(list(job.file_id)) if job.file_id is not None else "",
            }
        )
    quiet_data(ray, progress=False)  # the reading bar would flash by; the embedding bar is the long one
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * plan.workers)))
    ds = ds.map_batches(
        _read_batch, fn_kwargs={"max_bytes": max_bytes}, batch_size=plan.read_batch, batch_format="numpy"
    )
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        for k, blob in zip(batch["k"], batch["result"]):
            got = pickle.loads(blob)
            job = jobs[int(k)]
            if isinstance(got, tuple):
                got = Unreadable(*got)
            elif isinstance(got, Unchanged):
                got = replace(job.known, source=got.source)
            results[int(k)] = got
    missing = [jobs[i].doc_id for i in todo if results[i] is None]
    if missing:  # pragma: no cover - Ray Data returns every row or raises
        raise RuntimeError(f"Ray returned no result for {len(missing)} files, e.g. {missing[0]}")


# --------------------------------------------------------------------------------------------- embedding
class _EmbedActor:
    """One Ray actor: one ONNX Runtime embedder (the same cached export as this machine's ``rag index``)."""

    def __init__(self, settings_json: str, threads: int, export_id: str) -> None:
        from rag.errors import ModelError
        from rag.onnx_embed import OnnxEmbedder

        s = Settings.model_validate_json(settings_json).model_copy(update={"onnx_threads": threads})
        self.embedder = OnnxEmbedder.from_settings(s)
        if self.embedder.export_id != export_id:
            raise ModelError(
                f"a Ray worker has another export of {s.embedding_model} ({self.embedder.export_id}, the driver "
                f"has {export_id}): install the same versions of rag, onnxruntime and the model on every node."
            )
        self.batch_size = s.embed_batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]], batch_size=self.batch_size)
        return {"k": batch["k"], "vector": vectors}


class RayEmbedder:
    """An :class:`rag.embedding.Embedder` whose ``encode`` runs on a pool of Ray actors.

    ``local`` is this process's ONNX embedder: it makes sure the ONNX export exists before any actor starts
    (one export, not one per actor) and gives the manifest its backend, dimension and export id.
    """

    backend = "onnx"

    def __init__(self, ray: Any, settings: Settings, plan: RayPlan, local: Any) -> None:
        self.ray, self.settings, self.plan = ray, settings, plan
        self.dim, self.export_id, self.model_name = local.dim, local.export_id, local.model_name

    def _pipeline(self, items: list[dict[str, Any]], blocks: int, per_batch: int, actor: type) -> Any:
        plan = self.plan
        return self.ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            actor,
            batch_size=per_batch,
            batch_format="numpy",
            compute=self.ray.data.ActorPoolStrategy(size=plan.workers),
            num_cpus=plan.cpus_per_worker,
            max_restarts=0,  # a crashed worker fails the build (the old index stays) instead of a restart loop
        )

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ray, plan = self.ray, self.plan
        quiet_data(ray, progress)
        # longest first, as OnnxEmbedder orders one call's texts: each batch then holds texts of about one
        # length and pads little
        order = sorted(range(len(texts)), key=lambda k: -len(texts[k]))
        items = [{"k": k, "text": texts[k]} for k in order]
        # every worker gets work even for a few texts; at most batch_size texts a batch
        per_batch = max(1, min(plan.batch_size, -(-len(items) // plan.workers)))
        blocks = -(-len(items) // per_batch)
        settings_json, threads, export_id = self.settings.model_dump_json(), plan.cpus_per_worker, self.export_id

        class EmbedActor(_EmbedActor):  # what it needs travels with the class, not as constructor arguments
            def __init__(self) -> None:
                super().__init__(settings_json, threads, export_id)

        with warnings.catch_warnings():  # max_restarts has no named parameter yet (Ray 2.60); the extra pins <2.64
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = self._pipeline(items, blocks, per_batch, EmbedActor)
        seen = 0
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            out[batch["k"]] = batch["vector"]
            seen += len(batch["k"])
        if seen != len(texts):  # pragma: no cover - Ray Data returns every row or raises
            raise RuntimeError(f"Ray embedded {seen} of {len(texts)} texts")
        return out


# --------------------------------------------------------------------------------------------- build
def build_index_ray(
    paths: Sequence[Path] | None,
    settings: Settings,
    index_dir: Path,
    *,
    address: str = LOCAL,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    rebuild: bool = False,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    on_replace: Callable[[str], None] | None = None,
) -> BuildReport:
    """:func:`rag.store.build_index` with reading and embedding on Ray (see the module docstring)."""
    from rag.onnx_embed import OnnxEmbedder

    ray = start_ray(address, timeout_s=settings.ray_connect_timeout_s)
    plan = plan_for(cluster_cpus(ray), workers or settings.ray_workers, batch_size or settings.ray_batch_size)
    log.info(
        "Ray: %d embedder workers of %d CPUs, %d texts a batch", plan.workers, plan.cpus_per_worker, plan.batch_size
    )

    def embedder() -> RayEmbedder:
        return RayEmbedder(ray, settings, plan, OnnxEmbedder.from_settings(settings, rebuild=rebuild))

    return build_index(
        paths,
        settings,
        index_dir,
        embedder,
        progress=progress,
        rebuild=rebuild,
        wait=wait,
        on_wait=on_wait,
        on_replace=on_replace,
        read=ray_reader(ray, plan),
    )
