"""Start training from a shipped reader model: its ONNX weights read back into the network's parameters.

``torch.onnx.export`` keeps the names of the parameters it stores as they are (biases, LayerNorm, embeddings)
but stores each linear layer's weight transposed under a generated name (``onnx::MatMul_795``). The weight
is found through the graph: the MatMul that multiplies by it feeds the Add of that layer's named bias. A
16-bit weight (``<name>__fp16`` behind a Cast) is read back as fp32. The frozen word-embedding table is not
in a shipped model and is not returned (the network takes it from the base model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREFIX = "inner."  # the export's wrapper module


def state_from_model_dir(model_dir: Path) -> dict[str, Any]:
    """The trained parameters of the model in ``model_dir`` (``reader.onnx``) as a ReaderNet state dict."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    from rag.reader.learned_model import MODEL_FILE
    from rag.train.loop import CheckpointError

    path = Path(model_dir) / MODEL_FILE
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - any unreadable model is one clear error
        raise CheckpointError(f"{path} cannot be read as a reader model ({exc.__class__.__name__}).") from None
    values: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            continue  # the embedding table, not shipped
        values[init.name] = numpy_helper.to_array(init).astype(np.float32)
    cast_of = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast"}

    def value(name: str) -> np.ndarray | None:
        return values.get(cast_of.get(name, name))

    def torch_name(name: str) -> str:
        name = cast_of.get(name, name).removesuffix("__fp16")
        return name.removeprefix(PREFIX)

    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    state: dict[str, Any] = {}
    for n in graph.node:
        if n.op_type == "MatMul" and (w := value(n.input[1])) is not None:
            adds = [c for c in consumers.get(n.output[0], []) if c.op_type == "Add"]
            bias = next((i for c in adds for i in c.input if i != n.output[0] and value(i) is not None), None)
            if bias is None or not torch_name(bias).endswith(".bias"):
                raise CheckpointError(f"{path}: a linear layer without a named bias ({n.name}); not a reader model?")
            state[torch_name(bias)[: -len("bias")] + "weight"] = torch.from_numpy(w.T.copy())
        elif n.op_type == "Gemm" and (w := value(n.input[1])) is not None:
            trans = next((a.i for a in n.attribute if a.name == "transB"), 0)
            bias = torch_name(n.input[2])
            state[bias[: -len("bias")] + "weight"] = torch.from_numpy((w if trans else w.T).copy())
    for name, arr in values.items():
        tname = torch_name(name)
        if not name.startswith("onnx::") and tname not in state and arr.ndim >= 1:
            state[tname] = torch.from_numpy(arr.copy())
    return state
