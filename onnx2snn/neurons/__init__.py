"""Numpy references of the onnx2snn custom ops: the ground truth for the kernels.

Each function here defines one op of the ``onnx2snn`` domain exactly (operation
order included); the C++ and CUDA kernels in ``custom_ops/`` are tested against
it bit for bit.
"""

from onnx2snn.neurons.bif_count import bif_count
from onnx2snn.neurons.bif_neuron import bif_neuron
from onnx2snn.neurons.if_neuron import RESET_MODES, if_neuron
from onnx2snn.neurons.ts_neuron import ts_neuron

__all__ = ["RESET_MODES", "bif_count", "bif_neuron", "if_neuron", "ts_neuron"]
