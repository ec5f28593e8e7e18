"""The input-side head: split it off the ANN before conversion, put it in front of the SNN after.

:func:`split` takes the head (:func:`onnx2snn.passes.tail.head_nodes`: the nodes
before the first neuron that are no per-step layer — an embedding ``Gather`` from
int64 token ids, a ``Cast``, normalisation or any preprocessing — with everything
they depend on) off the canonical ANN. The *body* reads the head's outputs (the
frontier tensors) as its inputs, next to the model inputs it reads itself, so
every recipe converts it as usual: its time axis tiles the frontier tensors as
it tiles inputs. :meth:`Head.feeds` runs the head in onnxruntime on the
calibration data (every model input under its name, of its own dtype) to give
the body's calibration data; :meth:`Head.attach` puts the head's nodes in front
of the body's SNN, so the SNN reads the model's own inputs.

Invariant: the head computes exactly what the ANN computes (the same nodes, once
per sample, at the batch the user feeds); the SNN's inputs are the ANN's; a
model without a head is returned unchanged (``split`` gives ``None``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..core.graph import export_graph, import_model
from ..data import calibration_feeds, model_inputs
from ..errors import ConversionError
from ..passes.check_support import activation_tensors, support_reason
from ..passes.tail import frontier_tensors, head_nodes
from .analog_tail import _append, _fresh_internals, _names, quantized_tensors

BATCH = 256  # samples per head run when its outputs for the calibration data are computed


@dataclass(frozen=True)
class Head:
    model: onnx.ModelProto          # inputs: the model inputs it reads; outputs: the frontier tensors
    inputs: tuple[str, ...]         # the ANN's inputs (the SNN's), in order
    body_inputs: frozenset          # the model inputs the body reads itself (besides the frontier)

    @property
    def frontier(self) -> list[str]:
        return [o.name for o in self.model.graph.output]

    def feeds(self, data, ann: onnx.ModelProto) -> dict[str, np.ndarray]:
        """The body's calibration data: the frontier tensors the head computes from ``data`` (read
        as the ANN's inputs), and the model inputs the body reads itself."""
        import onnxruntime as ort

        arrays = calibration_feeds(data, ann)
        session = ort.InferenceSession(self.model.SerializeToString(), providers=["CPUExecutionProvider"])
        wanted = [i.name for i in self.model.graph.input]
        n = next(iter(arrays.values())).shape[0]
        fixed = model_inputs(ann)[0].fixed_batch if model_inputs(ann) else None
        step = fixed or BATCH
        parts: dict[str, list] = {name: [] for name in self.frontier}
        for start in range(0, n, step):
            feed = {k: arrays[k][start:start + step] for k in wanted}
            valid = next(iter(feed.values())).shape[0] if feed else step
            if fixed and valid < fixed:  # the last rows, padded to the fixed batch
                feed = {k: np.concatenate([v, np.repeat(v[-1:], fixed - valid, axis=0)]) for k, v in feed.items()}
            for name, value in zip(self.frontier, session.run(self.frontier, feed)):
                parts[name].append(value[:valid])
        out = {name: np.concatenate(v) for name, v in parts.items()}
        out.update({k: v for k, v in arrays.items() if k in self.body_inputs})
        return out

    def attach(self, snn: onnx.ModelProto) -> onnx.ModelProto:
        """``snn`` (of the body) reading the ANN's inputs through the head."""
        out = onnx.ModelProto()
        out.CopyFrom(snn)
        g = out.graph
        frontier = set(self.frontier)
        keep = frontier | {i.name for i in self.model.graph.input}
        mapping = _fresh_internals(self.model.graph, _names(g), keep)
        first = len(g.node)
        _append(g, self.model.graph, mapping)
        head_nodes_ = list(g.node[first:])  # in front: the body's nodes read the frontier
        del g.node[first:]
        for node in reversed(head_nodes_):
            g.node.insert(0, node)
        by_name = {vi.name: vi for vi in list(g.input) + list(self.model.graph.input)}
        inputs = [by_name[name] for name in self.inputs if name in by_name]
        rest = [vi for vi in g.input if vi.name not in frontier and vi.name not in self.inputs]
        kept = [onnx.ValueInfoProto() for _ in inputs + rest]
        for k, vi in zip(kept, inputs + rest):
            k.CopyFrom(vi)
        del g.input[:]
        g.input.extend(kept)
        for o in self.model.opset_import:
            if o.domain not in {p.domain for p in out.opset_import}:
                out.opset_import.append(onnx.helper.make_opsetid(o.domain, o.version))
        return out


def split(ann: onnx.ModelProto) -> tuple[onnx.ModelProto, Head | None]:
    """(the body to convert, its head) — ``(ann, None)`` when every op before the first neuron is a layer."""
    graph = import_model(ann)
    acts = activation_tensors(graph)
    quantized = quantized_tensors(ann)
    head = head_nodes(graph, acts, lambda n: support_reason(graph, n, acts), quantized)
    if not head:
        return ann, None
    frontier = frontier_tensors(graph, head)
    for t in frontier:
        if t.shape is None or not len(t.shape) or not all(isinstance(d, int) for d in t.shape[1:]):
            raise ConversionError(
                f"the input-side ops before the first neuron hand the network '{t.name}' of shape {t.shape}; "
                "it must have a batch axis first and static sizes beyond it (export with fixed feature sizes)")
    index = [i for i, n in enumerate(graph.nodes) if any(n is m for m in head)]
    copy = import_model(ann)
    copy.toposort()
    tensors = copy.tensors()
    head_graph = gs.Graph(nodes=[copy.nodes[i] for i in index], inputs=[x for x in copy.inputs],
                          outputs=[tensors[t.name] for t in frontier], opset=copy.opset)
    head_model = export_graph(head_graph, like=ann)
    head_ids = {id(n) for n in head}
    body_reads = {t.name for n in graph.nodes if id(n) not in head_ids for t in n.inputs}
    direct = [x for x in graph.inputs if x.name in body_reads]
    for t in frontier:  # the body starts at the frontier: its producer is the head's
        t.inputs.clear()
    graph.inputs = direct + list(frontier)
    body = export_graph(graph, like=ann)
    read = {i for n in head_model.graph.node for i in n.input}
    for vi in [vi for vi in head_model.graph.input if vi.name not in read]:  # the head is fed what it reads
        head_model.graph.input.remove(vi)
    return body, Head(head_model, tuple(s.name for s in model_inputs(ann)), frozenset(x.name for x in direct))
