"""Temporal separation (``--neuron tsep``; SpikeConverter, Liu et al. 2022).

    canonical ANN (MaxPool left after its ReLU)
      ─▶ thresholds as for IF neurons (max | percentile | mse | ltb, per layer or channel; v_init 0 or θ/2)
      ─▶ ReLU → TSNeuron ─▶ time axis ─▶ hoist ─▶ readout (mean over T)

Each ``TSNeuron`` (:mod:`.reference`) integrates its whole
input over the T steps, then fires n = clip(⌊(v_init + Σ_t x_t)/θ⌋, 0, T)
spikes of amplitude θ at the first n steps.

**Guarantee.** With v_init = δ·θ (δ = 0, or ½ for ``--v-init half``), the SNN's
output — the mean over T steps of the non-spiking last layer — equals the ANN
with every ReLU replaced by the T-level quantiser

    q_T(z) = θ/T · clip(⌊T·z/θ + δ⌋, 0, T)

(:class:`.quantize.QuantizeActivationsPass`). By
induction over the layers: the first layer sees the same input at every step;
the ops between two neurons are linear (Conv, Gemm, Add, average pooling, ...),
so they commute with the time sum, and a neuron's input summed over the steps
is T·z, with z the ANN pre-activation computed from the quantised activations
upstream; its count is then clip(⌊(δθ + T·z)/θ⌋, 0, T), so its mean output
θ·n/T is q_T(z). Max pooling of TSNeuron spikes is exact too: every train is a
prefix, and the max of prefix trains of one channel is the train of the
largest count. Max pooling of anything else that varies over the steps is not
(Σ_t max ≠ max Σ_t), so the ReLU→MaxPool order is kept (no move before the
neuron) and other max pools of spike-derived tensors are refused. Equality
holds in real arithmetic; in float32 the outputs agree up to rounding, except
where a pre-activation lies within rounding distance of a level boundary (one
level apart there). ``--threshold mse`` minimises Σ (a − q_T(a))² over the
calibration activations, so it picks the best T-level clip-floor (δ = 0) or
clip-round (δ = ½) quantiser of each layer or channel for this SNN.

**Latency model** (one time step per tick, each layer its own stage). Layer 1
integrates an image during steps [0, T) and fires during [T, 2T); layer k
integrates during the firing phase of layer k−1, [(k−1)·T, k·T), and fires
during [k·T, (k+1)·T); the readout integrates the firing phase of the last
layer. With D spiking layers on the longest input→output path, the first output
comes after **(D + 1)·T steps**. Pipelined — layer k fires image i while it
integrates image i+1 (two potentials per neuron), layer k+1 integrating image
i — a new image enters every T steps: throughput **one image per T steps**.
A skip connection that bypasses layers needs a delay line of T steps per
bypassed layer to meet its phase. Rate coding (``--neuron if``) emits a
running estimate from step 1 (a spike reaches the next layer in the step it is
fired), so its latency is its T; but it needs many more steps for the same
accuracy. The folded model computes all phases in one run; its running-mean
output at t < T averages only the first t steps of the last firing phase,
so only t = T is the tsep result. The temporal recipe records D and the
latency in the SNN's metadata.
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

from ...core.graph import SNN_DOMAIN, node_label
from ...errors import UnsupportedOpError

MAX_POOLS = ("MaxPool", "GlobalMaxPool")


def _is_neuron(node: gs.Node) -> bool:
    return node.op == "TSNeuron" and node.domain == SNN_DOMAIN


def _walk(graph: gs.Graph) -> tuple[dict[str, int], list[gs.Node]]:
    """TSNeurons on the longest path to each tensor, and the max pools that are not exact."""
    graph.toposort()
    depth: dict[str, int] = {}
    inexact = []
    for node in graph.nodes:
        d = max([depth.get(t.name, 0) for t in node.inputs] + [0])
        if node.op in MAX_POOLS and d > 0:
            source = node.inputs[0].inputs[0] if node.inputs[0].inputs else None
            if source is None or not _is_neuron(source):
                inexact.append(node)
        for t in node.outputs:
            depth[t.name] = d + int(_is_neuron(node))
    return depth, inexact


def spiking_depth(graph: gs.Graph) -> int:
    """D: the most TSNeurons on any path from an input to a graph output."""
    depth, _ = _walk(graph)
    return max([depth.get(t.name, 0) for t in graph.outputs] + [0])


def check_exact_pools(graph: gs.Graph) -> None:
    """Refuse max pooling of time-varying tensors other than TSNeuron spikes (not exact, see above)."""
    _, inexact = _walk(graph)
    if inexact:
        raise UnsupportedOpError([(*node_label(n), "max pooling of a spike-derived current is not exact with "
                                   "TSNeuron (the max of sums is not the sum of maxima); pool right after the "
                                   "ReLU (exact in the ANN: max is monotone), use average pooling, or --neuron if")
                                  for n in inexact])


def latency_steps(depth: int, timesteps: int) -> int:
    """Steps from the first input step to the first complete output: (D + 1)·T."""
    return (depth + 1) * timesteps
