"""The analog tail (the nodes that run once, on the time-averaged values, after the readout) and
the input-side head (the nodes that run once per sample before the time axis).

The last layers of a network that feed no neuron are analog: the readout averages
them over the T steps. Everything after the point where they stop being per-step
layers — a Sigmoid on detection scores, a Softmax that is not the last node, ArgMax
or TopK, Cast, label lookups of ``ai.onnx.ml``, box decoding, NMS, any op — runs
once on the averaged values, as the ANN runs it on its values. That is the tail:

    a node is in the tail when no activation (future neuron) is downstream of it, it
    reads a tensor computed from the model inputs, and either it is no per-step layer
    (``reason(node)`` is not empty: the support check refuses it inside the network)
    or it reads a tail tensor.

A lone final Softmax/LogSoftmax is no tail (the readout applies it after the
average itself). :func:`tail_nodes` adds what the tail needs besides its data
inputs: the shape arithmetic it alone reads, and a Shape/Size it alone reads (which
then reads the averaged tensor, with the batch of the ANN).

Invariant: no tail node is upstream of an activation; a tensor the tail reads from
outside it (a *crossing* tensor, :func:`crossing_tensors`) is a data tensor of the
network that the readout can average; a model without such ops has an empty tail.
"""
from __future__ import annotations

from typing import Callable

import onnx_graphsurgeon as gs

from ..core.graph import is_empty
from .activations import relu_cap

SHAPE_ONLY = {"Shape", "Size"}


def _reach(graph: gs.Graph, quantized: set[str], upstream: bool) -> set[int]:
    """ids of the nodes from which an activation (ReLU-like or quantized marker) is reachable
    (``upstream``), or that an activation reaches; the activations included."""
    producer = {id(t): n for n in graph.nodes for t in n.outputs}
    readers: dict[str, list[gs.Node]] = {}
    for node in graph.nodes:
        for t in node.inputs:
            readers.setdefault(t.name, []).append(node)
    seen: set[int] = set()
    stack = [n for n in graph.nodes
             if (n.op in ("Relu", "Clip") and relu_cap(n)[0]) or (n.outputs and n.outputs[0].name in quantized)]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if upstream:
            stack.extend(producer[id(t)] for t in node.inputs if id(t) in producer)
        else:
            stack.extend(r for t in node.outputs for r in readers.get(t.name, []))
    return seen


def _per_step_reason(reason: Callable[[gs.Node], str], quantized: set[str]) -> Callable[[gs.Node], str]:
    """``reason``, with none for a node writing a quantized tensor (a marker or an input encoder)."""
    return lambda n: "" if n.outputs and n.outputs[0].name in quantized else reason(n)


def tail_nodes(graph: gs.Graph, acts: set[str], reason: Callable[[gs.Node], str],
               quantized: set[str] = frozenset()) -> list[gs.Node]:
    """The tail's nodes in topological order (see the module docstring); ``acts``: the names of the
    tensors computed from the model inputs; ``reason``: the support check's reason for a node (none
    for a node writing one of the ``quantized`` tensors)."""
    graph.toposort()
    why = _per_step_reason(reason, set(quantized))
    upstream = _reach(graph, set(quantized), upstream=True)
    core: set[int] = set()
    tail_tensors: set[str] = set()
    for node in graph.nodes:
        if id(node) in upstream or node.op in SHAPE_ONLY:
            continue
        data = [t for t in node.inputs if not is_empty(t) and t.name in acts]
        if not data:
            continue
        if any(t.name in tail_tensors for t in node.inputs) or why(node):
            core.add(id(node))
            tail_tensors.update(t.name for t in node.outputs)
    if not core:
        return []
    consumers: dict[str, list[gs.Node]] = {}
    for node in graph.nodes:
        for t in node.inputs:
            consumers.setdefault(t.name, []).append(node)
    outputs = {t.name for t in graph.outputs}
    members = set(core)
    for node in reversed(graph.nodes):  # what only the tail reads: shape arithmetic, Shape/Size
        if id(node) in members or id(node) in upstream or not node.outputs:
            continue
        computes_data = node.op not in SHAPE_ONLY and any(t.name in acts for t in node.inputs if not is_empty(t))
        if computes_data:
            continue
        readers = [c for t in node.outputs for c in consumers.get(t.name, [])]
        if readers and all(id(c) in members for c in readers) and not any(t.name in outputs for t in node.outputs):
            members.add(id(node))
    return [n for n in graph.nodes if id(n) in members]


def crossing_tensors(graph: gs.Graph, tail: list[gs.Node], acts: set[str]) -> list[gs.Variable]:
    """The data tensors the tail reads from outside it, in first-read order (the readout averages them)."""
    written = {t.name for n in tail for t in n.outputs}
    out, seen = [], set()
    for node in tail:
        for t in node.inputs:
            if isinstance(t, gs.Variable) and t.name in acts and t.name not in written and t.name not in seen:
                seen.add(t.name)
                out.append(t)
    return out


def head_nodes(graph: gs.Graph, acts: set[str], reason: Callable[[gs.Node], str],
               quantized: set[str] = frozenset()) -> list[gs.Node]:
    """The input-side head in topological order: the nodes before the first activation that feed one
    and are no per-step layer (``reason`` not empty: an embedding Gather, a Cast, normalisation or any
    preprocessing op), with every node they depend on. They run once per sample, before the time
    axis, on the model inputs of any dtype; what they hand the network is tiled T times like an input.
    Nodes after the last activation belong to the tail instead (:func:`tail_nodes`)."""
    graph.toposort()
    why = _per_step_reason(reason, set(quantized))
    upstream = _reach(graph, set(quantized), upstream=True)
    downstream = _reach(graph, set(quantized), upstream=False)
    core = [n for n in graph.nodes if id(n) in upstream and id(n) not in downstream and n.op not in SHAPE_ONLY
            and any(t.name in acts for t in n.inputs if not is_empty(t)) and why(n)]
    if not core:
        return []
    producer = {id(t): n for n in graph.nodes for t in n.outputs}
    members: set[int] = set()
    stack = list(core)
    while stack:  # everything the core depends on
        node = stack.pop()
        if id(node) in members:
            continue
        members.add(id(node))
        stack.extend(producer[id(t)] for t in node.inputs if id(t) in producer)
    return [n for n in graph.nodes if id(n) in members]


def frontier_tensors(graph: gs.Graph, head: list[gs.Node]) -> list[gs.Variable]:
    """The head's tensors the rest of the graph reads (or that are graph outputs), in write order."""
    ids = {id(n) for n in head}
    outputs = {t.name for t in graph.outputs}
    read_outside = {t.name for n in graph.nodes if id(n) not in ids for t in n.inputs}
    return [t for n in head for t in n.outputs if t.name in read_outside or t.name in outputs]
