"""RemoveIdentityPass: drop Identity and inference-mode Dropout.

Invariant: graph outputs unchanged; no Identity or Dropout is left except an
Identity that itself produces a graph output (its name must survive) and a
Dropout that is not an identity (:func:`dropout_kept_reason`), which the support
check reports.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.graph import PassResult, constant_value, is_empty, is_graph_output, replace_uses

REMOVABLE = ("Identity", "Dropout")


def dropout_kept_reason(graph: gs.Graph, node: gs.Node) -> str:
    """Why the Dropout ``node`` is not an identity that can be dropped ('' if it is): a ratio
    computed at run time (removing the node would leave a dead model input), a training_mode
    that is not a constant false, or a mask output that is read or is a graph output."""
    if len(node.inputs) > 1 and not is_empty(node.inputs[1]) and constant_value(node.inputs[1]) is None:
        return "Dropout with a ratio computed at run time (from a model input); export the model in eval mode"
    if len(node.inputs) > 2 and not is_empty(node.inputs[2]):
        mode = constant_value(node.inputs[2])
        if mode is None:
            return "Dropout with a training_mode computed at run time; export the model in eval mode"
        if np.asarray(mode).size and bool(np.asarray(mode).reshape(-1)[0]):
            return "Dropout in training mode (random); export the model in eval mode"
    if len(node.outputs) > 1 and (node.outputs[1].outputs or is_graph_output(graph, node.outputs[1])):
        return ("Dropout whose mask output is used (or is a graph output) cannot be converted; "
                "export the model without the mask")
    return ""


def _to_identity(node: gs.Node) -> None:
    """Turn ``node`` (a Dropout) into an Identity of its first input, keeping its first output."""
    data, out = node.inputs[0], node.outputs[0]
    node.inputs.clear()  # graphsurgeon's lists detach tensors one by one: no slice deletion
    node.outputs.clear()
    node.op, node.attrs = "Identity", {}
    node.inputs.append(data)
    node.outputs.append(out)


class RemoveIdentityPass:
    def __call__(self, graph: gs.Graph) -> PassResult:
        count = 0
        for node in list(graph.nodes):
            if node.op not in REMOVABLE or not node.outputs or not node.inputs or is_empty(node.inputs[0]):
                continue
            if node.op == "Dropout" and dropout_kept_reason(graph, node):
                continue  # not an identity: left for the support check to report
            out, src = node.outputs[0], node.inputs[0]
            if is_graph_output(graph, out):
                if node.op == "Dropout":
                    _to_identity(node)
                    count += 1
                continue
            replace_uses(out, src)
            node.outputs.clear()
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)
