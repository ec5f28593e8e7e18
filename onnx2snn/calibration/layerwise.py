"""Layer-wise parameter calibration of the SNN (Li et al. 2021, "A free lunch
from ANN"; Li et al. 2022, "Converting ANNs to SNNs via parameter calibration").

The SNN is simulated one neuron layer at a time, in network order, on the
calibration data, so that every layer sees the SNN's own (already calibrated)
spike trains as input. For layer l with ANN pre-activation z, ANN activation
a = clip(z, 0, cap) and SNN time-averaged output r̄ = (1/T)·Σ_t y_t:

- weight calibration (WC), first: the layer's weights W (Conv over im2col
  patches, Gemm rows, or a MatMul by a constant matrix over the rows of every
  leading position, its bias in the Add after it) and bias get the ridge solution
      ΔW = argmin ‖X̄·ΔW − (z − z̄)‖² + λ‖ΔW‖²,   λ = 1e-2 · mean diag(X̄ᵀX̄)
  where X̄ is the SNN's time-averaged input of the layer and z̄ the SNN's
  time-averaged input current: the mean current the SNN feeds the neuron is
  fitted to the ANN's pre-activation z, correcting what the upstream spike
  trains distort. The objective before and after is reported per layer. A
  layer that reads the analog input alone (no neuron upstream) is not fitted:
  its mean current is the ANN's;
- bias calibration (BC): b_c += e_c = mean_{n,pos}(a − r̄ − X̄ΔW) per channel c
  (the output error WC did not already remove);
- potential calibration (PC): v0 += T·k·(mean_n(a − r̄ − X̄ΔW) − e_c) per neuron
  (the charge BC does not already add), shrunk by k = max(0, 1 − s²/d²) where d
  is that difference and s its standard error over the n samples (the part the
  data cannot tell from noise is not fitted), clipped to [−θ, θ].

All three corrections are computed from one pass over the data (the later
steps assume the neuron is in its linear range, where shifting every step's
current by δ shifts the rate by δ); a second pass produces the calibrated
spike trains that later layers read. Without WC the second pass reuses the
first pass's input currents plus the bias shift while they fit in
``keep_bytes`` (default 4 GiB; beyond it they are recomputed). Spike trains
are kept bit-packed (bipolar neurons: a second bit plane for the negative
spikes) and only while a later layer still needs them. What is held across
batches (those spike trains and one layer's ANN pre-activations) stays in memory
up to 3/8 of ``max_memory`` less the calibration data itself (which is held
throughout); the rest goes to an anonymous temporary file
(``spill.py``), so every calibration sample is used whatever the limit.

The passes over T·n-row tensors (unpacking, time means, packing) are :mod:`.rows`'s, split
across the cores and equal to one thread's results bit for bit.

At most ``SAMPLE_STEPS`` sample-steps (samples × T) are simulated per layer:
the first ``SAMPLE_STEPS // T`` samples when the data holds more (the
thresholds were set on all of it before).

The neuron simulated is the one the SNN will use: ``IFNeuron`` or, for
``--neuron bif`` on a float ANN, ``BIFNeuron`` with levels = T.

With WC the analog output layers are fitted too: each last Conv/Gemm on a path from a neuron layer
to a graph output with no neuron between (a classifier, a detection head; a MatMul too). The readout averages
their output over time, and a Conv/Gemm is affine in its input, so the mean output the SNN reads
out is W·X̄ + b exactly: the same ridge fit to the ANN's value of that output is here the true
objective, not a proxy through a threshold. Nothing downstream corrects what it fits to the
calibration samples' noise, so an output layer is fitted only from at least
``OUTPUT_ROWS_PER_WEIGHT`` rows (samples × positions) per weight of an output; otherwise it is left
as it is and the report says why.

The per-layer error report follows the 2022 paper's decomposition:
clipping error E[(a − clip(a, 0, θ))²] and flooring error
E[(clip(a, 0, θ) − r̄)²] before and after the layer's calibration, both
relative to E[a²].
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from .._progress import Progress
from ..config import Calibration
from ..core.graph import SNN_DOMAIN, NameScope, export_graph, import_model
from ..data import iter_batches
from ..neurons.kinds import IF, NeuronKind, kind
from ..passes.activations import activation_nodes, relu_cap
from ..snn.time_axis import AddTimeAxisPass
from .collect import calibration_session
from .rows import pack, time_mean, unpack_spikes
from ..sizes import format_size
from .spill import Budget, HeldList, disk_free

log = logging.getLogger(__name__)
RIDGE = 1e-2
WC_MACS = 1 << 27   # multiply-adds per sample the weight fit's sums may take (positions × Gram and cross row)
WC_MIN_POSITIONS = 64  # positions per sample the weight fit keeps whatever the cost
SAMPLE_STEPS = 32768  # samples × T simulated per layer: all of 1,024 up to T = 32, the first 512 at T = 64
KEEP_BYTES = 4 << 30  # pass-A input currents kept for pass B (beyond this they are recomputed)
MAX_MEMORY = 4 << 30  # the default bound on what a layer's simulation holds (convert --max-memory)
OUTPUT_ROWS_PER_WEIGHT = 10  # an analog output layer's fit needs this many rows per weight of an output
WORKING_COPIES = 8  # T·n-row tensors alive per batch of a layer: input spikes, current, spikes, temporaries


@dataclass
class LayerReport:
    name: str
    theta_mean: float
    clip_err: float = 0.0
    floor_before: float = 0.0
    floor_after: float = 0.0
    wc_before: float = float("nan")
    wc_after: float = float("nan")
    notes: list[str] = field(default_factory=list)
    output: bool = False   # an analog output layer (its WC only: no neuron, no θ)


@dataclass
class _Layer:
    act: str            # neuron output (= ANN activation name)
    pre: str            # input current (= ANN pre-activation name)
    cap: float | None
    theta: np.ndarray
    v0: np.ndarray      # broadcastable to one sample [C, ...]
    weight_node: onnx.NodeProto | None = None
    current: str = ""   # its input current in the time-folded graph: ``pre``, or the tiled graph input
    analog_input: bool = False   # its weight layer reads the analog input alone (no spike upstream)


def _sq(x: np.ndarray) -> float:
    x = x.reshape(-1)
    return float(np.dot(x, x))


def _add(total, term):
    """A running sum that starts as its first term (so it keeps that term's dtype and shape)."""
    return term if total is None else total + term


@dataclass
class _OutputErrors:
    """Pass-A sums of a layer's output error e = a − r̄ (ANN activation minus SNN rate, per batch in
    data order) and of the squared errors the report gives relative to Σ a²."""

    per_channel: np.ndarray | None = None   # Σ over samples and positions of e, [C]
    per_neuron: np.ndarray | None = None    # Σ over samples of e, [C, ...]
    per_neuron_sq: np.ndarray | None = None  # Σ over samples of e², [C, ...] (the noise of the per-neuron mean)
    channel_terms: int = 0                  # terms in each channel's sum (samples × positions)
    samples: int = 0
    activation_sq: float = 0.0              # Σ a²
    clip_sq: float = 0.0                    # Σ (a − clip(a, 0, θ))²
    floor_sq: float = 0.0                   # Σ (clip(a, 0, θ) − r̄)²

    def add(self, r: np.ndarray, a: np.ndarray, ca: np.ndarray, valid: int) -> None:
        e = a - r
        axes = (0,) + tuple(range(2, e.ndim))
        self.per_channel = _add(self.per_channel, e.sum(axis=axes))
        self.per_neuron = _add(self.per_neuron, e.sum(axis=0))
        self.per_neuron_sq = _add(self.per_neuron_sq, np.square(e, dtype=np.float64).sum(axis=0))
        self.channel_terms += int(np.prod([e.shape[k] for k in axes]))
        self.samples += valid
        self.activation_sq += _sq(a)
        self.clip_sq += _sq(a - ca)
        self.floor_sq += _sq(ca - r)

    @property
    def channel_shape(self) -> list[int]:
        """A per-channel vector's shape broadcast against one sample [C, ...]."""
        return [-1] + [1] * (self.per_neuron.ndim - 1)

    def relative(self, squared: float) -> float:
        return squared / max(self.activation_sq, 1e-30)


@dataclass
class _LeastSquares:
    """Pass-A sums of the weight fit, in float64, over rows [X̄ 1] (the inputs and a bias column)
    against the current residuals R, one independent fit per group of a grouped conv (G = 1 for a
    dense Conv or Gemm; a depthwise conv has one per channel, each over its kh·kw inputs). Where a
    sample's positions cost more than ``WC_MACS`` multiply-adds, each sample keeps the same number of
    them, drawn by a generator seeded with the sample's index in the calibration set, and the sums are
    scaled up (unbiased): the sums do not depend on how the samples are batched."""

    groups: int = 1
    gram: np.ndarray | None = None          # Σ [X̄ 1]ᵀ[X̄ 1] per group, [G, K+1, K+1]
    cross: np.ndarray | None = None         # Σ [X̄ 1]ᵀ R per group, [G, K+1, Cout/G]
    rows: np.ndarray | None = None          # Σ [X̄ 1] per group, [G, K+1] (the last entry: the number of rows)
    residual_sq: np.ndarray | None = None   # Σ R², [Cout]
    per_position: np.ndarray | None = None  # Σ over samples of [X̄ 1], all rows, [G, K+1, positions]
    kept: tuple[int, int] = (0, 0)          # positions per sample in the sums, of all

    def add(self, X: np.ndarray, R: np.ndarray, valid: int, first: int) -> None:
        """:meth:`add_grouped` of rows X [valid·positions, G·K] and R [valid·positions, Cout] (sample-major)."""
        G, P = self.groups, X.shape[0]
        Xg = X.reshape(P, G, -1).transpose(1, 2, 0).astype(np.float64)
        Rg = R.reshape(P, G, -1).transpose(1, 0, 2).astype(np.float64)
        self.add_grouped(Xg, Rg, valid, first)

    def add_grouped(self, X: np.ndarray, R: np.ndarray, valid: int, first: int) -> None:
        """Add the rows of samples ``first`` … ``first + valid − 1``: X [G, K, valid·positions] and
        R [G, valid·positions, Cout/G], float64, rows sample-major (the layout the per-group products read)."""
        G, K, P = X.shape
        positions = P // valid
        if self.per_position is None:
            self.per_position = np.zeros((G, K + 1, positions))
        self.per_position[:, :K] += X.reshape(G, K, valid, positions).sum(2)
        self.per_position[:, K] += valid
        per_row = G * (K + 1) * (K + 1 + R.shape[2])
        m = min(positions, max(WC_MIN_POSITIONS, WC_MACS // per_row))
        self.kept = (m, positions)
        if m < positions:
            keep = np.concatenate([s * positions + np.random.default_rng(first + s).choice(positions, m, replace=False)
                                   for s in range(valid)])
            scale = positions / m
            X, R = X[:, :, keep], R[:, keep]
        else:
            scale = 1.0
        gram = np.empty((G, K + 1, K + 1))
        gram[:, :K, :K] = np.matmul(X, X.transpose(0, 2, 1))   # float64: sums that hardly depend on their order
        gram[:, :K, K] = gram[:, K, :K] = colsum = X.sum(2)
        gram[:, K, K] = X.shape[2]
        cross = np.concatenate([np.matmul(X, R), R.sum(1)[:, None]], axis=1)
        self.gram = _add(self.gram, gram * scale)
        self.cross = _add(self.cross, cross * scale)
        self.rows = _add(self.rows, np.concatenate([colsum, np.full((G, 1), float(X.shape[2]))], axis=1) * scale)
        self.residual_sq = _add(self.residual_sq, np.square(R).sum(1).reshape(-1) * scale)

    def solve(self):
        """(ΔW [G, K+1, Cout/G], objective per row before, after): per group the ridge solution,
        λ = RIDGE · mean diagonal of its Gram matrix, the bias row unpenalised."""
        A, B = self.gram, self.cross
        K1 = A.shape[1]
        lam = RIDGE * np.mean(np.diagonal(A, axis1=1, axis2=2)[:, :-1], axis=1) if K1 > 1 \
            else np.full(A.shape[0], RIDGE)
        lam = np.where(lam > 0, lam, 1.0)  # a group whose inputs never spiked: ΔW = 0 but for its bias
        reg = lam[:, None, None] * np.eye(K1)
        reg[:, -1, -1] = 0.0
        dW = np.linalg.solve(A + reg, B)
        before = float(self.residual_sq.sum())
        after = before - float(2 * np.sum(dW * B) - np.sum(dW * np.matmul(A, dW)))  # ‖R − X·ΔW‖²
        rows = float(self.rows[0, -1])
        return dW, before / rows, after / rows


def _extract(model: onnx.ModelProto, stops: set[str], outputs: list[str]) -> tuple[onnx.ModelProto, list[str]]:
    """The subgraph computing ``outputs`` from the tensors ``stops`` (and initializers)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    keep, kept, inputs, seen = [], set(), [], set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen or name == "" or name in inits:
            continue
        seen.add(name)
        if name in stops:
            inputs.append(name)
            continue
        node = producers[name]
        if id(node) not in kept:
            kept.add(id(node))
            keep.append(node)
            stack.extend(node.input)
    order = {id(n): i for i, n in enumerate(model.graph.node)}
    keep.sort(key=lambda n: order[id(n)])
    used = {i for n in keep for i in n.input}
    graph_inputs = {i.name: i for i in model.graph.input}
    ins = [graph_inputs[n] if n in graph_inputs else
           onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in sorted(inputs)]
    sub = onnx.helper.make_graph(
        keep, "segment", ins, [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        [i for i in model.graph.initializer if i.name in used])
    seg = onnx.helper.make_model(sub, opset_imports=list(model.opset_import))
    seg.ir_version = model.ir_version
    return seg, sorted(inputs)


def _is_weight_layer(node: onnx.NodeProto, inits: dict) -> bool:
    """A Conv/Gemm with a constant weight, or a MatMul of an activation by a constant 2-D matrix (the
    form skl2onnx, tf2onnx and torch's exporters give a dense layer, its bias in an Add after it)."""
    if node.op_type in ("Conv", "Gemm"):
        return len(node.input) > 1 and node.input[1] in inits
    return node.op_type == "MatMul" and node.input[1] in inits and node.input[0] not in inits \
        and len(inits[node.input[1]].dims) == 2


def _weight_node(model: onnx.ModelProto, pre: str) -> onnx.NodeProto | None:
    """The Conv/Gemm/MatMul whose output feeds the current ``pre`` directly or through Add."""
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    inits = {i.name: i for i in model.graph.initializer}
    node = producers.get(pre)
    candidates = [node] if node is not None and node.op_type != "Add" else \
        [producers.get(i) for i in node.input] if node is not None else []
    for cand in candidates:
        if cand is None or consumers.get(cand.output[0], 0) != 1:
            continue
        if _is_weight_layer(cand, inits):
            return cand
    return None


def spiking_tensors(model: onnx.ModelProto, neuron_outputs: set[str]) -> set[str]:
    """The tensors computed from a neuron layer's output (the others carry the analog input alone)."""
    spiking = set(neuron_outputs)
    for n in model.graph.node:   # graph order is topological
        if any(i in spiking for i in n.input):
            spiking.update(n.output)
    return spiking


def output_layers(model: onnx.ModelProto, neuron_outputs: set[str],
                  neuron_inputs: set[str] = frozenset()) -> list[onnx.NodeProto]:
    """The analog output layers: walking back from each graph output through nodes that are not
    neuron layers, the first Conv/Gemm/MatMul met on each path whose weights are constant and used by it
    alone and whose input depends on a neuron layer's output, in graph order. A path ends at a
    tensor of ``neuron_inputs`` (a neuron layer's pre-activation, also a graph output: fitted as
    that layer's, not again)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    spiking = spiking_tensors(model, neuron_outputs)
    found, seen, stack = {}, set(), [o.name for o in model.graph.output]
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if name in seen or name in neuron_outputs or name in neuron_inputs or node is None:
            continue
        seen.add(name)
        if _is_weight_layer(node, inits):
            if node.input[0] in spiking and uses.get(node.input[1]) == 1 and \
                    (len(node.input) < 3 or uses.get(node.input[2]) == 1):
                found[id(node)] = node
            continue
        stack.extend(node.input)
    order = {id(n): i for i, n in enumerate(model.graph.node)}
    return sorted(found.values(), key=lambda n: order[id(n)])


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _im2col(x: np.ndarray, node: onnx.NodeProto, w_shape, groups: int) -> np.ndarray | None:
    """Conv input patches as float64 [G, Cin/G·kh·kw, N·H'·W']: block g is group g's patch in the order
    of W[g·Cout/G:(g+1)·Cout/G].reshape(Cout/G, -1), rows sample-major (one strided copy of the windows)."""
    if x.ndim != 4 or _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    kh, kw = w_shape[2], w_shape[3]
    sh, sw = _attr(node, "strides", [1, 1])
    dh, dw = _attr(node, "dilations", [1, 1])
    pt, pl, pb, pr = _attr(node, "pads", [0, 0, 0, 0])
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw].transpose(1, 4, 5, 0, 2, 3)   # [Cin, kh, kw, N, H', W']
    out = np.empty(win.shape, np.float64)
    np.copyto(out, win)
    return out.reshape(groups, x.shape[1] // groups * kh * kw, -1)


def sample_numels(ann: onnx.ModelProto) -> tuple[dict[str, int], int]:
    """(elements per sample of every tensor shape inference gives static dims, the batch the model runs
    at its smallest: 1, or its fixed batch)."""
    from ..core.shapes import at_sample_batch, tensor_shapes

    graph, rows = at_sample_batch(ann)
    numels = {n: int(np.prod(d)) // rows for n, d in tensor_shapes(graph).items()
              if d and all(isinstance(x, int) for x in d)}
    return numels, rows


def largest_layer(ann: onnx.ModelProto, numels: tuple[dict[str, int], int] | None = None) -> tuple[str, int, int]:
    """(name, bytes per sample) of the largest activation or pre-activation of a neuron layer, and
    the batch the model runs at its smallest (1, or its fixed batch). ``numels``: :func:`sample_numels`
    of ``ann`` when the caller has it."""
    numel, rows = numels or sample_numels(ann)
    sizes = [(numel[n] * 4, n) for node in activation_nodes(import_model(ann))
             for n in (node.inputs[0].name, node.outputs[0].name) if n in numel]
    size, name = max(sizes or [(0, "")])
    return name, size, rows


def check_fits(ann: onnx.ModelProto, timesteps: int, max_memory: int | None) -> None:
    """ConfigError, before any work, when even one sample of the largest layer's simulation (about
    WORKING_COPIES tensors of T times its size, in half the limit; a fixed batch B: B samples)
    exceeds ``max_memory`` (None: MAX_MEMORY)."""
    from ..errors import ConfigError

    limit = MAX_MEMORY if max_memory is None else int(max_memory)
    name, per_row, rows = largest_layer(ann)
    need = rows * WORKING_COPIES * int(timesteps) * per_row
    if need > limit // 2:
        raise ConfigError(
            f"layer-wise calibration at T={timesteps} needs about {need / 2**30:.2f} GiB for "
            f"{'one sample' if rows == 1 else f'the fixed batch of {rows}'} of its largest layer '{name}' "
            f"({per_row / 2**20:.1f} MiB per sample and step, {WORKING_COPIES} copies), over half of --max-memory "
            f"{limit / 2**30:.2f} GiB: raise --max-memory, use fewer --timesteps, or convert without layer-wise "
            "calibration (method flags without --calibrate, e.g. --threshold mse --channel-wise --v-init half)")


class LayerwiseCalibrator:
    """Calibrate biases, initial potentials and weights of the SNN layer by layer."""

    def __init__(self, ann: onnx.ModelProto, thresholds: dict[str, np.ndarray], v0: dict[str, np.ndarray],
                 timesteps: int, reset: str, steps: tuple[Calibration, ...], neuron: NeuronKind | str = IF,
                 keep_bytes: int | None = None, sample_steps: int | None = None, max_memory: int | None = None):
        self.neuron = kind(neuron)  # the neuron the SNN will use, simulated layer by layer
        self.max_memory = MAX_MEMORY if max_memory is None else int(max_memory)
        self.keep_bytes = min(KEEP_BYTES, self.max_memory // 8) if keep_bytes is None else int(keep_bytes)
        self.sample_steps = SAMPLE_STEPS if sample_steps is None else int(sample_steps)
        self.ann = onnx.ModelProto()
        self.ann.CopyFrom(ann)
        self.T, self.reset, self.steps = int(timesteps), reset, steps
        graph = AddTimeAxisPass(self.T)(import_model(self.ann)).graph
        self.folded = export_graph(graph, like=self.ann)   # ANN ops on T·N rows, input tiled inside
        self.inits = {i.name: i for i in self.folded.graph.initializer}
        self.input_names = [i.name for i in self.folded.graph.input]
        self.layers = []
        for node in activation_nodes(import_model(self.ann)):
            act, pre = node.outputs[0].name, node.inputs[0].name
            self.layers.append(_Layer(act, pre, relu_cap(node)[1], np.asarray(thresholds[act], np.float32),
                                      np.asarray(v0.get(act, 0.0), np.float32)))
        reads = {n.output[0]: n.input[0] for n in self.folded.graph.node if n.output and n.input}
        for layer in self.layers:   # a neuron layer on a graph input reads it tiled over time
            layer.current = reads.get(layer.act, layer.pre)
        self._thetas = {layer.act: layer.theta for layer in self.layers}  # what a stored spike train is worth
        self._neuron_session = self._make_neuron_session()
        self._numels = sample_numels(self.ann)  # the shapes the memory bounds read (calibration keeps them)

    def _make_neuron_session(self) -> ort.InferenceSession:
        node = onnx.helper.make_node(self.neuron.op, ["x", "theta", "v0"], ["y"], domain=SNN_DOMAIN,
                                     **self.neuron.attributes(self.T, self.reset))
        f = onnx.TensorProto.FLOAT
        graph = onnx.helper.make_graph([node], "neuron", [onnx.helper.make_tensor_value_info(n, f, None)
                                                      for n in ("x", "theta", "v0")],
                                       [onnx.helper.make_tensor_value_info("y", f, None)])
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13),
                                                             onnx.helper.make_opsetid(SNN_DOMAIN, 1)])
        model.ir_version = 8
        return calibration_session(model, optimize=True, custom_ops=True)

    def _spike(self, layer: _Layer, current: np.ndarray) -> np.ndarray:
        v0 = np.ascontiguousarray(np.broadcast_to(layer.v0, (1,) + current.shape[1:]), dtype=np.float32)
        return self._neuron_session.run(None, {"x": current, "theta": layer.theta, "v0": v0})[0]

    def _simulate(self, layer: _Layer, current: np.ndarray, z: np.ndarray, valid: int):
        """Spikes y [T·n, ...] of the layer for its input current, their time average r̄,
        the ANN activation a and its clip to θ, the last three for the ``valid`` samples."""
        y = self._spike(layer, current)
        r = time_mean(y, self.T)[:valid]
        a = np.maximum(z, 0) if layer.cap is None else np.clip(z, 0, layer.cap)
        th = layer.theta.reshape([-1] + [1] * (a.ndim - 2)) if layer.theta.ndim else layer.theta
        return y, r, a, np.minimum(a, th)

    def run(self, feeds: dict[str, np.ndarray], batch_size: int, fixed_batch: int | None = None,
            progress: bool = False) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[LayerReport]]:
        later_use = {}
        segments = []
        stops = set(self.input_names) | {layer.act for layer in self.layers}
        spiking = spiking_tensors(self.folded, {layer.act for layer in self.layers})
        for i, layer in enumerate(self.layers):
            layer.weight_node = _weight_node(self.folded, layer.current)
            # a weight layer on the analog input alone: its mean current is the ANN's, nothing for WC to fit
            layer.analog_input = layer.weight_node is not None and layer.weight_node.input[0] not in spiking
            xin = [layer.weight_node.input[0]] if layer.weight_node is not None and not layer.analog_input \
                and Calibration.WEIGHT in self.steps else []
            _, inputs = _extract(self.folded, stops - {layer.act}, [layer.current] + xin)
            # a spike train fed to the segment is not asked back from onnxruntime (a copy of T·n rows)
            segments.append([layer.current] + [x for x in xin if x not in inputs or x in self.input_names])
            for name in inputs:
                later_use[name] = i
        outputs = []   # (analog output layer, what its segment returns), fitted after the neuron layers
        if Calibration.WEIGHT in self.steps:
            ann_tensors = {o for n in self.ann.graph.node for o in n.output}
            for node in output_layers(self.folded, {layer.act for layer in self.layers},
                                      {layer.current for layer in self.layers}):
                if node.output[0] not in ann_tensors:
                    continue
                _, inputs = _extract(self.folded, stops, [node.output[0], node.input[0]])
                outputs.append((node, [node.output[0]] + [x for x in node.input[:1]
                                                          if x not in inputs or x in self.input_names]))
                for name in inputs:
                    later_use[name] = len(self.layers)
        n = next(iter(feeds.values())).shape[0]
        keep = min(n, max(1, self.sample_steps // self.T))
        if keep < n:
            log.info("layer-wise calibration on the first %d of %d samples (%d sample-steps at T = %d)",
                     keep, n, self.sample_steps, self.T)
        per_sample = self.held_per_sample(later_use)
        data_bytes = sum(v.nbytes for v in feeds.values())   # held by the caller throughout
        self._budget = Budget(max(0, self.max_memory * 3 // 8 - data_bytes))
        to_disk = per_sample * keep - self._budget.left
        if to_disk > 0:
            free = disk_free()
            if to_disk > free // 2:
                fits = max(fixed_batch or 1, (self._budget.left + free // 2) // max(1, per_sample))
                fits -= fits % fixed_batch if fixed_batch else 0
                keep = min(keep, fits)
                log.warning("layer-wise calibration on the first %d of %d samples: what it holds for all of them "
                            "(bit-packed spike trains of the layers still read, one layer's ANN pre-activations: "
                            "%.1f MiB per sample at T = %d) is over the 3/8 of --max-memory %.1f GiB its simulation "
                            "leaves (less the calibration data) plus half the %.1f GiB free in the temporary "
                            "directory %s; raise --max-memory or free disk (TMPDIR) to use more", keep, n, per_sample / 2**20, self.T,
                            self.max_memory / 2**30, free / 2**30, tempfile.gettempdir())
            else:
                log.warning("layer-wise calibration holds up to %s per sample at T = %d (bit-packed spike "
                            "trains, one layer's ANN pre-activations): %s in memory (3/8 of --max-memory less "
                            "the %s of calibration data), up to %s more in a temporary file in %s",
                            format_size(per_sample), self.T, format_size(self._budget.left), format_size(data_bytes),
                            format_size(to_disk), tempfile.gettempdir())
        if keep < n:
            feeds = {k: v[:keep] for k, v in feeds.items()}
        self.samples = keep
        self.batch_size = batch_size = self.batch_for_memory(batch_size, fixed_batch)
        batches = [(f, v) for f, v in iter_batches(feeds, batch_size, fixed_batch)]
        self._ann0 = onnx.ModelProto()   # the ANN's own weights (self.ann gets the calibrated ones)
        self._ann0.CopyFrom(self.ann)
        store: dict[str, HeldList] = {}
        reports = []
        with Progress(len(self.layers) + len(outputs), "calibrating layers", enabled=progress) as bar:
            for i, layer in enumerate(self.layers):
                z_cache = self._pre_activations(layer.pre, batches)  # this layer's only
                reports.append(self._calibrate_layer(i, layer, segments[i], batches, z_cache, store, stops))
                z_cache.close()
                for name in [n for n in store if later_use.get(n, -1) <= i]:
                    store.pop(name).close()
                bar.update()
            for node, outs in outputs:
                reports.append(self._calibrate_output(node, outs, batches, store, stops))
                bar.update()
            for name in list(store):
                store.pop(name).close()
        if self._budget.peak_disk:
            log.warning("layer-wise calibration wrote %s to its temporary files (at most %s at once)",
                        format_size(self._budget.spilled), format_size(self._budget.peak_disk))
        return self.ann, {layer.act: layer.v0 for layer in self.layers}, reports

    def held_per_sample(self, later_use: dict[str, int]) -> int:
        """Bytes per calibration sample held across batches, at the layer where it peaks: the packed
        spike trains (T bits per neuron, two planes for bipolar neurons) of the layers a later segment
        still reads, the layer's own being written, and its ANN pre-activations (float32)."""
        numel = self._numels[0]
        planes = 2 if self.neuron.signed else 1
        spikes = {layer.act: planes * self.T * numel.get(layer.act, 0) // 8 for layer in self.layers}
        peak = 0
        for i, layer in enumerate(self.layers):
            live = sum(spikes[other.act] for other in self.layers[:i] if later_use.get(other.act, -1) >= i)
            peak = max(peak, live + spikes[layer.act] + 4 * numel.get(layer.pre, 0))
        return peak

    def batch_for_memory(self, requested: int, fixed_batch: int | None) -> int:
        """The largest batch ≤ ``requested`` whose simulation of the largest layer (T·n rows, about
        WORKING_COPIES tensors of its size alive) stays under half of ``max_memory`` (an eighth is for
        the kept pass-A currents, the rest for the packed spike trains and the ANN); a model with a
        fixed batch keeps it."""
        if fixed_batch:
            return fixed_batch
        _, per_row, _ = largest_layer(self.ann, self._numels)
        per_sample = WORKING_COPIES * self.T * max(1, per_row)
        return max(1, min(requested, (self.max_memory // 2) // per_sample))  # the rest: kept currents, spikes

    def _pre_activations(self, pre: str, batches) -> HeldList:
        """The ANN's value of the tensor ``pre`` (a layer's pre-activation z) for every batch (``held[b][0]``),
        from the part of the ANN that computes it (onnxruntime runs every node of a session whatever outputs
        are asked for, so the whole ANN per layer cost L full passes; the prefixes cost about L/2)."""
        prefix, inputs = _extract(self._ann0, {i.name for i in self._ann0.graph.input}, [pre])
        sess = calibration_session(prefix, optimize=True)
        out = HeldList(self._budget)
        for feed, valid in batches:
            out.append(sess.run([pre], {n: feed[n] for n in inputs})[0][:valid])
        return out

    def _output_fit_size(self, node) -> tuple[int, int] | None:
        """(rows the fit of output layer ``node`` gets: samples × output positions, weights per output
        with the bias), None where the shapes are not known."""
        w = numpy_helper.to_array(self.inits[node.input[1]])
        numel = self._numels[0].get(node.output[0])
        if numel is None:
            return None
        if node.op_type == "Conv":   # W [Cout, Cin/G, kh, kw]
            outputs, weights = w.shape[0], int(np.prod(w.shape[1:]))
        else:                        # B [K, N], or [N, K] with transB (MatMul: B [K, N])
            weights, outputs = w.shape[::-1] if _attr(node, "transB", 0) else w.shape
        return self.samples * numel // outputs, weights + 1

    def _calibrate_output(self, node, outs, batches, store, stops) -> LayerReport:
        """WC of an analog output layer: the ridge fit of its weights and bias to the ANN's output, from
        its SNN time-averaged input, when the data has OUTPUT_ROWS_PER_WEIGHT rows per weight."""
        report = LayerReport(node.output[0], float("nan"), output=True)

        def too_few(rows: int, params: int) -> bool:
            if rows >= OUTPUT_ROWS_PER_WEIGHT * params:
                return False
            report.notes.append(f"output layer not fitted: {rows} rows for {params} weights per output "
                                f"(it needs {OUTPUT_ROWS_PER_WEIGHT} rows per weight)")
            return True

        size = self._output_fit_size(node)
        if size is not None and too_few(*size):
            log.info("weight calibration of output layer '%s': %s", node.output[0], report.notes[-1])
            return report
        z_cache = self._pre_activations(node.output[0], batches)
        sess, inputs = self._segment_session(outs, stops, None)
        fit = _LeastSquares(int(_attr(node, "group", 1)) if node.op_type == "Conv" else 1)
        buffers: dict[str, np.ndarray] = {}
        first = 0
        for b, (feed, valid) in enumerate(batches):
            fed = self._feed(inputs, feed, store, b, buffers)
            res = sess.run(outs, fed)
            xin = res[1] if len(res) > 1 else fed[node.input[0]]
            if not self._add_fit_rows(fit, node, res[0], xin, z_cache[b][0], valid, first):
                report.notes.append("WC skipped (unsupported layer form)")
                z_cache.close()
                return report
            first += valid
        z_cache.close()
        if too_few(round(float(fit.rows[0, -1])), fit.gram.shape[1]):
            return report
        bias = self._bias_name(node)
        per_output = fit.cross.shape[0] * fit.cross.shape[2]   # groups × outputs per group
        if bias is not None and numpy_helper.to_array(self.inits[bias]).size not in (1, per_output):
            report.notes.append("WC skipped (a bias that is not per output)")
            return report
        self._ensure_bias(node)
        dW, report.wc_before, report.wc_after = fit.solve()
        self._apply_weights(node, dW)
        return report

    def _ensure_bias(self, node) -> None:
        """Give a Conv/Gemm without a bias a zero one (in the calibrated ANN and the folded copy), so
        that the fit's bias row has somewhere to go; a MatMul an Add of a zero bias after it."""
        if self._bias_name(node) is not None:
            return
        w = numpy_helper.to_array(self.inits[node.input[1]])
        count = w.shape[0] if node.op_type == "Conv" else w.shape[0 if _attr(node, "transB", 0) else 1]
        if node.op_type == "MatMul":
            self._add_bias_node(node, count)
            return
        name = self._names().fresh(node.input[1] + "_bias")
        for model in (self.ann, self.folded):
            model.graph.initializer.append(numpy_helper.from_array(np.zeros(count, np.float32), name))
            for n in model.graph.node:
                if n.op_type == node.op_type and list(n.output) == list(node.output):
                    del n.input[2:]
                    n.input.append(name)
        self.inits = {i.name: i for i in self.folded.graph.initializer}

    def _names(self) -> NameScope:
        """Names free in both the calibrated ANN and the folded copy (tensors, initializers, nodes)."""
        return NameScope.of({t for m in (self.ann, self.folded) for n in m.graph.node
                             for t in [n.name, *n.input, *n.output]}
                            | {i.name for m in (self.ann, self.folded) for i in m.graph.initializer})

    def _add_bias_node(self, node, count: int) -> None:
        """MatMul → MatMul, Add(zero bias): the MatMul writes a fresh tensor, the Add its old output."""
        out = node.output[0]
        scope = self._names()
        names = [scope.fresh(out + "_matmul"), scope.fresh(out + "_bias")]
        for model in (self.ann, self.folded):
            model.graph.initializer.append(numpy_helper.from_array(np.zeros(count, np.float32), names[1]))
            at = next(k for k, n in enumerate(model.graph.node) if n.op_type == "MatMul" and n.output[0] == out)
            model.graph.node[at].output[0] = names[0]
            model.graph.node.insert(at + 1, onnx.helper.make_node("Add", [names[0], names[1]], [out],
                                                                   name=names[0] + "_add"))
        node.output[0] = names[0]
        self.inits = {i.name: i for i in self.folded.graph.initializer}

    def _segment_session(self, outs, stops, act):
        seg, inputs = _extract(self.folded, stops - {act}, outs)
        return calibration_session(seg, optimize=True), inputs

    def _feed(self, inputs, feed, store, b, buffers: dict):
        """The segment's feed for batch ``b``: graph inputs as given, stored spike trains unpacked into
        ``buffers`` (by name; the previous batch's arrays, which the caller no longer reads)."""
        out = {}
        for name in inputs:
            if name in self.input_names:
                out[name] = feed[name]
            else:
                up, down, shape = store[name][b]
                out[name] = buffers[name] = unpack_spikes(up, down, shape, self._thetas[name], buffers.get(name))
        return out

    def _calibrate_layer(self, i, layer: _Layer, outs, batches, z_cache, store, stops) -> LayerReport:
        """Calibrate layer ``i`` (WC, then BC, then PC, from one pass over the data), then simulate it
        again to store its calibrated spike trains for the later layers."""
        report = LayerReport(layer.act, float(np.mean(layer.theta)))
        errors, fit, kept = self._first_pass(i, layer, outs, batches, z_cache, store, stops, report)
        report.clip_err, report.floor_before = errors.relative(errors.clip_sq), errors.relative(errors.floor_sq)
        if fit is not None:
            self._calibrate_weights(layer, fit, errors, report)
        delta_b, shift = self._calibrate_bias(layer, errors, report)
        if Calibration.POTENTIAL in self.steps:
            self._calibrate_potential(layer, errors, delta_b)
        report.floor_after = errors.relative(self._second_pass(i, layer, batches, z_cache, store, stops, kept, shift))
        return report

    def _first_pass(self, i, layer: _Layer, outs, batches, z_cache, store, stops, report: LayerReport):
        """Pass A: (output-error sums, weight-fit sums or None, kept currents). With WC the fit's sums
        (None when the layer has no supported form); without it, the currents that fit in
        ``keep_bytes`` are kept for pass B, by batch index."""
        sess, inputs = self._segment_session(outs, stops, layer.act)
        skip_wc = Calibration.WEIGHT in self.steps and layer.analog_input
        w_node = layer.weight_node if Calibration.WEIGHT in self.steps and not skip_wc else None
        if skip_wc:
            report.notes.append("no WC: the layer reads the analog input, its mean current is the ANN's")
        errors = _OutputErrors()
        fit = None if w_node is None else _LeastSquares(int(_attr(w_node, "group", 1)) if w_node.op_type == "Conv" else 1)
        kept: dict[int, np.ndarray] = {}
        kept_bytes = first = 0
        buffers: dict[str, np.ndarray] = {}
        for b, (feed, valid) in enumerate(batches):
            fed = self._feed(inputs, feed, store, b, buffers)
            res = sess.run(outs, fed)
            current = res[0]
            # a layer WC skips for its analog input recomputes them as a fitted layer does: they would
            # cost up to keep_bytes more memory to save one run of a segment on the analog input
            if fit is None and not skip_wc and kept_bytes + current.nbytes <= self.keep_bytes:
                kept[b] = current
                kept_bytes += current.nbytes
            z = z_cache[b][0]
            _, r, a, ca = self._simulate(layer, current, z, valid)
            errors.add(r, a, ca, valid)
            xin = res[1] if len(res) > 1 else fed[w_node.input[0]] if w_node is not None else None
            if fit is not None and not self._add_fit_rows(fit, w_node, current, xin, z, valid, first):
                fit = None
                report.notes.append("WC skipped (unsupported layer form)")
            first += valid
        if fit is not None and fit.kept[0] < fit.kept[1]:
            report.notes.append(f"WC on {fit.kept[0]} of {fit.kept[1]} positions per sample")
        return errors, (fit if fit is not None and fit.gram is not None else None), kept

    def _add_fit_rows(self, fit: _LeastSquares, node, current, xin, z, valid: int, first: int) -> bool:
        """Add the rows of the batch starting at sample ``first`` to the fit: time-averaged inputs X̄ against z − z̄ (False: the layer's
        form is not supported)."""
        zbar = time_mean(current, self.T)[:valid]
        xbar = time_mean(xin, self.T)[:valid]
        X, R = self._design(node, xbar, z - zbar)
        if X is None:
            return False
        fit.add_grouped(X, R, valid, first)
        return True

    def _calibrate_weights(self, layer: _Layer, fit: _LeastSquares, errors: _OutputErrors,
                           report: LayerReport) -> None:
        """WC: apply the ridge solution ΔW and take the current change it makes off the error sums."""
        params, positions = fit.gram.shape[1], fit.per_position.shape[2]
        if errors.samples * positions < params:
            need = -(-params // positions)
            log.warning("weight calibration of layer '%s' fits %d weights per output from %d rows (%d samples x "
                        "%d positions): underdetermined, only the ridge term holds it; give at least %d "
                        "calibration samples", layer.act, params, errors.samples * positions, errors.samples,
                        positions, need)
            report.notes.append(f"WC underdetermined: at least {need} samples needed")
        dW, report.wc_before, report.wc_after = fit.solve()
        self._apply_weights(layer.weight_node, dW)
        shift = np.einsum("gkp,gko->gop", fit.per_position, dW)               # Σ_n of the current change
        if layer.weight_node.op_type == "MatMul":   # its outputs run along the last axis: [..., N]
            shift_n = shift[0].T.reshape(errors.per_neuron.shape)
        else:
            shift_n = shift.reshape(-1, positions).reshape(errors.per_neuron.shape)
        errors.per_neuron = errors.per_neuron - shift_n
        errors.per_channel = errors.per_channel - shift_n.reshape(shift_n.shape[0], -1).sum(1)

    def _calibrate_bias(self, layer: _Layer, errors: _OutputErrors, report: LayerReport):
        """BC: (the per-channel shift e_c, zeros without BC; what it adds to every step's current, None
        when it went into v0 or without BC)."""
        delta_b = np.zeros_like(errors.per_channel)
        if Calibration.BIAS not in self.steps:
            return delta_b, None
        delta_b = (errors.per_channel / errors.channel_terms).astype(np.float32)
        # a MatMul's bias runs along the last axis, the channels here along axis 1: the same for [N, C] alone
        on_bias = layer.weight_node is None or layer.weight_node.op_type != "MatMul" or errors.per_neuron.ndim == 1
        if on_bias and self._shift_bias(layer, delta_b):
            return delta_b, delta_b.reshape(errors.channel_shape)
        layer.v0 = layer.v0 + self.T * delta_b.reshape(errors.channel_shape)
        report.notes.append("BC applied as initial potential (no bias to shift)")
        return delta_b, None

    def _calibrate_potential(self, layer: _Layer, errors: _OutputErrors, delta_b: np.ndarray) -> None:
        """PC: v0 += T·k·(mean_n e − e_c) per neuron, clipped to [−θ, θ]. The shrinkage k = max(0, 1 −
        s²/d²) (d = mean_n e − e_c, s² = var_n(e)/n the squared standard error of the mean) keeps of
        each neuron's correction the part its samples can tell from noise: a correction fitted to the
        noise of a few hundred calibration samples would not hold on other data."""
        shape = errors.channel_shape
        n = errors.samples
        mean = errors.per_neuron / n
        d = mean - delta_b.reshape(shape)
        se2 = np.maximum(errors.per_neuron_sq / n - np.square(mean, dtype=np.float64), 0.0) / max(n - 1, 1)
        keep = np.clip(1.0 - se2 / np.maximum(np.square(d, dtype=np.float64), 1e-30), 0.0, 1.0)
        dv = self.T * keep * d
        theta = layer.theta.reshape(shape) if layer.theta.ndim else layer.theta
        layer.v0 = np.clip(np.broadcast_to(layer.v0, errors.per_neuron.shape) + dv, -theta, theta).astype(np.float32)

    def _second_pass(self, i, layer: _Layer, batches, z_cache, store, stops, kept: dict, shift) -> float:
        """Pass B: the calibrated spike trains (bit-packed into ``store[layer.act]``) and the flooring
        error after, Σ (clip(a, 0, θ) − r̄)². Kept currents get the bias shift; the others are recomputed."""
        if len(kept) < len(batches):
            sess, inputs = self._segment_session([layer.current], stops, layer.act)
        floor_after = 0.0
        store[layer.act] = HeldList(self._budget)
        buffers: dict[str, np.ndarray] = {}
        for b, (feed, valid) in enumerate(batches):
            if b in kept:
                current = kept.pop(b)
                if shift is not None:
                    current += shift
            else:
                current = sess.run([layer.current], self._feed(inputs, feed, store, b, buffers))[0]
            y, r, _, ca = self._simulate(layer, current, z_cache[b][0], valid)
            floor_after += _sq(ca - r)
            up, down = pack(y, self.neuron.signed)
            store[layer.act].append(up, down, y.shape)
        return floor_after

    def _design(self, node, xin, residual):
        """Rows of the layer's least-squares fit in :meth:`_LeastSquares.add_grouped`'s layout: inputs X
        [G, K, rows] and current residuals R [G, rows, Cout/G], float64 (None, None: not supported)."""
        w = numpy_helper.to_array(self.inits[node.input[1]])
        if node.op_type == "Conv":
            G = int(_attr(node, "group", 1))
            X = _im2col(xin.astype(np.float32), node, w.shape, G)
            if X is None or residual.ndim != 4:
                return None, None
            n, c = residual.shape[:2]
            R = residual.reshape(n, G, c // G, -1).transpose(1, 0, 3, 2).reshape(G, -1, c // G)
            return X, R.astype(np.float64)
        if node.op_type == "Gemm" and xin.ndim == 2 and not _attr(node, "transA", 0):
            return xin.T[None].astype(np.float64), residual[None].astype(np.float64)
        if node.op_type == "MatMul" and xin.ndim >= 2 and xin.shape[-1] == w.shape[0]:
            # [n, ..., K] @ [K, N]: a row per sample and leading position, sample-major
            X = xin.reshape(-1, w.shape[0]).T[None].astype(np.float64)
            return X, residual.reshape(-1, w.shape[1])[None].astype(np.float64)
        return None, None

    def _bias_name(self, node) -> str | None:
        """The constant bias of a Conv/Gemm (its third input), of a MatMul the constant of the Add that
        alone reads its output, with one value per output or one for all and no other use."""
        if node is None:
            return None
        if node.op_type != "MatMul":
            return node.input[2] if len(node.input) > 2 and node.input[2] in self.inits else None
        readers = [n for n in self.folded.graph.node if node.output[0] in n.input]
        if len(readers) != 1 or readers[0].op_type != "Add":
            return None
        other = [i for i in readers[0].input if i != node.output[0]]
        outputs = numpy_helper.to_array(self.inits[node.input[1]]).shape[1]
        if len(other) != 1 or other[0] not in self.inits or \
                int(np.prod(self.inits[other[0]].dims)) not in (1, outputs) or \
                sum(other[0] in n.input for n in self.folded.graph.node) != 1:
            return None
        return other[0]

    def _set(self, name: str, value: np.ndarray) -> None:
        for model in (self.ann, self.folded):
            for init in model.graph.initializer:
                if init.name == name:
                    init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
        self.inits = {i.name: i for i in self.folded.graph.initializer}

    def _shift_bias(self, layer: _Layer, delta: np.ndarray) -> bool:
        node = layer.weight_node
        name = self._bias_name(node)
        if name is None:
            return False
        bias = numpy_helper.to_array(self.inits[name]).astype(np.float64)
        scale = float(_attr(node, "beta", 1.0)) if node.op_type == "Gemm" else 1.0
        if bias.size != delta.size and bias.size != 1:
            return False
        self._set(name, np.broadcast_to(bias.reshape(-1), delta.shape) + delta / scale)
        return True

    def _apply_weights(self, node, dW: np.ndarray) -> None:
        w = numpy_helper.to_array(self.inits[node.input[1]]).astype(np.float64)
        if node.op_type == "Conv":   # dW [G, K+1, Cout/G]: output channel g·Cout/G + j is dW[g, :-1, j]
            w = w + dW[:, :-1, :].transpose(0, 2, 1).reshape(w.shape)
        else:
            alpha = float(_attr(node, "alpha", 1.0))
            w = w + (dW[0, :-1].T if _attr(node, "transB", 0) else dW[0, :-1]) / alpha
        self._set(node.input[1], w)
        name = self._bias_name(node)
        if name is not None:
            bias = numpy_helper.to_array(self.inits[name]).astype(np.float64).reshape(-1)
            scale = float(_attr(node, "beta", 1.0)) if node.op_type == "Gemm" else 1.0
            delta = dW[:, -1, :].reshape(-1)
            self._set(name, np.broadcast_to(bias, delta.shape) + delta / scale)
