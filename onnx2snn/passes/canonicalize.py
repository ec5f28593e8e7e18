"""canonicalize: the ANN every recipe starts from (``onnx2snn.prepare``).

    fold constants → drop Identity/Dropout → quantized activations marked
    → fold BatchNorm → LeakyRelu/PRelu as two ReLUs → MaxPool before ReLU (optional)
    → check every node converts

Invariant: same outputs as the input model (within float rounding); the input
model is not modified; a node that cannot convert raises one UnsupportedOpError
naming every offending node. A quantized graph's quantizer table rides along
in the metadata (:func:`onnx2snn.metadata.quantizers_json`).
"""
from __future__ import annotations

import logging

import onnx

from .. import metadata
from ..core.graph import export_graph, import_model
from ..errors import UnsupportedOpError
from .check_support import check_not_snn, check_supported
from .fold_batchnorm import FoldBatchNormPass
from .fold_constants import FoldConstantsPass
from .leaky_relu import LeakyReluPass
from .move_maxpool import MoveMaxPoolPass
from .quantizers import DetectQuantizedActivationsPass, quantizers_to_json
from .remove_identity import RemoveIdentityPass

log = logging.getLogger(__name__)


def _run(step, graph) -> None:
    result = step(graph)
    log.info("%s: %d rewrite(s)", type(step).__name__, result.count)


def canonicalize(model: onnx.ModelProto, move_maxpool: bool = True, tail: bool = True) -> onnx.ModelProto:
    """The canonical ANN: same outputs as ``model`` (within float rounding), constant
    subgraphs folded, no Identity/Dropout, BatchNorm folded, MaxPool before ReLU (unless
    ``move_maxpool`` is false: TSNeuron pools its spikes exactly), and every node
    convertible (else UnsupportedOpError naming each offending node). LeakyRelu and PRelu become
    two ReLUs (passes/leaky_relu.py)."""
    check_not_snn(model)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = import_model(inferred)
    detect = DetectQuantizedActivationsPass()  # quantized activations → ReLU-like markers (+ table)
    move = MoveMaxPoolPass()
    for step in [FoldConstantsPass(), RemoveIdentityPass(), detect, FoldBatchNormPass()]:
        _run(step, graph)
    leaky = LeakyReluPass(set(detect.quantizers) | detect.encoded)  # refuses quantized ones
    for step in [leaky] + ([move] if move_maxpool else []):
        _run(step, graph)
    try:
        check_supported(graph, set(detect.quantizers) | detect.encoded, tail)
    except UnsupportedOpError as exc:  # a LeakyRelu/PRelu left in place: its own reason
        own = {name: reason for name, _, reason in leaky.refused}
        raise UnsupportedOpError([(name, op, own.get(name, reason)) for name, op, reason in exc.offenders]) from None
    canonical = export_graph(graph, like=model)
    if detect.quantizers:  # keyed by activation output (a moved MaxPool gives it a new one)
        table = {move.moved.get(k, k): q for k, q in detect.quantizers.items()}
        metadata.set_quantizers_json(canonical, quantizers_to_json(table))
    return canonical
