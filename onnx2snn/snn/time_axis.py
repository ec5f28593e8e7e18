"""AddTimeAxisPass: fold T time steps into the batch axis (direct encoding).

Every graph input x [N, ...] is tiled to [T·N, ...], time-major (row t·N + n is
step t of sample n), so the analog input is the input current of every step
and all ordinary ops run unchanged on all steps at once. Reshapes whose
constant target shape hard-codes a fixed batch size N (a flatten [N, -1], or a
Shape(x) computation that constant folding turned into constants, as in the
expansion of DepthToSpace / SpaceToDepth) get 0 ("copy the input's batch
dimension") in its place, so they follow the T·N rows. With ``allowzero=1``
(torch's dynamo exporter) a 0 would be a literal zero: when the target has no
other 0 the attribute changes nothing and is dropped; otherwise the batch entry
becomes T·N itself. Intermediate
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
            if node.op == "Reshape" and self._fold_reshape(node, fixed_batches, b):
                count += 1
        for tensor in graph.tensors().values():
            if isinstance(tensor, gs.Variable) and not any(t is tensor for t in graph.inputs) \
                    and not is_graph_output(graph, tensor):
                tensor.shape = None
        graph.cleanup().toposort()
        return PassResult(graph, count)

    def _fold_reshape(self, node: gs.Node, fixed_batches: set, b: Builder) -> bool:
        """Make a constant Reshape target that hard-codes the fixed batch B follow the T·B rows."""
        shape = constant_value(node.inputs[1])
        if shape is None or shape.ndim != 1 or not shape.size or int(shape[0]) not in fixed_batches:
            return False
        new = shape.astype(np.int64).copy()
        if not node.attrs.get("allowzero", 0):
            new[0] = 0                      # copy the input's (folded) batch
        elif not np.any(new[1:] == 0):
            new[0] = 0                      # no literal zero: allowzero changes nothing, drop it
            node.attrs["allowzero"] = 0
        else:
            new[0] *= self.timesteps        # literal zeros elsewhere: the folded batch T·B itself
        node.inputs[1] = b.const(node.inputs[1].name + "_timefolded", new)
        return True
