"""Matcher of QDQ pairs on activations.

``[Relu →] QuantizeLinear(s, z) → DequantizeLinear(s, z)`` computes
s·clip(round(x/s), qmin − z, qmax − z): the quantizer (1) of :mod:`.model` with
α = 1/s, β = ½, γ = s, L = qmax − z, m = qmin − z (0 behind a Relu; m < 0 when the
zero point lies inside the range, e.g. before a residual Add or on the logits of
an onnxruntime-quantized model). Scales may be per channel (axis 1). A zero
point outside [qmin, qmax − 1] is refused.

Invariant: :func:`match_qdq` returns the pair (and its Relu) only when both nodes
use the same constant scale and integer zero point, else raises
:class:`~.match.NoMatch` naming why; :func:`lone_dequantize_offenders` names
every DequantizeLinear not fed by a QuantizeLinear. Neither edits the graph.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...core.graph import constant_value, is_empty, node_label
from .match import NoMatch, QuantizerMatch, single_consumer
from .model import Quantizer

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def qdq_params(node: gs.Node) -> tuple[np.ndarray, np.ndarray, int]:
    """(scale, zero point, axis) of a QuantizeLinear/DequantizeLinear with constant parameters."""
    scale = constant_value(node.inputs[1])
    zp = constant_value(node.inputs[2]) if len(node.inputs) > 2 and not is_empty(node.inputs[2]) else None
    if scale is None or (zp is None and len(node.inputs) > 2 and not is_empty(node.inputs[2])):
        raise NoMatch("its scale or zero point is computed, not a constant")
    if zp is None:
        zp = np.zeros(np.shape(scale), np.uint8)
    return np.asarray(scale), np.asarray(zp), int(node.attrs.get("axis", 1))


def _pair_params(graph: gs.Graph, quant: gs.Node) -> tuple[gs.Node, np.ndarray, np.ndarray, int]:
    """(the DequantizeLinear, scale, zero point, axis) of the pair starting at ``quant``."""
    dequant = single_consumer(quant.outputs[0], graph)
    if dequant is None or dequant.op != "DequantizeLinear":
        raise NoMatch("its output must feed exactly one DequantizeLinear (integer activations have "
                      "no spiking equivalent)")
    s, z, axis = qdq_params(quant)
    s2, z2, axis2 = qdq_params(dequant)
    if s.shape != s2.shape or not np.array_equal(s, s2) or not np.array_equal(z, z2) or \
            (s.size > 1 and axis != axis2):
        raise NoMatch(f"DequantizeLinear '{dequant.name}' uses another scale or zero point")
    if z.dtype.kind not in "iu":
        raise NoMatch(f"zero point of type {z.dtype} is not an integer type")
    if np.any(z != z.reshape(-1)[0]):
        raise NoMatch("per-channel zero points differ (the number of levels must be one per layer)")
    return dequant, s, z, axis


def match_qdq(graph: gs.Graph, quant: gs.Node) -> QuantizerMatch:
    """The QDQ pair starting at the QuantizeLinear ``quant``."""
    dequant, s, z, axis = _pair_params(graph, quant)
    x = quant.inputs[0]
    rank = len(x.shape) if x.shape is not None else None
    if s.size > 1 and (rank is None or axis % rank != 1):
        raise NoMatch(f"per-axis scale along axis {axis}; only per-channel scales (axis 1) convert")
    if np.any(s <= 0):
        raise NoMatch("its scale is not positive")
    info = np.iinfo(z.dtype)
    zero = int(z.reshape(-1)[0])
    lo, hi = info.min - zero, info.max - zero
    pre = []
    relu = x.inputs[0] if len(x.inputs) == 1 else None
    if relu is not None and relu.op == "Relu" and single_consumer(x, graph) is quant:
        pre, x = [relu], relu.inputs[0]
    if lo > 0 or hi < 1:
        raise NoMatch(f"zero point {zero} ({z.dtype}) gives the level range [{lo}, {hi}], which must "
                      "include 0 and a positive level")
    scale = np.asarray(s, np.float64).reshape(-1) if s.size > 1 else np.asarray(float(s.reshape(-1)[0]))
    quantizer = Quantizer(int(hi), 1.0 / scale, 0.5, scale, "qdq", "round", 0 if pre else int(lo))
    return QuantizerMatch(pre + [quant, dequant], x, dequant.outputs[0], quant.outputs[0], quantizer,
                          zero=zero, dtype=z.dtype)


def lone_dequantize_offenders(graph: gs.Graph) -> list[tuple[str, str, str]]:
    """Every DequantizeLinear of an activation without its QuantizeLinear (once weights are folded)."""
    offenders = []
    for node in graph.nodes:
        source = node.inputs[0].inputs[0] if node.inputs and len(node.inputs[0].inputs) else None
        if node.op == "DequantizeLinear" and (source is None or source.op != "QuantizeLinear"):
            offenders.append((*node_label(node), "DequantizeLinear of an activation without its "
                              "QuantizeLinear (integer tensors have no spiking equivalent)"))
    return offenders
