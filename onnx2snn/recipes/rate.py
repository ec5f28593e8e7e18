"""Rate-coded conversion of a float ANN with calibrated thresholds (``--neuron if``), and the two
recipes that share its calibration: bipolar neurons on a float ANN (``--neuron bif``) and
temporal separation (``--neuron tsep``).

    calibrate: ReLU outputs' statistics over the data → thresholds (max | percentile | mse | ltb)
               → v_init (0 or θ/2) → optional layer-wise bias / potential / weight calibration
    build:     ReLU → neuron op → time axis (tile inputs) → hoist the time-invariant head
               → readout (mean over T) [→ portable: neurons as standard ops]; or the streaming form

Requires: a canonical float ANN (every activation ReLU-like, no signed quantizer) and
calibration data. Ensures: every ReLU-like node became the recipe's neuron op (no Relu left in
the spiking region); the metadata records T, the form and the threshold method.
"""
from __future__ import annotations

import logging

import onnx

from .. import distributed, methods
from ..calibration import balance_thresholds, collect_statistics
from ..calibration.layerwise import LayerwiseCalibrator, check_fits
from ..calibration.ltb import ltb_thresholds
from ..calibration.thresholds import half_potentials
from ..config import ConvertConfig, Form, Neuron, ThresholdMethod, VInit
from ..core.graph import export_graph, import_model
from ..data import ArrayDataReader, calibration_feeds, model_inputs
from ..errors import CalibrationError, ConfigError
from ..neurons import kinds
from ..neurons.integrate_fire.portable import PortableNeuronsPass
from ..neurons.integrate_fire.streaming_form import StreamingFormPass
from ..neurons.temporal_separation.exactness import check_exact_pools, latency_steps, spiking_depth
from ..neurons.temporal_separation.portable import PortableTSNeuronsPass
from ..passes.activations import activation_names, activation_nodes
from ..passes.canonicalize import canonicalize
from ..passes.quantizers import quantizers_from_metadata
from ..runtime.memory import DEFAULT_MAX_MEMORY, statistics_batch
from ..sizes import format_size
from ..snn import AddTimeAxisPass, HoistTimeInvariantPass, ReadoutPass, SpikeActivationsPass
from .base import Built, Parameters, Recipe, neuron_layers

log = logging.getLogger(__name__)


def fold_time(graph, timesteps: int) -> None:
    """Time axis (inputs tiled T times), the time-invariant head hoisted (it runs once), readout (mean)."""
    AddTimeAxisPass(timesteps)(graph)
    HoistTimeInvariantPass(timesteps)(graph)
    ReadoutPass(timesteps)(graph)


