"""The neuron kinds that replace the activations of a float ANN, as one description each.

A :class:`NeuronKind` names its op (domain ``onnx2snn``) and the attributes a neuron of a
T-step SNN gets, so that the spiking lowering (:mod:`onnx2snn.snn.spike`), the layer-wise
calibration (which simulates the neuron) and the recipes agree without spelling op names.
The quantized BIF lowering (:mod:`onnx2snn.neurons.bipolar.lowering`) sets levels from each
quantizer instead.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NeuronKind:
    op: str                 # op type in the onnx2snn domain
    signed: bool = False    # emits −θ spikes too (bipolar)
    has_reset: bool = False  # takes the reset attribute (subtract | zero)
    bounded: bool = False   # spike count bounded by levels = T (its rate stays in [0, θ])

    def attributes(self, timesteps: int, reset: str = "subtract") -> dict:
        """The node attributes of this neuron in a T-step SNN."""
        attrs: dict = {"timesteps": int(timesteps)}
        if self.has_reset:
            attrs["reset"] = reset
        if self.bounded:
            attrs["levels"] = int(timesteps)
        return attrs


IF = NeuronKind("IFNeuron", has_reset=True)
BIPOLAR = NeuronKind("BIFNeuron", signed=True, bounded=True)
TEMPORAL = NeuronKind("TSNeuron")
KINDS = {k.op: k for k in (IF, BIPOLAR, TEMPORAL)}


def kind(op_or_kind) -> NeuronKind:
    """The NeuronKind of an op name (or the kind itself)."""
    if isinstance(op_or_kind, NeuronKind):
        return op_or_kind
    if op_or_kind not in KINDS:
        raise ValueError(f"neuron op must be one of {tuple(KINDS)}, got {op_or_kind!r}")
    return KINDS[op_or_kind]
