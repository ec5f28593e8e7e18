"""QDQ weight folding: weights in QDQ form become float initializers.

A DequantizeLinear of a constant, or QuantizeLinear → DequantizeLinear of a
constant, is replaced by the constant (q − z)·s (float32, computed as onnxruntime
does: q = saturate(rint(x / s) + z)), under the DequantizeLinear's output name.

Invariant: only DequantizeLinear nodes with constant inputs and constant
parameters are folded; every reader (graph outputs included) of a folded one reads
the constant; nothing else changes.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...core.graph import constant_value, replace_uses
from .match import NoMatch
from .qdq import qdq_params


def _dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    if scale.size > 1:
        shape[axis % q.ndim] = -1
    s = scale.astype(np.float32).reshape(shape) if scale.size > 1 else scale.astype(np.float32).reshape(())
    z = zp.astype(np.float32).reshape(shape) if zp.size > 1 else zp.astype(np.float32).reshape(())
    return ((q.astype(np.float32) - z) * s).astype(np.float32)


def _quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[axis % x.ndim] = -1
    s = scale.astype(np.float32).reshape(shape) if scale.size > 1 else scale.astype(np.float32).reshape(())
    z = zp.astype(np.int64).reshape(shape) if zp.size > 1 else zp.astype(np.int64).reshape(())
    info = np.iinfo(zp.dtype)
    return np.clip(np.rint(x.astype(np.float32) / s).astype(np.int64) + z, info.min, info.max).astype(zp.dtype)


def _quantized_weight(node: gs.Node) -> np.ndarray | None:
    """The integer value a DequantizeLinear reads: a constant, or a QuantizeLinear of one; else None."""
    source = node.inputs[0]
    value = constant_value(source)
    if value is not None or len(source.inputs) != 1 or source.inputs[0].op != "QuantizeLinear":
        return value
    quant = source.inputs[0]
    x = constant_value(quant.inputs[0])
    if x is None:
        return None
    try:
        qs, qz, qaxis = qdq_params(quant)
    except NoMatch:
        return None
    return _quantize(np.asarray(x), qs, qz, qaxis)


def fold_qdq_weights(graph: gs.Graph) -> int:
    """Fold every weight in QDQ form; returns how many."""
    count = 0
    for node in list(graph.nodes):
        if node.op != "DequantizeLinear":
            continue
        try:
            scale, zp, axis = qdq_params(node)
        except NoMatch:
            continue
        value = _quantized_weight(node)
        if value is None:
            continue
        out = node.outputs[0]
        const = gs.Constant(out.name, _dequantize(np.asarray(value), scale, zp, axis))
        replace_uses(out, const)
        graph.outputs = [const if t is out else t for t in graph.outputs]
        node.outputs.clear()
        node.inputs.clear()
        count += 1
    graph.cleanup()
    return count
