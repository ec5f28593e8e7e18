"""FoldConstantsPass: evaluate every subgraph that computes a constant.

Exporters write constant shape arithmetic (Shape/Gather/Unsqueeze/Concat,
Slice/Pad amounts of option-A shortcuts, Constant nodes). Those are computed
once with onnxruntime and stored as initializers; initializers that were also
listed as graph inputs become plain constants.

Invariant: graph outputs are unchanged for every input; afterwards no node has
only constant inputs, and no Constant node is left.
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

from ..core.graph import PassResult, quiet_onnxruntime


class FoldConstantsPass:
    def __call__(self, graph: gs.Graph) -> PassResult:
        before = len(graph.nodes)
        # Initializers listed as graph inputs (old exporters, opset < 9 habits)
        # are constants, not inputs the user feeds.
        graph.inputs = [t for t in graph.inputs if not isinstance(t, gs.Constant)]
        graph.cleanup().toposort()
        with quiet_onnxruntime():
            graph.fold_constants(fold_shapes=True, error_ok=True)
        graph.cleanup().toposort()
        # Constant nodes that fed nothing foldable (e.g. directly a graph op input)
        for node in list(graph.nodes):
            if node.op == "Constant" and len(node.outputs) == 1 and "value" in node.attrs:
                value = node.attrs["value"]
                if isinstance(value, gs.Constant):
                    out = node.outputs[0]
                    const = gs.Constant(out.name, value.values)
                    for consumer in list(out.outputs):
                        for i, t in enumerate(consumer.inputs):
                            if t is out:
                                consumer.inputs[i] = const
                    if any(t is out for t in graph.outputs):
                        continue
                    node.outputs.clear()
        graph.cleanup().toposort()
        return PassResult(graph, before - len(graph.nodes))
