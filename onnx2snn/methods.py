"""The conversion methods and the one table of what each accepts.

A conversion is one of five methods (each a recipe in :mod:`onnx2snn.recipes`):

===========  ==============================================  =========================
method       when                                             neuron op
===========  ==============================================  =========================
rate         float ANN, ``--neuron if`` (or auto)             IFNeuron
bipolar      float ANN, ``--neuron bif``                      BIFNeuron (levels = T)
quantized    quantized ANN, ``--neuron bif`` (or auto)        BIFNeuron / BIFCount
temporal     ``--neuron tsep``                                TSNeuron
recurrent    a Scan over a quantized cell (bif or auto)       BIFNeuron in the Scan body
===========  ==============================================  =========================

:data:`TABLE` says which forms, resets and layer-wise calibration each method
takes; :func:`check` is the only place that refuses an invalid combination, with
the message of the table. ``ConvertConfig`` calls it for what the flags alone
decide (``--neuron tsep``), the recipes for what needs the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .errors import ConfigError


class Method(str, Enum):
    RATE = "rate"
    BIPOLAR = "bipolar"
    QUANTIZED = "quantized"
    TEMPORAL = "temporal"
    RECURRENT = "recurrent"


CUMULATIVE_ON_FLOAT = ("--form cumulative is the exact form of BIF SNNs of quantized ANNs; the model's "
                       "activations are not quantized: use --form folded, streaming or portable")

BIF_FORMS = "--form {value} is not available with BIF neurons; use --form folded or --form cumulative"
BIF_RESET = ("--reset does not apply to --neuron bif (a bipolar neuron always subtracts θ); leave it at its "
             "default")


@dataclass(frozen=True)
class Accepts:
    """What a method takes. ``refuse_*``: the message for a value it does not take ('{value}' is filled in)."""

    forms: tuple[str, ...]
    refuse_form: str
    resets: tuple[str, ...] = ("subtract",)
    refuse_reset: str = ""
    layerwise: bool = True          # --calibrate weight/bias/potential
    refuse_layerwise: str = ""
    neurons: tuple[str, ...] = ()   # for recurrent: the --neuron values it takes
    refuse_neuron: dict[str, str] = field(default_factory=dict)  # by --neuron value
    form_messages: dict[str, str] = field(default_factory=dict)  # a message for one form in particular


TABLE: dict[Method, Accepts] = {
    Method.RATE: Accepts(
        forms=("folded", "streaming", "portable"), refuse_form=CUMULATIVE_ON_FLOAT, resets=("subtract", "zero")),
    Method.BIPOLAR: Accepts(
        forms=("folded",),
        refuse_form="--form {value} is not available for bipolar neurons on a float ANN; use --form folded "
                    "(or --neuron if for the streaming and portable forms)",
        form_messages={"cumulative": CUMULATIVE_ON_FLOAT},
        refuse_reset=BIF_RESET),
    Method.QUANTIZED: Accepts(
        forms=("folded", "cumulative"),
        refuse_form=BIF_FORMS,
        refuse_reset=BIF_RESET),
    Method.TEMPORAL: Accepts(
        forms=("folded", "portable"),
        refuse_form=CUMULATIVE_ON_FLOAT,
        form_messages={"streaming": "--form streaming cannot run --neuron tsep: a TSNeuron fires only after it "
                                    "has integrated all T steps of its input, so one step per run has nothing "
                                    "to emit; use --form folded or --form portable"},
        layerwise=False,
        refuse_layerwise="--calibrate (layer-wise bias/potential/weight calibration) is not available with "
                         "--neuron tsep: it corrects the rate-coding error of IF neurons, and a TSNeuron has "
                         "none (each layer is exactly the T-level quantised ReLU); drop --calibrate and "
                         "tune the quantiser with --threshold mse --v-init half",
        refuse_reset="--reset does not apply to --neuron tsep (a TSNeuron fires once per phase and "
                     "never resets); leave it at its default"),
    Method.RECURRENT: Accepts(
        forms=("folded", "cumulative"),
        refuse_form=BIF_FORMS,
        refuse_reset=BIF_RESET,
        neurons=("bif", "auto"),
        refuse_neuron={
            "if": "IF neurons do not convert recurrences (their rate-coded hidden state would be approximate at "
                  "every element); use --neuron bif (or auto) with a quantized RNN",
            "tsep": "TS neurons do not convert recurrences (a TSNeuron fires only after all T steps, so a hidden "
                    "state could not be handed on within an element); use --neuron bif (or auto) with a "
                    "quantized RNN"}),
}
# Quantized BIF conversion is lossless: --calibrate (e.g. from --preset best) has nothing to correct
# and is ignored there, as are the threshold flags.


def check(method: Method, config) -> None:
    """Raise the table's ConfigError if ``config`` (a ConvertConfig) asks ``method`` for something it does not take."""
    accepts = TABLE[method]
    neuron = config.neuron.value
    if accepts.neurons and neuron not in accepts.neurons:
        raise ConfigError(accepts.refuse_neuron[neuron])
    form = config.form.value
    if form not in accepts.forms:
        raise ConfigError(accepts.form_messages.get(form, accepts.refuse_form).format(value=form))
    if config.calibrate and not accepts.layerwise:
        raise ConfigError(accepts.refuse_layerwise)
    if config.reset.value not in accepts.resets:
        raise ConfigError(accepts.refuse_reset.format(value=config.reset.value))


def method_of_flags(config) -> Method | None:
    """The method when the flags alone decide it (``--neuron tsep``), else None (the model decides)."""
    return Method.TEMPORAL if config.neuron.value == "tsep" else None
