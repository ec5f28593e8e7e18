"""What an SNN costs: spikes and firing rates per neuron layer, synaptic operations per weighted
layer, and an operation-count energy estimate, from one run of the SNN over data.

    counted tensors: every neuron's output and the data input of every weighted layer (Conv,
                     ConvTranspose, Gemm, MatMul, two-operand Einsum with constant weights), made graph outputs
    per step t:      spikes = nonzero neuron outputs (positive / negative apart for bipolar neurons;
                     the cumulative form's counts step by ±1: its spikes are the nonzero differences)
                     SynOps = Σ nonzero input elements × their exact fan-out (cost/fanout.py), for the
                     weighted layers whose input carries spikes (a neuron's output through ops that move,
                     pool, pad or scale spikes: SPIKE_PRESERVING); the others run on analog values (the
                     input, a linear layer's or an Add's output, e.g. a linear bottleneck) and count as
                     dense MACs, once per step they run (once per sample when hoisted)
    energy:          E_ANN = MACs·E_MAC; E_SNN = analog MACs·E_MAC + SynOps·E_AC (energy.py)

Not counted: pooling, Add, Concat, Softmax, reshapes, the neurons' own updates and every memory
access. It is an operation-count model, not a hardware measurement.

A weighted layer's SynOps are credited to the neuron layer its input comes from (through pooling,
reshapes and other one-input ops); a layer fed by several neuron layers (through Add or Concat)
shares its SynOps equally among them. Invariant: the per-layer SynOps add up to the total.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .. import metadata
from .._progress import Progress
from ..calibration.collect import augment_outputs, calibration_session
from ..core.graph import SNN_DOMAIN, constant_value, import_model
from ..core.shapes import at_sample_batch, tensor_shapes
from ..data import iter_batches, match_inputs, model_inputs
from ..errors import ConversionError, DataError
from ..runtime.evaluate import check_label_range, check_pair, classes_of
from ..runtime.streaming import StreamingSession
from .energy import EnergyModel
from .fanout import WEIGHTED_OPS, dense_macs, einsum_output_shape, fanout

NEURON_OPS = ("IFNeuron", "BIFNeuron", "TSNeuron", "BIFCount")


@dataclass
class LayerCost:
    """One neuron layer, named by the ANN tensor it replaces (per sample = averaged over the data)."""

    name: str
    op: str
    neurons: int                      # neurons per sample
    spikes_per_sample: float          # over all T steps
    positive_spikes_per_sample: float
    negative_spikes_per_sample: float
    firing_rate: float                # spikes / (neurons · T)
    silent_fraction: float            # neurons that never fire in T steps
    synops_per_sample: float          # SynOps of the weighted layers its spikes reach
    ann_macs_per_sample: float        # the same layers' MACs in the ANN


@dataclass
class WeightedLayerCost:
    name: str
    op: str
    spiking_input: bool               # its input carries spikes: SynOps; else analog MACs
    synops_per_sample: float
    analog_macs_per_sample: float
    ann_macs_per_sample: float
    sources: list[str]                # neuron layers its input comes from


@dataclass
class CostReport:
    timesteps: int
    samples: int
    form: str
    layers: list[LayerCost]
    weighted_layers: list[WeightedLayerCost]
    synops_per_sample: float
    analog_macs_per_sample: float
    ann_macs_per_sample: float
    synops_per_step: list[float]      # cumulative SynOps per sample after t = 1..T steps
    analog_macs_per_step: list[float]  # cumulative analog MACs per sample after t = 1..T steps
    energy: EnergyModel
    accuracy: dict | None = None      # {"ann_top1": ..., "snn_top1": {t: ...}} when labels were given
    notes: list[str] = field(default_factory=list)

    @property
    def ann_uj(self) -> float:
        return self.ann_macs_per_sample * self.energy.e_mac_pj * 1e-6

    @property
    def snn_uj(self) -> float:
        return (self.analog_macs_per_sample * self.energy.e_mac_pj + self.synops_per_sample * self.energy.e_ac_pj) \
            * 1e-6

    def snn_uj_at(self, t: int) -> float:
        """Energy per sample of the first t steps (the analog MACs and SynOps of those steps)."""
        return (self.analog_macs_per_step[t - 1] * self.energy.e_mac_pj
                + self.synops_per_step[t - 1] * self.energy.e_ac_pj) * 1e-6

    def as_dict(self) -> dict:
        out = {
            "timesteps": self.timesteps, "samples": self.samples, "form": self.form,
            "layers": [asdict(layer) for layer in self.layers],
            "weighted_layers": [asdict(w) for w in self.weighted_layers],
            "synops_per_sample": self.synops_per_sample, "analog_macs_per_sample": self.analog_macs_per_sample,
            "ann_macs_per_sample": self.ann_macs_per_sample,
            "synops_per_step": self.synops_per_step, "analog_macs_per_step": self.analog_macs_per_step,
            "energy": {**asdict(self.energy), "ann_uj": self.ann_uj, "snn_uj": self.snn_uj,
                       "snn_over_ann": self.snn_uj / self.ann_uj if self.ann_uj else None,
                       "snn_uj_per_step": [self.snn_uj_at(t) for t in range(1, self.timesteps + 1)]},
            "convention": CONVENTION, "notes": self.notes,
        }
        if self.accuracy is not None:
            out["accuracy"] = {"ann_top1": self.accuracy["ann_top1"],
                               "snn_top1": {str(t): a for t, a in self.accuracy["snn_top1"].items()}}
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


CONVENTION = ("SynOps: every nonzero input element of a weighted layer (Conv, ConvTranspose, Gemm, MatMul, "
              "Einsum with constant weights) whose input carries spikes (a neuron's output, through reshapes, pooling, padding, "
              "slicing, Concat or a constant scale) counts once per connection it reaches, at every step "
              "(Conv: output channels per group x kernel taps that reach it given stride, padding and dilation; "
              "Gemm/MatMul: outputs it feeds; Einsum: the sizes of the axes only the constant has, multiplied). Weighted layers on analog values (the input, or the output of a "
              "linear layer or an Add without a neuron in between) count dense MACs once per step they run (once "
              "per sample when hoisted). Pooling, Add, Concat, reshapes, neuron updates and memory accesses are "
              "not counted. Energy = MACs x E_MAC + SynOps x E_AC: an operation-count model, not a "
              "hardware measurement.")


# -- the graph: which tensors to count -------------------------------------------------------------

@dataclass
class _Weighted:
    node: gs.Node
    data: str                 # the activation input's name
    data_index: int
    weight_shape: list[int]
    spiking: bool
    sources: list[str]
    runs_every_step: bool = False  # inside a recurrent cell: runs at every sub-step of every element

    @property
    def key(self) -> str:  # node names may be empty or repeat; output tensor names are unique
        return self.node.outputs[0].name

    @property
    def label(self) -> str:
        return self.node.name or f"{self.node.op} -> {self.key}"


def _per_sample_shapes(model: onnx.ModelProto) -> tuple[dict[str, list], int]:
    """Shapes at batch 1 (or the model's fixed batch B), and that batch."""
    graph, batch = at_sample_batch(model)
    return tensor_shapes(graph), batch


READOUT_SUFFIX = "_running_mean"  # the readout's averaging MatMul and a recurrent readout's running copy:
                                  # added by the converter, not layers of the network


def _weighted_nodes(graph: gs.Graph) -> list[tuple[gs.Node, int, list[int]]]:
    """(node, data input index, weight shape) of every layer with constant weights."""
    found = []
    for node in graph.nodes:
        if node.op not in WEIGHTED_OPS or len(node.inputs) < 2 or node.name.endswith(READOUT_SUFFIX) \
                or (node.op == "Einsum" and len(node.inputs) != 2):
            continue
        w0, w1 = constant_value(node.inputs[0]), constant_value(node.inputs[1])
        if node.op in ("MatMul", "Einsum") and w0 is not None and w1 is None:
            found.append((node, 1, list(w0.shape)))
        elif w1 is not None and w0 is None:
            found.append((node, 0, list(w1.shape)))
    return found


# Ops whose output is still spike-coded when their data input is: they move, select, pad, pool or
# scale spikes (a pooling average or a constant scale folds into the next layer's weights).
SPIKE_PRESERVING = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool", "GlobalMaxPool",
                    "AveragePool", "GlobalAveragePool", "Pad", "Slice", "Split", "Gather", "Resize", "Upsample",
                    "Tile", "Expand", "DepthToSpace", "SpaceToDepth"}


