"""Which nodes of a (constant-folded) graph the spiking conversion can carry.

The time axis is folded into the batch axis, so every node that reads an
activation (a value computed from the model's inputs) must act on each sample
independently and, except for the ReLU-like nodes that become neurons, be
linear or a pooling. Shape arithmetic (from ``Shape``) is data-independent and
always allowed. A final Softmax/LogSoftmax is moved after the readout.

:func:`find_unsupported` lists every offending node with the reason;
:func:`check_supported` raises one :class:`UnsupportedOpError` naming them all.
"""
from __future__ import annotations

from typing import Collection

import numpy as np
import onnx_graphsurgeon as gs

import onnx

from .. import metadata
from ..core.einsum import labels as einsum_labels
from ..core.graph import SNN_DOMAIN, constant_value, is_empty, is_graph_output, node_label
from ..errors import ConversionError, UnsupportedOpError
from .activations import relu_cap
from .remove_identity import dropout_kept_reason
from .tail import head_nodes, tail_nodes

# per-sample linear or affine ops that need no check beyond "weights are constant"
LINEAR_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "BatchNormalization"}
POOLING = {"AveragePool", "GlobalAveragePool", "MaxPool", "GlobalMaxPool", "LpPool"}
STRUCTURAL = {"Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Pad", "Concat",
              "ReduceMean", "ReduceSum", "Identity", "Dropout", "Cast", "Split", "Expand", "Gather",
              "DepthToSpace", "SpaceToDepth"}
# fixed linear maps of each sample (interpolation weights from constant scales or sizes; batch scale 1)
RESAMPLING = {"Resize", "Upsample"}
PAD_MODES = ("constant", "reflect", "edge", "wrap")  # each a copy (or a constant) per output element
SHAPE_ONLY = {"Shape", "Size"}
FINAL_ONLY = {"Softmax", "LogSoftmax"}
# ops whose constant operand may hold one row per sample of a fixed batch (per_sample_constants)
PER_SAMPLE_OPS = {"Add", "Sub", "Mul", "Div", "Sum", "Concat"}

ALL_SUPPORTED = (LINEAR_WEIGHTED | POOLING | STRUCTURAL | FINAL_ONLY | RESAMPLING
                 | {"Relu", "Clip", "Add", "Sub", "Mul", "Div", "MatMul", "Einsum", "Sum"})


def _axes(node: gs.Node, rank: int | None) -> list[int] | None:
    """The axes an op acts on, from its attribute or constant input (None if all/unknown)."""
    if "axes" in node.attrs:
        axes = list(node.attrs["axes"])
    elif len(node.inputs) > 1 and node.op in ("ReduceMean", "ReduceSum", "Squeeze", "Unsqueeze"):
        v = constant_value(node.inputs[1])
        axes = None if v is None else [int(a) for a in v.reshape(-1)]
    else:
        return None
    if rank is not None:
        axes = [a + rank if a < 0 else a for a in axes]
    return axes


def _rank(tensor) -> int | None:
    shape = getattr(tensor, "shape", None)
    return None if shape is None else len(shape)


def fixed_batch(graph: gs.Graph) -> int | None:
    """The batch B > 1 every graph input of known rank fixes (None: dynamic, 1, or inputs disagree)."""
    batches = {x.shape[0] for x in graph.inputs if x.shape}
    if len(batches) == 1:
        (b,) = batches
        if isinstance(b, int) and b > 1:
            return b
    return None


def per_sample_constants(node: gs.Node, acts: set[str], batch: int | None) -> list[gs.Tensor]:
    """The constant operands of an elementwise op or a Concat that hold one row per sample of the
    fixed batch B: the rank of an activation operand, B rows along axis 0. Once time is folded
    into the batch they are tiled T times (snn/time_axis.py), so row t·B + b still meets row b."""
    if batch is None or node.op not in PER_SAMPLE_OPS:
        return []
    ranks = {_rank(a) for a in node.inputs if a.name in acts} - {None}
    out = []
    for t in node.inputs:
        v = None if t.name in acts else constant_value(t)
        if v is not None and v.ndim >= 1 and v.ndim in ranks and v.shape[0] == batch:
            out.append(t)
    return out


