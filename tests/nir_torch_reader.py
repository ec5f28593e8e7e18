"""The independent NIR reader of the tests: NIR's own PyTorch interpreter (``nirtorch.nir_to_torch``)
with snnTorch's ``Leaky`` neuron for NIR's ``IF``.

nirtorch builds the torch graph: module order, the sum of a node's inputs, the back edge (it
feeds the previous step's output of its source, 0 at the first step) and the state between
calls; its default maps give Conv2d, AvgPool2d and Flatten. What is given here, per NIR's
definitions:

* ``IF`` → ``snntorch.Leaky(beta=1, threshold=v_threshold, reset_mechanism="zero")``: NIR's IF
  has no leak (β = 1) and resets to ``v_reset`` = 0. (``snntorch.import_nir.import_from_nir`` reads
  IF as ``Leaky(beta=0.9)`` with reset by subtraction, a leaky neuron, and its ``Leaky`` is not
  seen as stateful by nirtorch 2.6, so that graph does not run; see docs/nir.md.)
* ``I`` (v ← v + r·x), ``Threshold`` (x > θ), ``Scale`` (x·s): one line each, NIR's equations.
* ``Affine``: a ``torch.nn.Linear`` with NIR's weight and bias (nirtorch 2.6's default map writes the
  bias to ``weight.bias``, so the layer would keep its random bias).

``nir.read`` returns integer fields (stride, padding, ...) as numpy arrays, which torch's
convolution refuses; :func:`python_ints` turns them into ints. nirtorch's Flatten keeps NIR's
``start_dim = 0`` literally, which in torch is the batch axis: the graph runs one sample at a time.

Invariant: the graph's semantics are NIR's (no onnx2snn code runs the graph).
"""
from __future__ import annotations

import numpy as np
import torch

import nir
import nirtorch
import snntorch


class Integrator(torch.nn.Module):
    def __init__(self, node):
        super().__init__()
        self.r = torch.from_numpy(np.asarray(node.r, np.float32))

    def forward(self, x, state=None):
        v = (torch.zeros_like(x) if state is None else state) + self.r * x
        return v, v


class Counting(torch.nn.Module):
    """A spiking module that adds up its spikes in ``total`` (reset by :func:`run` for every sample)."""

    total = 0

    def count(self, spikes):
        self.total = self.total + spikes.numpy()
        return spikes


class Threshold(Counting):
    def __init__(self, node):
        super().__init__()
        self.threshold = torch.from_numpy(np.asarray(node.threshold, np.float32))

    def forward(self, x):
        return self.count((x > self.threshold).float())


class Scale(torch.nn.Module):
    def __init__(self, node):
        super().__init__()
        self.scale = torch.from_numpy(np.asarray(node.scale, np.float32))

    def forward(self, x):
        return x * self.scale


class LeakyIF(Counting):
    """snnTorch's Leaky with NIR's IF parameters; ``state`` is its membrane potential."""

    def __init__(self, node):
        super().__init__()
        if np.any(np.asarray(node.v_reset) != 0) or np.any(np.asarray(node.r) != 1):
            raise ValueError("this reader maps IF with r = 1 and v_reset = 0 only")
        self.leaky = snntorch.Leaky(beta=1.0, threshold=torch.from_numpy(np.asarray(node.v_threshold, np.float32)),
                                    reset_mechanism="zero", reset_delay=False)

    def forward(self, x, state=None):
        spikes, v = self.leaky(x, torch.zeros_like(x) if state is None else state)
        return self.count(spikes), v


def affine(node) -> torch.nn.Linear:
    layer = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0])
    layer.weight.data = torch.from_numpy(np.asarray(node.weight, np.float32))
    layer.bias.data = torch.from_numpy(np.asarray(node.bias, np.float32))
    return layer


NODE_MAP = {nir.I: Integrator, nir.Threshold: Threshold, nir.Scale: Scale, nir.IF: LeakyIF, nir.Affine: affine}


def python_ints(graph) -> None:
    for node in graph.nodes.values():
        for name in ("stride", "padding", "dilation", "kernel_size"):
            value = getattr(node, name, None)
            if value is not None and not isinstance(value, str):
                setattr(node, name, tuple(int(a) for a in np.asarray(value).reshape(-1)))
        if hasattr(node, "groups"):
            node.groups = int(node.groups)


def run(graph, x: np.ndarray, timesteps: int, spiking: list[str]) -> tuple[np.ndarray, dict]:
    """(output at every step [T, N, K], {spiking node: spikes summed over T [N, ...]}), one sample at a time."""
    python_ints(graph)
    net = nirtorch.nir_to_torch(graph, NODE_MAP)
    outputs, counts = [], {name: [] for name in spiking}
    with torch.no_grad():
        for sample in x:
            for name in spiking:
                getattr(net, name).total = 0
            state, ys = None, []
            for _ in range(timesteps):
                y, state = net(torch.from_numpy(sample[None]), state)
                ys.append(y.numpy().reshape(-1))
            outputs.append(np.stack(ys))
            for name in spiking:
                counts[name].append(np.asarray(getattr(net, name).total).reshape(-1))
    return np.stack(outputs, axis=1), {k: np.stack(v) for k, v in counts.items()}
