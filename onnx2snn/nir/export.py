"""An onnx2snn SNN (folded form, ``IFNeuron``) as a NIR graph, exact under :mod:`.semantics`.

The ONNX graph is walked in topological order; each tensor becomes a :class:`Signal`: the NIR
nodes whose outputs sum to it, its shape per sample, and the spike amplitude still to apply
(spikes are binary in NIR; θ is multiplied into the next weighted layer's weights or written as a
``Scale``). One op maps to NIR as:

======================  ==================================================================
ONNX                    NIR
======================  ==================================================================
``Tile`` (time axis)    nothing: NIR feeds the input at every step
``IFNeuron`` subtract   ``I`` (r = 1) → ``Threshold`` (prev(θ − v_init)) → ``Scale(−θ)`` → ``I``
``IFNeuron`` zero       ``IF`` (r = 1, v_threshold prev(θ), v_reset 0); v_init must be 0
``Conv`` 1-D / 2-D      ``Conv1d`` / ``Conv2d`` (stride, symmetric padding, dilation; groups
                        written as the dense weight with zero blocks: NIR 1.0.8 types a
                        grouped conv's input wrongly, and the zeros add exactly nothing)
``Gemm``, ``MatMul``    ``Affine`` / ``Linear`` (an ``Add`` of a constant becomes its bias)
``Add`` / ``Sum``       several edges into the consumer (NIR sums a node's inputs)
``Mul`` by a constant   ``Scale``
``AveragePool``         ``AvgPool2d``; ``GlobalAveragePool``: ``AvgPool2d`` over the whole map
``Flatten``, flat       ``Flatten`` (start_dim 0: NIR shapes have no batch axis)
``Reshape``
``Slice`` + ``Pad``     the option-A ResNet shortcut (subsample, zero channels): a 1×1 ``Conv2d``
                        whose weights select (1 or 0), exact
readout                 ``Output`` fed by the last analog layer at every step (mean over T)
======================  ==================================================================

Everything else (bipolar and temporal-separation neurons, MaxPool, Concat, the streaming,
portable and cumulative forms, recurrent SNNs) is refused with one :class:`ConversionError` that
names every such node and says which conversion flags give an exportable SNN.

Invariant: the input model is not modified; :func:`to_nir` returns a type-checked
``nir.NIRGraph`` or raises; :func:`export_nir` writes the file atomically (nothing is left on
error).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .. import metadata
from .._version import __version__
from ..core.graph import constant_value, node_label
from ..core.shapes import at_sample_batch, tensor_shapes
from ..errors import ConfigError, ConversionError
from ..passes.fold_constants import FoldConstantsPass
from . import semantics as sem

HINTS = {
    "bipolar": "--neuron if (not bif, auto on a quantized ANN, or --preset best: NIR has no neuron with "
               "negative spikes)",
    "tsep": "--neuron if (not tsep: integrate-then-fire needs a gated phase NIR cannot express)",
    "maxpool": "an ANN with AveragePool in place of MaxPool (NIR has no max over spike trains)",
    "reset": "--reset subtract or --v-init zero (NIR's IF has no initial potential, and a hard reset "
             "loses a potential folded into the threshold)",
    "layer": "an ANN without these layers (see docs/nir.md for the ops that map)",
}


def require_nir():
    """The ``nir`` package, or a ConfigError that says how to install it."""
    try:
        import nir
    except ImportError:
        raise ConfigError("NIR export needs the optional packages nir and h5py: "
                          "pip install 'onnx2snn[nir]'") from None
    return nir


@dataclass
class Signal:
    """A tensor in NIR: the sum of ``sources``' outputs, times ``amplitude`` (None: 1)."""

    sources: tuple[str, ...]
    shape: tuple[int, ...]
    amplitude: np.ndarray | None = None


@dataclass
class _Refusal(Exception):
    reason: str
    hint: str = "layer"


