"""SpikeQuantizedPass: replace every quantized activation by a ``BIFNeuron``.

Each ReLU-like node whose output ``a`` has a quantizer (from
:mod:`onnx2snn.passes.quantizers`) a(x) = γ·clip(floor(α·x + β), m, L) becomes

    BIFNeuron(x, θ, v_init = β·θ; timesteps=T, levels=L, min_level=m)      θ = γ (= 1/α)

whose output, summed over the steps, settles to θ·clip(floor((β·θ + Σ_t x_t)/θ),
m, L) = a(Σ_t x_t) (see :mod:`.reference`). When α·γ differs
from 1 by more than 1e-6 (the layer's output step is not its input step), θ =
1/α sets the level boundaries and a Mul by α·γ after the neuron restores the
output step. No calibration is needed: θ, β and L come from the graph.

:func:`exact_timesteps` gives the number of steps after which the summed
output equals the quantized ANN's (in real arithmetic): a neuron whose input
has settled at the end of step t settles within L − m more steps (its count
moves one level per step towards the target and the distance is at most L − m),
so with the whole input in step 0 (s-analog encoding, :mod:`onnx2snn.snn.s_analog`)

    T* = max over paths input → output of Σ (L_k − m_k) over the neurons on the path
       = D·L for a chain of D unsigned quantized layers with L levels each.

Invariant: no ReLU-like node (nor signed quantizer marker) left; every BIFNeuron has a positive finite
threshold of shape [] or [C] and levels ≥ 1. Max pooling of spike-derived
currents (not exact under this scheme) is refused, naming the node.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx_graphsurgeon as gs

from ...core.builder import Builder
from ...core.graph import SNN_DOMAIN, NameScope, PassResult, node_label
from ...errors import ConversionError, UnsupportedOpError
from ...passes.activations import activation_nodes
from ...passes.quantizers import Quantizer

NONLINEAR_POOLS = ("MaxPool", "GlobalMaxPool")


def bif_parameters(q: Quantizer, rank: int | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(θ, v_init or None, gain or None) of the BIF neuron for quantizer ``q`` on a tensor of ``rank``."""
    alpha, gamma = np.asarray(q.alpha, np.float64), np.asarray(q.gamma, np.float64)
    consistent = bool(np.all(np.abs(alpha * gamma - 1.0) <= 1e-6))
    theta = np.asarray(gamma if consistent else 1.0 / alpha, np.float32)
    gain = None if consistent else np.asarray(alpha * gamma, np.float32)
    v0 = None if q.beta == 0 else np.asarray(np.float32(q.beta) * theta, np.float32)
    if theta.ndim == 1 and theta.size > 1 and (v0 is not None or gain is not None):
        if rank is None or rank < 2:
            raise ConversionError("a per-channel quantizer needs the rank of its input; export with shapes")
        shape = [-1] + [1] * (rank - 2)
        v0 = None if v0 is None else v0.reshape(shape)
        gain = None if gain is None else gain.reshape(shape)
    return theta, v0, gain


def neuron_nodes(graph: gs.Graph, quantizers: Mapping[str, Quantizer]) -> list[gs.Node]:
    """The nodes that become BIF neurons: ReLU-like activations and signed quantizer markers."""
    nodes = activation_nodes(graph)
    return nodes + [n for n in graph.nodes if n.outputs and n.outputs[0].name in quantizers
                    and quantizers[n.outputs[0].name].lowest < 0 and n not in nodes]


class SpikeQuantizedPass:
    def __init__(self, quantizers: Mapping[str, Quantizer], timesteps: int):
        self.quantizers = quantizers
        self.timesteps = int(timesteps)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        b = Builder(names)
        nodes = activation_nodes(graph)
        missing = [(*node_label(n), "this activation is not quantized; BIF neurons convert quantized "
                    "activations only: quantize it (e.g. QCFS) or use --neuron if")
                   for n in nodes if n.outputs[0].name not in self.quantizers]
        if missing:
            raise UnsupportedOpError(missing)
        nodes = neuron_nodes(graph, self.quantizers)
        for node in nodes:
            out, x = node.outputs[0], node.inputs[0]
            q = self.quantizers[out.name]
            rank = len(x.shape) if x.shape is not None else None
            theta, v0, gain = bif_parameters(q, rank)
            inputs = [x, b.const(out.name + "_threshold", theta)]
            if v0 is not None:
                inputs.append(b.const(out.name + "_v_init", v0))
            spikes = out if gain is None else b.var(out.name + "_spikes", np.float32)
            neuron = gs.Node("BIFNeuron", node.name or names.fresh("BIFNeuron"), domain=SNN_DOMAIN,
                             attrs={"timesteps": self.timesteps, "levels": int(q.levels),
                                    **({"min_level": int(q.lowest)} if q.lowest else {})},
                             inputs=inputs, outputs=[spikes])
            node.outputs.clear()
            node.inputs.clear()
            graph.nodes.append(neuron)
            if gain is not None:
                graph.nodes.append(b.node("Mul", out.name + "/output_step", inputs=[spikes, b.const(out.name + "_gain", gain)],
                                           outputs=[out]))
        graph.cleanup().toposort()
        check_exact_ops(graph)
        return PassResult(graph, len(nodes))


def _settle_times(graph: gs.Graph) -> tuple[dict[str, int], list[gs.Node]]:
    """Steps after which each tensor has its final total (0: input-only), and max pools on spikes."""
    graph.toposort()
    time: dict[str, int] = {}
    pools = []
    for node in graph.nodes:
        before = max([time.get(t.name, 0) for t in node.inputs] + [0])
        spiking = any(time.get(t.name, 0) > 0 for t in node.inputs)
        if node.op == "BIFNeuron":
            before += int(node.attrs["levels"]) - int(node.attrs.get("min_level", 0))
        elif node.op in NONLINEAR_POOLS and spiking:
            pools.append(node)
        for t in node.outputs:
            time[t.name] = before
    return time, pools


def check_exact_ops(graph: gs.Graph) -> None:
    """Refuse max pooling of spike-derived currents: max(Σ_t x_t) ≠ Σ_t max(x_t)."""
    _, pools = _settle_times(graph)
    if pools:
        raise UnsupportedOpError([(*node_label(n), "max pooling after a quantized layer is not exact with BIF "
                                   "neurons (the max of sums is not the sum of maxima); use average pooling "
                                   "or --neuron if") for n in pools])


def exact_timesteps(graph: gs.Graph) -> int:
    """T*: the step count after which every graph output of a BIF graph has its final value."""
    time, _ = _settle_times(graph)
    return max([time.get(t.name, 0) for t in graph.outputs] + [1])