def _sources(tensor, neuron_outputs: set[str], memo: dict) -> frozenset[str] | None:
    """The neuron layers whose spikes a tensor carries, or None when it carries analog values (a graph
    input, or anything computed by an op that is not spike-preserving, e.g. a weighted layer or an Add)."""
    if tensor.name in memo:
        return memo[tensor.name]
    memo[tensor.name] = None  # a DAG has no cycles; this only guards re-entry
    if tensor.name in neuron_outputs:
        result = frozenset([tensor.name])
    elif not tensor.inputs:
        result = None
    else:
        node = tensor.inputs[0]
        variable = [t for t in node.inputs if constant_value(t) is None]
        if node.op == "Concat":
            data = variable
        elif len(variable) == 1 and (node.op == "Mul" or node.op == "Div" and node.inputs[0] is variable[0]):
            data = variable  # scaled by a constant
        elif node.op in SPIKE_PRESERVING:
            data = [node.inputs[0]]
        else:
            data = None
        found = None if not data else [_sources(t, neuron_outputs, memo) for t in data]
        result = None if found is None or any(f is None for f in found) else frozenset().union(*found)
    memo[tensor.name] = result
    return result


def _analyse(snn: onnx.ModelProto):
    """(neuron layers [(tensor, op)], weighted layers) of an SNN, in every form (the neurons from the
    metadata, which names them whatever ops the form runs them with)."""
    graph = import_model(snn)
    neurons = metadata.read(snn).neurons
    if neurons is None:  # written before the key existed
        neurons = tuple((n.outputs[0].name, n.op) for n in graph.nodes if n.domain == SNN_DOMAIN and n.op in NEURON_OPS)
    outputs = {t for t, _ in neurons}
    memo: dict = {}
    weighted = []
    for node, index, wshape in _weighted_nodes(graph):
        data = node.inputs[index]
        src = _sources(data, outputs, memo)
        weighted.append(_Weighted(node, data.name, index, wshape, bool(src), sorted(src or ())))
    return list(neurons), weighted