@dataclass
class _Export:
    """The NIR graph under construction and the state of the walk."""

    nir: object
    timesteps: int
    shapes: dict
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    signals: dict = field(default_factory=dict)
    neurons: list = field(default_factory=list)  # [ANN tensor, NIR spike node]
    consumers: dict = field(default_factory=dict)  # ONNX tensor name -> number of consumers
    owner: dict = field(default_factory=dict)  # NIR node -> the ONNX tensor it alone produces
    outputs: dict = field(default_factory=dict)  # NIR Output node -> the SNN output it stands for
    after_mean: dict = field(default_factory=dict)  # SNN output -> Softmax / LogSoftmax applied to the mean

    def name(self, base: str) -> str:
        clean = re.sub(r"[^A-Za-z0-9_]", "_", base).strip("_") or "node"
        name, k = clean, 1
        while name in self.nodes:
            name = f"{clean}_{k}"
            k += 1
        return name

    def add(self, base: str, node, onnx_name: str, role: str) -> str:
        name = self.name(base)
        node.metadata = {sem.NODE_ONNX: onnx_name, sem.NODE_ROLE: role}
        self.nodes[name] = node
        return name

    def connect(self, signal: Signal, dst: str) -> None:
        self.edges.extend((src, dst) for src in self.materialize(signal).sources)

    def materialize(self, signal: Signal) -> Signal:
        """The same tensor with amplitude 1 (a ``Scale`` node when θ is still to apply)."""
        if signal.amplitude is None:
            return signal
        scale = sem.per_sample_full(signal.amplitude, signal.shape)
        name = self.add(signal.sources[0] + "_amplitude", self.nir.Scale(scale=scale),
                        self.nodes[signal.sources[0]].metadata[sem.NODE_ONNX], "spike amplitude θ")
        self.edges.append((signal.sources[0], name))
        return Signal((name,), signal.shape)


# -- entry points -------------------------------------------------------------------------------

def to_nir(model: onnx.ModelProto | str | os.PathLike):
    """The NIR graph (``nir.NIRGraph``) of an onnx2snn SNN; ConversionError naming every node
    that has no exact NIR equivalent."""
    nir = require_nir()
    if not isinstance(model, onnx.ModelProto):
        from ..io import load_model
        model = load_model(model)
    meta = _check_model(model)
    graph, _ = at_sample_batch(model)
    FoldConstantsPass()(graph)
    graph.toposort()
    ex = _Export(nir, meta.timesteps, tensor_shapes(graph))
    for node in graph.nodes:
        for t in node.inputs:
            ex.consumers[t.name] = ex.consumers.get(t.name, 0) + 1
    readout, skipped = _readout_tensors(graph, meta)
    _add_inputs(ex, graph)
    offenders = _walk(ex, graph, skipped)
    if not offenders:
        _add_outputs(ex, graph, readout)
    if offenders:
        raise ConversionError(_refusal_message(offenders))
    return nir.NIRGraph(nodes=ex.nodes, edges=ex.edges, metadata=_graph_metadata(ex, model, meta),
                        type_check=True)


def export_nir(model: onnx.ModelProto | str | os.PathLike, output: str | os.PathLike):
    """Write the NIR graph of an SNN to ``output`` (HDF5, atomically); returns the ``nir.NIRGraph``."""
    from ..io import check_output_path
    inputs = [] if isinstance(model, onnx.ModelProto) else [model]
    check_output_path(output, *inputs)
    graph = to_nir(model)
    nir = require_nir()
    import io
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    _write_atomic(buffer.getvalue(), Path(output))
    return graph


def _write_atomic(data: bytes, path: Path) -> None:
    """Temporary file beside ``path``, then rename (the mode ``save_model`` gives a file)."""
    from ..io import _new_file_mode
    directory = path.parent if str(path.parent) else Path(".")
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- model-level checks -------------------------------------------------------------------------

def _check_model(model: onnx.ModelProto) -> metadata.SNNMetadata:
    meta = metadata.read(model)
    if meta.is_recurrent:
        raise ConversionError("a recurrent SNN (a converted Scan) cannot be exported to NIR: onnx2snn "
                              "exports feed-forward SNNs (convert a feed-forward ANN)")
    if meta.form != "folded":
        raise ConversionError(f"the SNN is in the {meta.form} form; NIR export reads the folded form: "
                              "convert with --form folded (the default)")
    return meta


def _readout_tensors(graph: gs.Graph, meta: metadata.SNNMetadata) -> tuple[dict[str, str], set[int]]:
    """({per-step tensor: graph output it is averaged into}, ids of the readout's nodes).

    The readout (:mod:`onnx2snn.snn.readout`) views the last layer's output [T·N, ...] as [T, −1]
    (a Reshape to the constant [T, −1]) and computes the running output ``<name>_running_mean`` and
    the mean ``<name>`` from it: the Reshape is found walking back from each running output."""
    tensors = graph.tensors()
    readout, skipped = {}, set()
    for running in meta.running_outputs:
        view = _time_view(tensors.get(running), meta.timesteps)
        if view is None:
            continue
        readout[view.inputs[0].name] = running.removesuffix("_running_mean")
        stack = [view]
        while stack:
            n = stack.pop()
            if id(n) not in skipped:
                skipped.add(id(n))
                stack.extend(c for out in n.outputs for c in out.outputs)
    readout_nodes = [n for n in graph.nodes if id(n) in skipped]
    for name, out in list(readout.items()):
        final = next((n.op for n in readout_nodes if n.op in ("Softmax", "LogSoftmax")
                      and any(o.name == out for o in n.outputs)), None)
        readout[name] = out if final is None else f"{out}|{final}"
    if not readout:
        raise ConversionError("the SNN has no onnx2snn readout (mean over the T steps); export an SNN "
                              "written by `onnx2snn convert`")
    return readout, skipped


