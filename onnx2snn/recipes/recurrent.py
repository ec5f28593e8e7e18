"""Recurrent BIF SNNs from quantized RNNs written as an ONNX ``Scan`` (RNN-Morph).

A quantized RNN (CRNN-SNN conversion, Su et al. 2024) computes, for each
element s = 1..S of a sequence,

    h_s = cell(h_{s−1}, x_s),    e.g.  h_s = Q(W·x_s + U·h_{s−1} + b),
    Q(z) = γ·clip(floor(α·z + β), 0, L)                 (QCFS: γ = λ/L = 1/α, β = ½)

and is exported as a ``Scan`` whose body is the cell, written with ops that
:mod:`onnx2snn.passes.quantizers` recognises as quantized activations. The cell is a
feed-forward quantized network from (h_{s−1}, x_s) to h_s, so it converts with
the feed-forward BIF builder (:func:`onnx2snn.recipes.quantized.build_bif_snn`): every
quantized activation becomes a ``BIFNeuron``, the inputs — the previous hidden
state *and* the sequence element — enter at sub-step 0 (s-analog encoding),
and the body's outputs are the sums of their per-sub-step values over T_s
sub-steps (for a quantized activation: spike count · θ). The converted body
replaces the original one inside the same ``Scan``, so the SNN runs

    for each element s:  T_s sub-steps of the cell's BIF SNN, fed (h_{s−1}, x_s) at sub-step 0;
                         h_s = Σ over the sub-steps of the hidden neurons' spikes (count · θ)

and the layers outside the recurrence (the readout of h_S, shape arithmetic)
stay analog, as the last layer of a feed-forward SNN does. The hidden state is
summed as spike counts times θ (``ReadoutPass(spike_counts=True)``), so in float32 it is
bit-identical to the quantizer's output, not just equal up to rounding.

**Guarantee.** Let T* be the cell's guaranteed step count
(:func:`onnx2snn.neurons.bipolar.lowering.exact_timesteps`: the largest Σ L_k over the
quantized layers on a path through the cell, = L for the one-layer cell above).
With T_s ≥ T* sub-steps per element, h_s of the SNN equals the quantized RNN's
h_s for every s, in real arithmetic (by induction on s: given the same h_{s−1}
and x_s, the cell's BIF SNN settles to the quantized cell's output within T*
sub-steps, and the hidden state handed on is that output), so its outputs equal
the quantized RNN's after S·T_s steps in all (784·L for sequential MNIST with
one-pixel elements). In float32 the same holds up to rounding, except where a
pre-activation lies within rounding distance of a quantization boundary (one
level can then differ, as between two ANN runtimes). With T_s < T* the SNN
hands on hidden states that have not settled: an approximation, with a warning.

**Running output.** When the graph outputs depend only on final states of one
Scan (e.g. a Gemm readout of h_S), the running sums of those states over the
sub-steps of the *last* element are carried as an extra Scan state
``[T_s, N, ...]``, and the layers after the Scan are applied to them (time
folded into the batch axis), giving ``<output>_running_mean`` ``[T_s, N, K]``:
the output after sub-step t of the last element (equal to the final output
from t = T* on), which ``onnx2snn evaluate`` reads.

Refused, with one :class:`~onnx2snn.errors.UnsupportedOpError` naming every
offending node: a Scan body with an op that does not convert or an activation
that is not quantized (named with the reason, "in the body of Scan ..."), a
body that reads a tensor computed outside it, activations outside the
recurrence, the float recurrent ops ``RNN``/``LSTM``/``GRU`` (with how to export
a quantized RNN instead), ``Loop`` and other control flow. IF neurons do not
convert recurrences (:class:`~onnx2snn.errors.ConfigError`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.helper as oh
import onnx_graphsurgeon as gs

from .. import methods
from ..config import ConvertConfig
from ..core.builder import INT64_MAX, Builder
from ..core.graph import NameScope, export_graph, import_model
from ..errors import ConversionError, UnsupportedOpError
from ..neurons import kinds
from ..passes.activations import activation_names
from ..passes.canonicalize import canonicalize
from ..passes.check_support import LINEAR_WEIGHTED, STRUCTURAL
from ..passes.quantizers import quantizers_from_metadata
from ..snn.readout import RUNNING_SUFFIX
from .base import Built, Parameters, Recipe
from .quantized import build_bif_snn

log = logging.getLogger(__name__)

RECURRENT_OPS = ("Scan", "Loop", "RNN", "LSTM", "GRU")
# Ops allowed outside the recurrence: they run once, on analog values (readout, shape arithmetic).
OUTER_OPS = (LINEAR_WEIGHTED | STRUCTURAL | {"Add", "Sub", "Mul", "Div", "MatMul", "Sum", "Shape", "Size",
                                             "Gather", "ConstantOfShape", "Constant", "Range", "Tile",
                                             "Softmax", "LogSoftmax", "AveragePool", "GlobalAveragePool"})
# Ops the running output may apply to [T_s·N, ...] (each row on its own).
ROW_OPS = {"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Identity", "Softmax", "LogSoftmax", "Flatten"}
HOW_TO_EXPORT = ("train the RNN with a quantized activation (e.g. QCFS, λ/L·clip(floor(z·L/λ + ½), 0, L)) "
                 "and export the recurrence as a Scan whose body writes it with "
                 "Div/Clip/Mul/Add/Floor/Div/Mul (see models/make_seqmnist_rnn.py)")


@dataclass(frozen=True)
class Recurrence:
    """One converted Scan: its node, the sub-steps per element and the guaranteed count T*."""

    node: str
    substeps: int                  # T_s, sub-steps the cell's SNN runs per element
    exact_substeps: int            # T*: with T_s ≥ T* the hidden state equals the quantized RNN's
    sequence_length: int | None    # S (None when not static)
    neurons: int                   # BIFNeuron layers in the cell

    @property
    def total_steps(self) -> int | None:
        return None if self.sequence_length is None else self.sequence_length * self.substeps

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "total_steps": self.total_steps}


def recurrent_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The main graph's recurrence and control-flow nodes (Scan, Loop, RNN, LSTM, GRU, If, ...)."""
    return [n for n in model.graph.node if n.op_type in RECURRENT_OPS
            or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)]


