"""Lossless conversion of quantized ANNs with BIF neurons (``--neuron bif``).

    canonical ANN (quantized activations marked, see graph/detect_quant.py)
      ─▶ constant terms c (onnxruntime, all activations 0)
      ─▶ activations → BIFNeuron (θ = λ/L, v_init = β·θ, levels L)       graph/spike_bif.py
      ─▶ time axis (tile) ─▶ s-analog encoding (input and c at step 0)     graph/s_analog.py
      ─▶ readout: running sum over steps

Guarantee: with T ≥ T* = max over input→output paths of Σ L_k (D·L for D
quantized layers of L levels), the SNN's output at step T* (and at every later
step) equals the quantized ANN's in real arithmetic; in float32 it is equal up
to rounding, except where a pre-activation lies within rounding distance of a
quantization boundary (or on an exact tie of a Round), where one level can
differ. No calibration data is used.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import onnx

from .config import ConvertConfig, Form
from .errors import ConfigError
from .graph import AddTimeAxisPass, ReadoutPass, export_graph, import_model
from .graph.detect_quant import quantizers_from_metadata
from .graph.s_analog import SAnalogEncodingPass, constant_terms
from .graph.spike_bif import SpikeQuantizedPass, bif_parameters, exact_timesteps

log = logging.getLogger(__name__)

META_EXACT = "onnx2snn.exact_after_timesteps"


def has_quantized_activations(ann: onnx.ModelProto, activations: list[str]) -> bool:
    """Whether every activation of the canonical ANN is quantized (and there is one)."""
    quantizers = quantizers_from_metadata(ann)
    return bool(activations) and all(a in quantizers for a in activations)


def build_bif_snn(ann: onnx.ModelProto, config: ConvertConfig) -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """(SNN, θ per neuron, T*) for the canonical quantized ANN ``ann``."""
    if config.form is not Form.FOLDED:
        raise ConfigError(f"--form {config.form.value} is not available with BIF neurons; use --form folded")
    quantizers = quantizers_from_metadata(ann)
    constants = constant_terms(ann)
    graph = import_model(ann)
    SpikeQuantizedPass(quantizers, config.timesteps)(graph)
    needed = exact_timesteps(graph)
    if config.timesteps < needed:
        log.warning("T=%d < %d: the SNN equals the quantized ANN only after %d steps", config.timesteps,
                    needed, needed)
    AddTimeAxisPass(config.timesteps)(graph)
    SAnalogEncodingPass(config.timesteps, constants)(graph)
    ReadoutPass(config.timesteps, reduce="sum")(graph)
    snn = export_graph(graph, like=ann)
    thresholds = {name: bif_parameters(q, 2)[0] for name, q in quantizers.items()}  # θ only: any rank
    return snn, thresholds, needed


def bif_metadata(quantizers_json: str | None, needed: int) -> dict[str, str]:
    meta = {META_EXACT: str(needed), "onnx2snn.neuron": "bif", "onnx2snn.readout": "sum"}
    if quantizers_json:
        meta["onnx2snn.quantizers"] = quantizers_json
    return meta


def describe(quantizers) -> str:
    return json.dumps({k: v.as_dict() for k, v in quantizers.items()})
