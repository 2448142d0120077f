"""The ONNX Runtime embedder: sentence-transformers' results without torch at query time.

Tokenises with the ``tokenizers`` library (the model's tokenizer.json), runs the exported transformer with
onnxruntime, then pools and L2-normalises exactly as sentence-transformers does. Importing this module and
encoding never imports torch, transformers or sentence-transformers; only a first-time export (in
:mod:`rag.onnx_export`) does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from rag.embedding import Backend, resolve_model_path
from rag.errors import ModelError
from rag.onnx_export import ExportEntry, ModelSpec, cache_root, ensure_export, read_model_spec
from rag.progress import ProgressBar

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rag.config import Settings


def default_threads() -> int:
    """One intra-op thread per CPU this process may use, at most 8 (more rarely helps a small encoder)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def local_model_dir(model_name: str) -> Path:
    """The configured model as a local directory: the bundled copy, a path, or a hub name already cached."""
    resolved = Path(resolve_model_path(model_name)).expanduser()
    if resolved.is_dir():
        return resolved
    if resolved.exists():
        raise ModelError(
            f"RAG_EMBEDDING_MODEL={model_name!r} is a file, not a model directory. Point it at a "
            "sentence-transformers model directory, or unset it to use the bundled model."
        )
    try:  # a hub name downloaded earlier by sentence-transformers: look in the local hub cache only
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=model_name, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - not installed, bad repo id, not cached: all one answer
        raise ModelError(
            f"Embedding model {model_name!r} is neither a local directory nor in the local Hugging Face "
            "cache. Set RAG_EMBEDDING_MODEL to a local sentence-transformers model directory, or unset it "
            "to use the bundled model."
        ) from exc