# -- running ---------------------------------------------------------------------------------------

def _steps(value: np.ndarray, timesteps: int, batch: int) -> np.ndarray:
    """[T·n, ...] → [T, n, ...]; a tensor computed once per sample ([n, ...]) → [1, n, ...]."""
    if value.shape[0] == timesteps * batch:
        return value.reshape((timesteps, batch) + value.shape[1:])
    return value.reshape((1,) + value.shape)


def report(ann: onnx.ModelProto, snn: onnx.ModelProto, feeds: dict[str, np.ndarray], labels: np.ndarray | None = None,
           batch_size: int = 8, energy: EnergyModel | None = None, progress: bool = False) -> CostReport:
    """Run ``snn`` once over ``feeds`` and count what it spends (see the module docstring)."""
    meta = metadata.read(snn)
    T, form = meta.timesteps, meta.form
    energy = energy or EnergyModel.preset("fp32")
    scored = check_pair(ann, snn, scored=labels is not None)  # (output, its running mean) with labels
    feeds = match_inputs(feeds, model_inputs(ann), label_key=None, what="report data")  # shapes, before any run
    if labels is not None:
        if np.shape(labels) != (next(iter(feeds.values())).shape[0],):
            raise DataError(f"labels must hold one class index per sample ({next(iter(feeds.values())).shape[0]}), "
                            f"got shape {np.shape(labels)}")
        check_label_range(np.asarray(labels), classes_of(ann, scored[0]), scored[0])
    neurons, weighted = _analyse(snn)
    snn_shapes, snn_batch = _per_sample_shapes(snn)
    running_steps = T
    if meta.is_recurrent:  # the cell's neurons and layers, inside the Scan, over S elements × T_s sub-steps
        cell_neurons, cell_weighted, cell_shapes, T = _recurrent_cells(snn, meta)
        neurons, weighted = cell_neurons + neurons, cell_weighted + weighted
        snn_shapes = {**snn_shapes, **cell_shapes}
    names = [t for t, _ in neurons] + [w.data for w in weighted]
    names = list(dict.fromkeys(names))
    cumulative = form == "cumulative"
    n_total = next(iter(feeds.values())).shape[0]
    fixed = model_inputs(snn)[0].fixed_batch if model_inputs(snn) else None

    spikes = {t: np.zeros(2) for t, _ in neurons}  # positive, negative
    silent = {t: 0.0 for t, _ in neurons}
    neuron_count = {}
    synops = {w.key: np.zeros(T) for w in weighted}
    fan = {}
    for w in weighted:
        in_shape, out_shape = snn_shapes.get(w.data), snn_shapes.get(w.node.outputs[0].name)
        known = in_shape is not None and out_shape is not None and all(isinstance(d, int) for d in in_shape + out_shape)
        if not known and w.node.op in ("Gemm", "MatMul") and len(w.weight_shape) == 2 and \
                (in_shape is None or len(in_shape) == 2):  # e.g. after a Scan: one row per sample
            k, m = _matrix_dims(w.node, w.data_index, w.weight_shape)
            in_shape, out_shape = [snn_batch, k], [snn_batch, m]
            snn_shapes[w.data], snn_shapes[w.node.outputs[0].name] = in_shape, out_shape
            known = True
        if known:
            fan[w.key] = fanout(w.node, in_shape, out_shape, w.weight_shape, w.data_index)
    running_name = None if scored is None else scored[1]
    run_steps = (_runner(snn, names, T, form, running_name) if not meta.is_recurrent
                 else _recurrent_runner(snn, names))
    ann_sess = calibration_session(ann) if labels is not None else None
    ann_correct, snn_correct = 0, np.zeros(running_steps, np.int64)
    start = 0
    batches = -(-n_total // (fixed or batch_size))
    with Progress(batches, "counting", enabled=progress) as bar:
        for feed, valid in iter_batches(feeds, batch_size, fixed):
            values, running = run_steps(feed)
            n = next(iter(feed.values())).shape[0]
            for w in weighted:  # shapes as they run (shape inference may not follow a graph everywhere)
                if not w.runs_every_step:
                    _runtime_shapes(w, values[w.data].shape, n, snn_batch, snn_shapes, fan)
            for name, _ in neurons:
                y = _steps(values[name], T, n)[:, :valid]
                if cumulative:
                    y = np.diff(y, axis=0, prepend=np.zeros_like(y[:1]))
                spikes[name] += [(y > 0).sum(), (y < 0).sum()]
                silent[name] += float((~(y != 0).any(axis=0)).sum())
                neuron_count[name] = int(np.prod(y.shape[2:]))
            for w in weighted:
                if not w.spiking:
                    continue
                x = _steps(values[w.data], T, n)[:, :valid]
                if cumulative:  # a difference within rounding of the float sums it subtracts is no spike
                    prev = np.concatenate([np.zeros_like(x[:1]), x[:-1]])
                    noise = 32 * np.finfo(np.float32).eps * np.maximum(np.abs(x), np.abs(prev))
                    x = np.where(np.abs(x - prev) > noise, x - prev, 0)
                nonzero = (x != 0)
                f = np.broadcast_to(fan[w.key], x.shape[2:])
                synops[w.key] += (nonzero.reshape(nonzero.shape[0], valid, -1).sum(axis=1)
                                        * f.reshape(-1)).sum(axis=1)
            if labels is not None:
                y_true = labels[start:start + valid]
                ann_out = ann_sess.run([scored[0]], feed)[0][:valid]
                ann_correct += int((ann_out.argmax(-1) == y_true).sum())
                snn_correct += (running[:, :valid].argmax(-1) == y_true[None]).sum(axis=1)
            start += valid
            bar.update()
    result = _assemble(form, T, n_total, neurons, weighted, spikes, silent, neuron_count, synops, snn_shapes,
                       snn_batch, energy, labels, ann_correct, snn_correct)
    if meta.is_recurrent:  # the running output covers the last element's sub-steps: global steps T − T_s + t
        if result.accuracy is not None:
            offset = T - running_steps
            result.accuracy["snn_top1"] = {offset + t: a for t, a in result.accuracy["snn_top1"].items()}
        r = meta.recurrent[0]
        result.notes.append(f"recurrent SNN: {r['sequence_length']} elements x {r['substeps']} sub-steps = {T} "
                            "steps counted; the hidden state enters each element at its first sub-step as an "
                            "analog value (s-analog), so the cell's layers on it count as analog MACs; accuracy "
                            f"per step is over the {running_steps} sub-steps of the last element")
    return result


def _assemble(form, T, n_total, neurons, weighted, spikes, silent, neuron_count, synops, snn_shapes, snn_batch,
              energy, labels, ann_correct, snn_correct):
    weighted_costs, credit, ann_credit = [], {}, {}
    analog_total, analog_steps = 0.0, np.zeros(T)
    for w in weighted:
        in_shape, out_shape = snn_shapes[w.data], snn_shapes[w.node.outputs[0].name]
        # rows per sample: T for a layer on the time-folded batch, 1 when it runs once (hoisted, or one
        # step of the streaming form, which runs every step)
        rows = max(1, in_shape[0] // snn_batch)
        once = dense_macs(w.node, in_shape, out_shape, w.weight_shape, w.data_index) / (snn_batch * rows)
        runs = T if (rows >= T or form == "streaming" or w.runs_every_step) else 1
        ann_macs = once * (T // rows if w.runs_every_step else 1)  # the ANN runs a cell layer once per element
        synops_total = float(synops[w.key].sum()) / n_total
        analog = 0.0
        if not w.spiking:
            analog = once * runs
            analog_total += analog
            analog_steps += once if runs == T else np.where(np.arange(T) == 0, once, 0.0)
        for s in w.sources:
            credit[s] = credit.get(s, 0.0) + synops_total / len(w.sources)
            ann_credit[s] = ann_credit.get(s, 0.0) + ann_macs / len(w.sources)
        weighted_costs.append(WeightedLayerCost(w.label, w.node.op, w.spiking, synops_total, analog, ann_macs,
                                                list(w.sources)))
    layers = []
    for name, op in neurons:
        count = neuron_count.get(name, 0)
        pos, neg = (float(v) / n_total for v in spikes[name])
        total = pos + neg
        layers.append(LayerCost(name, op, count, total, pos, neg, total / (count * T) if count else 0.0,
                                silent[name] / (count * n_total) if count else 0.0, credit.get(name, 0.0),
                                ann_credit.get(name, 0.0)))
    per_step = np.cumsum(sum((synops[w.key] for w in weighted), np.zeros(T)) / n_total)
    ann_total = float(sum(w.ann_macs_per_sample for w in weighted_costs))
    accuracy = None
    if labels is not None:
        accuracy = {"ann_top1": 100.0 * ann_correct / n_total,
                    "snn_top1": {t + 1: 100.0 * float(c) / n_total for t, c in enumerate(snn_correct)}}
    notes = []
    if form == "cumulative":
        notes.append("cumulative form: spikes and SynOps are those of the spiking form it computes "
                     "(differences of consecutive steps)")
    return CostReport(T, n_total, form, layers, weighted_costs, float(per_step[-1]), analog_total, ann_total,
                      [float(v) for v in per_step], [float(v) for v in np.cumsum(analog_steps)], energy, accuracy,
                      notes)


def _runner(snn: onnx.ModelProto, names: list[str], T: int, form: str, running_name: str | None = None):
    """A function feed → ({name: [T·n, ...] values}, running mean [T, n, K]): of ``running_name``
    (the streaming form: that output's per-step mean; None: the first running output)."""
    if running_name is None and metadata.read(snn).running_outputs:
        running_name = metadata.running_output(snn)
    if form == "streaming":
        stream = StreamingSession(augment_outputs(snn, names))
        wanted = list(names)
        scored_out = running_name if running_name in stream.outputs else stream.outputs[0]

        def run(feed):
            n = next(iter(feed.values())).shape[0]
            state = stream.initial_state(n)
            per_step = {k: [] for k in wanted}
            means = []
            for _ in range(T):
                values = stream.session.run(wanted + [scored_out] + stream.state_outputs,
                                            {**feed, **state})
                for k, v in zip(wanted, values):
                    per_step[k].append(v)
                means.append(values[len(wanted)])
                state = dict(zip(stream.state_inputs, values[len(wanted) + 1:]))
            return {k: np.concatenate(v) for k, v in per_step.items()}, np.stack(means)
        return run
    from ..runtime.session import InferenceSession  # the op library registered, plain layout
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = InferenceSession(augment_outputs(snn, names), opts, blocked_layout=False, chunk_bytes=None)
    outputs = names + ([running_name] if running_name else [])

    def run(feed):
        values = sess.run(outputs, feed)
        return dict(zip(names, values)), (values[-1] if running_name else None)
    return run


# -- recurrent SNNs: the neurons and layers of each Scan's cell ------------------------------------

def _recurrent_cells(snn: onnx.ModelProto, meta) -> tuple[list, list, dict, int]:
    """(neurons, weighted layers, shapes at batch 1 of one element, total steps S·T_s) of the Scan cells."""
    neurons, weighted, shapes = [], [], {}
    steps = None
    graph = import_model(snn)
    for scan, info in zip([n for n in graph.nodes if n.op == "Scan"], meta.recurrent):
        if info.get("sequence_length") is None:
            raise ConversionError(f"Scan '{scan.name}': the sequence length is not static; the cost report needs "
                                  "it to count the steps")
        total, substeps = int(info["sequence_length"]) * int(info["substeps"]), int(info["substeps"])
        if steps not in (None, total):
            raise ConversionError("the cost report counts recurrent SNNs whose Scans run the same number of steps")
        steps = total
        body = scan.attrs["body"]
        cell = [(n.outputs[0].name, n.op) for n in body.nodes if n.domain == SNN_DOMAIN and n.op in NEURON_OPS]
        outputs = {t for t, _ in cell}
        memo: dict = {}
        for node, index, wshape in _weighted_nodes(body):
            if node.op not in ("Gemm", "MatMul"):
                raise ConversionError(f"node '{node.name}' ({node.op}) in the cell of Scan '{scan.name}': the cost "
                                      "report counts Gemm and MatMul layers in recurrent cells")
            src = _sources(node.inputs[index], outputs, memo)
            weighted.append(_Weighted(node, node.inputs[index].name, index, wshape, bool(src), sorted(src or ()),
                                      True))
            k, m = _matrix_dims(node, index, wshape)
            shapes[node.inputs[index].name] = [substeps, k]
            shapes[node.outputs[0].name] = [substeps, m]
        neurons += cell
    return neurons, weighted, shapes, steps


def _matrix_dims(node: gs.Node, index: int, wshape: list[int]) -> tuple[int, int]:
    """(inputs K, outputs M) of a Gemm or MatMul with constant weights of shape ``wshape``."""
    if node.op == "Gemm":
        return (wshape[1], wshape[0]) if int(node.attrs.get("transB", 0)) else (wshape[0], wshape[1])
    return (wshape[-2], wshape[-1]) if index == 0 else (wshape[-1], wshape[-2])


def _recurrent_runner(snn: onnx.ModelProto, names: list[str]):
    """Like :func:`_runner` for a recurrent SNN: each cell tensor becomes an extra scan output
    [S, T_s·n, ...], returned as [S·T_s·n, ...] (global step s·T_s + t, time-major)."""
    aug = onnx.ModelProto()
    aug.CopyFrom(snn)
    outer = {o for n in aug.graph.node for o in n.output} | {i.name for i in aug.graph.input}
    exposed = {}
    for node in aug.graph.node:
        if node.op_type != "Scan":
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        inner = {o for n in body.node for o in n.output}
        ranks = _body_ranks(body)
        for name in names:
            if name in inner and name not in exposed:  # a Scan output needs its rank declared
                dims = [f"{name}_d{k}" for k in range(ranks.get(name, 2))]
                body.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
                exposed[name] = f"{node.name}/{name}/scanned"
                node.output.append(exposed[name])
                for a in node.attribute:  # a Scan that lists its scan outputs' axes lists the new one too
                    if a.name == "scan_output_axes":
                        a.ints.append(0)
    outer_names = [n for n in names if n not in exposed and n in outer]
    model = augment_outputs(aug, [exposed[n] for n in names if n in exposed] + outer_names)
    run_outer = _runner(model, [exposed.get(n, n) for n in names if n in exposed or n in outer], 1, "folded")

    def run(feed):
        values, running = run_outer(feed)
        out = {}
        for name in names:
            value = values.get(exposed.get(name, name))
            if value is None:
                continue
            out[name] = value.reshape((-1,) + value.shape[2:]) if name in exposed else value
        return out, running
    return run


def _body_ranks(body: onnx.GraphProto) -> dict[str, int]:
    """The rank of every tensor of a cell whose rank is known or follows (the neurons keep their input's)."""
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in list(body.input) + list(body.value_info)
             + list(body.output) if vi.type.tensor_type.HasField("shape")}
    for node in body.node:
        if node.domain == SNN_DOMAIN and node.input and node.input[0] in ranks:
            ranks.setdefault(node.output[0], ranks[node.input[0]])
    return ranks


def _runtime_shapes(w: _Weighted, value_shape: tuple, n: int, batch: int, shapes: dict, fan: dict) -> None:
    """Make the shapes of ``w`` (at the shape-inference batch ``batch``) those of the run when inference
    gave none or others, and its fan-out with them."""
    rows = max(1, value_shape[0] // n)
    in_shape = [rows * batch] + [int(d) for d in value_shape[1:]]
    if shapes.get(w.data) == in_shape and w.key in fan:
        return
    out_shape = _output_shape(w, in_shape)
    shapes[w.data], shapes[w.node.outputs[0].name] = in_shape, out_shape
    fan[w.key] = fanout(w.node, in_shape, out_shape, w.weight_shape, w.data_index)


def _output_shape(w: _Weighted, in_shape: list[int]) -> list[int]:
    """The output shape ONNX defines for a weighted layer on ``in_shape``."""
    node, wshape = w.node, w.weight_shape
    if node.op == "Einsum":
        return einsum_output_shape(node, in_shape, wshape, w.data_index)
    if node.op in ("Gemm", "MatMul"):
        k, m = _matrix_dims(node, w.data_index, wshape)
        return list(in_shape[:-1]) + [m] if w.data_index == 0 else list(in_shape[:-2]) + [m, in_shape[-1]]
    rank = len(in_shape) - 2
    kernel = [int(k) for k in wshape[2:]]
    strides = [int(v) for v in node.attrs.get("strides", [1] * rank)]
    dilations = [int(v) for v in node.attrs.get("dilations", [1] * rank)]
    pads = [int(v) for v in node.attrs.get("pads", [0] * (2 * rank))]
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    group = int(node.attrs.get("group", 1))
    out = []
    for d in range(rank):
        size, eff = in_shape[2 + d], (kernel[d] - 1) * dilations[d] + 1
        if node.op == "ConvTranspose":
            given = node.attrs.get("output_shape")
            if given is not None:
                out.append(int(given[-rank + d]))
                continue
            extra = int(node.attrs.get("output_padding", [0] * rank)[d])
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                out.append(size * strides[d])
            else:
                out.append(strides[d] * (size - 1) + extra + eff - pads[d] - pads[rank + d])
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-size // strides[d]))
        elif auto == "VALID":
            out.append((size - eff) // strides[d] + 1)
        else:
            out.append((size + pads[d] + pads[rank + d] - eff) // strides[d] + 1)
    channels = wshape[0] if node.op == "Conv" else wshape[1] * group
    return [in_shape[0], channels] + out
