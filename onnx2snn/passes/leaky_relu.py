"""LeakyReluPass: LeakyRelu and PRelu as two ReLU populations.

    LeakyRelu(x; α) = Relu(x) − α·Relu(−x)        PRelu(x, s) = Relu(x) − s·Relu(−x)

Each node becomes ``Sub(Relu(x), Mul(Relu(Mul(x, −1)), s))`` writing the node's own output
tensor (a graph output keeps its name): two ReLU nodes, one on x and one on −x, which the
spiking lowering turns into two neuron populations, each with its own threshold (per channel
with ``--channel-wise``) and its own layer-wise calibration; their outputs are combined with
the weights 1 and −s. PRelu's slope s stays the Mul's constant operand, broadcast to x as ONNX
PRelu broadcasts it (a scalar, per channel [C, 1, 1], or a full [C, H, W]), so per-channel
slopes weight the negative population channel by channel. α = 0 (or an all-zero slope) leaves
the one Relu.

The rewrite is exact in float before any spiking: for x ≥ 0 the second ReLU is 0 and
x − s·0 = x; for x < 0 the first is 0, −x is exact and 0 − s·(−x) = s·x (rounding is symmetric
under negation). The spiking error is that of the two ReLU populations.

A MaxPool that alone reads the output is moved before the activation (as :mod:`.move_maxpool`
does for a ReLU) when every slope is ≥ 0 and the slope is the same along the pooled axes: f is
then monotone on each pooled window, so max∘f = f∘max exactly, and the neurons see the pooled
current rather than a max of spike-train differences (which no neuron kind pools exactly, so
the move is made for ``--neuron tsep`` too: there it is exact when the pooled current does not
vary over the steps, and refused by the temporal recipe otherwise).

Refused (left in place and listed in :attr:`refused`; canonicalize gives the support check's
error for such a node this reason): a PRelu whose slope is no constant (computed from
activations, or a model input), a slope that does not broadcast to x, and an activation whose
output is quantized (a QCFS- or QDQ-style quantized LeakyReLU, signed levels: out of scope).

Invariant: graph outputs equal before and after (float rounding only); no LeakyRelu or PRelu
is left but those named in :attr:`refused`; each rewritten node's output tensor keeps its name
and every tensor or node the pass adds has a fresh name.
"""
from __future__ import annotations

from typing import Collection

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult, constant_value, is_graph_output, node_label

OPS = ("LeakyRelu", "PRelu")
POOLS = ("MaxPool", "GlobalMaxPool")


def _dtype(tensor, default=np.float32) -> np.dtype:
    try:
        return np.dtype(tensor.dtype) if getattr(tensor, "dtype", None) is not None else np.dtype(default)
    except TypeError:
        return np.dtype(default)


def _rank(tensor) -> int | None:
    shape = getattr(tensor, "shape", None)
    return None if shape is None else len(shape)


def _broadcasts_to(slope: np.ndarray, shape) -> bool:
    """Whether ``slope`` broadcasts unidirectionally to ``shape`` (None or symbolic dims: assumed)."""
    if shape is None:
        return True
    if slope.ndim > len(shape):
        return False
    for s, d in zip(reversed(slope.shape), reversed(list(shape))):
        if s != 1 and isinstance(d, int) and d >= 0 and s != d:
            return False
    return True


def _constant_along_pooled_axes(slope: np.ndarray, rank: int | None) -> bool:
    """Whether ``slope`` (aligned to x's rank) is one value along every axis ≥ 2 (what pooling spans)."""
    if slope.size == 1:
        return True
    if rank is None:
        return False
    aligned = slope.reshape((1,) * (rank - slope.ndim) + slope.shape)
    return all(aligned.shape[k] == 1 for k in range(2, rank))