def is_recurrent(model: onnx.ModelProto) -> bool:
    return bool(recurrent_nodes(model))


def label(node: onnx.NodeProto) -> str:
    return node.name or f"<unnamed {node.op_type}>"


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return oh.get_attribute_value(a)
    return default


def _float_rnn_reason(node: onnx.NodeProto) -> str:
    acts = [a.decode() if isinstance(a, bytes) else a for a in (attr(node, "activations") or [])]
    if node.op_type == "RNN":
        kind = f"activation {acts[0]}" if acts else "activation Tanh (the default)"
        if acts and all(a.lower() == "relu" for a in acts):
            return ("a float ReLU RNN: its hidden state is not quantized, so no BIF SNN reproduces it exactly "
                    f"(and IF neurons do not convert recurrences); {HOW_TO_EXPORT}")
        return f"RNN with {kind} has no spiking equivalent; only quantized ReLU RNNs convert: {HOW_TO_EXPORT}"
    return (f"{node.op_type} is a gated recurrence (sigmoid/tanh gates multiplied with activations) with no "
            f"spiking equivalent; only quantized ReLU RNNs convert: {HOW_TO_EXPORT}")


def outer_offenders(model: onnx.ModelProto) -> list[tuple[str, str, str]]:
    offenders = []
    for node in model.graph.node:
        op = node.op_type
        if op == "Scan":
            continue
        if op in ("RNN", "LSTM", "GRU"):
            offenders.append((label(node), op, _float_rnn_reason(node)))
        elif op == "Loop":
            offenders.append((label(node), op, "Loop is not supported: export the recurrence as a Scan over "
                              "the sequence (hidden state as a Scan state, the sequence as a scan input)"))
        elif any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            offenders.append((label(node), op, f"{op} with a subgraph (control flow) is not supported; only a "
                              "Scan over the sequence converts"))
        elif node.domain not in ("", "ai.onnx") or op not in OUTER_OPS:
            offenders.append((label(node), op, f"{op} outside the recurrence: only the Scan's cell becomes "
                              "spiking neurons, the layers outside it must be linear (readout, reshaping); "
                              "move the activation into the cell or remove it"))
    return offenders