def _batch_mixing_constant(node: gs.Node, acts: set[str], batch: int | None = None) -> str:
    """Reason if a constant operand of an elementwise op varies along the batch axis (other than
    one row per sample of the fixed batch, see per_sample_constants)."""
    per_sample = per_sample_constants(node, acts, batch)
    for t in node.inputs:
        v = constant_value(t)
        if v is None or any(t is c for c in per_sample):
            continue
        for a in node.inputs:
            r = _rank(a) if a.name in acts else None
            if r and v.ndim == r and v.shape[0] > 1:  # a rank-0 activation has no batch axis
                return (f"its constant operand '{t.name}' has {v.shape[0]} rows along the batch axis; "
                        "batch-dependent constants cannot be used once time is folded into the batch "
                        "(only one row per sample of a fixed batch)")
    return ""


def _str_attr(node: gs.Node, name: str, default: str) -> str:
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _input_batch(graph: gs.Graph) -> int | None:
    """The batch size every graph input of known rank fixes (1 included; None: dynamic or they disagree)."""
    batches = {x.shape[0] for x in graph.inputs if x.shape}
    if len(batches) == 1:
        (b,) = batches
        if isinstance(b, int) and b > 0:
            return b
    return None


def resize_operands(node: gs.Node) -> tuple:
    """(roi, scales, sizes) of a Resize or Upsample: each a tensor, a constant array (Upsample-7's
    ``scales`` attribute) or None when absent. Resize-10 has (X, scales); 11 and later (X, roi, scales[, sizes])."""
    def given(i):
        return node.inputs[i] if len(node.inputs) > i and not is_empty(node.inputs[i]) else None
    if node.op == "Upsample":
        scales = given(1)
        if scales is None and "scales" in node.attrs:
            scales = np.asarray(node.attrs["scales"], np.float32)
        return None, scales, None
    if len(node.inputs) == 2:
        return None, given(1), None
    return given(1), given(2), given(3)


def _value(operand):
    return operand if isinstance(operand, np.ndarray) else (None if operand is None else constant_value(operand))


def resize_batch_index(node: gs.Node, rank: int | None) -> int | None:
    """Index of the batch axis in a Resize's scales / sizes / roi vectors (None when Resize-18's ``axes``
    leaves it out); -1 when ``axes`` names a negative axis of unknown rank."""
    if "axes" not in node.attrs:
        return 0
    axes = [int(a) for a in node.attrs["axes"]]
    if any(a < 0 for a in axes) and rank is None:
        return -1
    axes = [a + rank if a < 0 else a for a in axes] if rank is not None else axes
    return axes.index(0) if 0 in axes else None


def _from_runtime_batch(tensor, acts: set[str], depth: int = 0) -> bool:
    """Whether the first entry of a computed sizes vector is the run-time batch of an activation:
    Concat(Slice(Shape(x), 0, k) or Shape(x) or Gather(Shape(x), 0), ...), through Cast/Unsqueeze
    (what exporters write for ``interpolate(size=...)`` with a dynamic batch)."""
    if depth > 8 or tensor is None or not len(getattr(tensor, "inputs", [])):
        return False
    node = tensor.inputs[0]
    if node.op in ("Concat", "Cast", "Unsqueeze") and node.inputs:
        return _from_runtime_batch(node.inputs[0], acts, depth + 1)
    if node.op == "Shape":
        return node.inputs[0].name in acts and int(node.attrs.get("start", 0)) == 0
    if node.op == "Slice" and node.inputs:
        if len(node.inputs) > 1:
            start = constant_value(node.inputs[1])
            axes = constant_value(node.inputs[3]) if len(node.inputs) > 3 and not is_empty(node.inputs[3]) else None
        else:
            start, axes = node.attrs.get("starts"), node.attrs.get("axes")
        if start is None or int(np.asarray(start).reshape(-1)[0]) != 0 or \
                (axes is not None and int(np.asarray(axes).reshape(-1)[0]) != 0):
            return False
        return _from_runtime_batch(node.inputs[0], acts, depth + 1)
    if node.op == "Gather" and len(node.inputs) == 2:
        index = constant_value(node.inputs[1])
        return index is not None and index.size == 1 and int(index.reshape(-1)[0]) == 0 \
            and _from_runtime_batch(node.inputs[0], acts, depth + 1)
    return False


