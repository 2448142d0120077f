"""Export a sentence-transformers model's transformer to ONNX, once, into a content-addressed cache.

Layout of the cache (``settings.model_cache_dir``, else ``$XDG_CACHE_HOME/rag/onnx``, else
``~/.cache/rag/onnx``)::

    <cache>/fingerprints.json          file hashes keyed by (path, size, mtime, inode): makes re-hashing free
    <cache>/<model-slug>-<export_id>/  one export, written to a temporary folder and renamed into place
        model.onnx                     the graph: input_ids, attention_mask[, token_type_ids] -> last_hidden_state
        model.onnx.data                its weights (ONNX external data: onnxruntime maps them instead of
                                       parsing 90 MB of protobuf, so a session opens ~0.1 s sooner)
        meta.json                      model name, fingerprint, opset, torch version, exporter, pooling,
                                       size and sha256 of both files, ...

``export_id`` is derived from the model directory's content fingerprint and the export recipe, so a changed
model (or a changed recipe) gets a fresh entry and an unchanged one is never exported twice.

This is the only module that imports torch / transformers, and only inside :func:`_export_to_dir`: finding
and verifying an existing export is torch-free, so the query path never loads torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.digests import StatCache, sha256_file
from rag.errors import ModelError

log = logging.getLogger(__name__)

EXPORT_RECIPE = 2  # bump when the export procedure changes: old cache entries are then ignored (2: external data)
OPSET = 17
ONNX_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"  # the weights, referenced from model.onnx by this relative name
META_FILE = "meta.json"
STAT_CACHE_FILE = "fingerprints.json"
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SKIP_DIRS = {"onnx", "openvino", ".cache", ".git", "__pycache__"}
_SKIP_SUFFIXES = (".md",)
_VALIDATE_ATOL = 1e-3


@dataclass(frozen=True)
class ModelSpec:
    """What a sentence-transformers model directory says about tokenisation, pooling and output."""

    transformer_dir: str  # folder holding config.json, tokenizer.json and the weights
    max_seq_length: int
    pooling: str  # one of POOLING_MODES
    dim: int
    normalize: bool


@dataclass(frozen=True)
class ExportEntry:
    """A usable export found in (or just written to) the cache."""

    path: Path  # the entry folder
    meta: dict[str, Any]
    created: bool  # True when this call exported it

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    @property
    def export_id(self) -> str:
        return str(self.meta["export_id"])


# --------------------------------------------------------------------------------------------- locations


def default_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "rag" / "onnx"


def _stat_cache(root: Path | None) -> StatCache:
    return StatCache(root / STAT_CACHE_FILE if root is not None else None)


def cache_root(configured: str | os.PathLike[str] | None) -> Path:
    return Path(configured).expanduser() if configured else default_cache_root()


def _slug(model_name: str) -> str:
    tail = model_name.rstrip("/\\").replace("\\", "/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)[:60]


def export_id_for(fingerprint: str) -> str:
    return hashlib.sha256(f"{fingerprint}|recipe={EXPORT_RECIPE}|opset={OPSET}".encode()).hexdigest()[:16]


def entry_dir(root: Path, model_name: str, export_id: str) -> Path:
    return root / f"{_slug(model_name)}-{export_id}"


# --------------------------------------------------------------------------------------------- hashing


def _model_files(model_dir: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(model_dir, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES):
                continue
            files.append(Path(dirpath) / name)
    return files


def fingerprint_model_dir(model_dir: str | os.PathLike[str], *, root: Path | None = None) -> str:
    """Content hash of a model directory: relative names and bytes of its weight, config and tokenizer files.

    READMEs, dot-files and ready-made ``onnx/`` / ``openvino/`` folders are left out. With ``root`` the
    per-file hashes are cached there, so an unchanged 90 MB model costs a few ``stat`` calls.
    """
    model_dir = Path(model_dir)
    files = _model_files(model_dir)
    if not files:
        raise ModelError(
            f"The embedding model directory {model_dir} holds no files. Point RAG_EMBEDDING_MODEL at a "
            "sentence-transformers model directory, or unset it to use the bundled model."
        )
    stat_cache = _stat_cache(root)
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(model_dir).as_posix()
        h.update(f"{rel}\0{stat_cache.sha256(f)}\n".encode())
    stat_cache.save()
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- model spec


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Cannot read {path} ({exc}). Reinstall or re-download the model, or set RAG_EMBEDDING_BACKEND=torch."
        ) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object. Reinstall or re-download the model.")
    return data


def read_model_spec(model_dir: str | os.PathLike[str]) -> ModelSpec:
    """Read modules.json / sentence_bert_config.json / 1_Pooling/config.json like sentence-transformers.

    Supported pipelines: Transformer -> Pooling [-> Normalize]. Anything else (Dense layers, custom
    modules) raises :class:`ModelError` so that ``auto`` falls back to the torch backend.
    """
    model_dir = Path(model_dir)
    transformer_dir = model_dir
    pooling_dir: Path | None = None
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"Cannot read {modules_file} ({exc}). Reinstall the model.") from exc
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            sub = model_dir / str(module.get("path", ""))
            if kind == "Transformer":
                transformer_dir = sub
            elif kind == "Pooling":
                pooling_dir = sub
            elif kind == "Normalize":
                continue
            else:
                raise ModelError(
                    f"The ONNX backend supports Transformer, Pooling and Normalize modules; {model_dir} also "
                    f"uses {module.get('type')!r}. Set RAG_EMBEDDING_BACKEND=torch for this model."
                )
    config_file = transformer_dir / "config.json"
    if not config_file.is_file():
        raise ModelError(
            f"{transformer_dir} has no config.json, so it is not a transformers model directory. Point "
            "RAG_EMBEDDING_MODEL at a sentence-transformers model directory, or unset it."
        )
    if not (transformer_dir / "tokenizer.json").is_file():
        raise ModelError(
            f"{transformer_dir} has no tokenizer.json (a fast tokenizer), which the ONNX backend needs. "
            "Save the model with a fast tokenizer, or set RAG_EMBEDDING_BACKEND=torch."
        )
    config = _read_json(config_file)

    max_len: int | None = None
    for name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
        if (transformer_dir / name).is_file():
            value = _read_json(transformer_dir / name).get("max_seq_length")
            if isinstance(value, int) and value > 0:
                max_len = value
            break
    if max_len is None:
        tok_cfg = transformer_dir / "tokenizer_config.json"
        value = _read_json(tok_cfg).get("model_max_length") if tok_cfg.is_file() else None
        max_len = value if isinstance(value, int) and 0 < value < 100_000 else 512
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        max_len = min(max_len, positions)

    hidden = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    pooling = "mean"
    if pooling_dir is not None and (pooling_dir / "config.json").is_file():
        pcfg = _read_json(pooling_dir / "config.json")
        hidden = pcfg.get("embedding_dimension", pcfg.get("word_embedding_dimension", hidden))
        mode = pcfg.get("pooling_mode")  # sentence-transformers >= 6; older versions use boolean flags
        if mode is None:
            mode = [m for key, m in _LEGACY_POOLING_KEYS.items() if pcfg.get(key)] or ["mean"]
        modes = [mode] if isinstance(mode, str) else list(mode)
        if len(modes) != 1 or modes[0] not in POOLING_MODES:
            raise ModelError(
                f"The ONNX backend supports exactly one of the pooling modes {', '.join(POOLING_MODES)}; "
                f"{pooling_dir} asks for {modes}. Set RAG_EMBEDDING_BACKEND=torch for this model."
            )
        pooling = modes[0]
    if not isinstance(hidden, int) or hidden <= 0:
        raise ModelError(f"Cannot tell the embedding size of {model_dir}. Set RAG_EMBEDDING_BACKEND=torch.")
    return ModelSpec(
        transformer_dir=str(transformer_dir),
        max_seq_length=int(max_len),
        pooling=pooling,
        dim=int(hidden),
        normalize=True,  # the Embedder contract: rows are always L2-normalised
    )


# --------------------------------------------------------------------------------------------- cache


def _damaged(path: Path, why: str) -> ModelError:
    return ModelError(
        f"The cached ONNX export in {path} is damaged ({why}). Delete that folder, or run "
        "`rag index --rebuild`, to re-export it; or set RAG_EMBEDDING_BACKEND=torch."
    )


def verify_entry(path: Path, *, root: Path | None = None) -> dict[str, Any]:
    """Check that an entry's meta.json, model.onnx and model.onnx.data are complete and unaltered; return the meta."""
    meta_file = path / META_FILE
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _damaged(path, f"{META_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise _damaged(path, f"{META_FILE} is unreadable: {exc}") from None
    required = {"fingerprint", "export_id", "onnx_size", "onnx_sha256", "data_size", "data_sha256"}
    if not isinstance(meta, dict) or not required <= set(meta):
        raise _damaged(path, f"{META_FILE} lacks required fields")
    stat_cache = _stat_cache(root)
    for name, key in ((ONNX_FILE, "onnx"), (DATA_FILE, "data")):
        file = path / name
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise _damaged(path, f"{name} is missing") from None
        if size != meta[f"{key}_size"]:
            raise _damaged(path, f"{name} has {size} bytes, expected {meta[f'{key}_size']}; truncated?")
        if stat_cache.sha256(file) != meta[f"{key}_sha256"]:
            raise _damaged(path, f"{name} content does not match its recorded sha256")
    stat_cache.save()
    return meta


def find_export(model_dir: Path, *, model_name: str, root: Path, fingerprint: str | None = None) -> ExportEntry | None:
    """The verified cache entry for this model's current content, or None if it was never exported."""
    fingerprint = fingerprint or fingerprint_model_dir(model_dir, root=root)
    path = entry_dir(root, model_name, export_id_for(fingerprint))
    if not path.exists():
        return None
    return ExportEntry(path=path, meta=verify_entry(path, root=root), created=False)


def _remove_stale_temporaries(root: Path) -> None:
    """Remove the temporary folders of exports whose process is gone (killed mid-export)."""
    if not root.is_dir():
        return
    for tmp in [*root.glob(".tmp-*"), *root.glob(".trash-*")]:
        parts = tmp.name.split("-")
        pid = parts[2] if len(parts) > 3 else ""
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def ensure_export(
    model_dir: str | os.PathLike[str], *, model_name: str, root: Path, force: bool = False
) -> ExportEntry:
    """Return the cached export of ``model_dir``, exporting it first if needed (or if ``force``)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(
            f"The ONNX backend needs a local model directory; {model_name!r} resolved to {model_dir}, which "
            "is not one. Set RAG_EMBEDDING_MODEL to a local sentence-transformers model directory, or "
            "RAG_EMBEDDING_BACKEND=torch."
        )
    fingerprint = fingerprint_model_dir(model_dir, root=root)
    export_id = export_id_for(fingerprint)
    final = entry_dir(root, model_name, export_id)
    if force and final.exists():
        # Never delete or rewrite an export in place: another process may be reading it. A complete one
        # (every checksum verified, not only the stat stamps) is kept; a damaged one is renamed away first.
        try:
            return ExportEntry(path=final, meta=verify_entry(final, root=None), created=False)
        except ModelError:
            trash = root / f".trash-{export_id}-{os.getpid()}-{time.time_ns()}"
            with contextlib.suppress(OSError):
                os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
    try:
        found = find_export(model_dir, model_name=model_name, root=root, fingerprint=fingerprint)
    except ModelError:
        if not force:
            raise
        found = None
    if found is not None:
        return found
    _remove_stale_temporaries(root)

    spec = read_model_spec(model_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{export_id}-{os.getpid()}-", dir=root))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the export is no secret
    except OSError as exc:
        raise ModelError(
            f"Cannot write the ONNX cache in {root} ({exc}). Set RAG_MODEL_CACHE_DIR to a writable folder."
        ) from exc
    try:
        log.info("Exporting %s to ONNX in %s (one-time)", model_name, final)
        started = time.perf_counter()
        details = _export_to_dir(spec, tmp / ONNX_FILE)
        onnx_file, data_file = tmp / ONNX_FILE, tmp / DATA_FILE
        meta = {
            "model_name": model_name,
            "model_dir": str(model_dir.resolve()),
            "fingerprint": fingerprint,
            "export_id": export_id,
            "recipe": EXPORT_RECIPE,
            "opset": OPSET,
            **asdict(spec),
            **details,
            "onnx_size": onnx_file.stat().st_size,
            "onnx_sha256": sha256_file(onnx_file),
            "data_size": data_file.stat().st_size,
            "data_sha256": sha256_file(data_file),
            "export_seconds": round(time.perf_counter() - started, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # another process finished the same export first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return ExportEntry(path=final, meta=verify_entry(final, root=root), created=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stat_cache = _stat_cache(root)
    stat_cache.remember(final / ONNX_FILE, meta["onnx_sha256"])
    stat_cache.remember(final / DATA_FILE, meta["data_sha256"])
    stat_cache.save()
    log.info("Exported %s in %.1f s", model_name, meta["export_seconds"])
    return ExportEntry(path=final, meta=meta, created=True)


# --------------------------------------------------------------------------------------------- export


def _move_weights_out(onnx: Any, onnx_path: Path) -> None:
    """Rewrite ``onnx_path`` as a graph plus one external weights file, ``DATA_FILE`` beside it.

    Same tensors, same graph, same outputs; onnxruntime then maps the weights instead of parsing them out of
    one big protobuf message, which cuts opening a session from ~0.12 s to ~0.03 s (MiniLM, 2 cores): that
    is a tenth of a cold `rag ask`.
    """
    try:
        model = onnx.load(str(onnx_path))
        onnx.save_model(
            model,
            str(onnx_path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=DATA_FILE,
            size_threshold=1024,
        )
    except Exception as exc:  # noqa: BLE001 - onnx raises several types
        raise ModelError(
            f"Cannot write the ONNX export's weights to {onnx_path.parent / DATA_FILE} "
            f"({exc.__class__.__name__}: {exc}). Check free disk space, or set RAG_EMBEDDING_BACKEND=torch."
        ) from exc


def _export_to_dir(spec: ModelSpec, onnx_path: Path) -> dict[str, Any]:
    """Trace the transformer with torch.onnx.export and check the graph against torch. Imports torch."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import inspect
        import warnings

        import numpy as np
        import onnx
        import onnxruntime as ort
        import torch
        import transformers
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelError(
            f"Exporting the model to ONNX needs torch and transformers ({exc}). Install them, or set "
            "RAG_EMBEDDING_BACKEND=torch."
        ) from exc

    transformers.logging.disable_progress_bar()  # the "Loading weights" bar says nothing useful here
    try:
        try:
            model = AutoModel.from_pretrained(spec.transformer_dir, attn_implementation="eager")
        except (TypeError, ValueError):
            model = AutoModel.from_pretrained(spec.transformer_dir)
    except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear message
        raise ModelError(
            f"Cannot load {spec.transformer_dir} with transformers for the ONNX export "
            f"({exc.__class__.__name__}: {exc}). Set RAG_EMBEDDING_BACKEND=torch."
        ) from exc
    model = model.float().eval()
    accepts = inspect.signature(model.forward).parameters
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in accepts and getattr(model.config, "type_vocab_size", 0):
        input_names.append("token_type_ids")

    class _Wrapper(torch.nn.Module):
        """Feeds the encoder a ready-made 4-D additive mask.

        transformers 5 builds the mask from a 2-D one with Python-side shape arithmetic that the TorchScript
        tracer freezes to the example's sequence length (the export then silently mis-computes every other
        length); a 4-D mask is passed through untouched and keeps both axes dynamic.
        """

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, *rest: Any) -> Any:
            extended = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            kwargs = {"token_type_ids": rest[0]} if rest else {}
            return self.inner(input_ids=input_ids, attention_mask=extended, **kwargs).last_hidden_state

    def example(batch: int, length: int, pad: list[int], seed: int) -> tuple[Any, ...]:
        gen = torch.Generator().manual_seed(seed)
        high = max(int(getattr(model.config, "vocab_size", 1000)), 200)
        ids = torch.randint(100, min(high, 5000), (batch, length), generator=gen)
        mask = torch.ones(batch, length, dtype=torch.long)
        for row, n in enumerate(pad):
            if n:
                mask[row, length - n :] = 0
        return (ids, mask, torch.zeros_like(ids))[: len(input_names)]

    wrapper = _Wrapper(model).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
            torch.onnx.export(
                wrapper,
                example(2, 9, [0, 4], seed=0),
                str(onnx_path),
                dynamo=False,
                input_names=input_names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"torch.onnx.export failed for {spec.transformer_dir} ({exc.__class__.__name__}: {exc}). "
            "Set RAG_EMBEDDING_BACKEND=torch."
        ) from exc

    _move_weights_out(onnx, onnx_path)

    # The tracer can bake shapes into the graph without failing: compare with torch on other shapes.
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, length, pad, seed in ((3, 17, [0, 6, 15], 1), (1, 4, [0], 2), (2, 40, [0, 33], 3)):
        inputs = example(batch, length, pad, seed)
        with torch.no_grad():
            kwargs = dict(zip(input_names, inputs, strict=True))
            expected = model(**kwargs).last_hidden_state.numpy()
        got = session.run(None, {n: t.numpy() for n, t in zip(input_names, inputs, strict=True)})[0]
        valid = inputs[1].numpy().astype(bool)
        worst = max(worst, float(np.abs(expected - got)[valid].max()))
    if worst > _VALIDATE_ATOL:
        raise ModelError(
            f"The ONNX export of {spec.transformer_dir} disagrees with torch (max abs diff {worst:.3g}); "
            "this model is not supported by the ONNX backend. Set RAG_EMBEDDING_BACKEND=torch."
        )
    return {
        "input_names": input_names,
        "exporter": "torch.onnx.export(dynamo=False)",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "onnxruntime_version": ort.__version__,
        "validation_max_abs_diff": worst,
    }
