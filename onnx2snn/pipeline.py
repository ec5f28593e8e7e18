"""The conversion pipeline: ANN ONNX model in, spiking ONNX model out.

    prepare:   fold constants → drop Identity/Dropout → fold BatchNorm
               → MaxPool before ReLU → check every node is convertible
    calibrate: ReLU outputs' statistics over the data → thresholds
               (max | percentile | mse | ltb) → v_init (0 or θ/2)
               → optional layer-wise bias / potential / weight calibration
    spike:     ReLU → IFNeuron → time axis (tile inputs) → hoist the time-invariant head
               (it runs once, its output is tiled) → readout (mean over T)

``--neuron bif`` takes the lossless path of :mod:`.bif` (no calibration) for a
quantized graph; on a float ANN it calibrates as IF and spikes with bipolar
BIFNeuron (levels = T: the count, hence the rate, stays in [0, θ]);
``--neuron tsep`` calibrates as IF but keeps MaxPool after its ReLU and spikes
with TSNeuron (:mod:`.tsep`: exactly the T-level quantised ANN).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import onnx

from ._version import __version__
from .recipes import quantized as bif, recurrent
from .neurons.temporal_separation import exactness as tsep
from .calibration import balance_thresholds, collect_statistics
from .calibration.layerwise import LayerReport, LayerwiseCalibrator
from .calibration.ltb import ltb_thresholds
from .config import ConvertConfig, Form, Neuron, Reset, ThresholdMethod, VInit
from .data import ArrayDataReader, load_npz, match_inputs, model_inputs
from .errors import ConfigError
from .snn.time_axis import AddTimeAxisPass
from .passes.fold_batchnorm import FoldBatchNormPass
from .passes.fold_constants import FoldConstantsPass
from .snn.hoist_time_invariant import HoistTimeInvariantPass
from .passes.move_maxpool import MoveMaxPoolPass
from .snn.readout import ReadoutPass
from .passes.remove_identity import RemoveIdentityPass
from .snn.spike import SpikeActivationsPass
from .passes.activations import activation_nodes
from .passes.check_support import check_supported
from .core.graph import export_graph, import_model
from .passes.quantizers import (META_QUANTIZERS, DetectQuantizedActivationsPass, quantizers_from_metadata,
    quantizers_to_json)
from .neurons.integrate_fire.portable import PortableNeuronsPass
from .neurons.temporal_separation.portable import PortableTSNeuronsPass
from .snn.readout import RUNNING_SUFFIX
from .neurons.integrate_fire.streaming import StreamingFormPass
from .runtime.streaming import META_FORM, streaming_metadata

log = logging.getLogger(__name__)

META_TIMESTEPS = "onnx2snn.timesteps"
META_RUNNING = "onnx2snn.running_mean_outputs"


@dataclass(frozen=True)
class ConversionResult:
    model: onnx.ModelProto          # the SNN
    ann: onnx.ModelProto            # the canonical ANN it was made from (BN folded, ...), before calibration
    thresholds: Mapping[str, np.ndarray]
    config: ConvertConfig
    v_init: Mapping[str, np.ndarray] | None = None
    layer_reports: tuple[LayerReport, ...] = ()
    exact_timesteps: int | None = None  # BIF: steps after which the SNN equals the quantized ANN
    recurrences: tuple[recurrent.Recurrence, ...] = ()  # recurrent BIF SNN: one entry per converted Scan


def prepare(model: onnx.ModelProto, move_maxpool: bool = True) -> onnx.ModelProto:
    """The canonical ANN: same outputs as ``model`` (within float rounding), constant
    subgraphs folded, no Identity/Dropout, BatchNorm folded, MaxPool before ReLU (unless
    ``move_maxpool`` is false: TSNeuron pools its spikes exactly), and every node
    convertible (else UnsupportedOpError naming each offending node)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = import_model(inferred)
    detect = DetectQuantizedActivationsPass()  # quantized activations → ReLU-like markers (+ table)
    move = MoveMaxPoolPass()
    steps = [FoldConstantsPass(), RemoveIdentityPass(), detect, FoldBatchNormPass()] + ([move] if move_maxpool else [])
    for step in steps:
        result = step(graph)
        log.info("%s: %d rewrite(s)", type(step).__name__, result.count)
    check_supported(graph, set(detect.quantizers) | detect.encoded)
    canonical = export_graph(graph, like=model)
    if detect.quantizers:  # keyed by activation output (a moved MaxPool gives it a new one)
        table = {move.moved.get(k, k): q for k, q in detect.quantizers.items()}
        canonical.metadata_props.add(key=META_QUANTIZERS, value=quantizers_to_json(table))
    return canonical


