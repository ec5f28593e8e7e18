"""Neuron parameters (θ, v_init) read from a neuron node, shaped to broadcast over one step."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.graph import constant_value, is_empty
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