def _time_view(tensor, timesteps: int) -> gs.Node | None:
    """The Reshape to [T, −1] upstream of ``tensor`` (breadth first), or None."""
    frontier, seen = [tensor] if tensor is not None else [], set()
    while frontier:
        t = frontier.pop(0)
        for node in t.inputs:
            if id(node) in seen:
                continue
            seen.add(id(node))
            target = constant_value(node.inputs[1]) if node.op == "Reshape" and len(node.inputs) > 1 else None
            if target is not None and target.reshape(-1).tolist() == [timesteps, -1]:
                return node
            frontier.extend(i for i in node.inputs if isinstance(i, gs.Variable))
    return None


def _per_sample(ex: _Export, tensor) -> tuple[int, ...]:
    shape = ex.shapes.get(tensor.name)
    if shape is None or len(shape) < 1 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise _Refusal(f"the shape of '{tensor.name}' is not known ({shape}); NIR needs static shapes")
    return tuple(int(d) for d in shape[1:])


def _add_inputs(ex: _Export, graph: gs.Graph) -> None:
    for x in graph.inputs:
        shape = tuple(int(d) for d in x.shape[1:])
        name = ex.add(x.name, ex.nir.Input(input_type={"input": np.array(shape)}), x.name, "input")
        ex.signals[x.name] = Signal((name,), shape)


def _add_outputs(ex: _Export, graph: gs.Graph, readout: dict[str, str]) -> None:
    """One Output per averaged SNN output; ``out|Softmax`` marks a final (Log)Softmax, which the
    SNN applies after the mean and NIR cannot express (recorded in the metadata)."""
    for per_step, entry in readout.items():
        out, _, final = entry.partition("|")
        signal = ex.materialize(ex.signals[per_step])
        name = ex.add(out, ex.nir.Output(output_type={"output": np.array(signal.shape)}), out, "output")
        ex.connect(signal, name)
        ex.outputs[name] = out
        if final:
            ex.after_mean[out] = final


def _graph_metadata(ex: _Export, model, meta) -> dict:
    resets = sorted({str(n.metadata.get("reset")) for n in ex.nodes.values() if "reset" in n.metadata})
    return {
        sem.META_TIMESTEPS: int(meta.timesteps), sem.META_DT: sem.DT, sem.META_READOUT: sem.READOUT,
        sem.META_ENCODING: "direct (the analog input at every step)",
        sem.META_NEURON: "IFNeuron", sem.META_RESET: ",".join(resets),
        sem.META_NEURONS: json.dumps(ex.neurons),
        sem.META_OUTPUTS: json.dumps(ex.outputs), sem.META_AFTER_MEAN: json.dumps(ex.after_mean),
        sem.META_INPUTS: json.dumps([x.name for x in model.graph.input
                                     if x.name not in {i.name for i in model.graph.initializer}]),
        sem.META_VERSION: __version__, sem.META_SEMANTICS: sem.SEMANTICS_TEXT,
    }


# -- the walk -----------------------------------------------------------------------------------

def _walk(ex: _Export, graph: gs.Graph, skipped: set[int]) -> list[tuple[str, str, str, str]]:
    """Map every node; (name, op, reason, hint) of each that cannot be mapped."""
    offenders = []
    for node in graph.nodes:
        if id(node) in skipped:
            continue
        name, op = node_label(node)
        handler = HANDLERS.get(node.op)
        try:
            if handler is None:
                raise _Refusal(_unsupported_reason(node.op), _unsupported_hint(node.op))
            missing = [t for t in _data_inputs(node) if t.name not in ex.signals]
            if missing:  # an input was refused already: check what can be checked without it
                if node.op in STATIC_CHECKS:
                    STATIC_CHECKS[node.op](ex, node)
                continue
            handler(ex, node)
        except _Refusal as r:
            offenders.append((name, op, r.reason, r.hint))
    return offenders


def _data_inputs(node: gs.Node) -> list:
    return [t for t in node.inputs if isinstance(t, gs.Variable) and t.name and constant_value(t) is None]


