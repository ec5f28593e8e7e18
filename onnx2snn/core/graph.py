"""Shared helpers for the graph passes (onnx-graphsurgeon based).

Passes take a ``gs.Graph`` and modify it in place; the pipeline imports a fresh
graph from the user's model, so the input model is never touched.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import ConversionError
from ..io import compatible_ir_version

SNN_DOMAIN = "onnx2snn"
SNN_DOMAIN_VERSION = 1


@dataclass(frozen=True)
class PassResult:
    """What a pass did: the graph (same object, modified in place) and how many rewrites."""

    graph: gs.Graph
    count: int

    @property
    def modified(self) -> bool:
        return self.count > 0


def import_model(model: onnx.ModelProto) -> gs.Graph:
    """A graphsurgeon graph of ``model`` (a private copy; ``model`` is not modified).

    ConversionError if a graph input or output is not a tensor (an optional, a sequence, a
    map): graphsurgeon cannot carry those types, and no SNN reads or writes them; or if a name
    is listed twice among the graph's inputs or its outputs.
    """
    offending = [(kind, vi.name, vi.type.WhichOneof("value"))
                 for kind, values in (("input", model.graph.input), ("output", model.graph.output))
                 for vi in values if vi.type.WhichOneof("value") not in (None, "tensor_type")]
    if offending:
        listed = ", ".join(f"graph {kind} '{name}' ({what.replace('_type', '')})" for kind, name, what in offending)
        raise ConversionError(f"{listed}: onnx2snn converts models whose inputs and outputs are tensors; "
                              "export the model with tensor inputs and outputs (skl2onnx: options "
                              "{id(model): {'zipmap': False}} instead of a sequence of maps)")
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        names = [vi.name for vi in values]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConversionError(f"graph {kind} {', '.join(repr(n) for n in twice)} is listed more than once; "
                                  f"list each graph {kind} once (the model is malformed)")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return gs.import_onnx(copy)


def export_graph(graph: gs.Graph, like: onnx.ModelProto, tidy: bool = True) -> onnx.ModelProto:
    """Export ``graph`` keeping ``like``'s opset imports, IR version and metadata.

    graphsurgeon has been seen to change opset imports and IR versions; this
    keeps them as they were and adds the onnx2snn domain only when used (by a node
    of the graph or of a subgraph, e.g. a Scan's body). The IR
    version is capped to one the installed onnxruntime loads (onnx >= 1.23
    writes IR 14 by default, which onnxruntime 1.31 refuses).

    The graph is cleaned up (dead nodes removed) and sorted first; ``tidy=False``
    skips that, for a graph its caller built in topological order without dead nodes.
    """
    if tidy:
        graph.cleanup().toposort()
    opsets = [onnx.helper.make_opsetid(o.domain, o.version) for o in like.opset_import if o.domain != SNN_DOMAIN]
    if not any(o.domain in ("", "ai.onnx") for o in opsets) and any(n.domain in ("", None) for n in graph.nodes):
        opsets.append(onnx.helper.make_opsetid("", int(graph.opset)))  # e.g. an ai.onnx.ml-only model
    if uses_domain(graph, SNN_DOMAIN):
        opsets.append(onnx.helper.make_opsetid(SNN_DOMAIN, SNN_DOMAIN_VERSION))
    model = gs.export_onnx(graph, do_type_check=False, opset_imports=opsets)
    model.ir_version = compatible_ir_version(like)
    if model.ir_version < 4:
        list_initializers_as_inputs(model.graph)
    model.producer_name = like.producer_name
    model.producer_version = like.producer_version
    model.doc_string = like.doc_string
    model.model_version = like.model_version
    model.metadata_props.extend(like.metadata_props)
    return model


def list_initializers_as_inputs(graph: onnx.GraphProto, main: bool = True) -> None:
    """Make ``graph`` valid under IR < 4, where every initializer must be a graph input
    (graphsurgeon exports the initializers as constants only).

    The main graph lists each initializer as an input; a subgraph (a Scan's body, whose inputs
    are the op's state and scan inputs) gets Constant nodes for its initializers instead.
    """
    listed = {i.name for i in graph.input}
    missing = [init for init in graph.initializer if init.name not in listed]
    if main:
        graph.input.extend(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
                           for init in missing)
    elif missing:
        nodes = [onnx.helper.make_node("Constant", [], [init.name], value=init) for init in missing]
        nodes += list(graph.node)
        kept = [init for init in graph.initializer if init.name in listed]
        graph.ClearField("initializer")
        graph.initializer.extend(kept)
        graph.ClearField("node")
        graph.node.extend(nodes)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                list_initializers_as_inputs(attr.g, main=False)
            for sub in attr.graphs:
                list_initializers_as_inputs(sub, main=False)


def uses_domain(graph: gs.Graph, domain: str) -> bool:
    """Whether a node of ``graph`` or of one of its subgraphs (a Scan's body, ...) is of ``domain``."""
    return any(node.domain == domain or any(uses_domain(sub, domain) for sub in node.subgraphs())
               for node in graph.nodes)


def onnx_opset(graph_or_model) -> int:
    if isinstance(graph_or_model, gs.Graph):
        return int(graph_or_model.opset)
    for o in graph_or_model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def constant_value(tensor) -> np.ndarray | None:
    """The value of a constant tensor (initializer or Constant node output), else None."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if isinstance(tensor, gs.Variable) and len(tensor.inputs) == 1:
        node = tensor.inputs[0]
        if node.op == "Constant" and "value" in node.attrs:
            value = node.attrs["value"]
            return np.asarray(value.values if isinstance(value, gs.Constant) else value)
    return None


def is_empty(tensor) -> bool:
    """An omitted optional input (name '')."""
    return tensor is None or (isinstance(tensor, gs.Variable) and tensor.name == "")


def producer(tensor) -> gs.Node | None:
    return tensor.inputs[0] if len(tensor.inputs) else None


def consumers(tensor) -> list[gs.Node]:
    return list(tensor.outputs)


def is_graph_output(graph: gs.Graph, tensor) -> bool:
    return any(t is tensor for t in graph.outputs)


def replace_uses(old, new, keep=()) -> None:
    """Make every consumer of ``old`` (but the nodes in ``keep``) read ``new`` instead."""
    for node in list(old.outputs):
        if any(node is k for k in keep):
            continue
        for i, t in enumerate(node.inputs):
            if t is old:
                node.inputs[i] = new


class NameScope:
    """Unique tensor/node names: ``fresh('a/b')`` never collides with the graph."""

    def __init__(self, graph: gs.Graph):
        self._used = set(graph.tensors().keys()) | {n.name for n in graph.nodes}

    @classmethod
    def of(cls, names) -> "NameScope":
        """A scope whose taken names are ``names`` (e.g. every name of a graph and of its subgraphs)."""
        scope = cls.__new__(cls)
        scope._used = set(names)
        return scope

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name = f"{base}_{k}"
            k += 1
        self._used.add(name)
        return name


def node_label(node: gs.Node) -> tuple[str, str]:
    return (node.name or f"<unnamed {node.op}>", node.op)


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Silence onnxruntime's warnings (e.g. during constant folding)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)


