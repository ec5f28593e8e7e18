"""Neurons in onnxruntime's blocked layout: no layout passes around them in CPU sessions.

On x86 CPUs onnxruntime runs convolutions in a channel-blocked layout (NCHWc:
channels in blocks of b = 8 or 16, the block innermost) and converts back to the
plain layout before every op it does not know. In a converted SNN every neuron
sits between two convolutions, so each neuron cost two extra full passes over its
tensor (``ReorderOutput`` before it, ``ReorderInput`` after it) beside its own,
and the residual ``Add`` ran in the plain layout too: on the CIFAR-10 ResNet-32
the reorders took more time than the neurons.

:func:`blocked_session` lets onnxruntime optimise the graph as usual (the
optimised graph is saved through ``optimized_model_filepath``), then rewrites it
so that the neuron ops (``IFNeuron``, ``BIFNeuron``, attribute ``channel_block =
b``), the ``Add`` nodes between them and batch-axis ``Tile`` nodes work on the
blocked tensors directly; a neuron fed by a Tile that repeats its input T times
reads that input T times instead (``repeat_input = 1``: the hoisted first
layer's current is never copied T times), and a neuron that is the only reader of
a blocked Add takes the Add's two inputs (input ``X2``) and adds them itself, in
the same float32 operation, so the sum never goes to memory. Reorders and Tiles nothing reads any
more are dropped, and the result runs with graph optimisation off. The rewritten graph depends on the CPU
(block size), so it lives only inside the session; no file is written.

Invariant: the session's outputs are bit-exact to those of the same model in a
plain session. The neurons are elementwise except for which channel's θ and
v_init an element takes, and the kernel maps channels for the blocked layout;
an ``Add`` is rewritten only when both inputs have the same ``[C, H, W]`` (no
broadcast inside a sample; a plain input gets a ``ReorderInput``), a ``Tile`` only when it repeats along the batch axis
alone, and a Tile folded into a neuron only when it repeats the neuron's own
T; reorders are copies. ``tests/test_blocked_layout.py`` checks it.
"""
from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
from onnx import numpy_helper

from ..core.graph import SNN_DOMAIN

__all__ = ["NEURON_OPS", "block_size", "blocked_session", "rewrite_blocked"]

NCHWC = "com.microsoft.nchwc"
NEURON_OPS = ("IFNeuron", "BIFNeuron")
SUFFIX = "_nchwc"


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return oh.get_attribute_value(a)
    return default


def _optimized(model: bytes, library: str) -> onnx.ModelProto:
    """The graph onnxruntime's CPU provider runs for ``model`` at ORT_ENABLE_ALL."""
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        opts.log_severity_level = 3  # the warning that the saved graph is CPU-specific
        opts.intra_op_num_threads = 1
        if library:
            opts.register_custom_ops_library(library)
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


@functools.lru_cache(maxsize=None)
def block_size() -> int:
    """onnxruntime's NCHWc channel block on this CPU; 1 when it uses no blocked layout.

    Found by probing: onnxruntime pads a blocked Conv's output channels up to a
    multiple of the block and stores the filter padded, so a Conv with one output
    channel gets a filter of ``block`` rows.
    """
    weight = numpy_helper.from_array(np.ones((1, 16, 3, 3), np.float32), "w")
    graph = oh.make_graph(
        [oh.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "probe",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16, 8, 8])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 8, 8])], [weight])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    optimized = _optimized(model.SerializeToString(), "").graph
    inits = {i.name: i for i in optimized.initializer}
    for node in optimized.node:
        if node.domain == NCHWC and node.op_type == "Conv":
            return int(inits[node.input[1]].dims[0])
    return 1


def rewrite_blocked(optimized: onnx.ModelProto, shapes: dict[str, list], block: int) -> tuple[onnx.ModelProto, int]:
    """``optimized`` (onnxruntime's optimised graph) with the neurons on blocked tensors.

    ``shapes``: tensor shapes of the model before optimisation, by name (the plain
    tensors keep their names); used to rule out broadcasting Adds. Returns the new
    model and the number of neuron nodes now running on blocked tensors.
    """
    rewrite = _BlockedRewrite(optimized.graph, shapes, block)
    for original in optimized.graph.node:
        rewrite.visit(original)
    needed, kept = _used_nodes(rewrite.nodes, [o.name for o in optimized.graph.output])
    out = onnx.ModelProto()
    out.CopyFrom(optimized)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    del out.graph.value_info[:]
    del out.graph.initializer[:]
    out.graph.initializer.extend(i for i in list(optimized.graph.initializer) + rewrite.added if i.name in needed)
    return out, rewrite.count