# -- the cell as a feed-forward model ---------------------------------------------------------

def _dims(type_proto: onnx.TypeProto | None) -> list | None:
    if type_proto is None or not type_proto.HasField("tensor_type") or \
            not type_proto.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in type_proto.tensor_type.shape.dim]


def _static_features(dims: list | None) -> bool:
    return dims is not None and len(dims) >= 1 and all(isinstance(d, int) and d > 0 for d in dims[1:])


def value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    g = model.graph
    types = {vi.name: vi.type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    for init in g.initializer:
        types.setdefault(init.name, oh.make_tensor_type_proto(init.data_type, list(init.dims)))
    return types


def _outer_constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = attr(node, "value")
            if isinstance(value, onnx.TensorProto):
                t = onnx.TensorProto()
                t.CopyFrom(value)
                t.name = node.output[0]
                consts[node.output[0]] = t
    return consts


def cell_model(model: onnx.ModelProto, scan: onnx.NodeProto, types: dict, offenders: list
                ) -> tuple[onnx.ModelProto, int, list[str]] | None:
    """(the Scan's body as a model, number of states M, unique output names); None on offenders."""
    body: onnx.GraphProto = attr(scan, "body")
    scans = int(attr(scan, "num_scan_inputs"))
    states = len(body.input) - scans
    axes = list(attr(scan, "scan_input_axes") or [0] * scans)
    where = f"in the body of Scan '{label(scan)}'"
    inputs = []
    for i, vi in enumerate(body.input):
        dims = _dims(vi.type)
        if not _static_features(dims):
            outer = _dims(types.get(scan.input[i]))
            if outer is not None and i >= states:
                outer = [d for k, d in enumerate(outer) if k != axes[i - states] % len(outer)]
            dims = outer
        if not _static_features(dims):
            raise ConversionError(f"Scan '{label(scan)}': body input '{vi.name}' has no known shape; BIF "
                                  "conversion needs every dimension but the batch to be static (declare the "
                                  "body's input shapes, e.g. [N, hidden])")
        elem = vi.type.tensor_type.elem_type or onnx.TensorProto.FLOAT
        inputs.append(oh.make_tensor_value_info(vi.name, elem, ["N" if not isinstance(dims[0], int) else dims[0]]
                                                + dims[1:]))
    produced = {o for n in body.node for o in n.output} | {i.name for i in body.input} | \
        {t.name for t in body.initializer}
    consts = _outer_constants(model)
    captured, bad = {}, len(offenders)
    for node in body.node:
        for name in node.input:
            if not name or name in produced or name in captured:
                continue
            if name in consts:
                captured[name] = consts[name]
            else:
                offenders.append((label(node), node.op_type, f"{where}: reads '{name}', which is computed "
                                  "outside the Scan; pass it as a Scan state or scan input"))
    if len(offenders) > bad:
        return None
    names = list(dict.fromkeys(o.name for o in body.output))
    graph = oh.make_graph(list(body.node), f"{body.name or 'cell'}", inputs,
                          [oh.make_empty_tensor_value_info(n) for n in names],
                          list(body.initializer) + list(captured.values()))
    cell = oh.make_model(graph, opset_imports=[o for o in model.opset_import if o.domain in ("", "ai.onnx")])
    cell.ir_version = model.ir_version
    inferred = onnx.shape_inference.infer_shapes(cell, strict_mode=False)
    out_types = value_types(inferred)
    del cell.graph.output[:]
    for n in names:
        dims = _dims(out_types.get(n))
        if not _static_features(dims):
            raise ConversionError(f"Scan '{label(scan)}': the shape of body output '{n}' cannot be inferred; "
                                  "declare the body's output shapes")
        elem = out_types[n].tensor_type.elem_type
        cell.graph.output.append(oh.make_tensor_value_info(n, elem, ["N" if not isinstance(dims[0], int)
                                                                       else dims[0]] + dims[1:]))
    return cell, states, names


def _annotated(exc: UnsupportedOpError, scan: onnx.NodeProto) -> list[tuple[str, str, str]]:
    return [(name, op, f"in the body of Scan '{label(scan)}': {reason}") for name, op, reason in exc.offenders]


# -- the converted body and the rewired Scan --------------------------------------------------

def _all_names(graph: onnx.GraphProto, recursive: bool = True) -> set[str]:
    names = {vi.name for vi in list(graph.input) + list(graph.output)} | {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
        for a in node.attribute:
            if recursive and a.type == onnx.AttributeProto.GRAPH:
                names |= _all_names(a.g)
    return names - {""}


def _rename_internal(body: gs.Graph, taken: set[str], prefix: str, names: NameScope) -> None:
    """Give every tensor/node name of ``body`` that is in ``taken`` (but its inputs' and outputs') a
    fresh prefixed name: a subgraph must not redefine a name of its outer scope."""
    keep = {t.name for t in list(body.inputs) + list(body.outputs)}
    for tensor in body.tensors().values():
        if tensor.name in taken and tensor.name not in keep:
            tensor.name = names.fresh(prefix + tensor.name)
    for node in body.nodes:
        if node.name in taken:
            node.name = names.fresh(prefix + node.name)


def _post_nodes(model: onnx.ModelProto, scan: onnx.NodeProto, states: int) -> tuple[list[int], list[str]] | None:
    """(positions of the nodes after the Scan, its final-state outputs they read) when every graph output
    is computed from final states of ``scan`` by row-wise ops; else None (no running output)."""
    consts = set(_outer_constants(model))
    finals = [o for o in scan.output[:states] if o]
    known = set(finals)
    post, readers = [], []
    for k, node in enumerate(model.graph.node):
        if any(i in known for i in node.input):
            if node.op_type not in ROW_OPS or any(i and i not in known and i not in consts for i in node.input):
                return None
            if node.op_type == "Gemm" and attr(node, "transA", 0):
                return None
            if node.op_type in ("Softmax", "LogSoftmax", "Flatten") and attr(node, "axis", 1) in (0,):
                return None
            post.append(k)
            readers.append(node)
            known.update(node.output)
    outs = [o.name for o in model.graph.output]
    if not outs or not all(o in known for o in outs):
        return None
    used = [f for f in finals if any(f in n.input for n in readers) or f in outs]
    return post, used


def _convert_scan(model: onnx.ModelProto, scan: onnx.NodeProto, config: ConvertConfig, types: dict,
                  offenders: list) -> tuple[onnx.ModelProto, Recurrence, dict] | None:
    made = cell_model(model, scan, types, offenders)
    if made is None:
        return None
    cell, states, outputs = made
    try:
        ann = canonicalize(cell, tail=False)  # a cell's outputs are its state: no ops after a readout
        snn, thresholds, needed = build_bif_snn(ann, config, cell, spike_counts=True)
    except UnsupportedOpError as exc:
        offenders.extend(_annotated(exc, scan))
        return None
    neurons = len(activation_names(ann))
    body = attr(scan, "body")
    seq = None
    scans = int(attr(scan, "num_scan_inputs"))
    axes = list(attr(scan, "scan_input_axes") or [0] * scans)
    if scans:
        dims = _dims(types.get(scan.input[states]))
        seq = dims[axes[0] % len(dims)] if dims else None
        seq = seq if isinstance(seq, int) else None
    info = Recurrence(label(scan), config.timesteps, needed, seq, neurons)
    return snn, info, {"states": states, "outputs": outputs, "body_inputs": [i.name for i in body.input],
                       "body_outputs": [o.name for o in body.output], "body_name": body.name, "thresholds": thresholds,
                       "quantizers": _quantizers(ann)}


def _quantizers(ann: onnx.ModelProto) -> dict:
    return {k: q.as_dict() for k, q in quantizers_from_metadata(ann).items()}


def _without_bodies(model: onnx.ModelProto, scans: list[int]) -> onnx.ModelProto:
    """A copy of ``model`` whose Scans (at positions ``scans``) have empty bodies: each body is replaced
    by its converted cell, so graphsurgeon need not import the original."""
    shell = onnx.ModelProto()
    shell.CopyFrom(model)
    for k in scans:
        for a in shell.graph.node[k].attribute:
            if a.name == "body":
                a.g.Clear()
    return shell


def build_recurrent_bif_snn(model: onnx.ModelProto, config: ConvertConfig
                            ) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[Recurrence], list[str], dict]:
    """(SNN, θ per neuron keyed '<scan>/<tensor>', one Recurrence per Scan, running outputs,
    quantizers per Scan) for a model whose recurrences are Scans with quantized cells."""
    methods.check(methods.Method.RECURRENT, config)
    offenders = outer_offenders(model)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    types = value_types(inferred)
    scans = [k for k, n in enumerate(model.graph.node) if n.op_type == "Scan"]
    converted = {}
    for k in scans:
        done = _convert_scan(model, model.graph.node[k], config, types, offenders)
        if done is not None:
            converted[k] = done
    if offenders:
        raise UnsupportedOpError(offenders)

    T = config.timesteps
    tracked = None  # (position of the scan, positions of the post nodes, finals used) for the running output
    for k in reversed(scans):
        found = _post_nodes(model, model.graph.node[k], converted[k][2]["states"])
        if found is not None:
            tracked = (k, *found)
            break
    scope = _all_names(model.graph, recursive=False)  # what a body must not redefine
    names = NameScope.of(_all_names(model.graph).union(*(_all_names(c[0].graph) for c in converted.values())))
    graph = import_model(_without_bodies(model, scans))
    nodes = list(graph.nodes)  # in the order of model.graph.node
    outputs = list(graph.outputs)
    thresholds, recurrences, quantizers, running_outputs = {}, [], {}, []
    for k in scans:
        scan = nodes[k]
        cell, info, meta = converted[k]
        recurrences.append(info)
        quantizers[info.node] = meta["quantizers"]
        thresholds.update({f"{info.node}/{key}": v for key, v in meta["thresholds"].items()})
        states, body_outputs = meta["states"], meta["body_outputs"]
        body = gs.import_onnx(cell)
        body.name = (meta["body_name"] or "cell") + "_bif_snn"
        ins = {t.name: t for t in body.inputs}
        outs = {t.name: t for t in body.outputs}
        running = {t.name.removesuffix(RUNNING_SUFFIX): t for t in body.outputs if t.name.endswith(RUNNING_SUFFIX)}
        track = []
        if tracked is not None and tracked[0] == k:
            track = [j for j in range(states) if scan.outputs[j].name in tracked[2]]
            if not all(body_outputs[j] in running for j in track):
                track = []  # a form whose cell SNN has no running output: the final outputs only
        r_in = [gs.Variable(names.fresh(f"{meta['body_inputs'][j]}_running_prev"), np.float32,
                            [T] + list(outs[body_outputs[j]].shape)) for j in track]
        body_in = [ins[n] for n in meta["body_inputs"]]
        body.inputs = body_in[:states] + r_in + body_in[states:]
        body.outputs = [outs[o] for o in body_outputs[:states]] + [running[body_outputs[j]] for j in track] + \
            [outs[o] for o in body_outputs[states:]]
        _rename_internal(body, scope, f"{info.node}/", names)
        scan.attrs["body"] = body
        b = Builder(names, f"{info.node}/running/")
        r0, r_final = [], []
        for j in track:  # the running sums start at zeros [T_s, N, ...]
            init = scan.inputs[j]
            t = b.scoped(init.name)
            shape, r_shape, zeros = t.var("_shape", np.int64), t.var("_running_shape", np.int64), t.var("_running_zero")
            steps = b.scoped(info.node).const("_substeps", [T], np.int64)
            at = next(i for i, n in enumerate(graph.nodes) if n is scan)  # built in order: no toposort
            graph.nodes[at:at] = [b.node("Shape", "shape", [init], [shape]),
                                  b.node("Concat", "r_shape", [steps, shape], [r_shape], {"axis": 0}),
                                  b.node("ConstantOfShape", "zeros", [r_shape], [zeros],
                                         {"value": gs.Constant("zero", np.zeros(1, np.float32))})]
            r0.append(zeros)
            r_final.append(b.scoped(scan.outputs[j].name).var("_running_sums"))
        for n, (r, final) in enumerate(zip(r0, r_final)):
            scan.inputs.insert(states + n, r)
            scan.outputs.insert(states + n, final)
        if track:
            extra, running_outputs = _running_readout(outputs, scan, [nodes[p] for p in tracked[1]], track,
                                                      r_final, T, names)
            graph.nodes += extra
    graph.outputs = outputs + running_outputs
    snn = export_graph(graph, model, tidy=False)  # the cells are tidy, the rest was built in order
    del snn.metadata_props[:]
    return snn, thresholds, recurrences, [o.name for o in running_outputs], quantizers


def _running_readout(graph_outputs, scan, post, track, r_final, T, names: NameScope):
    """The post-Scan layers applied to the running sums of the last element ([T_s·N, ...] rows):
    (nodes, running outputs), or ([], []) when an output's features are not static."""
    b = Builder(names)
    (two_node, two), (big_node, big), (minus_node, minus) = (
        b.const_node(f"running_{s}", [v], np.int64) for s, v in (("two", 2), ("end", INT64_MAX), ("minus_one", -1)))
    nodes, rename = [two_node, big_node, minus_node], {}
    for j, r in zip(track, r_final):  # [T_s, N, ...] → [T_s·N, ...]
        final = scan.outputs[j].name
        t, n = b.scoped(f"{final}_running_"), b.scoped(f"{final}/running/")
        shape, feat, target = (t.var(s, np.int64) for s in ("shape", "features", "fold_shape"))
        folded = t.var("folded")
        nodes += [n.node("Shape", "shape", [r], [shape]), n.node("Slice", "features", [shape, two, big], [feat]),
                  n.node("Concat", "fold_shape", [minus, feat], [target], {"axis": 0}),
                  n.node("Reshape", "fold", [r, target], [folded])]
        rename[final] = folded
    for node in post:
        name = b.name((node.name or node.op) + RUNNING_SUFFIX)
        outs = [b.var(o.name + "_running_rows", None) for o in node.outputs]
        clone = gs.Node(node.op, name, attrs=dict(node.attrs), inputs=[rename.get(i.name, i) for i in node.inputs],
                        outputs=outs, domain=node.domain)
        rename.update({o.name: v for o, v in zip(node.outputs, outs)})
        nodes.append(clone)
    outputs = []
    for out in graph_outputs:
        dims = list(out.shape or [])
        if not _static_features(dims):
            return [], []
        result = gs.Variable(names.fresh(out.name + RUNNING_SUFFIX), np.float32, [T, dims[0]] + dims[1:])
        shape_node, shape = b.const_node(out.name + "_running_shape", [T, -1] + dims[1:], np.int64)
        nodes += [shape_node, b.node("Reshape", out.name + "/running/unfold", [rename[out.name], shape], [result])]
        outputs.append(result)
    return nodes, outputs


class RecurrentRecipe(Recipe):
    """Quantized RNN (Scan) → recurrent BIF SNN: the cell runs T sub-steps per element."""

    splits_tail = False  # its readout is the Scan's; the outer layers stay analog as they are
    method = methods.Method.RECURRENT
    neuron = kinds.BIPOLAR  # levels and v_init from each quantizer

    def prepare(self, model: onnx.ModelProto, config: ConvertConfig) -> onnx.ModelProto:
        return model  # each Scan's cell is canonicalised on its own

    def build(self, params: Parameters, config: ConvertConfig) -> Built:
        snn, thresholds, recurrences, running, quantizers = build_recurrent_bif_snn(params.ann, config)
        needed = max(r.exact_substeps for r in recurrences)
        if config.timesteps < needed:
            log.warning("T=%d sub-steps per element < %d: the hidden states handed on are not settled; the SNN "
                        "only approximates the quantized RNN", config.timesteps, needed)
        return Built(snn, thresholds, needed, tuple(recurrences), tuple(running), meta={
            "exact_after_timesteps": needed, "neuron": "bif", "readout": "sum",
            "recurrent": tuple(r.as_dict() for r in recurrences),
            "quantizers": json.dumps(quantizers, sort_keys=True)})
