"""DetectQuantizedActivationsPass: find quantized activations, mark them ReLU-like.

The two patterns exporters write a quantizer (1) in (:mod:`.model`) are found by
:func:`~.chain.match_chain` (a float chain around a Floor/Round) and
:func:`~.qdq.match_qdq` (a QDQ pair); weights in QDQ form are folded first
(:mod:`.qdq_weights`). Each match is then lowered by :meth:`lower`; by default it is
replaced by ``Clip(x, γ·m, γ·L)`` (``Relu``, or ``Identity`` when signed, for
per-channel scales: IF neurons cannot convert it) writing the pattern's output
tensor, so the rest of the pipeline sees a ReLU-like node; the parameters of (1)
are kept in :attr:`quantizers`, keyed by that tensor's name. Round/ties-to-even
(ONNX ``Round``, QuantizeLinear) and round-half-up (β = ½) differ only at exact
ties. A subclass may lower a match otherwise, keeping the weights in QDQ form
(``folds_weights = False``): :class:`onnx2snn.neurons.bipolar.count_lowering.CountQuantizedActivationsPass`.

A quantizer applied directly to a graph input quantizes the analog input: it
is the input encoding, not a neuron, and is left as it is (the SNN feeds the
quantized input; a quantizer maps 0 to 0, so the s-analog encoding is kept).

Invariant: no Floor, Round, QuantizeLinear or DequantizeLinear is left but
those of input encoders (:attr:`encoded`); every quantizer's output tensor is
written by a ReLU-like node that reads the pattern's input. Any
Floor/Round/QuantizeLinear/DequantizeLinear that fits no pattern raises one
:class:`UnsupportedOpError` naming each node and why.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import Builder
from ...core.graph import NameScope, PassResult, node_label
from ...errors import UnsupportedOpError
from .chain import ROUNDING_OPS, match_chain
from .match import NoMatch, QuantizerMatch
from .model import Quantizer
from .qdq import lone_dequantize_offenders, match_qdq
from .qdq_weights import fold_qdq_weights


class DetectQuantizedActivationsPass:
    """Mark quantized activations ReLU-like (see the module docstring); :attr:`quantizers` holds
    their parameters, :attr:`encoded` the outputs of input encoders."""

    folds_weights = True  # fold QDQ weights first, then refuse any DequantizeLinear left

    def __init__(self):
        self.quantizers: dict[str, Quantizer] = {}
        self.encoded: set[str] = set()  # outputs of quantizers applied to graph inputs (kept as ops)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        folded = fold_qdq_weights(graph) if self.folds_weights else 0
        offenders: list[tuple[str, str, str]] = []
        graph.toposort()
        for node in list(graph.nodes):
            if not node.outputs and not node.inputs:
                continue  # already consumed by a rewrite
            try:
                if node.op in ROUNDING_OPS:
                    self._rewrite(graph, match_chain(graph, node), names)
                elif node.op == "QuantizeLinear":
                    self._rewrite(graph, match_qdq(graph, node), names)
            except NoMatch as exc:
                offenders.append((*node_label(node), f"not a supported quantized activation: {exc}"))
        graph.cleanup().toposort()
        if self.folds_weights:
            offenders += lone_dequantize_offenders(graph)
        if offenders:
            raise UnsupportedOpError(offenders)
        return PassResult(graph, len(self.quantizers) + folded)

    def _rewrite(self, graph: gs.Graph, match: QuantizerMatch, names: NameScope) -> None:
        if any(match.x is t for t in graph.inputs):  # the input encoding, not a neuron: kept as it is
            self.encoded.update(t.name for n in match.nodes for t in n.outputs)
            return
        self.lower(graph, match, names)
        self.quantizers[match.out.name] = match.quantizer

    def lower(self, graph: gs.Graph, match: QuantizerMatch, names: NameScope) -> None:
        """Replace the pattern by a ReLU-like marker node reading its input, writing its output."""
        q, x, out = match.quantizer, match.x, match.out
        b = Builder(names)
        name = match.nodes[-1].name or names.fresh("quantized_activation")
        cap = np.float32(np.max(q.gamma) * q.levels)
        floor = np.float32(np.max(q.gamma) * q.lowest)
        if np.asarray(q.gamma).size != 1:
            marker = b.node("Relu" if q.lowest == 0 else "Identity", name + "_quant", [x], [out])
        elif graph.opset < 11:
            marker = b.node("Clip", name + "_quant", [x], [out], {"min": float(floor), "max": float(cap)})
        else:
            marker = b.node("Clip", name + "_quant", [x, b.const(out.name + "_min", floor, np.float32),
                                                      b.const(out.name + "_max", cap, np.float32)], [out])
        for node in match.nodes:
            node.inputs.clear()
            node.outputs.clear()
        graph.nodes.append(marker)
