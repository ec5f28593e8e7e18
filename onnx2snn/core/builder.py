"""Building blocks for graph edits: time-folding views and opset-aware comparisons.

Every helper returns new nodes with fresh names from a :class:`~onnx2snn.core.graph.NameScope`
and never edits the graph itself; the pass that calls it inserts them.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from .graph import NameScope

INT64_MAX = np.iinfo(np.int64).max


def unfold_time_nodes(names: NameScope, prefix: str, x, timesteps: int,
                      features: list) -> tuple[list[gs.Node], gs.Tensor, gs.Tensor]:
    """(nodes, xs, x_shape): nodes viewing x [T·N, C, ...] as xs [T, N, C, ...], and the shape that
    folds a [T, N, C, ...] tensor back (a constant when ``features`` = x's dims after the first are
    static, so shape inference can follow; else computed from Shape(x))."""
    def const(suffix, value):
        return gs.Constant(names.fresh(prefix + suffix), np.asarray(value, np.int64))

    xs = gs.Variable(names.fresh(prefix + "_xs"), dtype=np.float32)
    if all(isinstance(d, int) for d in features):
        target, shape = const("_xs_shape", [timesteps, -1] + list(features)), const("_x_shape", [-1] + list(features))
        nodes = []
    else:
        shape, rest, target = (gs.Variable(names.fresh(prefix + s), dtype=np.int64)
                               for s in ("_x_shape", "_feature_shape", "_xs_shape"))
        nodes = [
            gs.Node("Shape", names.fresh(prefix + "/shape"), inputs=[x], outputs=[shape]),
            gs.Node("Slice", names.fresh(prefix + "/features"), inputs=[shape, const("_one", [1]),
                                                                        const("_end", [INT64_MAX])], outputs=[rest]),
            gs.Node("Concat", names.fresh(prefix + "/time_shape"), attrs={"axis": 0},
                    inputs=[const("_time_major", [timesteps, -1]), rest], outputs=[target]),
        ]
    nodes.append(gs.Node("Reshape", names.fresh(prefix + "/unfold_time"), inputs=[x, target], outputs=[xs]))
    return nodes, xs, shape


def greater_or_equal_nodes(names: NameScope, prefix: str, a, b, out, opset: int) -> list[gs.Node]:
    """out = (a ≥ b), elementwise with broadcasting: GreaterOrEqual (opset ≥ 12) or Greater ∨ Equal."""
    if opset >= 12:
        return [gs.Node("GreaterOrEqual", names.fresh(prefix + "/fire"), inputs=[a, b], outputs=[out])]
    gt, eq = (gs.Variable(names.fresh(prefix + s), dtype=np.bool_) for s in ("_above", "_at"))
    return [gs.Node("Greater", names.fresh(prefix + "/above"), inputs=[a, b], outputs=[gt]),
            gs.Node("Equal", names.fresh(prefix + "/at"), inputs=[a, b], outputs=[eq]),
            gs.Node("Or", names.fresh(prefix + "/fire"), inputs=[gt, eq], outputs=[out])]

