"""What converts in a model, and why not: the analysis behind ``onnx2snn inspect``.

:func:`inspect_model` returns a :class:`Report` (data only, nothing printed): the
(op, status, count) rows of the graph, the offending nodes with their reasons and,
for a recurrent model, the same for each Scan's cell. A model converts iff the
report has no offender.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from .core.graph import onnx_opset
from .errors import ConversionError, UnsupportedOpError
from .passes.check_support import activation_tensors, support_reason
from .passes.tail import head_nodes, tail_nodes
from .passes import (DetectQuantizedActivationsPass, FoldConstantsPass, check_not_snn, find_unsupported, import_model,
                     relu_cap)
from .passes import leaky_relu
from .recipes import recurrent

UNSUPPORTED = "UNSUPPORTED: "
FLOAT_CELL_ACTIVATION = "a float activation in the cell: quantize it (e.g. QCFS) to convert"


@dataclass(frozen=True)
class Row:
    """``count`` nodes of type ``op`` with the same ``status`` (what becomes of them)."""
    op: str
    status: str
    count: int

    @property
    def unsupported(self) -> bool:
        return self.status.startswith(UNSUPPORTED)


@dataclass
class Cell:
    """A Scan's cell (its body as a feed-forward model).

    ``rows`` is None when the cell cannot be built: then ``error`` says why (a
    shape that is not known) or ``blocking`` names the body nodes that prevent it
    (node, reason).
    """
    scan: str
    nodes: int
    rows: list[Row] | None = None
    error: str | None = None
    blocking: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Report:
    """The analysis of one model.

    ``rows``: the main graph's (op, status, count), in display order (unsupported
    last); ``offenders``: reason by node name (cell nodes as ``scan/node``), in
    the order found; ``statuses``: status by node name of the main graph;
    ``cells``: one per Scan of a recurrent model.
    """
    nodes: int
    opset: int
    rows: list[Row]
    offenders: dict[str, str]
    statuses: dict[str, str]
    recurrent: bool = False
    cells: list[Cell] = field(default_factory=list)

    @property
    def convertible(self) -> bool:
        return not self.offenders


def inspect_model(model: onnx.ModelProto) -> Report:
    """Which node of ``model`` converts, which does not and why (feed-forward or recurrent).

    ConversionError if ``model`` is already an SNN onnx2snn wrote (nothing in it is to convert)."""
    check_not_snn(model)
    if recurrent.is_recurrent(model):
        return _recurrent(model)
    return _feed_forward(model)


def _ordered(rows: Counter) -> list[Row]:
    return [Row(op, status, count) for (op, status), count
            in sorted(rows.items(), key=lambda kv: (kv[0][1].startswith("UNSUPPORTED"), kv[0]))]


def _feed_forward(model: onnx.ModelProto) -> Report:
    graph = import_model(onnx.shape_inference.infer_shapes(model, strict_mode=False))
    original = Counter(n.op for n in graph.nodes)
    FoldConstantsPass()(graph)
    folded = Counter(n.op for n in graph.nodes)
    detect = DetectQuantizedActivationsPass()
    try:
        detect(graph)
        quant_offenders = {}
    except UnsupportedOpError as exc:
        quant_offenders = {name: reason for name, _, reason in exc.offenders}
    markers = set(detect.quantizers) | detect.encoded
    two_relus, refused = set(), {}  # LeakyRelu / PRelu, which canonicalize rewrites as two ReLUs (passes/leaky_relu.py)
    for node in [n for n in graph.nodes if n.op in leaky_relu.OPS]:
        name = node.name or f"<unnamed {node.op}>"
        reason = leaky_relu.analyse(graph, node, markers)[1]
        if reason:
            refused[name] = reason
        else:
            two_relus.add(name)
    # those that convert are activations (two neurons each), as in the canonical ANN
    activations = markers | {n.outputs[0].name for n in graph.nodes if (n.name or f"<unnamed {n.op}>") in two_relus}
    offenders = {**{name: refused.get(name, reason) for name, _, reason in find_unsupported(graph, activations)},
                 **quant_offenders}
    quantized = {n.name for n in graph.nodes if n.outputs and n.outputs[0].name in detect.quantizers}
    acts = activation_tensors(graph)
    why = lambda n: support_reason(graph, n, acts)  # noqa: E731
    after = {id(n) for n in tail_nodes(graph, acts, why, activations)}
    before = {id(n) for n in head_nodes(graph, acts, why, activations)}
    rows: Counter = Counter()
    statuses = {}
    for node in graph.nodes:
        name = node.name or f"<unnamed {node.op}>"
        if name in offenders:
            status = UNSUPPORTED + offenders[name]
        elif name in quantized:
            q = detect.quantizers[node.outputs[0].name]
            status = f"quantized activation ({q.levels} levels, {q.pattern}): becomes BIFNeuron"
        elif name in two_relus:
            status = "becomes two IFNeuron populations, on x and on −x, combined as a − slope·b (exact in the ANN)"
        elif id(node) in after:
            status = "runs once after the readout, on the averaged values"
        elif id(node) in before:
            status = "runs once per sample before the time axis (input-side)"
        elif relu_cap(node)[0]:
            status = "becomes IFNeuron"
        elif node.op == "BatchNormalization":
            status = "folded into the layer before (or kept as affine)"
        elif node.op in ("MaxPool", "GlobalMaxPool"):
            status = "kept; moved before the neuron (approximate under rate coding)"
        elif node.op in ("Softmax", "LogSoftmax"):
            status = "applied after the readout"
        elif node.op in ("Identity", "Dropout"):
            status = "removed"
        elif node.op in ("Shape", "Size"):
            status = "kept (shape arithmetic)"
        else:
            status = "kept (runs on every step)"
        rows[(node.op, status)] += 1
        statuses[name] = status
    remaining = Counter(n.op for n in graph.nodes)
    for op, count in original.items():
        if count > folded.get(op, 0):
            rows[(op, "folded (computes a constant)")] += count - folded.get(op, 0)
        if folded.get(op, 0) > remaining.get(op, 0):
            rows[(op, "part of a quantized activation")] += folded.get(op, 0) - remaining.get(op, 0)
    return Report(nodes=len(model.graph.node), opset=graph.opset, rows=_ordered(rows), offenders=offenders,
                  statuses=statuses)


def _recurrent(model: onnx.ModelProto) -> Report:
    """The layers outside the recurrence, then each Scan's cell."""
    offenders = {name: reason for name, _, reason in recurrent.outer_offenders(model)}
    rows: Counter = Counter()
    statuses = {}
    for node in model.graph.node:
        name = recurrent.label(node)
        if name in offenders:
            status = UNSUPPORTED + offenders[name]
        elif node.op_type == "Scan":
            status = "recurrence: its cell (below) becomes a BIF SNN, run T sub-steps per element"
        else:
            status = "kept (runs once, outside the recurrence)"
        rows[(node.op_type, status)] += 1
        statuses[name] = status
    report = Report(nodes=len(model.graph.node), opset=onnx_opset(model), rows=_ordered(rows),
                    offenders=offenders, statuses=statuses, recurrent=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    types = recurrent.value_types(inferred)
    for scan in [n for n in model.graph.node if n.op_type == "Scan"]:
        label = recurrent.label(scan)
        cell = Cell(scan=label, nodes=len(recurrent.attr(scan, "body").node))
        report.cells.append(cell)
        found: list = []
        try:
            made = recurrent.cell_model(model, scan, types, found)
        except ConversionError as exc:
            offenders[label] = cell.error = str(exc)
            continue
        offenders.update({name: reason for name, _, reason in found})
        if made is None:
            cell.blocking = [(name, reason) for name, _, reason in found]
            continue
        inner = _feed_forward(made[0])
        # a float activation would become an IF neuron: a recurrence converts only with quantized ones
        float_acts = {name: FLOAT_CELL_ACTIVATION for name, status in inner.statuses.items()
                      if status == "becomes IFNeuron"}
        rows = Counter()
        for row in inner.rows:
            rows[(row.op, UNSUPPORTED + FLOAT_CELL_ACTIVATION if row.status == "becomes IFNeuron"
                  else row.status)] += row.count
        cell.rows = _ordered(rows)
        offenders.update({f"{label}/{k}": v for k, v in {**inner.offenders, **float_acts}.items()})
    return report
