"""AddTimeAxisPass: fold T time steps into the batch axis (direct encoding).

Every graph input x [N, ...] is tiled to [T·N, ...], time-major (row t·N + n is
step t of sample n), so the analog input is the input current of every step
and all ordinary ops run unchanged on all steps at once. Reshapes whose
constant target shape hard-codes a fixed batch size N get 0 ("copy the input's
batch dimension") in its place, so they follow the T·N rows. Intermediate
shape annotations are dropped (their batch size changed).

Invariant: every input consumer reads the tiled tensor; the graph inputs keep
their names, types and shapes.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult, constant_value, is_graph_output, replace_uses
from ..errors import ConversionError


class AddTimeAxisPass:
    def __init__(self, timesteps: int):
        self.timesteps = int(timesteps)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        count = 0
        fixed_batches = set()
        for x in graph.inputs:
            if x.shape is None or len(x.shape) == 0:
                raise ConversionError(f"graph input '{x.name}' has no known rank; export the model with "
                                      "input shapes (e.g. [batch, C, H, W])")
            if isinstance(x.shape[0], int) and x.shape[0] > 0:
                fixed_batches.add(int(x.shape[0]))
            if not x.outputs:
                continue
            b = Builder(names, x.name)
            repeats = np.array([self.timesteps] + [1] * (len(x.shape) - 1), dtype=np.int64)
            tiled = b.var("_time_tiled", x.dtype)
            tile = b.node("Tile", "_time_tile", inputs=[x, b.const("_time_repeats", repeats)], outputs=[tiled])
            replace_uses(x, tiled, keep=[tile])
            graph.nodes.append(tile)
            count += 1
        for node in graph.nodes:
            if node.op != "Reshape" or node.attrs.get("allowzero", 0):
                continue
            shape = constant_value(node.inputs[1])
            if shape is not None and shape.size and int(shape[0]) in fixed_batches:
                new = shape.astype(np.int64).copy()
                new[0] = 0
                node.inputs[1] = b.const(node.inputs[1].name + "_timefolded", new)
                count += 1
        for tensor in graph.tensors().values():
            if isinstance(tensor, gs.Variable) and not any(t is tensor for t in graph.inputs) \
                    and not is_graph_output(graph, tensor):
                tensor.shape = None
        graph.cleanup().toposort()
        return PassResult(graph, count)
