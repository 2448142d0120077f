"""Rebuild a checkpoint from the device's weight shards and export it with `rag train-reader`'s export."""
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rag.train.export import export
from rag.train.loop import TrainConfig
from rag.train.windows import WindowRates

src, out = Path(sys.argv[1]), Path(sys.argv[2])
meta = json.loads((src / "meta.json").read_text())
model = {}
for f in sorted(src.glob("best-*.safetensors")):
    model.update(load_file(str(f)))
c = meta["config"]
cfg = TrainConfig(
    base_model="sentence-transformers/all-MiniLM-L6-v2", checkpoint_dir=Path("runs/reader-gpu"),
    train_files=("../shared/data/train/squad1-train.json.gz", "../shared/data/train/squad2-train-first10.json.gz"),
    validation_file="../shared/data/squad2-dev-half.json", rates=WindowRates(**c["rates"]), shared_norm=c["shared_norm"],
    init_from="rag/models/reader", max_length=c["max_length"], batch_size=c["batch_size"], lr=c["lr"], max_steps=meta["steps"],
    val_questions=int(sys.argv[3]) if len(sys.argv) > 3 else 300, limit=c.get("limit"),
)
cfg.checkpoint_dir.mkdir(parents=True, exist_ok=True)
ck = cfg.checkpoint_dir / "best.pt"
torch.save({"model": model, "step": meta["step"], "best": meta["best"], "config": cfg.fingerprint()}, ck)
export(ck, cfg, out, weights=sys.argv[4] if len(sys.argv) > 4 else "fp16")