def _unsupported_reason(op: str) -> str:
    return {"MaxPool": "max pooling has no NIR node (a max over spike trains is not a sum)",
            "GlobalMaxPool": "max pooling has no NIR node (a max over spike trains is not a sum)",
            "Concat": "NIR has no concatenation node"}.get(op, "no NIR node computes this op")


def _unsupported_hint(op: str) -> str:
    return "maxpool" if op in ("MaxPool", "GlobalMaxPool") else "layer"


def _refusal_message(offenders) -> str:
    groups: dict = {}
    for n, op, reason, _ in offenders:
        groups.setdefault((op, reason), []).append(n)
    listed = "; ".join(f"node{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)} ({op}): {reason}"
                       for (op, reason), names in groups.items())
    hints = list(dict.fromkeys(HINTS[h] for *_, h in offenders))
    return (f"cannot export the SNN to NIR exactly, {len(offenders)} node(s) have no NIR equivalent: {listed}. "
            f"For an exportable SNN convert with {'; and '.join(hints)} (docs/nir.md)")


def _const(node: gs.Node, index: int, what: str) -> np.ndarray:
    if index >= len(node.inputs) or not node.inputs[index].name:
        raise _Refusal(f"its {what} is missing")
    value = constant_value(node.inputs[index])
    if value is None:
        raise _Refusal(f"its {what} is not a constant")
    return np.asarray(value)


def _signal(ex: _Export, node: gs.Node, index: int = 0) -> Signal:
    return ex.signals[node.inputs[index].name]


def _set(ex: _Export, node: gs.Node, signal: Signal) -> None:
    ex.signals[node.outputs[0].name] = signal
    if len(signal.sources) == 1:
        ex.owner.setdefault(signal.sources[0], node.outputs[0].name)


# -- neurons ------------------------------------------------------------------------------------

def _if_parameters(ex: _Export, node: gs.Node, shape: tuple[int, ...]) -> tuple[str, np.ndarray, np.ndarray]:
    """(reset, θ, v_init) of an IFNeuron as arrays of one sample's ``shape``; _Refusal when NIR cannot
    express the pair."""
    reset = node.attrs.get("reset", "subtract")
    reset = reset.decode() if isinstance(reset, bytes) else str(reset)
    if int(node.attrs.get("timesteps", ex.timesteps)) != ex.timesteps:
        raise _Refusal(f"timesteps {node.attrs.get('timesteps')} differs from the SNN's T = {ex.timesteps}")
    theta = sem.per_sample_full(_const(node, 1, "threshold"), shape)
    v_init = sem.initial_potential(_const(node, 2, "v_init") if len(node.inputs) > 2 and node.inputs[2].name
                                   else None, shape)
    if reset == "zero" and np.any(v_init != 0):
        raise _Refusal("reset to zero with an initial potential: NIR's IF starts at 0 and its hard reset "
                       "erases an offset folded into the threshold", "reset")
    return reset, theta, v_init


def _check_if_neuron(ex: _Export, node: gs.Node) -> None:
    _if_parameters(ex, node, _per_sample(ex, node.inputs[0]))


def _if_neuron(ex: _Export, node: gs.Node) -> None:
    x = ex.materialize(_signal(ex, node))
    shape = x.shape
    reset, theta, v_init = _if_parameters(ex, node, shape)
    has_v0 = bool(np.any(v_init != 0))
    nir = ex.nir
    if reset == "zero":
        spike = ex.add(node.name, nir.IF(r=np.ones(shape, np.float32), v_threshold=sem.firing_threshold(theta),
                                         v_reset=np.zeros(shape, np.float32)), node.name, "IFNeuron (reset zero)")
        ex.nodes[spike].metadata["reset"] = "zero"
        ex.connect(x, spike)
    else:
        v = ex.add(node.name, nir.I(r=np.ones(shape, np.float32)), node.name, "IFNeuron membrane")
        ex.nodes[v].metadata["reset"] = "subtract"
        spike = ex.add(node.name + "_fire", nir.Threshold(
            threshold=sem.firing_threshold(theta, v_init if has_v0 else None)), node.name, "IFNeuron spikes")
        back = ex.add(node.name + "_reset", nir.Scale(scale=(-theta).astype(np.float32)), node.name,
                      "IFNeuron reset by subtraction")
        ex.edges.append((back, v))
        ex.connect(x, v)
        ex.edges += [(v, spike), (spike, back)]
    ex.neurons.append([node.outputs[0].name, spike])
    _set(ex, node, Signal((spike,), shape, theta))