def activation_names(ann: onnx.ModelProto) -> list[str]:
    """Output tensor names of the ReLU-like nodes (the future neurons), in network order."""
    return [n.outputs[0].name for n in activation_nodes(import_model(ann))]


def calibration_feeds(data, ann: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Calibration arrays keyed by input name, from an .npz path, a dict of arrays,
    or a data reader (``get_next()``), which is read to its end once."""
    specs = model_inputs(ann)
    if hasattr(data, "get_next"):
        batches = []
        while (feed := data.get_next()) is not None:
            batches.append(feed)
        if not batches:
            from .errors import CalibrationError
            raise CalibrationError("the calibration data reader gave no batch; give at least one sample")
        data = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    arrays = load_npz(data, "calibration data") if not isinstance(data, Mapping) else dict(data)
    return match_inputs(arrays, specs, what="calibration data")


def half_potentials(thresholds: Mapping[str, np.ndarray], ranks: Mapping[str, int]) -> dict[str, np.ndarray]:
    """v_init = θ/2 for every neuron, shaped to broadcast over one sample [C, ...]."""
    return {n: (t / 2).reshape([-1] + [1] * (ranks[n] - 2)) if t.ndim else t / 2 for n, t in thresholds.items()}


def neuron_op(neuron: Neuron) -> str:
    """The op that replaces a ReLU of a float ANN (``bif``: a bipolar IF with its count in [0, T])."""
    return {Neuron.TSEP: "TSNeuron", Neuron.BIF: "BIFNeuron"}.get(neuron, "IFNeuron")


def build_snn(ann: onnx.ModelProto, thresholds: Mapping[str, np.ndarray], config: ConvertConfig,
              v_init: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """Rewrite the canonical ANN into the SNN with the given neuron parameters."""
    graph = import_model(ann)
    temporal_separation = config.neuron is Neuron.TSEP
    SpikeActivationsPass(thresholds, config.timesteps, config.reset.value, v_init, op=neuron_op(config.neuron))(graph)
    mode_meta = {META_FORM: config.form.value}
    if temporal_separation:
        tsep.check_exact_pools(graph)
        mode_meta.update(tsep.tsep_metadata(graph, config.timesteps))
    if config.form is Form.STREAMING:
        states = StreamingFormPass(config.reset.value)(graph)
        mode_meta.update(streaming_metadata(states))
    else:
        AddTimeAxisPass(config.timesteps)(graph)
        HoistTimeInvariantPass(config.timesteps)(graph)  # exact: the head before the first neuron runs once
        ReadoutPass(config.timesteps)(graph)
        if config.form is Form.PORTABLE:
            PortableNeuronsPass(config.timesteps)(graph)
            PortableTSNeuronsPass(config.timesteps)(graph)
    snn = export_graph(graph, like=ann)
    del snn.metadata_props[:]
    running = [o.name for o in snn.graph.output if o.name.endswith(RUNNING_SUFFIX)]
    meta = {
        META_TIMESTEPS: str(config.timesteps),
        META_RUNNING: json.dumps(running),
        **mode_meta,
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
    dict of arrays keyed by input name, or a data reader with ``get_next()``).
    A model with a recurrence (Scan) becomes a recurrent BIF SNN (see recurrent.py)."""
    if recurrent.is_recurrent(model):
        return _convert_recurrent(model, config)
    ann = prepare(model, move_maxpool=config.neuron is not Neuron.TSEP)
    names = activation_names(ann)
    quantizers = quantizers_from_metadata(ann)
    if config.neuron is Neuron.BIF and quantizers or \
            config.neuron is Neuron.AUTO and bif.has_quantized_activations(ann, names):
        return _convert_bif(ann, config, model)
    signed = [k for k, q in quantizers.items() if q.lowest < 0]
    if signed:
        raise ConfigError(f"signed quantized activations ({', '.join(signed)}) convert only to bipolar neurons: "
                          "use --neuron bif (or auto)")
    if config.form is Form.CUMULATIVE:
        raise ConfigError("--form cumulative is the exact form of BIF SNNs of quantized ANNs; the model's "
                          "activations are not quantized: use --form folded, streaming or portable")
    if config.neuron is Neuron.BIF and config.form is not Form.FOLDED:
        raise ConfigError(f"--form {config.form.value} is not available for bipolar neurons on a float ANN; "
                          "use --form folded (or --neuron if for the streaming and portable forms)")
    if config.neuron is Neuron.BIF and config.reset is not Reset.SUBTRACT:
        raise ConfigError("--reset does not apply to --neuron bif (a bipolar neuron always subtracts θ); "
                          "leave it at its default")
    if calibration_data is None:
        from .errors import CalibrationError
        if config.neuron in (Neuron.IF, Neuron.TSEP):
            raise CalibrationError("IF and TS neurons need calibration data (--calibration-data); only a graph "
                                   "whose activations are all quantized converts without (--neuron bif)")
        plain = [f"'{n.name or n.outputs[0].name}' ({n.op})" for n in activation_nodes(import_model(ann))
                 if n.outputs[0].name not in quantizers]
        raise CalibrationError(f"the activations {', '.join(plain)} are not quantized: their neurons need "
                               "thresholds calibrated on data (--calibration-data); only a graph whose "
                               "activations are all quantized converts without (--neuron bif)")
    feeds = calibration_feeds(calibration_data, ann)
    specs = model_inputs(ann)
    fixed = specs[0].fixed_batch if len(specs) == 1 else None
    if not names:
        log.warning("the model has no ReLU: the SNN computes the ANN averaged over time")
        return ConversionResult(build_snn(ann, {}, config), ann, {}, config)
    spec, T = config.threshold, config.timesteps
    half = config.v_init is VInit.HALF or spec.method is ThresholdMethod.LTB
    reader = ArrayDataReader(feeds, config.batch_size, fixed)
    stats = collect_statistics(ann, names, reader, channel_wise=config.channel_wise, progress=progress)
    if spec.method is ThresholdMethod.LTB:
        shapes = {n: stats[n].shape for n in names}
        ltb_reader = ArrayDataReader(feeds, min(config.batch_size, 16), fixed)  # more, smaller steps
        thresholds = ltb_thresholds(ann, names, shapes, ltb_reader, channel_wise=config.channel_wise,
                                    progress=progress)
    else:
        thresholds = balance_thresholds(stats, spec, T, half)
    ranks = {n: len(stats[n].shape) + 1 for n in names}
    v_init = half_potentials(thresholds, ranks) if half else {}
    reports: tuple = ()
    calibrated = ann
    if config.calibrate:
        calibrator = LayerwiseCalibrator(ann, thresholds, v_init, T, config.reset.value, config.calibrate,
                                         neuron_op(config.neuron))
        calibrated, v_init, layer_reports = calibrator.run(feeds, config.batch_size, fixed, progress=progress)
        reports = tuple(layer_reports)
    snn = build_snn(calibrated, thresholds, config, v_init or None)
    return ConversionResult(snn, ann, thresholds, config, v_init, reports)


def _convert_bif(ann: onnx.ModelProto, config: ConvertConfig, original: onnx.ModelProto) -> ConversionResult:
    """Quantized ANN → BIF SNN: no calibration; exact after ``exact_timesteps`` steps (see bif.py)."""
    snn, thresholds, needed = bif.build_bif_snn(ann, config, original)
    del snn.metadata_props[:]
    running = [o.name for o in snn.graph.output if o.name.endswith(RUNNING_SUFFIX)]
    meta = {META_TIMESTEPS: str(config.timesteps), META_RUNNING: json.dumps(running),
            META_FORM: config.form.value, "onnx2snn.version": __version__,
            **bif.bif_metadata(dict((p.key, p.value) for p in ann.metadata_props).get(META_QUANTIZERS), needed,
                               config.form)}
    for key, value in list(_metadata(ann).items()) + list(meta.items()):
        snn.metadata_props.add(key=key, value=value)
    return ConversionResult(snn, ann, thresholds, config, exact_timesteps=needed)


def _convert_recurrent(model: onnx.ModelProto, config: ConvertConfig) -> ConversionResult:
    """Quantized RNN (Scan) → recurrent BIF SNN: the cell runs T sub-steps per element (see recurrent.py)."""
    snn, thresholds, recurrences, running, quantizers = recurrent.build_recurrent_bif_snn(model, config)
    needed = max(r.exact_substeps for r in recurrences)
    if config.timesteps < needed:
        log.warning("T=%d sub-steps per element < %d: the hidden states handed on are not settled; the SNN only "
                    "approximates the quantized RNN", config.timesteps, needed)
    meta = {META_TIMESTEPS: str(config.timesteps), META_RUNNING: json.dumps(running),
            META_FORM: config.form.value, "onnx2snn.version": __version__,
            **recurrent.recurrent_metadata(recurrences, quantizers)}
    for key, value in list(_metadata(model).items()) + list(meta.items()):
        snn.metadata_props.add(key=key, value=value)
    return ConversionResult(snn, model, thresholds, config, exact_timesteps=needed,
                            recurrences=tuple(recurrences))