class OnnxEmbedder:
    """Embedder backed by onnxruntime; see :class:`rag.embedding.Embedder`.

    ``threads``: onnxruntime intra-op threads (default: one per CPU; use 1 when other busy processes share
    the CPUs, where waiting on a descheduled thread costs more than the parallelism gains).
    ``max_batch_tokens``: a forward pass holds at most ``batch_size`` texts and at most this many (padded)
    tokens, so long texts go in small batches; on CPU that is faster (activations stay in cache).
    """

    backend: Backend = "onnx"

    def __init__(
        self,
        model_name: str,
        model_dir: str | os.PathLike[str],
        export: ExportEntry,
        *,
        spec: ModelSpec | None = None,
        threads: int | None = None,
        max_batch_tokens: int = 512,
    ) -> None:
        self.model_name = model_name
        self.model_dir = Path(model_dir)
        self.export_dir = export.path
        self.meta: dict[str, Any] = dict(export.meta)
        self.fingerprint: str = export.fingerprint
        self.export_id: str = export.export_id
        self.spec = spec or read_model_spec(self.model_dir)
        self.dim = self.spec.dim
        self.max_seq_length = self.spec.max_seq_length
        self.max_batch_tokens = max(1, int(max_batch_tokens))

        tokenizer_file = Path(self.spec.transformer_dir) / "tokenizer.json"
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
            raise ModelError(
                f"Cannot read {tokenizer_file} ({exc}). Reinstall or re-download the model, or set "
                "RAG_EMBEDDING_BACKEND=torch."
            ) from exc
        padding = self._tokenizer.padding  # the model's own pad id, if tokenizer.json declares one
        pad_id = padding.get("pad_id") if padding else None
        for token in ("[PAD]", "<pad>"):
            if pad_id is None:
                pad_id = self._tokenizer.token_to_id(token)
        self._pad_id = int(pad_id or 0)  # padded positions are masked out; it only needs to be a valid id
        self._tokenizer.no_padding()  # we pad per batch ourselves
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's worker threads spin for a while after each run, waiting for more work: between queries that
        # burns a core the reader, the HTTP server and other processes need (measured on 2 cores: 13 ms of
        # CPU per 7 ms request). Stop spinning once a run ends; within a run they still spin. Same latency.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        options.log_severity_level = 3  # errors only; problems reach the user as ModelError
        try:
            self._session = ort.InferenceSession(
                str(export.onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad file
            raise ModelError(
                f"onnxruntime cannot load the cached export {export.onnx_path} "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}). Delete {export.path}, or run "
                "`rag index --rebuild`, to re-export it; or set RAG_EMBEDDING_BACKEND=torch."
            ) from exc
        self._input_names = [i.name for i in self._session.get_inputs()]
        expected = list(self.meta.get("input_names", self._input_names))
        out_shape = self._session.get_outputs()[0].shape
        if self._input_names != expected or out_shape[-1] != self.dim:
            raise ModelError(
                f"The cached export {export.path} does not match the model (inputs {self._input_names}, "
                f"output {out_shape}). Delete that folder, or run `rag index --rebuild`, to re-export it."
            )

    @classmethod
    def from_settings(cls, settings: Settings, *, rebuild: bool = False) -> OnnxEmbedder:
        """Resolve the configured model, find (or, the first time, create) its export, and load it.

        ``rebuild`` discards the cached export of this model and exports it again.
        """
        model_dir = local_model_dir(settings.embedding_model)
        spec = read_model_spec(model_dir)
        export = ensure_export(
            model_dir,
            model_name=settings.embedding_model,
            root=cache_root(settings.model_cache_dir),
            force=rebuild,
        )
        threads = settings.onnx_threads  # default (None): one per CPU
        return cls(settings.embedding_model, model_dir, export, spec=spec, threads=threads)

    @property
    def path(self) -> Path:
        return self.model_dir

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.model_name!r}, export_id={self.export_id!r})"

    # ------------------------------------------------------------------------------------------- encoding

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; wrap a single text in a list.")
        texts = list(texts)
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        if n == 1:
            encodings = [self._tokenizer.encode(texts[0])]
        else:
            encodings = self._tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        # Longest first: batches of similar length pad little, and the slowest batches show up front.
        order = np.argsort(-lengths, kind="stable")
        batch_size = max(1, int(batch_size))

        bar = ProgressBar(n) if progress and n > batch_size else None
        try:
            start = 0
            while start < n:
                width = int(lengths[order[start]])
                # at most batch_size texts, and at most max_batch_tokens tokens: long texts go in smaller
                # batches, whose activations stay in cache (markedly faster on CPU than one big batch)
                take = max(1, min(batch_size, self.max_batch_tokens // max(width, 1)))
                rows = order[start : start + take]
                out[rows] = self._encode_batch([encodings[i] for i in rows], width)
                start += len(rows)
                if bar is not None:
                    bar.advance(len(rows))
        finally:
            if bar is not None:
                bar.close()

        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def _encode_batch(self, encodings: list[Any], width: int) -> np.ndarray:
        b = len(encodings)
        ids = np.full((b, width), self._pad_id, dtype=np.int64)
        mask = np.zeros((b, width), dtype=np.int64)
        types = np.zeros((b, width), dtype=np.int64)
        for r, enc in enumerate(encodings):
            k = len(enc.ids)
            ids[r, :k] = enc.ids
            mask[r, :k] = 1
            types[r, :k] = enc.type_ids
        feed_all = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feed = {name: feed_all[name] for name in self._input_names}
        hidden = self._session.run(None, feed)[0]  # (b, width, dim) float32
        return self._pool(hidden, mask)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mode = self.spec.pooling
        m = mask.astype(np.float32)
        if mode == "cls":
            return hidden[:, 0]
        if mode == "lasttoken":
            last = mask.sum(axis=1) - 1
            return hidden[np.arange(hidden.shape[0]), np.maximum(last, 0)]
        if mode == "max":
            masked = np.where(mask[:, :, None].astype(bool), hidden, np.float32(-1e9))
            return masked.max(axis=1)
        summed = np.einsum("bld,bl->bd", hidden, m)
        counts = np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
        if mode == "mean_sqrt_len_tokens":
            return summed / np.sqrt(counts)
        return summed / counts
