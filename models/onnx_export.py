"""Three quantile regressors to one ONNX graph: input ``features`` [N, F], output ``quantiles`` [N, 3]."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import skl2onnx.common.tree_ensemble as _te
from onnx import TensorProto, compose, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

INPUT = "features"
OUTPUT = "quantiles"
OPSET = {"": 17, "ai.onnx.ml": 3}

# skl2onnx 1.20 hands HistGradientBoosting's boolean "missing goes left" flags
# to onnx, which now refuses booleans in an int list; pass them as ints.
_orig_add_node = _te.add_node


def _add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kw: Any) -> Any:
    return _orig_add_node(*args, nodes_missing_value_tracks_true=int(bool(nodes_missing_value_tracks_true)),
                          **kw)


_te.add_node = _add_node


def export(models: list[Any], n_features: int, doc: str) -> onnx.ModelProto:
    parts = []
    for i, m in enumerate(models):
        p = to_onnx(m, initial_types=[(INPUT, FloatTensorType([None, n_features]))],
                    target_opset=OPSET)
        p = compose.add_prefix(p, f"q{i}_", rename_inputs=False)
        parts.append(p)
    nodes, inits, outs = [], [], []
    for p in parts:
        nodes.extend(p.graph.node)
        inits.extend(p.graph.initializer)
        outs.append(p.graph.output[0].name)
    nodes.append(helper.make_node("Concat", outs, [OUTPUT], axis=1, name="concat_quantiles"))
    graph = helper.make_graph(
        nodes, "parkedge_forecaster",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None, len(models)])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(k, v) for k, v in OPSET.items()],
                              producer_name="parkedge-models", doc_string=doc)
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model


def max_abs_diff(model: onnx.ModelProto, models: list[Any], x: np.ndarray) -> float:
    """Largest difference between onnxruntime and scikit-learn on ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT], {INPUT: x.astype(np.float32)})[0]
    ref = np.column_stack([m.predict(x.astype(np.float32)) for m in models])
    return float(np.abs(got - ref).max())
