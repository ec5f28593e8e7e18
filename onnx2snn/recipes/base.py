"""The interface every conversion recipe has, and the result of a conversion.

A recipe is one conversion method (:class:`onnx2snn.methods.Method`). Its steps,
which :meth:`Recipe.convert` runs in this order:

    prepare(model, config)            → the ANN the recipe starts from (canonical, or the model itself)
    validate(ann, config, data)       → refuse what the recipe cannot do (flags: methods.check; model, data)
    calibrate(ann, data, config)      → Parameters (θ, v_init, calibrated weights, layer reports)
    build(params, config)             → Built: the SNN graph (no metadata yet) and what the build found
    describe(built, params, config)   → SNNMetadata, written by onnx2snn.metadata.write
    verify.check_runs(snn, sample)    → the SNN runs once in onnxruntime, or ConversionError

Requires: ``model`` is an ONNX ANN. Ensures: the SNN's metadata is exactly
``describe``'s (plus the model's own foreign entries); the SNN loads and runs
in onnxruntime (one sample of the data, or synthetic inputs); the input model is
not modified.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
import onnx

from .. import metadata, methods
from . import verify
from ..config import ConvertConfig, Form
from ..errors import ConversionError
from ..snn import analog_head, analog_tail
from ..core.graph import SNN_DOMAIN
from ..neurons.kinds import NeuronKind
from ..passes.canonicalize import canonicalize
from ..snn.readout import RUNNING_SUFFIX


NEURON_OPS = ("IFNeuron", "BIFNeuron", "TSNeuron", "BIFCount")


@dataclass(frozen=True)
class ConversionResult:
    model: onnx.ModelProto          # the SNN
    ann: onnx.ModelProto            # the canonical ANN it was made from (BN folded, ...), before calibration
    thresholds: Mapping[str, np.ndarray]
    config: ConvertConfig
    v_init: Mapping[str, np.ndarray] | None = None
    layer_reports: tuple = ()       # calibration.layerwise.LayerReport, one per calibrated layer
    exact_timesteps: int | None = None  # BIF: steps after which the SNN equals the quantized ANN
    recurrences: tuple = ()         # recurrent BIF SNN: one recipes.recurrent.Recurrence per converted Scan
    method: methods.Method | None = None
    neuron_op: str = ""             # the op that replaced the activations


@dataclass(frozen=True)
class Parameters:
    """What calibration hands the builder."""

    ann: onnx.ModelProto                         # the ANN to spike (weights/biases calibrated, if asked)
    thresholds: Mapping[str, np.ndarray] = field(default_factory=dict)
    v_init: Mapping[str, np.ndarray] | None = None   # None: every neuron starts at 0
    reports: tuple = ()
    source: onnx.ModelProto | None = None        # the user's model (the cumulative form rewrites it)


@dataclass(frozen=True)
class Built:
    """The SNN graph a recipe built, before its metadata, and what the build found."""

    model: onnx.ModelProto
    thresholds: Mapping[str, np.ndarray] | None = None   # None: the Parameters' thresholds
    exact_timesteps: int | None = None
    recurrences: tuple = ()
    running: tuple[str, ...] | None = None                # None: the outputs named <output>_running_mean
    meta: Mapping[str, Any] = field(default_factory=dict)  # recipe-specific SNNMetadata fields

    def running_outputs(self) -> tuple[str, ...]:
        if self.running is not None:
            return tuple(self.running)
        return tuple(o.name for o in self.model.graph.output if o.name.endswith(RUNNING_SUFFIX))


class Recipe:
    """A conversion method; subclasses override the steps they need (see the module docstring)."""

    method: methods.Method
    neuron: NeuronKind  # the neuron that replaces the activations
    splits_tail = True  # the ops after the last layer run once on the averages (snn/analog_tail.py)

    @property
    def neuron_op(self) -> str:
        return self.neuron.op

    def prepare(self, model: onnx.ModelProto, config: ConvertConfig) -> onnx.ModelProto:
        return canonicalize(model)

    def validate(self, ann: onnx.ModelProto, config: ConvertConfig, data) -> None:
        methods.check(self.method, config)

    def calibrate(self, ann: onnx.ModelProto, data, config: ConvertConfig, progress: bool = False) -> Parameters:
        return Parameters(ann)

    def build(self, params: Parameters, config: ConvertConfig) -> Built:
        raise NotImplementedError

    def describe(self, built: Built, params: Parameters, config: ConvertConfig) -> metadata.SNNMetadata:
        return metadata.SNNMetadata(config.timesteps, built.running_outputs(), config.form.value, **built.meta)


    def convert(self, model: onnx.ModelProto, data, config: ConvertConfig, *, progress: bool = False,
                ann: onnx.ModelProto | None = None) -> ConversionResult:
        """All steps; ``ann``: this recipe's ``prepare(model)`` when the caller has it already."""
        ann = self.prepare(model, config) if ann is None else ann
        body, head, tail = self._split(ann, config)
        body_data = head.feeds(data, ann) if head is not None and data is not None else data
        self.validate(body, config, body_data)
        params = self.calibrate(body, body_data, config, progress)
        params = replace(params, source=model)
        return self.finish(ann, params, config, sample=verify.sample_feeds(data), parts=(head, tail))

    def _split(self, ann: onnx.ModelProto, config: ConvertConfig):
        """(the ANN without its input-side head and the ops after its last layer, the head or None,
        those ops or None): snn/analog_head.py, snn/analog_tail.py."""
        if not self.splits_tail:
            return ann, None, None
        body, head = analog_head.split(ann)
        body, tail = analog_tail.split(body)
        if (head is not None or tail is not None) and config.form is Form.CUMULATIVE:
            what = "the ops after the last layer" if tail is not None else "the input-side ops before the first neuron"
            raise ConversionError(f"{what} run once (on the averaged outputs, or per sample before the time axis) in "
                                  "the folded, streaming and portable forms; the cumulative form has no average "
                                  "to run them on: use --form folded")
        return body, head, tail

    def finish(self, ann: onnx.ModelProto, params: Parameters, config: ConvertConfig,
               sample: Mapping[str, np.ndarray] | None = None, parts=None) -> ConversionResult:
        """Build, describe and write the metadata: the SNN of ``params``, run once on ``sample``
        (None: synthetic inputs) before it is returned; ``parts``: the (head, tail) split off ``ann``
        (None: split ``params.ann`` here)."""
        if parts is None:
            body, head, tail = self._split(params.ann, config)
            params = replace(params, ann=body)
        else:
            head, tail = parts
        built = self.build(params, config)
        streaming = config.form is Form.STREAMING
        if tail is not None:
            built = replace(built, model=tail.attach(built.model, streaming), running=None)
        if head is not None:
            built = replace(built, model=head.attach(built.model))
        snn = metadata.write(built.model, self.describe(built, params, config), source=params.ann)
        verify.check_runs(snn, sample, params.source)
        thresholds = params.thresholds if built.thresholds is None else built.thresholds
        return ConversionResult(snn, ann, thresholds, config, params.v_init, params.reports,
                                built.exact_timesteps, tuple(built.recurrences), self.method, self.neuron_op)


def neuron_layers(graph) -> tuple[tuple[str, str], ...]:
    """(output tensor, op) of every onnx2snn neuron node of a graphsurgeon graph or a ModelProto."""
    if isinstance(graph, onnx.ModelProto):
        nodes = [(n.output[0], n.op_type, n.domain) for n in graph.graph.node]
    else:
        nodes = [(n.outputs[0].name, n.op, n.domain) for n in graph.nodes]
    return tuple((t, op) for t, op, domain in nodes if domain == SNN_DOMAIN and op in NEURON_OPS)
