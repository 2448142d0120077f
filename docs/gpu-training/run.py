"""Device driver: the `rag train-reader` recipe (same functions), with max_steps fitted to a time budget."""
import json, os, shutil, sys, time
from pathlib import Path
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = Path(os.environ.get("OUT", "/tmp/out"))
BUDGET = float(sys.argv[1]) if len(sys.argv) > 1 else 360.0  # seconds of training steps
EPOCHS_MAX = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
t_start = time.time()

# base model dir: the bundled tokenizer/config and the frozen embedding table (fp16 carried -> fp32)
base = Path("/tmp/base")
base.mkdir(exist_ok=True)
for f in (ROOT / ".gpu/base").iterdir():
    if f.suffix != ".npy":
        shutil.copy(f, base / f.name)
from safetensors.numpy import save_file
emb = np.load(ROOT / ".gpu/base/emb16.npy").astype(np.float32)
save_file({"embeddings.word_embeddings.weight": emb}, str(base / "model.safetensors"))

import rag.train.loop as _loop
_loop.base_model_path = lambda name: name  # a local directory; rag.config (pydantic) is not on the device
from rag.reader.qa_windows import load_tokenizer
from rag.train.data import load_all, load_examples
from rag.train.features import group_batches, make_features
from rag.train.loop import TrainConfig, sample, train
from rag.train.recipe import cached_retrieved_rows
from rag.train.validate import validation_items
from rag.train.windows import WindowRates, build_windows

D = ROOT / ".gpu/data"
files = (str(D / "squad1-train.json.gz"), str(D / "squad2-train-first10.json.gz"))
rates = WindowRates(neighbour=0.5, retrieved=0.5, neighbours_each=2, retrieved_each=2, title=0.15)
ck = Path(os.environ.get("CK", ROOT / ".gpu/ck"))
DEVICE = os.environ.get("DEVICE", "cuda")
LIMIT = int(os.environ["LIMIT"]) if os.environ.get("LIMIT") else None
common = dict(
    base_model=str(base), train_files=files, validation_file=str(D / "squad2-dev-half.json"), rates=rates,
    shared_norm=True, init_from=str(ROOT / "rag/models/reader"), device=DEVICE, limit=LIMIT, batch_size=64, lr=5e-5,
    val_questions=1000, threads=8, max_length=192,
)
tok = load_tokenizer(base / "tokenizer.json")
examples = sample(load_all(files), LIMIT, 13)
cfg0 = TrainConfig(checkpoint_dir=ck, **common)
rows = cached_retrieved_rows(cfg0, examples, print)
windows = build_windows(examples, 13, rates, rows=rows)
features = make_features(windows, tok, 192, 40)
per_epoch = len(group_batches(features, 64, 13))
val = validation_items(load_examples(common["validation_file"]), 1000, 13)
print(f"prepared {len(features)} features, {per_epoch} batches an epoch, in {time.time()-t_start:.0f} s", flush=True)

if os.environ.get("STEPS"):
    per_step, t20 = BUDGET / int(os.environ["STEPS"]) / 0.92, 0.0
else:
  # speed probe: 80 steps in a throwaway dir
  P = int(os.environ.get("PROBE", "20"))
  probe = TrainConfig(checkpoint_dir=Path("/tmp/probe"), max_steps=4 * P, eval_every=10**9, checkpoint_every=10**9, **common)
  t = time.time()
  train(probe, features, val[:50], tok, progress=False, stop_after=P)
  t20 = time.time() - t
  t = time.time()
  train(probe, features, val[:50], tok, resume=True, progress=False, stop_after=3 * P)
  per_step = (time.time() - t) / (3 * P)
steps = int(min(BUDGET / per_step * 0.92, EPOCHS_MAX * per_epoch))
steps = max(int(os.environ.get("MIN_STEPS", "200")), steps - steps % 100)
eval_every = max(int(os.environ.get("MIN_EVAL", "100")), (steps // 6) // 100 * 100)
print(f"probe: {per_step*1000:.1f} ms/step (first 20 incl. start: {t20:.1f} s); training {steps} steps "
      f"({steps/per_epoch:.2f} epochs), validation every {eval_every}", flush=True)
cfg = TrainConfig(checkpoint_dir=ck, max_steps=steps, eval_every=eval_every, checkpoint_every=500, **common)
t = time.time()
best = train(cfg, features, val, tok, progress=False)
print(f"trained in {time.time()-t:.0f} s; total {time.time()-t_start:.0f} s", flush=True)

# weights back in shards under 16 MB
OUT.mkdir(parents=True, exist_ok=True)
state = torch.load(best, map_location="cpu", weights_only=False)
model = state["model"]
shards, cur, size = [], {}, 0
for k, v in model.items():
    if size + v.numel() * 4 > 14_000_000 and cur:
        shards.append(cur); cur, size = {}, 0
    cur[k] = v.float().contiguous(); size += v.numel() * 4
shards.append(cur)
from safetensors.torch import save_file as save_t
for i, sh in enumerate(shards):
    save_t(sh, str(OUT / f"best-{i}.safetensors"))
meta = {"step": state["step"], "best": state["best"], "config": state["config"], "steps": steps,
        "per_epoch": per_epoch, "ms_per_step": per_step * 1000, "features": len(features)}
(OUT / "meta.json").write_text(json.dumps(meta, indent=1))
shutil.copy(ck / "log.jsonl", OUT / "log.jsonl")
print("done", json.dumps(meta)[:500], flush=True)
