"""The model-metadata contract between the converter and the runtime.

Every ``onnx2snn.*`` key a model carries is defined here, written by
:func:`write` and read by :func:`read` (or the one-key readers below); no other
module spells a key. An SNN's metadata is an :class:`SNNMetadata`:

=================================  ==================  =========================================
key                                written for         value
=================================  ==================  =========================================
``onnx2snn.timesteps``             every SNN           T
``onnx2snn.running_mean_outputs``  every SNN           JSON list: outputs ``[T, N, ...]``
``onnx2snn.form``                  every SNN           folded | streaming | portable | cumulative
``onnx2snn.neuron``                bif, tsep           ``bif`` | ``tsep`` (absent: IF)
``onnx2snn.spiking_depth``         tsep                D, neurons on the longest path
``onnx2snn.latency_steps``         tsep                (D + 1)·T
``onnx2snn.state_inputs``          streaming           JSON list of state inputs
``onnx2snn.state_outputs``         streaming           JSON list of the matching outputs
``onnx2snn.state_init``            streaming           JSON {state: {shape, values}} (≠ 0 only)
``onnx2snn.version``               every SNN           the converter's version
``onnx2snn.threshold``             calibrated SNNs     e.g. ``mse channel-wise``
``onnx2snn.exact_after_timesteps`` bif (quantized)     T*: equal to the quantized ANN from T*
``onnx2snn.readout``               bif (quantized)     ``sum`` | ``last``
``onnx2snn.recurrent``             recurrent SNNs      JSON list, one entry per converted Scan
``onnx2snn.neurons``               feed-forward SNNs   JSON [[tensor, op], ...]: each neuron layer, by the
                                                       ANN tensor it replaces, in every form
``onnx2snn.quantizers``            bif (quantized)     JSON quantizer table (also on the canonical
                                                       ANN between :func:`onnx2snn.prepare` and
                                                       the recipe)
=================================  ==================  =========================================

Invariant: :func:`write` replaces every ``onnx2snn.*`` entry of the model by the
given :class:`SNNMetadata`, keeps the source model's other entries (before
ours), and ``read(model)`` of the result gives the same :class:`SNNMetadata`
back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import onnx

from ._version import __version__
from .errors import ConversionError

PREFIX = "onnx2snn."
TIMESTEPS = "onnx2snn.timesteps"
RUNNING = "onnx2snn.running_mean_outputs"
FORM = "onnx2snn.form"
NEURON = "onnx2snn.neuron"
SPIKING_DEPTH = "onnx2snn.spiking_depth"
LATENCY = "onnx2snn.latency_steps"
STATE_INPUTS = "onnx2snn.state_inputs"
STATE_OUTPUTS = "onnx2snn.state_outputs"
STATE_INIT = "onnx2snn.state_init"
VERSION = "onnx2snn.version"
THRESHOLD = "onnx2snn.threshold"
EXACT = "onnx2snn.exact_after_timesteps"
READOUT = "onnx2snn.readout"
RECURRENT = "onnx2snn.recurrent"
QUANTIZERS = "onnx2snn.quantizers"
NEURONS = "onnx2snn.neurons"


@dataclass(frozen=True)
class SNNMetadata:
    """What an SNN says about itself; ``None`` fields are not written."""

    timesteps: int
    running_outputs: tuple[str, ...] = ()
    form: str = "folded"
    neuron: str | None = None
    spiking_depth: int | None = None
    latency_steps: int | None = None
    state_inputs: tuple[str, ...] | None = None
    state_outputs: tuple[str, ...] | None = None
    state_init: dict[str, np.ndarray] | None = field(default=None, compare=False)
    version: str = __version__
    threshold: str | None = None
    exact_after_timesteps: int | None = None
    readout: str | None = None
    recurrent: tuple[dict, ...] | None = None
    quantizers: str | None = None  # JSON text, as the recipe serialised it
    neurons: tuple[tuple[str, str], ...] | None = None  # (tensor, op) of each neuron layer

    @property
    def streaming(self) -> bool:
        return self.form == "streaming"

    @property
    def is_recurrent(self) -> bool:
        return self.recurrent is not None

    def entries(self) -> list[tuple[str, str]]:
        """(key, value) pairs in a fixed order."""
        out = [(TIMESTEPS, str(self.timesteps)), (RUNNING, json.dumps(list(self.running_outputs))),
               (FORM, self.form)]
        if self.neuron is not None:
            out.append((NEURON, self.neuron))
        if self.spiking_depth is not None:
            out += [(SPIKING_DEPTH, str(self.spiking_depth)), (LATENCY, str(self.latency_steps))]
        if self.state_inputs is not None:
            init = {name: {"shape": list(v.shape), "values": [float(a) for a in np.asarray(v, np.float32).reshape(-1)]}
                    for name, v in (self.state_init or {}).items()}
            out += [(STATE_INPUTS, json.dumps(list(self.state_inputs))),
                    (STATE_OUTPUTS, json.dumps(list(self.state_outputs))), (STATE_INIT, json.dumps(init))]
        out.append((VERSION, self.version))
        if self.threshold is not None:
            out.append((THRESHOLD, self.threshold))
        if self.exact_after_timesteps is not None:
            out.append((EXACT, str(self.exact_after_timesteps)))
        if self.readout is not None:
            out.append((READOUT, self.readout))
        if self.recurrent is not None:
            out.append((RECURRENT, json.dumps(list(self.recurrent))))
        if self.quantizers is not None:
            out.append((QUANTIZERS, self.quantizers))
        if self.neurons is not None:
            out.append((NEURONS, json.dumps([list(n) for n in self.neurons])))
        return out


def props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def foreign(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """The entries that are not ours (the exporter's), in order."""
    return [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]


def write(model: onnx.ModelProto, meta: SNNMetadata, source: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """Set ``model``'s metadata: ``source``'s (default: ``model``'s own) foreign entries, then ``meta``'s.
    Modifies and returns ``model``."""
    kept = foreign(source if source is not None else model)
    del model.metadata_props[:]
    for key, value in kept + meta.entries():
        model.metadata_props.add(key=key, value=value)
    return model


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def read(model: onnx.ModelProto) -> SNNMetadata:
    """The :class:`SNNMetadata` of an SNN written by onnx2snn (ConversionError if it has none)."""
    meta = props(model)
    if TIMESTEPS not in meta:
        raise ConversionError("the SNN model has no onnx2snn metadata (timesteps); give a model "
                              "written by `onnx2snn convert`")
    init = json.loads(meta.get(STATE_INIT, "{}"))
    state_in = meta.get(STATE_INPUTS)
    return SNNMetadata(
        timesteps=int(meta[TIMESTEPS]),
        running_outputs=tuple(json.loads(meta.get(RUNNING, "[]"))),
        form=meta.get(FORM, "folded"),
        neuron=meta.get(NEURON),
        spiking_depth=_int(meta.get(SPIKING_DEPTH)),
        latency_steps=_int(meta.get(LATENCY)),
        state_inputs=None if state_in is None else tuple(json.loads(state_in)),
        state_outputs=None if state_in is None else tuple(json.loads(meta.get(STATE_OUTPUTS, "[]"))),
        state_init={k: np.asarray(v["values"], np.float32).reshape(v["shape"]) for k, v in init.items()},
        version=meta.get(VERSION, ""),
        threshold=meta.get(THRESHOLD),
        exact_after_timesteps=_int(meta.get(EXACT)),
        readout=meta.get(READOUT),
        recurrent=None if RECURRENT not in meta else tuple(json.loads(meta[RECURRENT])),
        quantizers=meta.get(QUANTIZERS),
        neurons=None if NEURONS not in meta else tuple(tuple(n) for n in json.loads(meta[NEURONS])),
    )


def initial_state(meta: SNNMetadata, dims: Mapping[str, Sequence], batch: int) -> dict[str, np.ndarray]:
    """A streaming SNN's state before its first step, for ``batch`` samples: every state input at its
    recorded initial value (0 when none is recorded), broadcast to its shape (``dims``: the state
    inputs' dims, the first one the batch)."""
    state = {}
    for name in meta.state_inputs or ():
        shape = [batch if k == 0 else int(d) for k, d in enumerate(dims[name])]  # a scalar state stays one
        value = (meta.state_init or {}).get(name)
        state[name] = (np.zeros(shape, np.float32) if value is None
                       else np.ascontiguousarray(np.broadcast_to(value, shape), np.float32))
    return state


def is_snn(model: onnx.ModelProto) -> bool:
    return TIMESTEPS in props(model)


def form(model: onnx.ModelProto) -> str:
    """The SNN's runtime form ("folded" when not recorded)."""
    return props(model).get(FORM, "folded")


def running_output(model: onnx.ModelProto) -> str:
    """The first running-mean output ``[T, N, ...]`` of an SNN."""
    names = read(model).running_outputs
    if not names:
        raise ConversionError("the SNN model lists no running-mean output; convert it with onnx2snn")
    return names[0]


# -- the canonical ANN's quantizer table (prepare → recipe) ---------------------------------------

def quantizers_json(model: onnx.ModelProto) -> str | None:
    return props(model).get(QUANTIZERS)


def set_quantizers_json(model: onnx.ModelProto, text: str) -> None:
    model.metadata_props.add(key=QUANTIZERS, value=text)


__all__ = [
    "SNNMetadata", "write", "read", "initial_state", "props", "foreign", "is_snn", "form", "running_output", "quantizers_json",
    "set_quantizers_json"]
