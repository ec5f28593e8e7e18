"""Neuron parameters (θ, v_init) read from a neuron node, shaped to broadcast over one step, and the
loop every pass shares that rewrites neuron nodes into standard ops (:class:`NeuronToStandardOps`)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import SNN_DOMAIN, NameScope, PassResult, constant_value, is_empty
from ..core.shapes import tensor_shapes
from ..errors import ConversionError


def broadcast_threshold(theta: np.ndarray, rank: int) -> np.ndarray:
    """θ of shape [], [1] or [C] as an array that broadcasts against [N, C, ...] of ``rank``."""
    theta = np.asarray(theta, np.float32)
    if theta.size == 1 and theta.ndim <= 1:
        return theta.reshape(())
    return theta.reshape([-1] + [1] * (rank - 2))


def neuron_params(node: gs.Node, rank: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(θ broadcastable to one step, v_init or None) of a neuron node (IFNeuron, TSNeuron) with constant
    parameters."""
    where = f"node '{node.name}' ({node.op})"
    theta = constant_value(node.inputs[1])
    if theta is None:
        raise ConversionError(f"{where}: its threshold is computed, not a constant; only the folded form "
                              "can run it")
    if rank is None or rank < 2:
        raise ConversionError(f"{where}: the rank of its input is unknown; export the model with shapes")
    v0 = None
    if len(node.inputs) > 2 and not is_empty(node.inputs[2]):
        v0 = constant_value(node.inputs[2])
        if v0 is None:
            raise ConversionError(f"{where}: its v_init is computed, not a constant")
        v0 = np.asarray(v0, np.float32)
    return broadcast_threshold(theta, rank), v0



class NeuronToStandardOps:
    """Replace every ``op`` node of the onnx2snn domain by the standard-op nodes :meth:`lower` returns,
    writing the neuron's output tensor (subclasses: the portable forms)."""

    op: str

    def __init__(self, timesteps: int):
        self.timesteps = int(timesteps)

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        shapes = tensor_shapes(graph)
        neurons = [n for n in graph.nodes if n.op == self.op and n.domain == SNN_DOMAIN]
        for node in neurons:
            x = node.inputs[0]
            shape = shapes.get(x.name)
            theta, v0 = neuron_params(node, None if shape is None else len(shape))
            timesteps = int(node.attrs.get("timesteps", self.timesteps))
            nodes = self.lower(node, Builder(names, node.outputs[0].name), theta, v0, timesteps, shape,
                               int(graph.opset))
            node.outputs.clear()
            node.inputs.clear()
            graph.nodes += nodes
        graph.cleanup().toposort()
        return PassResult(graph, len(neurons))

    def lower(self, node: gs.Node, b: Builder, theta: np.ndarray, v0: np.ndarray | None, timesteps: int,
              shape: list, opset: int) -> list[gs.Node]:
        """Nodes computing ``node.outputs[0]`` from ``node.inputs[0]`` (of ``shape``) in standard ops."""
        raise NotImplementedError
