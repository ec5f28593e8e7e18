"""The one graph-building helper every pass uses: fresh names, constants, variables, nodes,
and the opset-aware building blocks (time-folding views, ``≥``).

A :class:`Builder` names everything it makes ``<prefix><suffix>``, made unique by the
graph's :class:`~onnx2snn.core.graph.NameScope`; it never edits the graph itself: the
pass that calls it inserts the nodes (``graph.nodes += ...``) and rewires uses
(:func:`~onnx2snn.core.graph.replace_uses`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx_graphsurgeon as gs

from .graph import NameScope

INT64_MAX = np.iinfo(np.int64).max


class Builder:
    """Tensors and nodes named ``prefix + suffix`` (fresh in ``names``)."""

    def __init__(self, names: NameScope, prefix: str = ""):
        self.names = names
        self.prefix = prefix

    def scoped(self, prefix: str) -> "Builder":
        """A builder with the same names and another prefix."""
        return Builder(self.names, prefix)

    def name(self, suffix: str) -> str:
        return self.names.fresh(self.prefix + suffix)

    def var(self, suffix: str, dtype=np.float32, shape=None) -> gs.Variable:
        return gs.Variable(self.name(suffix), dtype=dtype, shape=shape)

    def const(self, suffix: str, value, dtype=None) -> gs.Constant:
        return gs.Constant(self.name(suffix), np.asarray(value, dtype))

    def const_node(self, suffix: str, value, dtype=None) -> tuple[gs.Node, gs.Variable]:
        """(a ``Constant`` node named after its output, the output): a constant that stays a node of the
        graph rather than an initializer."""
        value = np.asarray(value, dtype)
        out = gs.Variable(self.name(suffix), dtype=value.dtype)
        return gs.Node("Constant", self.names.fresh(out.name), attrs={"value": gs.Constant("", value)},
                       outputs=[out]), out

    def node(self, op: str, suffix: str, inputs: Sequence, outputs: Sequence, attrs: dict | None = None,
             domain: str | None = None) -> gs.Node:
        node = gs.Node(op, self.name(suffix), attrs=dict(attrs or {}), inputs=list(inputs), outputs=list(outputs))
        if domain is not None:
            node.domain = domain
        return node


def unfold_time_nodes(names: NameScope, prefix: str, x, timesteps: int,
                      features: list) -> tuple[list[gs.Node], gs.Tensor, gs.Tensor]:
    """(nodes, xs, x_shape): nodes viewing x [T·N, C, ...] as xs [T, N, C, ...], and the shape that
    folds a [T, N, C, ...] tensor back (a constant when ``features`` = x's dims after the first are
    static, so shape inference can follow; else computed from Shape(x))."""
    b = Builder(names, prefix)
    xs = b.var("_xs")
    if all(isinstance(d, int) for d in features):
        target = b.const("_xs_shape", [timesteps, -1] + list(features), np.int64)
        shape = b.const("_x_shape", [-1] + list(features), np.int64)
        nodes = []
    else:
        shape, rest, target = (b.var(s, np.int64) for s in ("_x_shape", "_feature_shape", "_xs_shape"))
        nodes = [
            b.node("Shape", "/shape", [x], [shape]),
            b.node("Slice", "/features", [shape, b.const("_one", [1], np.int64), b.const("_end", [INT64_MAX], np.int64)],
                   [rest]),
            b.node("Concat", "/time_shape", [b.const("_time_major", [timesteps, -1], np.int64), rest], [target],
                   {"axis": 0}),
        ]
    nodes.append(b.node("Reshape", "/unfold_time", [x, target], [xs]))
    return nodes, xs, shape


def greater_or_equal_nodes(names: NameScope, prefix: str, a, b, out, opset: int) -> list[gs.Node]:
    """out = (a ≥ b), elementwise with broadcasting: GreaterOrEqual (opset ≥ 12) or Greater ∨ Equal."""
    bld = Builder(names, prefix)
    if opset >= 12:
        return [bld.node("GreaterOrEqual", "/fire", [a, b], [out])]
    gt, eq = (bld.var(s, np.bool_) for s in ("_above", "_at"))
    return [bld.node("Greater", "/above", [a, b], [gt]), bld.node("Equal", "/at", [a, b], [eq]),
            bld.node("Or", "/fire", [gt, eq], [out])]

