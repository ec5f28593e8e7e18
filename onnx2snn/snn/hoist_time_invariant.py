"""HoistTimeInvariantPass: run the time-invariant head of the network once, not T times.

With direct encoding (:mod:`.time_axis`) the input x [N, ...] is tiled to
[T·N, ...]: Tile(x) is T copies of x stacked along axis 0. Every node between
the input and the first stateful node (an IFNeuron) therefore sees the same
rows at every step. For an op f that acts on each row of axis 0 on its own,

    f(Tile(x)) = Tile(f(x))        (bit for bit: each row is computed alone)

so the pass rewrites ``y = f(Tile(x))`` as ``y = Tile(f(x))``: f runs on N rows
instead of T·N, and the Tile moves one node down. Repeated to a fixed point,
every Tile ends right before its first consumer that is not such an op
(IFNeuron, Shape, a Reshape with a computed shape, ...). The tiled tensor keeps
its name, so consumers and graph outputs are untouched.

Which ops qualify is an allow-list (row-wise ops whose attributes do not touch
axis 0, all inputs constant or tiled); anything else stops the hoisting, so an
unknown op costs speed, never correctness.

Invariant: graph outputs bit-exact to the unhoisted graph (onnxruntime computes
each row of Conv/Gemm/MatMul/pools/elementwise ops independently of the batch
size; ``tests/test_hoist_time_invariant.py`` checks it on tiny graphs and the
bundled MNIST CNN).
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult, constant_value
from ..core.shapes import tensor_shapes
from ..passes.check_support import einsum_reason, resize_batch_index, resize_operands

# act on every row of axis 0 independently, whatever their attributes
ROW_WISE = {"Conv", "ConvTranspose", "BatchNormalization", "AveragePool", "GlobalAveragePool",
            "GlobalMaxPool", "LpPool", "GlobalLpPool", "Cast", "Identity", "Add", "Sub", "Mul", "Div",
            "Sum", "Neg", "Abs", "Sqrt", "Exp", "Log", "Relu", "Sigmoid", "Tanh", "LeakyRelu",
            "InstanceNormalization", "LRN", "DepthToSpace", "SpaceToDepth"}
BROADCASTING = {"Add", "Sub", "Mul", "Div", "Sum"}
# row-wise when the activation is the first input and the others are constants
FIRST_INPUT_OPS = {"Gemm", "MatMul", "Gather"}
# row-wise unless an attribute or constant input names axis 0
AXIS_OPS = {"Concat", "Split", "Softmax", "LogSoftmax", "Flatten", "Gather"}
AXES_OPS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "Squeeze", "Unsqueeze", "Slice"}


def _is_time_tile(node: gs.Node, timesteps: int) -> bool:
    if node.op != "Tile" or len(node.inputs) != 2:
        return False
    reps = constant_value(node.inputs[1])
    return reps is not None and reps.ndim == 1 and reps.size >= 1 and int(reps[0]) == timesteps \
        and bool(np.all(reps[1:] == 1))


def _const_axes(node: gs.Node) -> list[int] | None:
    """Axes named by the attribute or the constant 2nd input (None: unknown/all)."""
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    index = 3 if node.op == "Slice" else 1
    if len(node.inputs) > index and node.inputs[index].name:
        value = constant_value(node.inputs[index])
        return None if value is None else [int(a) for a in value.reshape(-1)]
    return None


def _keeps_rows(node: gs.Node, rank: int | None) -> bool:
    """Whether ``node`` maps each row of axis 0 to one row of its output, alone."""
    op = node.op
    if op == "MatMul" and constant_value(node.inputs[0]) is not None:  # C·x[N, ..., K, M]
        c = constant_value(node.inputs[0])
        return constant_value(node.inputs[1]) is None and rank is not None and rank >= 3 \
            and (c.ndim < rank or (c.ndim == rank and c.shape[0] == 1))
    if op == "Einsum":
        act = [i for i, t in enumerate(node.inputs) if constant_value(t) is None]
        ranks = [rank if i in act else constant_value(t).ndim for i, t in enumerate(node.inputs)]
        return len(act) == 1 and not einsum_reason(node, act[0], ranks)
    if op in ("Resize", "Upsample"):
        return _resize_keeps_rows(node, rank)
    if op in FIRST_INPUT_OPS and (constant_value(node.inputs[0]) is not None
                                  or any(constant_value(t) is None for t in node.inputs[1:] if t.name)):
        return False
    if op in ROW_WISE:
        return True
    if op == "MaxPool":
        return len(node.outputs) == 1 or not node.outputs[1].outputs  # indices mix the batch
    if op == "Gemm":
        return not node.attrs.get("transA", 0)
    if op == "MatMul":
        return rank is not None and rank >= 2
    if op == "Transpose":
        perm = node.attrs.get("perm")
        return perm is not None and int(perm[0]) == 0
    if op == "Reshape":
        shape = constant_value(node.inputs[1])
        if shape is None or shape.ndim != 1 or shape.size == 0 or node.attrs.get("allowzero", 0):
            return False
        first, rest = int(shape[0]), [int(s) for s in shape[1:]]
        return first == 0 or (first == -1 and all(s > 0 for s in rest))
    if op == "Pad":
        if "pads" in node.attrs:
            pads = [int(p) for p in node.attrs["pads"]]
        else:
            value = constant_value(node.inputs[1]) if len(node.inputs) > 1 else None
            if value is None or (len(node.inputs) > 3 and node.inputs[3].name):
                return False  # computed pads, or an axes input: leave it
            pads = [int(p) for p in value.reshape(-1)]
        return len(pads) >= 2 and pads[0] == 0 and pads[len(pads) // 2] == 0
    if op in AXIS_OPS:
        axis = int(node.attrs.get("axis", 1 if op in ("Flatten", "Softmax", "LogSoftmax") else 0))
        if op in ("Softmax", "LogSoftmax") and "axis" not in node.attrs:
            return False  # opset-dependent default: leave it
        if rank is not None and axis < 0:
            axis += rank
        if op == "Split" and len(node.inputs) > 1 and node.inputs[1].name \
                and constant_value(node.inputs[1]) is None:
            return False
        return axis >= 1 if op == "Flatten" else axis > 0
    if op in AXES_OPS:
        axes = _const_axes(node)
        if axes is None:
            return False
        if rank is not None:
            axes = [a + rank if a < 0 else a for a in axes]
        if op == "Unsqueeze":
            return 0 not in axes and all(a >= 0 for a in axes)
        if op == "Slice" and len(node.inputs) > 1:
            if any(len(node.inputs) > i and node.inputs[i].name and constant_value(node.inputs[i]) is None
                   for i in range(1, len(node.inputs))):
                return False
            if len(node.inputs) <= 3 or not node.inputs[3].name:
                return False  # no axes: starts apply from axis 0
        return all(a > 0 for a in axes)
    return False


class HoistTimeInvariantPass:
    """Move each time Tile (repeats [T, 1, ...]) down past the row-wise ops it feeds."""

    def __init__(self, timesteps: int):
        self.timesteps = int(timesteps)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        b = Builder(names)
        ranks = {name: len(shape) for name, shape in tensor_shapes(graph).items()}
        untiled: dict[int, gs.Tensor] = {}  # id(tiled tensor) -> the tensor it tiles
        for node in graph.nodes:
            if _is_time_tile(node, self.timesteps):
                untiled[id(node.outputs[0])] = node.inputs[0]
        count = 0
        work = [c for t in graph.tensors().values() if id(t) in untiled for c in t.outputs]
        while work:
            node = work.pop()
            if not node.outputs or _is_time_tile(node, self.timesteps) or (node.domain or "") not in ("", "ai.onnx"):
                continue
            acts = [t for t in node.inputs if t.name and constant_value(t) is None]
            if not acts or any(id(t) not in untiled for t in acts):
                continue  # some input is computed from the T·N rows (or is no activation at all)
            rank = ranks.get(acts[0].name)
            out_ranks = [ranks.get(o.name) for o in node.outputs]
            consts = [t for t in node.inputs if t.name and constant_value(t) is not None]
            if None in out_ranks or not _keeps_rows(node, rank) \
                    or (node.op == "Concat" and consts) or (node.op in BROADCASTING and any(_batch_shaped(t, rank) for t in consts)):
                continue
            for i, t in enumerate(list(node.inputs)):
                if id(t) in untiled:
                    node.inputs[i] = untiled[id(t)]
            for i, (out, rank_out) in enumerate(zip(list(node.outputs), out_ranks)):
                inner = b.var(out.name + "_once", out.dtype)
                node.outputs[i] = inner
                reps = np.array([self.timesteps] + [1] * (rank_out - 1), np.int64)
                graph.nodes.append(b.node("Tile", out.name + "_time_tile", inputs=[inner, b.const(out.name + "_time_repeats", reps)], outputs=[out]))
                untiled[id(out)] = inner
                work.extend(out.outputs)
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)


def _resize_keeps_rows(node: gs.Node, rank: int | None) -> bool:
    """A Resize/Upsample with constant scales whose batch scale is 1 (or whose ``axes`` leave the batch
    out); constant sizes name the batch (T·N once folded) and stay after the Tile."""
    roi, scales, sizes = resize_operands(node)
    if any(t is not None and not isinstance(t, np.ndarray) and constant_value(t) is None for t in (roi, scales, sizes)):
        return False
    index = resize_batch_index(node, rank)
    if index is None:
        return True
    if index < 0 or (sizes is not None and constant_value(sizes).size):
        return False
    value = scales if isinstance(scales, np.ndarray) else (None if scales is None else constant_value(scales))
    return value is not None and value.size > index and float(value.reshape(-1)[index]) == 1.0


def _batch_shaped(tensor, rank: int | None) -> bool:
    """A constant operand that has a non-trivial axis 0 in the activation's rank."""
    value = constant_value(tensor)
    return value is not None and rank is not None and value.ndim == rank and value.shape[0] > 1
