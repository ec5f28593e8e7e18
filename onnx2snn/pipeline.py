"""The conversion pipeline: ANN ONNX model in, spiking ONNX model out.

    select:    the recipe for the model and the flags (onnx2snn.recipes.select; the table of
               what each method takes is onnx2snn.methods)
    prepare:   fold constants → drop Identity/Dropout → fold BatchNorm → MaxPool before ReLU
               → check every node is convertible (onnx2snn.passes.canonicalize)
    validate → calibrate → build → describe: the recipe's steps (onnx2snn.recipes.base.Recipe)

Rate-coded IF, bipolar on float ANNs and temporal separation calibrate thresholds on data
(recipes/rate.py); quantized ANNs convert losslessly to BIF neurons without data
(recipes/quantized.py); a Scan over a quantized cell becomes a recurrent BIF SNN
(recipes/recurrent.py).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx

from .config import ConvertConfig, Form
from .passes.canonicalize import canonicalize
from .recipes import ConversionResult, Parameters, RecurrentRecipe, float_recipe, select
from .runtime.memory import check_folded_fits

__all__ = ["ConversionResult", "build_snn", "convert", "prepare"]


def prepare(model: onnx.ModelProto, move_maxpool: bool = True) -> onnx.ModelProto:
    """The canonical ANN (see :func:`onnx2snn.passes.canonicalize.canonicalize`)."""
    return canonicalize(model, move_maxpool)


def convert(model: onnx.ModelProto, calibration_data, config: ConvertConfig, *,
            progress: bool = False) -> ConversionResult:
    """Convert ``model`` to an SNN calibrated on ``calibration_data`` (.npz path,
    dict of arrays keyed by input name, a data reader with ``get_next()``, or None
    for a quantized graph)."""
    recipe, ann = select(model, config)
    if config.form is not Form.STREAMING and not isinstance(recipe, RecurrentRecipe):
        check_folded_fits(ann, config.timesteps, config.max_memory)  # the run check runs one sample
    return recipe.convert(model, calibration_data, config, progress=progress, ann=ann)


def build_snn(ann: onnx.ModelProto, thresholds: Mapping[str, np.ndarray], config: ConvertConfig,
              v_init: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """The SNN of the canonical float ANN ``ann`` with the given neuron parameters (no calibration)."""
    recipe = float_recipe(config)
    return recipe.finish(ann, Parameters(ann, thresholds, v_init or {}), config).model