def _refuse_bipolar(ex: _Export, node: gs.Node) -> None:
    raise _Refusal("bipolar spikes (±θ): NIR's neurons fire positive spikes only", "bipolar")


def _refuse_tsep(ex: _Export, node: gs.Node) -> None:
    raise _Refusal("integrate-then-fire (temporal separation) switches phase with time; NIR has no such "
                   "neuron", "tsep")


# -- linear layers ------------------------------------------------------------------------------

def _input_channel_gain(signal: Signal, channels: int) -> np.ndarray | None:
    """The per-channel amplitude of a [C, ...] signal (None if 1, _Refusal-free: None when not per channel)."""
    if signal.amplitude is None:
        return None
    full = sem.per_sample_full(signal.amplitude, signal.shape)
    per_channel = full.reshape(channels, -1)[:, 0]
    if not np.array_equal(full, sem.per_sample_full(per_channel, signal.shape)):
        return None
    return per_channel


def _fold_conv_input(weight: np.ndarray, gain: np.ndarray, groups: int) -> np.ndarray:
    """W[o, j, ...] · gain[channel of (o, j)]: the input amplitude moved into the weights."""
    c_out, c_per = weight.shape[0], weight.shape[1]
    out_per = c_out // groups
    channel = (np.arange(c_out)[:, None] // out_per) * c_per + np.arange(c_per)[None, :]
    g = gain[channel].reshape(c_out, c_per, *([1] * (weight.ndim - 2)))
    return (weight * g).astype(np.float32)


def _dense_groups(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped convolution's weight [C_out, C_in/g, ...] as the dense [C_out, C_in, ...] one with zero
    blocks off the diagonal: the same sums (the added products are 0·x = 0, exactly)."""
    c_out, c_per = weight.shape[:2]
    out_per = c_out // groups
    dense = np.zeros((c_out, c_per * groups) + weight.shape[2:], np.float32)
    for g in range(groups):
        dense[g * out_per:(g + 1) * out_per, g * c_per:(g + 1) * c_per] = weight[g * out_per:(g + 1) * out_per]
    return dense


def _pair(values, rank: int, what: str) -> tuple[int, ...]:
    values = [int(v) for v in values]
    if len(values) != rank:
        raise _Refusal(f"{what} {values} does not fit a {rank}-D op")
    return tuple(values)


def _symmetric_pads(pads, rank: int) -> tuple[int, ...]:
    pads = [int(p) for p in (pads or [0] * (2 * rank))]
    begin, end = pads[:rank], pads[rank:]
    if begin != end:
        raise _Refusal(f"asymmetric padding {pads}: NIR pads both sides alike")
    return tuple(begin)


def _conv(ex: _Export, node: gs.Node) -> None:
    weight = _const(node, 1, "weight").astype(np.float32)
    rank = weight.ndim - 2
    if rank not in (1, 2):
        raise _Refusal(f"a {rank}-D convolution: NIR has Conv1d and Conv2d")
    if str(node.attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise _Refusal("auto_pad SAME: export the ANN with explicit pads")
    bias = (_const(node, 2, "bias").astype(np.float32) if len(node.inputs) > 2 and node.inputs[2].name
            else np.zeros(weight.shape[0], np.float32))
    groups = int(node.attrs.get("group", 1))
    stride = _pair(node.attrs.get("strides", [1] * rank), rank, "strides")
    dilation = _pair(node.attrs.get("dilations", [1] * rank), rank, "dilations")
    padding = _symmetric_pads(node.attrs.get("pads"), rank)
    x = _signal(ex, node)
    gain = _input_channel_gain(x, x.shape[0])
    if gain is not None:
        weight = _fold_conv_input(weight, gain, groups)
        x = Signal(x.sources, x.shape)
    else:
        x = ex.materialize(x)
    out_shape = _per_sample(ex, node.outputs[0])
    if groups > 1:  # NIR 1.0.8 types a conv's input as weight.shape[1] channels: write it dense
        weight, groups = _dense_groups(weight, groups), 1
    if rank == 2:
        conv = ex.nir.Conv2d(input_shape=tuple(x.shape[1:]), weight=weight, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, bias=bias)
    else:
        conv = ex.nir.Conv1d(input_shape=int(x.shape[1]), weight=weight, stride=stride[0], padding=padding[0],
                             dilation=dilation[0], groups=groups, bias=bias)
    name = ex.add(node.name, conv, node.name, node.op)
    ex.connect(x, name)
    _set(ex, node, Signal((name,), out_shape))


def _dense(ex: _Export, node: gs.Node, weight: np.ndarray, bias: np.ndarray | None) -> None:
    """weight [out, in] (NIR's layout); the input's amplitude folded into its columns."""
    x = _signal(ex, node)
    if len(x.shape) != 1:
        raise _Refusal(f"input of shape {list(x.shape)}: NIR's Affine/Linear read vectors (flatten first)")
    if x.amplitude is not None:
        weight = (weight * sem.per_sample_full(x.amplitude, x.shape)[None, :]).astype(np.float32)
        x = Signal(x.sources, x.shape)
    layer = (ex.nir.Linear(weight=weight.astype(np.float32)) if bias is None
             else ex.nir.Affine(weight=weight.astype(np.float32), bias=bias.astype(np.float32)))
    name = ex.add(node.name, layer, node.name, node.op)
    ex.connect(x, name)
    _set(ex, node, Signal((name,), (weight.shape[0],)))


def _gemm(ex: _Export, node: gs.Node) -> None:
    if int(node.attrs.get("transA", 0)):
        raise _Refusal("transA = 1: the activation must be Gemm's first operand, untransposed")
    b = _const(node, 1, "weight (B)").astype(np.float32)
    weight = b if int(node.attrs.get("transB", 0)) else b.T
    alpha, beta = np.float32(node.attrs.get("alpha", 1.0)), np.float32(node.attrs.get("beta", 1.0))
    if alpha != 1:
        weight = weight * alpha
    bias = None
    if len(node.inputs) > 2 and node.inputs[2].name:
        c = _const(node, 2, "bias (C)").astype(np.float32)
        bias = np.broadcast_to(c.reshape(-1) if c.size == weight.shape[0] else c, (weight.shape[0],)) * beta
    _dense(ex, node, np.ascontiguousarray(weight, np.float32),
           None if bias is None else np.ascontiguousarray(bias, np.float32))


def _matmul(ex: _Export, node: gs.Node) -> None:
    b = _const(node, 1, "second operand")
    if b.ndim != 2:
        raise _Refusal(f"a MatMul with a {b.ndim}-D constant: NIR's Linear is a matrix")
    _dense(ex, node, np.ascontiguousarray(b.T, np.float32), None)


def _bias_into_producer(ex: _Export, tensor: str, const: np.ndarray) -> bool:
    """Add a constant to the bias of the layer that alone produces ``tensor`` (read by nothing else);
    False when it cannot."""
    x = ex.signals[tensor]
    if len(x.sources) != 1 or x.amplitude is not None:
        return False
    src = x.sources[0]
    layer = ex.nodes[src]
    if ex.owner.get(src) != tensor or ex.consumers.get(tensor, 0) != 1:
        return False
    channels = x.shape[0]
    flat = np.asarray(const, np.float32)
    flat = flat.reshape(flat.shape[1:]) if flat.ndim == len(x.shape) + 1 and flat.shape[0] == 1 else flat
    full = np.broadcast_to(flat, x.shape) if flat.ndim <= len(x.shape) else None
    if full is None:
        return False
    per_channel = full.reshape(channels, -1)[:, 0]
    if not np.array_equal(full, sem.per_sample_full(per_channel, x.shape)):
        return False
    if isinstance(layer, ex.nir.Linear):
        ex.nodes[src] = ex.nir.Affine(weight=layer.weight, bias=per_channel.astype(np.float32))
        ex.nodes[src].metadata = layer.metadata
    elif isinstance(layer, (ex.nir.Affine, ex.nir.Conv1d, ex.nir.Conv2d)):
        layer.bias = (layer.bias + per_channel).astype(np.float32)
    else:
        return False
    return True


def _add(ex: _Export, node: gs.Node) -> None:
    data = [t for t in node.inputs if constant_value(t) is None]
    consts = [constant_value(t) for t in node.inputs if constant_value(t) is not None]
    out_shape = _per_sample(ex, node.outputs[0])
    if consts:
        if len(data) != 1 or len(consts) != 1 or not _bias_into_producer(ex, data[0].name, consts[0]):
            raise _Refusal("an Add of a constant that is not the bias of the Conv/Gemm/MatMul before it")
        _set(ex, node, ex.signals[data[0].name])
        return
    signals = [ex.materialize(ex.signals[t.name]) for t in data]
    if any(s.shape != out_shape for s in signals):
        raise _Refusal(f"a broadcasting Add ({[list(s.shape) for s in signals]} → {list(out_shape)}): NIR "
                       "sums inputs of equal shape")
    ex.signals[node.outputs[0].name] = Signal(tuple(src for s in signals for src in s.sources), out_shape)


def _mul(ex: _Export, node: gs.Node) -> None:
    data = [t for t in node.inputs if constant_value(t) is None]
    consts = [constant_value(t) for t in node.inputs if constant_value(t) is not None]
    if len(data) != 1 or len(consts) != 1:
        raise _Refusal("a product of two signals: NIR scales by constants only")
    x = ex.materialize(ex.signals[data[0].name])
    c = np.asarray(consts[0], np.float32)
    if c.ndim == len(x.shape) + 1 and c.shape[0] == 1:
        c = c[0]
    try:
        scale = np.ascontiguousarray(np.broadcast_to(c, x.shape), np.float32)
    except ValueError:
        raise _Refusal(f"a constant of shape {list(c.shape)} that does not broadcast to {list(x.shape)}") from None
    name = ex.add(node.name, ex.nir.Scale(scale=scale), node.name, node.op)
    ex.connect(x, name)
    _set(ex, node, Signal((name,), x.shape))


# -- pools, shapes ------------------------------------------------------------------------------

def _pool_signal(ex: _Export, node: gs.Node) -> Signal:
    """The pool's input; its amplitude kept when it is per channel (a pool is linear per channel)."""
    x = _signal(ex, node)
    if len(x.shape) != 3:
        raise _Refusal(f"a pool over a {len(x.shape) - 1}-D map: NIR has 2-D pools")
    if x.amplitude is not None and _input_channel_gain(x, x.shape[0]) is None:
        x = ex.materialize(x)
    return x


def _avgpool(ex: _Export, node: gs.Node) -> None:
    x = _pool_signal(ex, node)
    kernel = _pair(node.attrs["kernel_shape"], 2, "kernel_shape")
    stride = _pair(node.attrs.get("strides", [1, 1]), 2, "strides")
    padding = _symmetric_pads(node.attrs.get("pads"), 2)
    if any(int(d) != 1 for d in node.attrs.get("dilations", [1, 1])):
        raise _Refusal("a dilated pool: NIR's AvgPool2d has no dilation")
    if str(node.attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise _Refusal("auto_pad SAME: export the ANN with explicit pads")
    if any(padding) and not int(node.attrs.get("count_include_pad", 0)):
        raise _Refusal("padding excluded from the average (count_include_pad = 0): NIR's AvgPool2d "
                       "divides by the kernel size")
    out_shape = _per_sample(ex, node.outputs[0])
    floor = tuple((x.shape[1 + k] + 2 * padding[k] - kernel[k]) // stride[k] + 1 for k in range(2))
    if tuple(out_shape[1:]) != floor:
        raise _Refusal("ceil_mode: NIR's pools round the output size down")
    _pool(ex, node, x, kernel, stride, padding, out_shape)


def _global_avgpool(ex: _Export, node: gs.Node) -> None:
    x = _pool_signal(ex, node)
    hw = tuple(x.shape[1:])
    _pool(ex, node, x, hw, hw, (0, 0), (x.shape[0], 1, 1))


def _pool(ex, node, x: Signal, kernel, stride, padding, out_shape) -> None:
    pool = ex.nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding))
    name = ex.add(node.name, pool, node.name, node.op)
    ex.edges.extend((src, name) for src in x.sources)
    gain = None if x.amplitude is None else _input_channel_gain(x, x.shape[0])  # per channel: kept
    _set(ex, node, Signal((name,), tuple(out_shape), gain))


def _flatten(ex: _Export, node: gs.Node) -> None:
    if node.op == "Flatten" and int(node.attrs.get("axis", 1)) != 1:
        raise _Refusal("Flatten with axis ≠ 1 mixes samples")
    x = _signal(ex, node)
    out_shape = _per_sample(ex, node.outputs[0])
    if len(out_shape) != 1 or int(np.prod(x.shape)) != out_shape[0]:
        raise _Refusal(f"a reshape {list(x.shape)} → {list(out_shape)} that is not a flatten: NIR has Flatten only")
    amplitude = None if x.amplitude is None else sem.per_sample_full(x.amplitude, x.shape).reshape(-1)
    if len(x.shape) == 1:
        _set(ex, node, Signal(x.sources, out_shape, amplitude))
        return
    flat = ex.nir.Flatten(input_type={"input": np.array(x.shape)}, start_dim=0, end_dim=-1)
    name = ex.add(node.name, flat, node.name, node.op)
    ex.edges.extend((src, name) for src in x.sources)
    _set(ex, node, Signal((name,), out_shape, amplitude))


def _time_tile(ex: _Export, node: gs.Node) -> None:
    reps = constant_value(node.inputs[1])
    if reps is None or int(reps.reshape(-1)[0]) != ex.timesteps or np.any(reps.reshape(-1)[1:] != 1):
        raise _Refusal("a Tile that is not the time axis (T copies along the batch)")
    ex.signals[node.outputs[0].name] = _signal(ex, node)


def _identity(ex: _Export, node: gs.Node) -> None:
    ex.signals[node.outputs[0].name] = _signal(ex, node)


# -- the option-A shortcut: Slice (spatial subsampling) and Pad (zero channels) ------------------

def _selection_conv(ex: _Export, node: gs.Node, x: Signal, rows: np.ndarray, stride: tuple[int, int],
                    out_shape) -> None:
    """A 1×1 Conv2d with weight ``rows`` [C_out, C_in] of 0/1: a selection, exact in float."""
    gain = _input_channel_gain(x, x.shape[0])
    weight = rows.astype(np.float32)[:, :, None, None]
    if gain is not None:
        weight = _fold_conv_input(weight, gain, 1)
    else:
        x = ex.materialize(x)
    conv = ex.nir.Conv2d(input_shape=tuple(x.shape[1:]), weight=weight, stride=stride, padding=(0, 0),
                         dilation=(1, 1), groups=1, bias=np.zeros(rows.shape[0], np.float32))
    name = ex.add(node.name, conv, node.name, node.op + " as a 1×1 selection Conv2d")
    ex.edges.extend((src, name) for src in x.sources)
    _set(ex, node, Signal((name,), tuple(out_shape)))


def _slice(ex: _Export, node: gs.Node) -> None:
    x = _signal(ex, node)
    if len(x.shape) != 3:
        raise _Refusal("a Slice of a tensor that is not [C, H, W]")
    starts, ends = _const(node, 1, "starts"), _const(node, 2, "ends")
    axes = _const(node, 3, "axes") if len(node.inputs) > 3 and node.inputs[3].name else np.arange(len(starts))
    steps = _const(node, 4, "steps") if len(node.inputs) > 4 and node.inputs[4].name else np.ones(len(starts))
    stride = [1, 1]
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) + (4 if int(axis) < 0 else 0)
        if axis not in (2, 3) or int(start) != 0 or int(step) < 1 or int(end) < x.shape[axis - 1]:
            raise _Refusal("a Slice other than a subsampling of the spatial axes from 0 "
                           "(x[:, :, ::s, ::s]): NIR has no slicing node")
        stride[axis - 2] *= int(step)
    out_shape = _per_sample(ex, node.outputs[0])
    _selection_conv(ex, node, x, np.eye(x.shape[0]), (stride[0], stride[1]), out_shape)


def _pad(ex: _Export, node: gs.Node) -> None:
    x = _signal(ex, node)
    pads = _const(node, 1, "pads").astype(np.int64).reshape(-1)
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = (constant_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else np.float32(0))
    rank = len(x.shape) + 1
    lo, hi = pads[:rank], pads[rank:]
    only_channels = len(pads) == 2 * rank and not np.any(np.delete(lo, 1)) and not np.any(np.delete(hi, 1))
    if (mode != "constant" or value is None or float(np.asarray(value).reshape(-1)[0]) != 0.0
            or not only_channels or np.any(pads < 0) or len(x.shape) != 3):
        raise _Refusal("a Pad other than zero channels added to a [C, H, W] map: NIR has no padding node")
    c = x.shape[0]
    rows = np.zeros((c + int(lo[1]) + int(hi[1]), c))
    rows[np.arange(c) + int(lo[1]), np.arange(c)] = 1.0
    _selection_conv(ex, node, x, rows, (1, 1), _per_sample(ex, node.outputs[0]))


HANDLERS = {
    "IFNeuron": _if_neuron, "BIFNeuron": _refuse_bipolar, "BIFCount": _refuse_bipolar, "TSNeuron": _refuse_tsep,
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add, "Sum": _add, "Mul": _mul,
    "AveragePool": _avgpool, "GlobalAveragePool": _global_avgpool, "Flatten": _flatten, "Reshape": _flatten,
    "Tile": _time_tile, "Identity": _identity, "Dropout": _identity, "Slice": _slice, "Pad": _pad,
}
# what can be refused without the input's NIR signal: checked even when an input was refused before
STATIC_CHECKS = {"BIFNeuron": _refuse_bipolar, "BIFCount": _refuse_bipolar, "TSNeuron": _refuse_tsep,
                 "IFNeuron": _check_if_neuron}

__all__ = ["to_nir", "export_nir", "require_nir", "Signal"]