def _used_nodes(nodes: list[onnx.NodeProto], outputs: list[str]) -> tuple[set[str], list[onnx.NodeProto]]:
    """(the tensors read, the nodes in order) of ``nodes`` without those nothing reads (the reorders
    the rewrite made unused), found last to first from the graph ``outputs``."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    return needed, kept[::-1]


def _is_reorder(node: onnx.NodeProto, op: str) -> bool:
    """A ``ReorderInput``/``ReorderOutput`` between the plain (NCHW) and the blocked layout."""
    return node.domain == NCHWC and node.op_type == op and not _attr(node, "channels_last", 0)


def _is_neuron(node: onnx.NodeProto) -> bool:
    return node.domain == SNN_DOMAIN and node.op_type in NEURON_OPS


class _BlockedRewrite:
    """The rewrite of one graph, node by node in graph order (:meth:`visit`) into :attr:`nodes`."""

    def __init__(self, graph: onnx.GraphProto, shapes: dict[str, list], block: int):
        self.shapes, self.block = shapes, block
        self.inits = {i.name: i for i in graph.initializer}
        self.blocked: dict[str, tuple[str, int]] = {}  # plain tensor -> (its blocked twin, channels)
        self.renamed: dict[str, str] = {}              # output of a dropped ReorderInput -> blocked tensor
        self.tiled: dict[str, tuple[str, int]] = {}    # output of a batch-axis Tile -> (its input, repeats)
        self.sums: dict[str, tuple[str, str]] = {}     # blocked output of an Add only a neuron reads -> its inputs
        self.readers: dict[str, int] = {}
        for original in graph.node:
            for name in original.input:
                self.readers[name] = self.readers.get(name, 0) + 1
        for output in graph.output:
            self.readers[output.name] = self.readers.get(output.name, 0) + 2  # never fused away
        self.nodes: list[onnx.NodeProto] = []
        self.added: list[onnx.TensorProto] = []      # padded per-channel parameters
        self.count = 0                               # neurons on blocked tensors

    def visit(self, original: onnx.NodeProto) -> None:
        """Append the rewrite of ``original`` (``ins``: its inputs as they were, before renaming)."""
        node = onnx.NodeProto()
        node.CopyFrom(original)
        for i, name in enumerate(node.input):
            node.input[i] = self.renamed.get(name, name)
        ins, plain = list(original.input), original.output[0]
        self._note_tile(node, ins, plain)
        if _is_reorder(node, "ReorderOutput"):
            self.nodes.append(node)
            self.blocked[node.output[0]] = (node.input[0], int(_attr(node, "channels")))
        elif _is_reorder(node, "ReorderInput") and ins[0] in self.blocked:
            self.renamed[node.output[0]] = self.blocked[ins[0]][0]
        elif self._blockable_neuron(node, ins):
            self._neuron(node, ins, plain)
        elif self._blockable_add(node, ins):
            self._add(node, ins, plain)
        elif plain + SUFFIX in self.tiled:  # a batch-axis Tile of a blocked tensor
            node.input[0] = self.blocked[ins[0]][0]
            self._emit(node, plain, self.blocked[ins[0]][1])
        else:
            if _is_neuron(node):
                self._repeat_input(node)
            self.nodes.append(node)

    # -- tests --------------------------------------------------------------------------------
    def _same_sample_shape(self, a: str, b: str) -> bool:
        sa, sb = self.shapes.get(a), self.shapes.get(b)
        return (sa is not None and sb is not None and len(sa) == len(sb) == 4
                and all(isinstance(d, int) for d in sa[1:]) and sa[1:] == sb[1:])

    def _same_shape(self, a: str, b: str) -> bool:
        """Known and equal shapes, batch axis included (symbolic dims by name)."""
        sa, sb = self.shapes.get(a), self.shapes.get(b)
        return sa is not None and sa == sb and all(d is not None and d != "" for d in sa)

    def _per_channel(self, name: str, channels: int) -> bool:
        return name in self.inits and int(np.prod(self.inits[name].dims)) in (1, channels)

    def _blockable_neuron(self, node: onnx.NodeProto, ins: list[str]) -> bool:
        """A neuron on a blocked tensor, not yet blocked, with constant per-channel θ (and v_init)."""
        if not (_is_neuron(node) and ins[0] in self.blocked and _attr(node, "channel_block", 1) == 1):
            return False
        channels = self.blocked[ins[0]][1]
        return self._per_channel(ins[1], channels) and (len(ins) < 3 or not ins[2] or self._per_channel(ins[2], channels))

    def _blockable_add(self, node: onnx.NodeProto, ins: list[str]) -> bool:
        """An Add of a blocked tensor and one of the same sample shape (blocked, or with whole blocks)."""
        return (node.domain == "" and node.op_type == "Add" and len(ins) == 2 and any(i in self.blocked for i in ins)
                and self._same_sample_shape(*ins)
                and all(i in self.blocked or self.shapes[i][1] % self.block == 0 for i in ins))

    # -- rewrites -----------------------------------------------------------------------------
    def _emit(self, node: onnx.NodeProto, plain: str, channels: int) -> None:
        """Append ``node`` writing the blocked twin of ``plain``, and a ReorderOutput for ``plain``
        (dropped at the end when nothing reads it)."""
        node.output[0] = plain + SUFFIX
        self.nodes.append(node)
        self.nodes.append(oh.make_node("ReorderOutput", [plain + SUFFIX], [plain], domain=NCHWC,
                                       name=plain + "_reorder_output", channels=channels))
        self.blocked[plain] = (plain + SUFFIX, channels)

    def _note_tile(self, node: onnx.NodeProto, ins: list[str], plain: str) -> None:
        """Record a Tile along the batch axis alone (and, of a blocked tensor, its blocked twin)."""
        if not (node.domain == "" and node.op_type == "Tile" and ins[1] in self.inits):
            return
        repeats = numpy_helper.to_array(self.inits[ins[1]])
        if repeats.size > 1 and np.all(repeats[1:] == 1):
            self.tiled[plain] = (node.input[0], int(repeats[0]))
            if ins[0] in self.blocked:
                self.tiled[plain + SUFFIX] = (self.blocked[ins[0]][0], int(repeats[0]))

    def _padded(self, name: str, channels: int, fill: float) -> str:
        """A per-channel parameter for the blocked tensor, which has its channels padded
        up to a multiple of the block (the padded lanes stay 0 and feed nothing)."""
        values = numpy_helper.to_array(self.inits[name]).astype(np.float32).reshape(-1)
        pad = -channels % self.block
        if values.size == 1 or pad == 0:
            return name
        tensor = numpy_helper.from_array(np.concatenate([values, np.full(pad, fill, np.float32)]),
                                         f"{name}{SUFFIX}_{len(self.added)}")
        self.added.append(tensor)
        return tensor.name

    def _repeat_input(self, node: onnx.NodeProto) -> None:
        """A neuron fed by a Tile of its own T along the batch axis reads the Tile's input T times."""
        source = self.tiled.get(node.input[0])
        if source is not None and source[1] == _attr(node, "timesteps"):
            node.input[0] = source[0]
            node.attribute.append(oh.make_attribute("repeat_input", 1))

    def _neuron(self, node: onnx.NodeProto, ins: list[str], plain: str) -> None:
        """The neuron on the blocked tensor, with padded parameters; the Add before it fused (X2)."""
        source, channels = self.blocked[ins[0]]
        node.input[0] = source
        node.input[1] = self._padded(ins[1], channels, 1.0)
        if len(ins) > 2 and ins[2]:
            node.input[2] = self._padded(ins[2], channels, 0.0)
        node.attribute.append(oh.make_attribute("channel_block", self.block))
        self._repeat_input(node)
        if source in self.sums and len(ins) <= 3:  # the Add's inputs go to the neuron (X2): no sum in memory
            node.input[0] = self.sums[source][0]
            while len(node.input) < 3:
                node.input.append("")
            node.input.append(self.sums[source][1])
        self._emit(node, plain, channels)
        self.count += 1

    def _add(self, node: onnx.NodeProto, ins: list[str], plain: str) -> None:
        """The Add on blocked inputs: a plain input (a shortcut's Pad, say) gets one ReorderInput,
        which saves the ReorderOutput before the Add and the ReorderInput after the neuron."""
        for k, name in enumerate(ins):
            if name not in self.blocked:
                self.nodes.append(oh.make_node("ReorderInput", [node.input[k]], [name + SUFFIX], domain=NCHWC,
                                               name=name + "_reorder_input"))
                self.blocked[name] = (name + SUFFIX, int(self.shapes[name][1]))
            node.input[k] = self.blocked[name][0]
        if self.readers.get(plain) == 1 and self._same_shape(*ins):
            self.sums[plain + SUFFIX] = (node.input[0], node.input[1])
        self._emit(node, plain, int(self.shapes[ins[0]][1]))


def blocked_session(model: onnx.ModelProto, sess_options: ort.SessionOptions, library: str,
                    session_class=ort.InferenceSession, **kwargs) -> ort.InferenceSession | None:
    """A CPU session of ``model`` whose neurons run in the blocked layout, or None when
    onnxruntime uses no blocked layout on this CPU or no neuron is next to one.

    ``sess_options`` (with the op library already registered) is used for the final
    session, with graph optimisation off for it (the graph is already optimised);
    its level is restored afterwards. The session is a ``session_class``.
    """
    from ..core.shapes import model_shapes

    block = block_size()
    if block == 1:
        return None
    optimized = _optimized(model.SerializeToString(), library)
    rewritten, count = rewrite_blocked(optimized, model_shapes(model), block)
    if count == 0:
        return None
    level = sess_options.graph_optimization_level
    sess_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = session_class(rewritten.SerializeToString(), sess_options,
                                       providers=["CPUExecutionProvider"], **kwargs)
    finally:
        sess_options.graph_optimization_level = level
    session.onnx2snn_blocked_neurons = count
    return session