def _resize_reason(graph: gs.Graph, node: gs.Node, acts: set[str]) -> str:
    """Resize / Upsample is a fixed linear map of each sample (nearest: a selection; linear, cubic: fixed
    interpolation weights; tf_crop_and_resize's extrapolation value: a constant) when its scales or
    sizes are constant (or the sizes' batch entry is the run-time batch) and it keeps the batch axis."""
    op, rank = node.op, _rank(node.inputs[0])
    if any(t.name in acts for t in node.inputs[1:] if not is_empty(t)):
        return f"{op} with scales, sizes or roi computed from activations cannot be converted"
    mode = _str_attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear", "cubic"):
        return f"{op} in mode '{mode}' is not supported (nearest, linear, cubic)"
    roi, scales, sizes = resize_operands(node)
    index = resize_batch_index(node, rank)
    if index == -1:
        return f"{op} with negative axes on an input of unknown rank: export with shapes"
    if index is not None and _str_attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return (f"{op} with keep_aspect_ratio_policy '{_str_attr(node, 'keep_aspect_ratio_policy', '')}' over "
                "the batch axis scales the batch (give axes without 0, or the policy 'stretch')")
    scale_values, size_values = _value(scales), _value(sizes)
    if scales is not None and scale_values is None:
        return f"{op} with computed scales cannot be converted (only constant scales or sizes)"
    if sizes is not None and size_values is None and not (index == 0 and _from_runtime_batch(sizes, acts)):
        if index is not None:
            return (f"{op} with computed sizes whose batch entry cannot be checked to be the batch "
                    "(only constant sizes, or sizes starting with Shape(x)[0])")
    if index is not None and scale_values is not None and scale_values.size:
        if scale_values.size <= index or float(scale_values.reshape(-1)[index]) != 1.0:
            return f"{op} with a scale other than 1 along the batch axis mixes samples"
    elif index is not None and size_values is not None and size_values.size:
        batch = _input_batch(graph)
        first = int(size_values.reshape(-1)[index]) if size_values.size > index else None
        if batch is None or first != batch:
            return (f"{op} with constant sizes whose batch entry ({first}) is not the model's fixed batch "
                    f"({'dynamic' if batch is None else batch}): export with scales, or with a fixed batch")
    elif index is not None and scale_values is None and size_values is None and sizes is None:
        return f"{op} without scales or sizes cannot be converted"
    if _str_attr(node, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize" \
            and index is not None:
        r = _value(roi)
        if r is None:
            return f"{op} with tf_crop_and_resize and a computed roi cannot be converted"
        r = r.reshape(-1).astype(np.float64)
        n = r.size // 2
        if n <= index or r[index] != 0.0 or r[n + index] != 1.0:
            return f"{op} with tf_crop_and_resize whose roi crops the batch axis mixes samples"
    return ""


def _pad_reason(node: gs.Node) -> str:
    """Pad is a copy of each sample's elements (constant, reflect, edge, wrap) plus a constant border
    (the same every step: it commutes with the time average as a bias does) when it pads no batch rows."""
    mode = _str_attr(node, "mode", "constant")
    if mode not in PAD_MODES:
        return f"Pad in mode '{mode}' is not supported ({', '.join(PAD_MODES)})"
    pads = node.attrs.get("pads") if "pads" in node.attrs else (
        constant_value(node.inputs[1]) if len(node.inputs) > 1 else None)
    value = node.attrs.get("value", 0.0)
    if len(node.inputs) > 2 and not is_empty(node.inputs[2]):
        v = constant_value(node.inputs[2])
        value = None if v is None else v
    if pads is None or value is None:
        return "Pad with computed pads or value cannot be converted"
    pads = np.asarray(pads).reshape(-1).astype(np.int64)
    rank = _rank(node.inputs[0])
    if len(node.inputs) > 3 and not is_empty(node.inputs[3]):
        axes = constant_value(node.inputs[3])
        if axes is None:
            return "Pad with computed axes cannot be converted"
        axes = [int(a) for a in axes.reshape(-1)]
        if any(a < 0 for a in axes) and rank is None:
            return "Pad with negative axes on an input of unknown rank: export with shapes"
        axes = [a + rank if a < 0 else a for a in axes]
    else:
        axes = list(range(pads.size // 2))
    if 0 in axes and pads.size >= 2 * len(axes):
        i = axes.index(0)
        if pads[i] != 0 or pads[len(axes) + i] != 0:
            return "Pad along the batch axis mixes samples"
    return ""


def einsum_reason(node: gs.Node, act_index: int, ranks: list[int | None]) -> str:
    """Why an Einsum whose operand ``act_index`` is the activation (the others constant) is not a fixed
    linear map of each sample: the activation's axis 0 must be output axis 0, not contracted, not
    repeated and not met by a constant's axis (a broadcast axis of size 1 excepted)."""
    parsed = einsum_labels(node.attrs.get("equation", ""), ranks)
    if parsed is None:
        return "Einsum whose equation does not match its operands' ranks (or an ellipsis of unknown rank)"
    operands, out = parsed
    act = operands[act_index]
    if not act:
        return "Einsum on a scalar activation has no batch axis"
    batch = act[0]
    if act.count(batch) > 1:
        return "Einsum that takes a diagonal over the batch axis mixes samples"
    if not out or out[0] != batch:
        return ("Einsum whose output does not keep the activation's batch axis first (contracted or moved) "
                "mixes samples")
    for i, (labels, t) in enumerate(zip(operands, node.inputs)):
        if i == act_index or batch not in labels:
            continue
        v = constant_value(t)
        if isinstance(batch, str) or v is None or v.shape[labels.index(batch)] != 1:
            return "Einsum whose constant operand has an axis along the batch axis mixes samples"
    return ""


def _broadcast_reason(node: gs.Node, acts: set[str]) -> str:
    """Reason if a constant operand of an elementwise op has a higher rank than every activation operand:
    broadcasting then adds leading axes, and the batch axis is no longer axis 0."""
    ranks = [_rank(t) for t in node.inputs if t.name in acts]
    if not ranks or None in ranks:
        return ""
    for t in node.inputs:
        v = constant_value(t)
        if v is not None and t.name not in acts and v.ndim > max(ranks):
            return (f"its constant operand '{t.name}' has rank {v.ndim}, more than the activation's "
                    f"{max(ranks)}: broadcasting adds leading axes, and the batch axis moves")
    return ""


def _matmul_reason(node: gs.Node, act_inputs: list[int]) -> str:
    """MatMul is a fixed linear map of each sample with one constant operand that keeps the batch axis:
    x[N, ..., K]·W (W of rank ≤ x's, a leading broadcast axis of size 1 when of the same rank ≥ 3), or
    C·x with x of rank ≥ 3 (x[N, ..., K, M]: its axis 0 is a broadcast batch axis)."""
    if len(act_inputs) != 1:
        return "MatMul of two activations is not a fixed linear layer"
    (i,) = act_inputs
    x, other = node.inputs[i], node.inputs[1 - i]
    rank, w = _rank(x), constant_value(other)
    if i == 1:
        if w is None:
            return "MatMul with a computed (non-constant) left operand is not a fixed linear layer"
        if rank is None or rank < 3:
            return ("MatMul with the activation on the right contracts its batch axis unless it has rank 3 "
                    "or more (C·x[N, ..., K, M])")
    if w is None or rank is None:
        return ""
    if w.ndim > max(rank, 2):
        return f"MatMul whose constant operand has rank {w.ndim} > the activation's {rank} moves the batch axis"
    if w.ndim == rank and rank >= 3 and w.shape[0] != 1:
        return (f"MatMul whose constant operand has {w.shape[0]} rows along the batch axis: batch-dependent "
                "weights cannot be used once time is folded into the batch")
    return ""


def _slice_touches_batch(node: gs.Node) -> bool:
    if len(node.inputs) > 1:  # opset >= 10: starts, ends, axes, steps as inputs
        vals = [None if is_empty(t) else constant_value(t) for t in list(node.inputs[1:5])]
        vals += [None] * (4 - len(vals))
        starts, ends, axes, steps = vals
        if starts is None or ends is None:
            return True
        axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    else:
        starts, ends = node.attrs.get("starts", []), node.attrs.get("ends", [])
        axes = list(node.attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    for s, e, a, st in zip(list(starts), list(ends), axes, steps):
        if a == 0 and not (int(s) == 0 and int(e) >= 2**31 - 1 and st == 1):
            return True
    return False


def support_reason(graph: gs.Graph, node: gs.Node, acts: set[str]) -> str:
    """Why ``node`` cannot be a per-step layer of the SNN ('' when it can)."""
    return _reason(graph, node, acts)


def _reason(graph: gs.Graph, node: gs.Node, acts: set[str]) -> str:
    """Why ``node`` (which reads an activation) cannot be converted; '' if it can."""
    op = node.op
    act_inputs = [i for i, t in enumerate(node.inputs) if t.name in acts]
    if node.domain not in ("", "ai.onnx", None):
        return f"custom op of domain '{node.domain}' has no spiking equivalent"
    if op == "Relu":
        return ""
    if op == "Clip":
        return relu_cap(node)[2]
    if op not in ALL_SUPPORTED:
        return (f"{op} has no spiking equivalent (onnx2snn converts ReLU networks: Conv/Gemm/MatMul, "
                "BatchNormalization, Relu, Add, Concat, pooling, reshaping)")
    if op in LINEAR_WEIGHTED or op == "Gemm":
        if act_inputs != [0]:
            return f"{op} with weights computed from activations is not a fixed linear layer"
        if op == "Gemm" and node.attrs.get("transA", 0):
            return "Gemm with transA=1 mixes samples of the batch"
        if op == "BatchNormalization" and node.attrs.get("training_mode", 0):
            return "BatchNormalization in training mode; export the model in eval mode"
        return ""
    if op == "MatMul":
        return _matmul_reason(node, act_inputs)
    if op == "Einsum":
        if len(act_inputs) != 1:
            return "Einsum of two activations is not linear; only an Einsum with constant other operands converts"
        if any(constant_value(t) is None for i, t in enumerate(node.inputs) if i != act_inputs[0]):
            return "Einsum with a computed (non-constant) operand is not a fixed linear layer"
        return einsum_reason(node, act_inputs[0], [_rank(t) if t.name in acts else constant_value(t).ndim
                                                   for t in node.inputs])
    if op in ("Mul", "Div"):
        if len(act_inputs) > 1:
            return f"{op} of two activations is not linear; only scaling by a constant converts"
        if op == "Div" and act_inputs == [1]:
            return "Div by an activation is not linear"
        return _broadcast_reason(node, acts) or _batch_mixing_constant(node, acts, fixed_batch(graph))
    if op in ("Add", "Sub", "Sum"):
        return _broadcast_reason(node, acts) or _batch_mixing_constant(node, acts, fixed_batch(graph))
    if op in RESAMPLING:
        return _resize_reason(graph, node, acts)
    if op in FINAL_ONLY:
        out = node.outputs[0]
        if is_graph_output(graph, out) and not out.outputs:
            return ""
        return f"{op} inside the network has no spiking equivalent (only a final {op} is supported)"
    if op == "Dropout":
        kept = dropout_kept_reason(graph, node)
        if kept:
            return kept
    if op in ("MaxPool", "GlobalMaxPool") and len(node.outputs) > 1 and node.outputs[1].outputs:
        return f"{op} whose second output (indices) is used cannot be converted"
    if op == "LpPool":
        return "LpPool is not linear"
    if act_inputs and act_inputs != [0] and op not in ("Concat", "Sum"):
        return f"{op} with a shape or parameter computed from activations cannot be converted"
    rank = _rank(node.inputs[0])
    if op == "Concat":
        axis = int(node.attrs.get("axis", 0))
        if axis == 0 or (rank is not None and axis == -rank):
            return "Concat along the batch axis mixes samples"
    if op == "Flatten" and int(node.attrs.get("axis", 1)) == 0:
        return "Flatten with axis=0 merges the batch axis"
    if op == "Transpose":
        perm = list(node.attrs.get("perm", []))
        if not perm or perm[0] != 0:
            return "Transpose that moves the batch axis cannot run on a time-folded batch"
    if op in ("ReduceMean", "ReduceSum"):
        axes = _axes(node, rank)
        if axes is None or 0 in axes:
            return f"{op} over the batch axis (or over all axes) mixes samples"
    if op in ("Squeeze", "Unsqueeze"):
        axes = _axes(node, rank if op == "Squeeze" else None)
        if axes is None or 0 in axes:
            return f"{op} on the batch axis cannot run on a time-folded batch"
    if op == "Slice" and _slice_touches_batch(node):
        return "Slice along the batch axis mixes samples"
    if op == "Pad":
        return _pad_reason(node)
    if op == "Gather":  # a selection along a feature axis (e.g. x[:, t] of a sequence) is linear
        axis = int(node.attrs.get("axis", 0))
        if axis == 0 or (rank is not None and axis == -rank):
            return "Gather along the batch axis mixes samples"
    if op == "Split":
        axis = int(node.attrs.get("axis", 0))
        if axis == 0:
            return "Split along the batch axis mixes samples"
    if op == "Expand":
        return "Expand of an activation cannot be checked to keep the batch axis"
    if op == "Cast":
        to = int(node.attrs.get("to", 1))
        if to not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            return "Cast of an activation to a non-float type (a quantisation) has no spiking equivalent"
    return ""


ALREADY_SNN = ("an onnx2snn op: this model is already an SNN converted by onnx2snn; run it with "
               "onnx2snn.InferenceSession or `onnx2snn evaluate`, or convert the source ANN instead")


def _snn_nodes(graph: onnx.GraphProto) -> list[tuple[str, str]]:
    """(name, op type) of every onnx2snn-domain node of ``graph`` and of its subgraphs."""
    found = []
    for node in graph.node:
        if node.domain == SNN_DOMAIN:
            found.append((node.name or f"<unnamed {node.op_type}>", node.op_type))
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                found += _snn_nodes(sub)
    return found


def _already_snn(nodes) -> ConversionError:
    listed = "; ".join(f"node '{name}' ({op})" for name, op in nodes)
    return ConversionError(
        "the model is already an SNN converted by onnx2snn"
        + (f" ({len(nodes)} onnx2snn node(s): {listed})" if nodes else " (it carries onnx2snn's SNN metadata)")
        + ": it cannot be converted again; run it with onnx2snn.InferenceSession or `onnx2snn "
          "evaluate`, or convert (and inspect) the source ANN instead")


def check_not_snn(model: onnx.ModelProto) -> None:
    """ConversionError if ``model`` is an SNN onnx2snn wrote (onnx2snn ops in a graph, or its metadata:
    the portable and streaming forms have standard ops only)."""
    nodes = _snn_nodes(model.graph)
    if nodes or metadata.is_snn(model):
        raise _already_snn(nodes)


def activation_tensors(graph: gs.Graph) -> set[str]:
    """Names of tensors whose values depend on graph inputs (Shape outputs excluded)."""
    acts = {t.name for t in graph.inputs}
    for node in graph.nodes:
        if node.op in SHAPE_ONLY:
            continue
        if any(t.name in acts for t in node.inputs if not is_empty(t)):
            acts.update(t.name for t in node.outputs)
    return acts


def _scalar_reason(name: str, what: str = "reads the graph input") -> str:
    return (f"{what} '{name}' of rank 0 (a scalar): the SNN folds time into the batch axis, "
            "so every model input needs one; give it shape [N, ...] (or make it a constant)")


def find_unsupported(graph: gs.Graph, quantized: Collection[str] = (), tail: bool = True) -> list[tuple[str, str, str]]:
    """``(node name, op type, reason)`` for every node that cannot be converted; the nodes
    writing a ``quantized`` tensor are accepted (quantized-activation markers and input
    encoders, see passes/quantizers). A rank-0 model input no node reads is listed as
    ``<input NAME>``, a constant graph output by the node writing it. With ``tail`` (a network, not
    a recurrent cell) the ops after the last layer are accepted (they run once on the averaged
    values) and so are the input-side ops before the first neuron (they run once per sample,
    before the time axis): passes/tail.py."""
    graph.toposort()
    acts = activation_tensors(graph)
    scalar_inputs = {t.name for t in graph.inputs if _rank(t) == 0}
    offenders = []
    why = lambda n: _reason(graph, n, acts)  # noqa: E731
    after_readout = {id(n) for n in tail_nodes(graph, acts, why, set(quantized))} if tail else set()
    before_time = {id(n) for n in head_nodes(graph, acts, why, set(quantized))} if tail else set()
    for node in graph.nodes:
        if node.op in SHAPE_ONLY or not any(t.name in acts for t in node.inputs if not is_empty(t)):
            continue
        if id(node) in after_readout and node.domain != SNN_DOMAIN and not _has_subgraph(node) \
                and not any(t.name in scalar_inputs for t in node.inputs):
            continue  # runs once on the averaged values (passes/tail.py)
        if id(node) in before_time and node.domain != SNN_DOMAIN and not _has_subgraph(node) \
                and not any(t.name in scalar_inputs for t in node.inputs):
            continue  # runs once per sample before the time axis (passes/tail.py)
        if node.outputs and node.outputs[0].name in quantized:
            continue
        if node.attrs and any(isinstance(v, gs.Graph) for v in node.attrs.values()):
            offenders.append((*node_label(node), f"{node.op} with a subgraph (control flow) is not supported"))
            continue
        scalars = [t.name for t in node.inputs if t.name in scalar_inputs]
        reason = ALREADY_SNN if node.domain == SNN_DOMAIN else (
            _scalar_reason(scalars[0]) if scalars else _reason(graph, node, acts))
        if reason:
            offenders.append((*node_label(node), reason))
    read = {t.name for node in graph.nodes for t in node.inputs}
    for name in sorted(scalar_inputs - read):  # no node to name: the input itself is the offender
        offenders.append((f"<input {name}>", "graph input", _scalar_reason(name, "is the graph input")))
    for out in graph.outputs:  # an output no input reaches (a model without inputs): nothing to spike
        if out.name not in acts:
            where = node_label(out.inputs[0]) if len(out.inputs) else (f"<output {out.name}>", "Constant")
            offenders.append((*where, f"graph output '{out.name}' does not depend on any model input "
                              f"({'the model has no inputs' if not graph.inputs else 'a constant'}): an SNN "
                              "computes its outputs from its inputs; remove this output or give the model an input"))
    return offenders


def _has_subgraph(node: gs.Node) -> bool:
    return bool(node.attrs) and any(isinstance(v, gs.Graph) for v in node.attrs.values())


def check_supported(graph: gs.Graph, quantized: Collection[str] = (), tail: bool = True) -> None:
    """UnsupportedOpError naming every node that cannot be converted (ConversionError saying so if
    the graph is already an SNN: its onnx2snn ops are no layers to replace)."""
    offenders = find_unsupported(graph, quantized, tail)
    snn = [(name, op) for name, op, reason in offenders if reason == ALREADY_SNN]
    if snn:
        raise _already_snn(snn)
    if offenders:
        raise UnsupportedOpError(offenders)
