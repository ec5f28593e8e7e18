"""Quantized activations: their model and the pass that finds them.

:mod:`.model` (the :class:`Quantizer` and its JSON), :mod:`.chain` (the float
quantizer chain matcher), :mod:`.qdq` (the QDQ pair matcher), :mod:`.qdq_weights`
(QDQ weight folding), :mod:`.detect` (:class:`DetectQuantizedActivationsPass`,
which runs them and marks each quantized activation ReLU-like). The cumulative
form's lowering, a ``BIFCount`` on each quantizer's level, is the bipolar neuron's:
:mod:`onnx2snn.neurons.bipolar.count_lowering`.

Invariant: each module only imports those listed before it (and ``core``); this
package imports nothing from ``neurons``.
"""
from .chain import CHAIN_OPS, ROUNDING_OPS, match_chain
from .detect import DetectQuantizedActivationsPass
from .match import NoMatch, QuantizerMatch
from .model import Quantizer, quantizers_from_metadata, quantizers_to_json
from .qdq import QDQ_OPS, match_qdq
from .qdq_weights import fold_qdq_weights

__all__ = ["Quantizer", "quantizers_from_metadata", "quantizers_to_json", "NoMatch", "QuantizerMatch", "CHAIN_OPS",
           "ROUNDING_OPS", "match_chain", "QDQ_OPS", "match_qdq", "fold_qdq_weights", "DetectQuantizedActivationsPass"]
