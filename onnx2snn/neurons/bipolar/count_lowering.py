"""CountQuantizedActivationsPass: the cumulative form's lowering, a ``BIFCount`` on each quantizer's level.

The ANN's own quantizer ops stay; each quantizer found by
:class:`~onnx2snn.passes.quantizers.DetectQuantizedActivationsPass` is cut at its
integer level τ and the BIF neuron in count form goes there (see
:mod:`.count`, :mod:`onnx2snn.recipes.quantized`)::

    x → [pre ops] → τ → BIFCount(τ; T, L, m) → [post ops] → a

For a QDQ pair the level is QuantizeLinear's integer output q = τ + z: it is
counted as float, τ = float(q) − z, and the count goes back as cast(k + z) to q's
type, so DequantizeLinear reads it as it read q. Weights in QDQ form are left to
the runtime, which dequantizes them as it does for the ANN.

Invariant: every quantizer's level tensor feeds exactly one ``BIFCount`` (through
the Cast/Sub for QDQ) whose count every former reader of the level (graph outputs
included) reads instead, with ``timesteps`` = T, ``levels`` = L, ``min_level`` =
m; no other node changes. :attr:`quantizers` is keyed as for the detection pass.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ...core.builder import Builder
from ...core.graph import SNN_DOMAIN, NameScope, replace_uses
from ...passes.quantizers import DetectQuantizedActivationsPass
from ...passes.quantizers.match import QuantizerMatch


class CountQuantizedActivationsPass(DetectQuantizedActivationsPass):
    """Keep the ANN's quantizer ops and put a ``BIFCount`` of ``timesteps`` steps on each level."""

    folds_weights = False

    def __init__(self, timesteps: int):
        super().__init__()
        self.timesteps = int(timesteps)

    def lower(self, graph: gs.Graph, match: QuantizerMatch, names: NameScope) -> None:
        insert_bif_count(graph, match, self.timesteps, names)


def insert_bif_count(graph: gs.Graph, match: QuantizerMatch, timesteps: int, names: NameScope) -> None:
    """Route ``match``'s level tensor through BIFCount (as float, minus the zero point for QDQ)."""
    level, q, zero, dtype = match.level, match.quantizer, match.zero, match.dtype
    b = Builder(names, level.name)
    nodes, x = [], level
    if dtype is not None:  # integer QuantizeLinear output: count in float, offset by the zero point
        nodes.append(b.node("Cast", "/to_float", [x], [x := b.var("_float")], {"to": onnx.TensorProto.FLOAT}))
        if zero:
            nodes.append(b.node("Sub", "/zero_point", [x, b.const("_zp", zero, np.float32)], [x := b.var("_level")]))
    out = b.var("_count")
    nodes.append(b.node("BIFCount", "/BIFCount", [x], [out], {"timesteps": timesteps, "levels": int(q.levels),
                                                              "min_level": int(q.lowest)}, domain=SNN_DOMAIN))
    if dtype is not None:
        if zero:
            nodes.append(b.node("Add", "/zero_point_back", [out, b.const("_zp_back", zero, np.float32)],
                                [out := b.var("_count_q")]))
        nodes.append(b.node("Cast", "/to_int", [out], [out := b.var("_count_int", np.dtype(dtype))],
                            {"to": onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))}))
    replace_uses(level, out, keep=nodes)  # but the first new node, which reads the level
    graph.outputs = [out if t is level else t for t in graph.outputs]
    graph.nodes.extend(nodes)
