"""Lossless conversion of quantized ANNs with BIF neurons (``--neuron bif``).

    canonical ANN (quantized activations marked, see passes/quantizers)
      ─▶ constant terms c (onnxruntime, all activations 0)
      ─▶ activations → BIFNeuron (θ = λ/L, v_init = β·θ, levels L)       neurons/bipolar/lowering.py
      ─▶ time axis (tile) ─▶ s-analog encoding (input and c at step 0)     snn/s_analog.py
      ─▶ readout: running sum over steps

Guarantee: with T ≥ T* = max over input→output paths of Σ L_k (D·L for D
quantized layers of L levels), the SNN's output at step T* (and at every later
step) equals the quantized ANN's in real arithmetic; in float32 it is equal up
to rounding, except where a pre-activation lies within rounding distance of a
quantization boundary (or on an exact tie of a Round), where one level can
differ. No calibration data is used.

The cumulative form (``--form cumulative``) computes the same SNN bit-exactly
against the ANN. Every layer between neurons is linear in its input spikes, so
the cumulative current a neuron has received by step t is the layer applied to
the cumulative spike counts of the layer before (its constant terms added
once) — that is, the ANN's own layer run on the counts so far. The graph is
therefore the ANN itself, time-folded (input at every step), with each quantizer
cut at its integer level τ = floor(α·V + β) and a ``BIFCount`` there: the BIF
neuron in count form, stepping its spike count k by ±1 towards clip(τ, 0, L)
(see :mod:`onnx2snn.neurons.bipolar.count`, which proves it emits the spikes of
``BIFNeuron``). Its output at step t is the spiking form's running sum; at
t ≥ T* every count equals the ANN's level, so the whole computation — the
ANN's ops on the ANN's values — is the ANN's, bit for bit, when both run with
the same session options. The per-step spikes are k_t − k_{t−1}.
"""
from __future__ import annotations

import logging

import numpy as np
import onnx

from .. import metadata, methods
from ..config import ConvertConfig, Form
from ..core.graph import export_graph, import_model
from ..errors import ConversionError
from ..neurons import kinds
from ..neurons.bipolar.count_lowering import CountQuantizedActivationsPass
from ..neurons.bipolar.lowering import SpikeQuantizedPass, bif_parameters, exact_timesteps
from ..passes.fold_constants import FoldConstantsPass
from ..passes.quantizers import quantizers_from_metadata
from ..passes.remove_identity import RemoveIdentityPass
from ..snn.readout import ReadoutPass
from ..snn.s_analog import SAnalogEncodingPass, constant_terms
from ..snn.time_axis import AddTimeAxisPass
from .base import Built, Parameters, Recipe, neuron_layers

log = logging.getLogger(__name__)

def has_quantized_activations(ann: onnx.ModelProto, activations: list[str]) -> bool:
    """Whether the canonical ANN has quantizers and every ReLU-like activation is one of them."""
    quantizers = quantizers_from_metadata(ann)
    return bool(quantizers) and all(a in quantizers for a in activations)


def build_bif_snn(ann: onnx.ModelProto, config: ConvertConfig, original: onnx.ModelProto | None = None,
                  spike_counts: bool = False) -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """(SNN, θ per neuron, T*) for the canonical quantized ANN ``ann`` (made from ``original``,
    which the cumulative form rewrites instead, to keep the ANN's own ops). ``spike_counts``: outputs
    that are a neuron's spikes are summed as counts times θ (:class:`~onnx2snn.snn.readout.ReadoutPass`)."""
    methods.check(methods.Method.QUANTIZED, config)
    if config.form is Form.CUMULATIVE and original is None:
        raise ConversionError("the cumulative form is built from the original quantized model (its own "
                              "quantizer ops); pass it as `original`")
    quantizers = quantizers_from_metadata(ann)
    graph = import_model(ann)
    SpikeQuantizedPass(quantizers, config.timesteps)(graph)  # checks the graph for both forms
    needed = exact_timesteps(graph)
    if config.timesteps < needed:
        log.warning("T=%d < %d: the SNN equals the quantized ANN only after %d steps", config.timesteps,
                    needed, needed)
    thresholds = {name: bif_parameters(q, 2)[0] for name, q in quantizers.items()}  # θ only: any rank
    if config.form is Form.CUMULATIVE:
        return build_cumulative_snn(original, config.timesteps, len(quantizers)), thresholds, needed
    AddTimeAxisPass(config.timesteps)(graph)
    SAnalogEncodingPass(config.timesteps, constant_terms(ann))(graph)
    ReadoutPass(config.timesteps, reduce="sum", spike_counts=spike_counts)(graph)
    return export_graph(graph, like=ann), thresholds, needed


def build_cumulative_snn(model: onnx.ModelProto, timesteps: int, neurons: int) -> onnx.ModelProto:
    """The cumulative form of the BIF SNN of ``model`` (see the module docstring), which has
    ``neurons`` quantized activations."""
    graph = import_model(onnx.shape_inference.infer_shapes(model, strict_mode=False))
    FoldConstantsPass()(graph)
    RemoveIdentityPass()(graph)
    detect = CountQuantizedActivationsPass(timesteps)
    detect(graph)
    if len(detect.quantizers) != neurons:
        raise ConversionError(f"the cumulative form found {len(detect.quantizers)} quantizers where the "
                              f"spiking form has {neurons} neurons")
    AddTimeAxisPass(timesteps)(graph)
    ReadoutPass(timesteps, reduce="last")(graph)
    return export_graph(graph, like=model)


class QuantizedRecipe(Recipe):
    """Quantized ANN → BIF SNN, no calibration; exact after ``exact_timesteps`` steps."""

    method = methods.Method.QUANTIZED
    neuron = kinds.BIPOLAR  # levels and v_init from each quantizer

    def build(self, params: Parameters, config: ConvertConfig) -> Built:
        snn, thresholds, needed = build_bif_snn(params.ann, config, params.source)
        return Built(snn, thresholds, needed, meta={
            "exact_after_timesteps": needed, "neuron": "bif",
            "readout": "last" if config.form is Form.CUMULATIVE else "sum",
            "quantizers": metadata.quantizers_json(params.ann) or None, "neurons": neuron_layers(snn)})
