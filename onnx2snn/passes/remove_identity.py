"""RemoveIdentityPass: drop Identity and inference-mode Dropout.

Invariant: graph outputs unchanged; no Identity or Dropout is left except an
Identity that itself produces a graph output (its name must survive).
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

from ..core.graph import PassResult, is_graph_output, replace_uses

REMOVABLE = ("Identity", "Dropout")


class RemoveIdentityPass:
    def __call__(self, graph: gs.Graph) -> PassResult:
        count = 0
        for node in list(graph.nodes):
            if node.op not in REMOVABLE or not node.outputs:
                continue
            out, src = node.outputs[0], node.inputs[0]
            if node.op == "Dropout" and len(node.outputs) > 1 and node.outputs[1].outputs:
                continue  # its mask is used: leave it for the support check to report
            if is_graph_output(graph, out):
                if node.op == "Dropout":
                    node.op, node.attrs = "Identity", {}
                    del node.inputs[1:]
                    del node.outputs[1:]
                    count += 1
                continue
            replace_uses(out, src)
            node.outputs.clear()
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)