class RateRecipe(Recipe):
    """IF neurons, thresholds calibrated on data (rate coding)."""

    method = methods.Method.RATE
    neuron = kinds.IF

    def validate(self, ann: onnx.ModelProto, config: ConvertConfig, data) -> None:
        signed = [k for k, q in quantizers_from_metadata(ann).items() if q.lowest < 0]
        if signed:
            raise ConfigError(f"signed quantized activations ({', '.join(signed)}) convert only to bipolar "
                              "neurons: use --neuron bif (or auto)")
        methods.check(self.method, config)
        if data is None:
            raise self.missing_data(ann, config)
        if config.calibrate:
            check_fits(ann, config.timesteps, config.max_memory)  # layer-wise calibration, before any work

    def missing_data(self, ann: onnx.ModelProto, config: ConvertConfig) -> CalibrationError:
        if config.neuron in (Neuron.IF, Neuron.TSEP):
            return CalibrationError("IF and TS neurons need calibration data (--calibration-data); only a graph "
                                    "whose activations are all quantized converts without (--neuron bif)")
        quantizers = quantizers_from_metadata(ann)
        plain = [f"'{n.name or n.outputs[0].name}' ({n.op})" for n in activation_nodes(import_model(ann))
                 if n.outputs[0].name not in quantizers]
        return CalibrationError(f"the activations {', '.join(plain)} are not quantized: their neurons need "
                                "thresholds calibrated on data (--calibration-data; a few hundred samples of "
                                "the model's input are enough for the default pipeline); only a graph whose "
                                "activations are all quantized converts without (--neuron bif, lossless)")

    def calibrate(self, ann: onnx.ModelProto, data, config: ConvertConfig, progress: bool = False) -> Parameters:
        feeds = calibration_feeds(data, ann)
        names = activation_names(ann)
        if not names:
            log.warning("the model has no ReLU: the SNN computes the ANN averaged over time")
            return Parameters(ann)
        specs = model_inputs(ann)
        fixed = specs[0].fixed_batch if len(specs) == 1 else None
        spec, T = config.threshold, config.timesteps
        half = config.v_init is VInit.HALF or spec.method is ThresholdMethod.LTB
        n = len(next(iter(feeds.values())))
        batch = config.batch_size if fixed else statistics_batch(ann, config.batch_size, config.max_memory, n)
        if batch < min(config.batch_size, n):
            log.warning("activation statistics ran batches of %d samples (--batch-size %d) to stay under "
                        "--max-memory %s", batch, config.batch_size, format_size(config.max_memory or DEFAULT_MAX_MEMORY))
        reader = ArrayDataReader(feeds, batch, fixed)
        if config.ray is None:
            stats = collect_statistics(ann, names, reader, channel_wise=config.channel_wise, progress=progress)
        else:  # the same statistics from the actors of a Ray cluster
            stats = distributed.collect_statistics(ann, names, reader, channel_wise=config.channel_wise,
                                                   progress=progress, address=config.ray, actors=config.ray_actors)
        if spec.method is ThresholdMethod.LTB:
            shapes = {n: stats[n].shape for n in names}
            ltb_reader = ArrayDataReader(feeds, min(config.batch_size, 16), fixed)  # more, smaller steps
            thresholds = ltb_thresholds(ann, names, shapes, ltb_reader, channel_wise=config.channel_wise,
                                        progress=progress)
        else:
            thresholds = balance_thresholds(stats, spec, T, half)
        ranks = {n: len(stats[n].shape) + 1 for n in names}
        v_init = half_potentials(thresholds, ranks) if half else {}
        if not config.calibrate:
            return Parameters(ann, thresholds, v_init)
        calibrator = LayerwiseCalibrator(ann, thresholds, v_init, T, config.reset.value, config.calibrate,
                                         self.neuron, max_memory=config.max_memory)
        calibrated, v_init, reports = calibrator.run(feeds, config.batch_size, fixed, progress=progress)
        if not fixed and (progress or calibrator.batch_size < config.batch_size):  # (a fixed batch is the model's)
            log.warning("layer-wise calibration ran batches of %d samples (%d rows at T = %d; --batch-size %d) "
                        "to stay under --max-memory %s; pass-A currents kept up to %s", calibrator.batch_size,
                        calibrator.batch_size * T, T, config.batch_size,
                        format_size(calibrator.max_memory), format_size(calibrator.keep_bytes))
        return Parameters(calibrated, thresholds, v_init, tuple(reports))

    def build(self, params: Parameters, config: ConvertConfig) -> Built:
        graph = import_model(params.ann)
        SpikeActivationsPass(params.thresholds, config.timesteps, config.reset.value, params.v_init or None,
                             op=self.neuron)(graph)
        layers = neuron_layers(graph)
        meta = self.lower(graph, config)
        meta["neurons"] = layers
        meta["threshold"] = str(config.threshold) + (" channel-wise" if config.channel_wise else "")
        return Built(export_graph(graph, like=params.ann), meta=meta)

    def lower(self, graph, config: ConvertConfig) -> dict:
        """The runtime form of the spiking graph; returns the form's metadata fields."""
        if config.form is Form.STREAMING:
            states = StreamingFormPass(config.reset.value)(graph)
            return {"state_inputs": tuple(states.state_inputs), "state_outputs": tuple(states.state_outputs),
                    "state_init": dict(states.initial_values)}
        fold_time(graph, config.timesteps)
        if config.form is Form.PORTABLE:
            PortableNeuronsPass(config.timesteps)(graph)
        return {}


class BipolarRecipe(RateRecipe):
    """Bipolar neurons (BIFNeuron, levels L = T) on a float ANN, calibrated like IF: a neuron takes back
    with a −θ spike what uneven input made it fire early (folded form only)."""

    method = methods.Method.BIPOLAR
    neuron = kinds.BIPOLAR


class TemporalRecipe(RateRecipe):
    """Temporal separation (TSNeuron, SpikeConverter): integrate all T steps, then fire; each layer is
    exactly the T-level quantised ReLU. MaxPool stays after its ReLU (pooling prefix trains is exact)."""

    method = methods.Method.TEMPORAL
    neuron = kinds.TEMPORAL

    def prepare(self, model: onnx.ModelProto, config: ConvertConfig) -> onnx.ModelProto:
        return canonicalize(model, move_maxpool=False)

    def lower(self, graph, config: ConvertConfig) -> dict:
        check_exact_pools(graph)
        depth = spiking_depth(graph)
        meta = {"neuron": "tsep", "spiking_depth": depth, "latency_steps": latency_steps(depth, config.timesteps)}
        fold_time(graph, config.timesteps)
        if config.form is Form.PORTABLE:
            PortableTSNeuronsPass(config.timesteps)(graph)
        return meta
