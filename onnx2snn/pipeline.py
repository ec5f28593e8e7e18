"""The conversion pipeline: ANN ONNX model in, spiking ONNX model out.

    prepare:   fold constants → drop Identity/Dropout → fold BatchNorm
               → MaxPool before ReLU → check every node is convertible
    calibrate: ReLU outputs' statistics over the data → thresholds
    spike:     ReLU → IFNeuron → time axis (tile inputs) → hoist the time-invariant head
               (it runs once, its output is tiled) → readout (mean over T)
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import onnx

from . import __version__
from .calibration import balance_thresholds, collect_statistics
from .config import ConvertConfig, Form
from .data import ArrayDataReader, load_npz, match_inputs, model_inputs
from .graph import (AddTimeAxisPass, FoldBatchNormPass, FoldConstantsPass, HoistTimeInvariantPass,
                    MoveMaxPoolPass, ReadoutPass,
                    RemoveIdentityPass, SpikeActivationsPass, activation_nodes, check_supported,
                    export_graph, import_model)
from .graph.portable import PortableNeuronsPass
from .graph.readout import RUNNING_SUFFIX
from .graph.streaming import StreamingFormPass
from .streaming import META_FORM, streaming_metadata

log = logging.getLogger(__name__)

META_TIMESTEPS = "onnx2snn.timesteps"
META_RUNNING = "onnx2snn.running_mean_outputs"


@dataclass(frozen=True)
class ConversionResult:
    model: onnx.ModelProto          # the SNN
    ann: onnx.ModelProto            # the canonical ANN it was made from (BN folded, ...)
    thresholds: Mapping[str, np.ndarray]
    config: ConvertConfig


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """The canonical ANN: same outputs as ``model`` (within float rounding), constant
    subgraphs folded, no Identity/Dropout, BatchNorm folded, MaxPool before ReLU, and
    every node convertible (else UnsupportedOpError naming each offending node)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = import_model(inferred)
    for step in (FoldConstantsPass(), RemoveIdentityPass(), FoldBatchNormPass(), MoveMaxPoolPass()):
        result = step(graph)
        log.info("%s: %d rewrite(s)", type(step).__name__, result.count)
    check_supported(graph)
    return export_graph(graph, like=model)


def activation_names(ann: onnx.ModelProto) -> list[str]:
    """Output tensor names of the ReLU-like nodes (the future neurons), in network order."""
    return [n.outputs[0].name for n in activation_nodes(import_model(ann))]


def calibration_reader(data, ann: onnx.ModelProto, batch_size: int):
    """A data reader from an .npz path, a dict of arrays, or a reader (returned as is)."""
    if hasattr(data, "get_next"):
        return data
    arrays = load_npz(data, "calibration data") if not isinstance(data, Mapping) else dict(data)
    specs = model_inputs(ann)
    feeds = match_inputs(arrays, specs, what="calibration data")
    return ArrayDataReader(feeds, batch_size, specs[0].fixed_batch if len(specs) == 1 else None)


def build_snn(ann: onnx.ModelProto, thresholds: Mapping[str, np.ndarray], config: ConvertConfig,
              v_init: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """Rewrite the canonical ANN into the SNN with the given neuron parameters."""
    graph = import_model(ann)
    SpikeActivationsPass(thresholds, config.timesteps, config.reset.value, v_init)(graph)
    form_meta = {META_FORM: config.form.value}
    if config.form is Form.STREAMING:
        states = StreamingFormPass(config.reset.value)(graph)
        form_meta.update(streaming_metadata(states))
    else:
        AddTimeAxisPass(config.timesteps)(graph)
        HoistTimeInvariantPass(config.timesteps)(graph)  # exact: the head before the first neuron runs once
        ReadoutPass(config.timesteps)(graph)
        if config.form is Form.PORTABLE:
            PortableNeuronsPass(config.timesteps)(graph)
    snn = export_graph(graph, like=ann)
    del snn.metadata_props[:]
    running = [o.name for o in snn.graph.output if o.name.endswith(RUNNING_SUFFIX)]
    meta = {
        META_TIMESTEPS: str(config.timesteps),
        META_RUNNING: json.dumps(running),
        **form_meta,
        "onnx2snn.version": __version__,
        "onnx2snn.threshold": str(config.threshold) + (" channel-wise" if config.channel_wise else ""),
    }
    for key, value in list(_metadata(ann).items()) + list(meta.items()):
        snn.metadata_props.add(key=key, value=value)
    return snn


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props if not p.key.startswith("onnx2snn.")}


def convert(model: onnx.ModelProto, calibration_data, config: ConvertConfig, *,
            progress: bool = False) -> ConversionResult:
    """Convert ``model`` to an SNN calibrated on ``calibration_data`` (.npz path,
    dict of arrays keyed by input name, or a data reader with ``get_next()``)."""
    ann = prepare(model)
    reader = calibration_reader(calibration_data, ann, config.batch_size)
    names = activation_names(ann)
    if names:
        stats = collect_statistics(ann, names, reader, channel_wise=config.channel_wise, progress=progress)
        thresholds = balance_thresholds(stats, config.threshold)
    else:
        log.warning("the model has no ReLU: the SNN computes the ANN averaged over time")
        thresholds = {}
    return ConversionResult(build_snn(ann, thresholds, config), ann, thresholds, config)
