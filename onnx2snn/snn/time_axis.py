"""AddTimeAxisPass: fold T time steps into the batch axis (direct encoding).

Every graph input x [N, ...] is tiled to [T·N, ...], time-major (row t·N + n is
step t of sample n), so the analog input is the input current of every step
and all ordinary ops run unchanged on all steps at once: every time-folded
tensor is T blocks stacked along axis 0, block t the ANN's tensor at step t.
A Reshape keeps the memory order, so it keeps that layout when its target's
first entry k is multiplied by T: a constant target that hard-codes a fixed
batch N (a flatten [N, -1], torch's dynamo flatten [1, -1] with allowzero=1, a
Shape(x) computation that constant folding turned into constants, as in the
expansion of DepthToSpace / SpaceToDepth) or merges or splits the batch axis
([1, N·F], [N·F]) gets T·k in its place (0, "copy", and -1 follow by themselves;
no zero is introduced, so ``allowzero`` keeps its meaning). A Resize's constant
``sizes`` hard-code the fixed batch N the same way: its batch entry becomes T·N
(constant scales keep the batch scale 1, which needs nothing). A constant operand of an elementwise op or a Concat that
holds one row per sample of the fixed batch N (passes/check_support.py,
``per_sample_constants``) is tiled T times like the inputs, so row t·N + n still
meets row n. Intermediate shape annotations are dropped (their batch size changed).

Invariant: every input consumer reads the tiled tensor; the graph inputs keep
their names, types and shapes.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult, constant_value, is_graph_output, replace_uses
from ..errors import ConversionError
from ..passes.check_support import (activation_tensors, fixed_batch, per_sample_constants, resize_batch_index,
                                    resize_operands)


class AddTimeAxisPass:
    def __init__(self, timesteps: int):
        self.timesteps = int(timesteps)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        count = 0
        acts, batch = activation_tensors(graph), fixed_batch(graph)
        per_sample = [(node, per_sample_constants(node, acts, batch)) for node in graph.nodes]
        reshapes = [n for n in graph.nodes if n.op == "Reshape" and n.inputs[0].name in acts]
        resizes = [n for n in graph.nodes if n.op == "Resize" and n.inputs and n.inputs[0].name in acts]
        for x in graph.inputs:
            if x.shape is None or len(x.shape) == 0:
                raise ConversionError(f"graph input '{x.name}' has no known rank; export the model with "
                                      "input shapes (e.g. [batch, C, H, W])")
            if not x.outputs:
                continue
            b = Builder(names, x.name)
            repeats = np.array([self.timesteps] + [1] * (len(x.shape) - 1), dtype=np.int64)
            tiled = b.var("_time_tiled", x.dtype)
            tile = b.node("Tile", "_time_tile", inputs=[x, b.const("_time_repeats", repeats)], outputs=[tiled])
            replace_uses(x, tiled, keep=[tile])
            graph.nodes.append(tile)
            count += 1
        for node, constants in per_sample:
            for c in constants:
                graph.nodes.append(self._tile_constant(node, c, names))
                count += 1
        for node in reshapes:
            count += self._fold_reshape(node, Builder(names, node.outputs[0].name))
        for node in resizes:
            count += self._fold_resize_sizes(node, Builder(names, node.outputs[0].name))
        for tensor in graph.tensors().values():
            if isinstance(tensor, gs.Variable) and not any(t is tensor for t in graph.inputs) \
                    and not is_graph_output(graph, tensor):
                tensor.shape = None
        graph.cleanup().toposort()
        return PassResult(graph, count)

    def _tile_constant(self, node: gs.Node, constant: gs.Tensor, names: NameScope) -> gs.Node:
        """The Tile that makes ``node`` read ``constant`` [N, ...] (one row per sample) as [T·N, ...]."""
        b = Builder(names, constant.name)
        rank = constant_value(constant).ndim
        repeats = b.const("_time_repeats", np.array([self.timesteps] + [1] * (rank - 1), dtype=np.int64))
        tiled = b.var("_time_tiled", constant.dtype)
        tile = b.node("Tile", "_time_tile", inputs=[constant, repeats], outputs=[tiled])
        for i, t in enumerate(list(node.inputs)):
            if t is constant:
                node.inputs[i] = tiled
        return tile

    def _fold_reshape(self, node: gs.Node, b: Builder) -> bool:
        """Make a constant Reshape target of a time-folded tensor follow the T blocks: its first
        entry k > 0 becomes T·k (0 and -1 follow by themselves)."""
        shape = constant_value(node.inputs[1])
        if shape is None or shape.ndim != 1 or not shape.size or int(shape[0]) <= 0:
            return False
        new = shape.astype(np.int64).copy()
        new[0] *= self.timesteps
        node.inputs[1] = b.const(node.inputs[1].name + "_timefolded", new)
        return True

    def _fold_resize_sizes(self, node: gs.Node, b: Builder) -> bool:
        """Make a Resize's constant ``sizes`` follow the T blocks: its batch entry k > 0 (the fixed batch,
        check_support) becomes T·k."""
        _, _, sizes = resize_operands(node)
        value = None if sizes is None else constant_value(sizes)
        index = resize_batch_index(node, len(node.inputs[0].shape) if node.inputs[0].shape is not None else None)
        if value is None or value.ndim != 1 or index is None or index < 0 or value.size <= index \
                or int(value[index]) <= 0:
            return False
        new = value.astype(np.int64).copy()
        new[index] *= self.timesteps
        node.inputs[3] = b.const(sizes.name + "_timefolded", new)
        return True
