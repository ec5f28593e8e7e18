"""Numpy references of the onnx2snn custom ops: the ground truth for the kernels.

Each function here defines one op of the ``onnx2snn`` domain exactly (operation
order included); the C++ and CUDA kernels in ``custom_ops/`` are tested against
it bit for bit.
"""

from .bipolar.count import bif_count
from .bipolar.reference import bif_neuron
from .integrate_fire.reference import RESET_MODES, if_neuron
from .temporal_separation.reference import ts_neuron

__all__ = ["RESET_MODES", "bif_count", "bif_neuron", "if_neuron", "ts_neuron"]