def analyse(graph: gs.Graph, node: gs.Node, quantized: Collection[str] = ()) -> tuple[np.ndarray | None, str]:
    """(the slope s of LeakyRelu/PRelu ``node`` as an array, '') or (None, why it cannot convert);
    ``quantized``: the output tensors of quantized-activation markers."""
    x, y = node.inputs[0], node.outputs[0]
    markers = [c for c in y.outputs if c.outputs and c.outputs[0].name in set(quantized)]
    if markers:
        return None, (f"{node.op} whose output is quantized (the quantizer writing "
                      f"'{markers[0].outputs[0].name}'): a quantized LeakyReLU/PReLU (QCFS-style, signed "
                      "levels) is out of scope; the float one converts (two ReLU neuron populations), so drop "
                      "the quantizer after it or quantize a ReLU instead")
    if graph.opset < 7:
        return None, f"{node.op} in opset {graph.opset}: export the model with opset 7 or later"
    if node.op == "LeakyRelu":
        return np.asarray(node.attrs.get("alpha", 0.01), _dtype(x)), ""
    if len(node.inputs) < 2:
        return None, "PRelu without a slope input (the model is malformed)"
    slope = constant_value(node.inputs[1])
    if slope is None:
        return None, (f"PRelu whose slope '{node.inputs[1].name}' is not a constant (computed from "
                      "activations or fed as a model input) cannot be converted: only a constant (learned) "
                      "slope gives a fixed weight for the negative neuron population")
    if not _broadcasts_to(slope, x.shape):
        return None, (f"PRelu slope of shape {list(slope.shape)} does not broadcast to its input of shape "
                      f"{list(x.shape)} (the model is malformed)")
    return slope, ""


class LeakyReluPass:
    """Rewrite LeakyRelu / PRelu as two Relu populations (see the module docstring).

    ``quantized``: output tensors of quantized-activation markers (passes/quantizers): an
    activation feeding one is refused. After the call, :attr:`refused` lists ``(node name, op
    type, reason)`` for each node left in place, as :class:`~onnx2snn.errors.UnsupportedOpError` takes them."""

    def __init__(self, quantized: Collection[str] = ()):
        self.quantized = set(quantized)
        self.refused: list[tuple[str, str, str]] = []

    def __call__(self, graph: gs.Graph) -> PassResult:
        found = [n for n in graph.nodes if n.op in OPS and n.domain in ("", "ai.onnx", None)]
        if not found:
            return PassResult(graph, 0)  # the graph as it was, order included
        names = NameScope(graph)
        count = 0
        for node in found:
            slope, reason = analyse(graph, node, self.quantized)
            if reason:
                self.refused.append((*node_label(node), reason))
                continue
            self._rewrite(graph, node, slope, Builder(names, node.name or node.outputs[0].name))
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)

    def _rewrite(self, graph: gs.Graph, node: gs.Node, slope: np.ndarray, b: Builder) -> None:
        x, y = node.inputs[0], node.outputs[0]
        dtype = _dtype(x, slope.dtype)
        node.inputs.clear()
        node.outputs.clear()
        pool = self._pool_after(graph, y, slope, _rank(x))
        if pool is not None:  # MaxPool(f(x)) = f(MaxPool(x)): pool first, then f writes the pool's output
            out = pool.outputs[0]
            pooled = b.var("/pooled", dtype)
            pool.inputs[0] = x
            pool.outputs[0] = pooled
            x, y = pooled, out
        if not np.any(slope):  # f = Relu
            graph.nodes.append(b.node("Relu", "/relu", [x], [y]))
            return
        shape = x.shape if pool is None else None
        positive, negated, negative, weighted = (b.var(s, dtype, shape) for s in
                                                 ("/positive", "/negated", "/negative", "/negative_weighted"))
        graph.nodes += [
            b.node("Relu", "/relu_positive", [x], [positive]),
            b.node("Mul", "/negate", [x, b.const("/minus_one", -1.0, dtype)], [negated]),
            b.node("Relu", "/relu_negative", [negated], [negative]),
            b.node("Mul", "/weigh_negative", [negative, b.const("/slope", slope, slope.dtype)], [weighted]),
            b.node("Sub", "/combine", [positive, weighted], [y]),
        ]

    def _pool_after(self, graph: gs.Graph, y, slope: np.ndarray, rank: int | None) -> gs.Node | None:
        """The MaxPool that alone reads ``y`` and commutes with f (slopes ≥ 0, constant where it pools)."""
        if is_graph_output(graph, y) or len(y.outputs) != 1:
            return None
        pool = y.outputs[0]
        if pool.op not in POOLS or pool.inputs[0] is not y:
            return None
        if len(pool.outputs) > 1 and (pool.outputs[1].outputs or is_graph_output(graph, pool.outputs[1])):
            return None  # its indices are used: leave it (the support check reports it)
        if np.any(slope < 0) or not _constant_along_pooled_axes(np.asarray(slope), rank):
            return None
        return pool
