"""Conversion recipes: one module per method, each with the interface of :class:`base.Recipe`.

:func:`select` picks the recipe for a model and a config (the method table is
:mod:`onnx2snn.methods`):

    a Scan (recurrence) in the graph          → recurrent.RecurrentRecipe
    --neuron tsep                             → rate.TemporalRecipe
    quantized activations, bif or auto        → quantized.QuantizedRecipe
    --neuron bif on a float ANN               → rate.BipolarRecipe
    otherwise                                 → rate.RateRecipe
"""
from __future__ import annotations

import onnx

from ..config import ConvertConfig, Neuron
from ..passes import check_not_snn
from ..passes.activations import activation_names
from ..passes.canonicalize import canonicalize
from ..passes.quantizers import quantizers_from_metadata
from ..errors import ConversionError, Onnx2SnnError
from . import verify
from .base import Built, ConversionResult, Parameters, Recipe
from .quantized import QuantizedRecipe, has_quantized_activations
from .rate import BipolarRecipe, RateRecipe, TemporalRecipe
from .recurrent import RecurrentRecipe, is_recurrent

__all__ = ["Built", "ConversionResult", "Parameters", "Recipe", "QuantizedRecipe", "BipolarRecipe", "RateRecipe",
           "TemporalRecipe", "RecurrentRecipe", "select", "float_recipe"]


def _check_loads(model: onnx.ModelProto) -> None:
    """onnxruntime loads ``model``, or one error: the support check's list of the nodes that do not
    convert when it has one (its message names every node), else onnxruntime's reason."""
    try:
        verify.check_loads(model)
    except ConversionError:
        try:
            canonicalize(model)
        except Onnx2SnnError:
            raise
        except Exception:  # noqa: BLE001 - a model onnxruntime rejects may break a pass: its reason is the error
            pass
        raise


def float_recipe(config: ConvertConfig) -> Recipe:
    """The recipe of a float (calibrated) conversion with ``config.neuron``."""
    return {Neuron.BIF: BipolarRecipe, Neuron.TSEP: TemporalRecipe}.get(config.neuron, RateRecipe)()


def select(model: onnx.ModelProto, config: ConvertConfig) -> tuple[Recipe, onnx.ModelProto]:
    """(the recipe for ``model`` and ``config``, its prepared ANN)."""
    check_not_snn(model)  # a portable SNN holds Scans: it must not pass for a recurrent ANN
    _check_loads(model)
    if is_recurrent(model):
        recipe = RecurrentRecipe()
        return recipe, recipe.prepare(model, config)
    if config.neuron is Neuron.TSEP:
        recipe = TemporalRecipe()
        return recipe, recipe.prepare(model, config)
    ann = canonicalize(model)
    quantizers = quantizers_from_metadata(ann)  # a float ANN has none: its activations need not be listed
    quantized = bool(quantizers) and (config.neuron is Neuron.BIF or (
        config.neuron is Neuron.AUTO and has_quantized_activations(ann, activation_names(ann))))
    return (QuantizedRecipe() if quantized else float_recipe(config)), ann
