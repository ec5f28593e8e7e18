"""ReLU-like activations: which nodes become neurons, and their upper clip.

Relu is one; Clip(min=0[, max=m]) is one with cap m (m > 0). These are the
nodes the spiking lowering replaces; nothing here edits a graph.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..core.graph import constant_value, import_model, is_empty

RELU_LIKE = ("Relu", "Clip")


def relu_cap(node: gs.Node) -> tuple[bool, float | None, str]:
    """Whether ``node`` is a ReLU-like activation, its upper clip (or None), and why not.

    Relu is one; Clip(min=0[, max=m]) is one with cap m (m > 0). Clip's bounds
    are attributes before opset 11 and constant inputs from opset 11 on.
    """
    if node.op == "Relu":
        return True, None, ""
    if node.op != "Clip":
        return False, None, f"{node.op} is not a ReLU"
    if "min" in node.attrs or "max" in node.attrs:
        lo, hi = node.attrs.get("min", None), node.attrs.get("max", None)
    else:
        ins = list(node.inputs) + [None, None]
        lo_t, hi_t = ins[1], ins[2]
        if not is_empty(lo_t) and constant_value(lo_t) is None:
            return False, None, "Clip with a computed (non-constant) min cannot be converted"
        if not is_empty(hi_t) and constant_value(hi_t) is None:
            return False, None, "Clip with a computed (non-constant) max cannot be converted"
        lo = None if is_empty(lo_t) else float(constant_value(lo_t).reshape(-1)[0])
        hi = None if is_empty(hi_t) else float(constant_value(hi_t).reshape(-1)[0])
    if lo is None or float(lo) != 0.0:
        return False, None, f"Clip with min={lo} is not a ReLU (only Clip(min=0[, max>0]) is)"
    if hi is not None and not np.isfinite(hi):
        hi = None
    if hi is not None and float(hi) <= 0.0:
        return False, None, f"Clip with max={hi} <= 0 outputs only zeros"
    return True, (None if hi is None else float(hi)), ""


def activation_nodes(graph: gs.Graph) -> list[gs.Node]:
    """The ReLU-like nodes that become neurons, in topological order."""
    graph.toposort()
    return [n for n in graph.nodes if n.op in ("Relu", "Clip") and relu_cap(n)[0]]



def activation_names(ann: onnx.ModelProto) -> list[str]:
    """Output tensor names of the ReLU-like nodes (the future neurons), in network order."""
    return [n.outputs[0].name for n in activation_nodes(import_model(ann))]
