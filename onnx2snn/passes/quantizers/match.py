"""What a matcher finds: one quantized activation's nodes, its tensors and its :class:`Quantizer`.

Invariant: a :class:`QuantizerMatch` only describes the graph (no matcher edits
it); ``nodes`` run from ``x`` to ``out`` in order, every intermediate tensor has
that one consumer, and ``level`` (the integer level τ, before any post-scaling) is
written by one of them. A pattern that does not fit raises :class:`NoMatch` with
the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from ...core.graph import is_graph_output
from .model import Quantizer


class NoMatch(Exception):
    """The nodes around a Floor/Round/QuantizeLinear do not form a supported pattern."""


@dataclass
class QuantizerMatch:
    nodes: list[gs.Node]     # the pattern, from its input to its output
    x: gs.Tensor             # the pattern's input (the pre-activation)
    out: gs.Variable         # the pattern's output (the activation)
    level: gs.Variable       # the integer level τ: the rounding's output (QuantizeLinear's for QDQ)
    quantizer: Quantizer
    zero: int = 0            # QDQ: the zero point (level = τ + zero, of an integer type)
    dtype: np.dtype | None = None  # QDQ: the integer type of ``level``; None for a float level


def single_consumer(tensor, graph: gs.Graph) -> gs.Node | None:
    """The one node reading ``tensor``, None when it has several readers or is a graph output."""
    if len(tensor.outputs) != 1 or is_graph_output(graph, tensor):
        return None
    return tensor.outputs[0]
