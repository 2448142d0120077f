"""Compare the ONNX Runtime and torch embedding backends: latency, throughput, cold start, export time.

Usage (from the repository root)::

    python bench/embed_backends.py [--squad PATH] [--cache-dir DIR] [--batch-size N] [--threads N]

Prints, per backend: warm single-query latency (median of --repeats), bulk texts/s on the seed documents
cut into ~600-char pieces and on the paragraphs of a SQuAD-format file, and the wall time of a fresh
process that imports the embedder, loads it and embeds one query. Also times a one-time ONNX export in a
fresh process with an empty cache (skip with --no-export-timing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag.config import Settings  # noqa: E402

QUERY = "How big is Australia's critical minerals reserve?"

COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from rag.config import Settings
backend = sys.argv[1]
if backend == "onnx":
    from rag.onnx_embed import OnnxEmbedder
else:
    from rag.embedding import TorchEmbedder
t1 = time.perf_counter()
settings = Settings(model_cache_dir=sys.argv[2] or None)
emb = OnnxEmbedder.from_settings(settings) if backend == "onnx" else TorchEmbedder(settings.embedding_model)
t2 = time.perf_counter()
emb.encode([sys.argv[3]])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "encode": t3 - t2,
                  "torch_imported": "torch" in sys.modules}))
"""


def seed_pieces(size: int = 600) -> list[str]:
    pieces = []
    for path in sorted((REPO / "seeds").glob("*.txt")):
        doc = path.read_text(encoding="utf-8")
        pieces += [doc[i : i + size] for i in range(0, len(doc), size)]
    return pieces


def squad_paragraphs(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [p["context"] for article in data["data"] for p in article["paragraphs"]]


def _busy_ticks() -> int | None:
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    return sum(v) - v[3] - v[4]


class Contention:
    """CPUs used by *other* processes while a measurement ran (Linux; None elsewhere)."""

    def __enter__(self) -> Contention:
        self.ticks, self.cpu, self.wall = _busy_ticks(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _busy_ticks()
        wall = time.perf_counter() - self.wall
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        if self.ticks is None or end is None or wall <= 0:
            self.others = None
        else:
            self.others = max(0.0, ((end - self.ticks) / tick - (time.process_time() - self.cpu)) / wall)


def warm_query_ms(emb, repeats: int) -> float:
    for _ in range(5):
        emb.encode([QUERY])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        emb.encode([QUERY])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def bulk(emb, texts: list[str], batch_size: int, runs: int) -> tuple[float, float | None, np.ndarray]:
    """Best texts/s of ``runs`` passes (interference only ever slows a run down), with its contention."""
    emb.encode(texts[:batch_size], batch_size=batch_size)  # warm-up
    best: tuple[float, float | None] = (0.0, None)
    for _ in range(runs):
        with Contention() as c:
            t = time.perf_counter()
            vecs = emb.encode(texts, batch_size=batch_size)
            rate = len(texts) / (time.perf_counter() - t)
        if rate > best[0]:
            best = (rate, c.others)
    return best[0], best[1], vecs


def fresh_process(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", COLD_SCRIPT, *args], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"fresh process failed:\n{proc.stderr}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=REPO.parent / "shared/data/squad2-dev-half.json")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX export cache (default: settings)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: settings.embed_batch_size")
    parser.add_argument("--threads", type=int, default=None, help="ONNX intra-op threads (default: CPUs)")
    parser.add_argument("--repeats", type=int, default=50, help="single-query repeats (median reported)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes per backend (median)")
    parser.add_argument("--bulk-runs", type=int, default=2, help="passes over each corpus (best reported)")
    parser.add_argument("--backends", default="onnx,torch")
    parser.add_argument("--no-export-timing", action="store_true")
    args = parser.parse_args()

    settings = Settings(**({"model_cache_dir": args.cache_dir} if args.cache_dir else {}))
    batch_size = args.batch_size or settings.embed_batch_size
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    cache_arg = str(args.cache_dir) if args.cache_dir else ""

    corpora = {"seeds/600-char": seed_pieces()}
    if args.squad.is_file():
        corpora[f"squad ({args.squad.name})"] = squad_paragraphs(args.squad)
    else:
        print(f"[skip] SQuAD file {args.squad} not found: bulk figures on the seeds only")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, batch_size {batch_size}, "
        + ", ".join(f"{name}: {len(t)} texts" for name, t in corpora.items())
    )

    if "onnx" in backends and not args.no_export_timing:
        with tempfile.TemporaryDirectory() as tmp:
            wall, info = fresh_process(["onnx", tmp, QUERY], env)
            meta = json.loads(next(Path(tmp).glob("*/meta.json")).read_text())
        print(
            f"onnx export, fresh process + empty cache: {wall:.1f} s wall "
            f"(export itself {meta['export_seconds']:.1f} s incl. torch import, {meta['exporter']}, "
            f"torch {meta['torch_version']}, validation max|diff| {meta['validation_max_abs_diff']:.1e})"
        )

    results: dict[str, dict] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    for backend in backends:
        if backend == "onnx":
            from rag.onnx_embed import OnnxEmbedder, local_model_dir
            from rag.onnx_export import cache_root, ensure_export

            model_dir = local_model_dir(settings.embedding_model)
            export = ensure_export(
                model_dir, model_name=settings.embedding_model, root=cache_root(settings.model_cache_dir)
            )
            emb = OnnxEmbedder(settings.embedding_model, model_dir, export, threads=args.threads)
        else:
            from rag.embedding import TorchEmbedder

            emb = TorchEmbedder(settings.embedding_model)
        with Contention() as c:
            query_ms = warm_query_ms(emb, args.repeats)
        res = {"query ms": (query_ms, c.others)}
        vectors[backend] = {}
        for name, texts in corpora.items():
            rate, others, vectors[backend][name] = bulk(emb, texts, batch_size, args.bulk_runs)
            res[f"{name} texts/s"] = (rate, others)
        colds = [fresh_process([backend, cache_arg, QUERY], env) for _ in range(args.cold_runs)]
        res["cold_s"] = statistics.median(w for w, _ in colds)
        res["cold_parts"] = colds[len(colds) // 2][1]
        results[backend] = res
        del emb

    print("\n(in brackets: CPUs used by other processes meanwhile; figures compare only when it is ~0)")
    for backend, res in results.items():
        parts = res.pop("cold_parts")
        cold = res.pop("cold_s")
        figures = [f"{k} {v:.2f} ({'?' if o is None else f'{o:.2f}'})" for k, (v, o) in res.items()]
        print(f"{backend:6} " + " | ".join(figures))
        print(
            f"{'':6} cold process {cold:.2f} s (import {parts['import']:.2f} + load {parts['load']:.2f} + "
            f"first query {parts['encode']:.2f}; torch imported: {parts['torch_imported']})"
        )
    if {"onnx", "torch"} <= set(vectors):
        for name in corpora:
            cos = np.sum(vectors["onnx"][name] * vectors["torch"][name], axis=1)
            print(f"agreement on {name}: min cosine onnx vs torch {cos.min():.6f}")


if __name__ == "__main__":
    main()
