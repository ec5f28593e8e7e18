"""Neurons in onnxruntime's blocked layout (onnx2snn/blocked_layout.py).

Kernel level: IFNeuron / BIFNeuron with ``channel_block`` on hand-blocked (NCHWc)
data and with ``repeat_input`` equal the numpy references bit for bit.
Session level: ``onnx2snn.InferenceSession`` (blocked by default) gives exactly the
outputs of the same model with ``blocked_layout=False``, on tiny graphs (channels
not a multiple of the block, residual Adds, a broadcasting Add, v_init, BIF) and
on the bundled MNIST CNN; on CPUs where onnxruntime blocks convolutions, the
neurons are really rewritten (counted).
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS, make_model, rng_array
from onnx2snn._library import register
from onnx2snn.runtime.blocked_layout import block_size
from onnx2snn.neurons import bif_neuron
from onnx2snn.neurons import if_neuron

BLOCKED_CPU = block_size() > 1


def to_blocked(x: np.ndarray, b: int) -> np.ndarray:
    """[N, C, H, W] in NCHWc memory order, returned with the logical shape [N, C, H, W]."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // b, b, h, w).transpose(0, 1, 3, 4, 2)).reshape(n, c, h, w)


def neuron_session(op: str, inputs: list[str], **attrs) -> ort.InferenceSession:
    node = oh.make_node(op, inputs, ["Y"], domain="onnx2snn", name="n0", **attrs)
    graph = oh.make_graph([node], "one", [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                                          for n in inputs if n],
                          [oh.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13), oh.make_opsetid("onnx2snn", 1)],
                          ir_version=8)
    opts = register(ort.SessionOptions())
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("b", [4, 8, 16])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_if_kernel_channel_block_matches_reference(b, reset):
    T, N, C, H, W = 5, 3, 2 * b, 9, 7
    x = rng_array(T * N, C, H, W, seed=b) * 0.8
    theta = rng_array(C, seed=1, low=0.2, high=1.0)
    v0 = rng_array(C, seed=2, low=0.0, high=0.5)
    want = if_neuron(x, theta, v0.reshape(C, 1, 1), timesteps=T, reset=reset)
    sess = neuron_session("IFNeuron", ["X", "threshold", "v_init"], timesteps=T, reset=reset, channel_block=b)
    got = sess.run(None, {"X": to_blocked(x, b), "threshold": theta, "v_init": v0})[0]
    np.testing.assert_array_equal(got, to_blocked(want, b))


@pytest.mark.parametrize("b", [8, 16])
def test_bif_kernel_channel_block_matches_reference(b):
    T, N, C, H, W = 6, 2, b, 5, 5
    x = rng_array(T * N, C, H, W, seed=3)
    theta = rng_array(C, seed=4, low=0.2, high=1.0)
    want = bif_neuron(x, theta, timesteps=T, levels=T)
    sess = neuron_session("BIFNeuron", ["X", "threshold"], timesteps=T, levels=T, channel_block=b)
    got = sess.run(None, {"X": to_blocked(x, b), "threshold": theta})[0]
    np.testing.assert_array_equal(got, to_blocked(want, b))


@pytest.mark.parametrize("op", ["IFNeuron", "BIFNeuron"])
def test_kernel_repeat_input_reads_one_step_t_times(op):
    T, N, C = 7, 3, 16
    x = rng_array(N, C, 4, 4, seed=5)
    theta = rng_array(C, seed=6, low=0.1, high=0.9)
    extra = {"levels": T} if op == "BIFNeuron" else {}
    ref = bif_neuron if op == "BIFNeuron" else if_neuron
    want = ref(np.tile(x, (T, 1, 1, 1)), theta, timesteps=T, **extra)
    got = neuron_session(op, ["X", "threshold"], timesteps=T, repeat_input=1, **extra).run(
        None, {"X": x, "threshold": theta})[0]
    assert got.shape == (T * N, C, 4, 4)
    np.testing.assert_array_equal(got, want)
    blocked = neuron_session(op, ["X", "threshold"], timesteps=T, repeat_input=1, channel_block=8, **extra).run(
        None, {"X": to_blocked(x, 8), "threshold": theta})[0]
    np.testing.assert_array_equal(blocked.reshape(T, N, C, 4, 4),
                                  np.stack([to_blocked(w, 8) for w in want.reshape(T, N, C, 4, 4)]))


@pytest.mark.parametrize("attrs, message", [
    (dict(channel_block=3), "channel_block = 3"),
    (dict(channel_block=32), "channel_block = 32"),   # C = 16 is not a multiple of 32
    (dict(channel_block=0), "channel_block"),
    (dict(repeat_input=2), "repeat_input"),
])
def test_kernel_rejects_bad_layout_attributes(attrs, message):
    x = rng_array(4, 16, 2, 2)
    with pytest.raises(Exception, match=message):
        neuron_session("IFNeuron", ["X", "threshold"], timesteps=2, **attrs).run(
            None, {"X": x, "threshold": np.ones(16, np.float32)})


def _ann(channels: int, broadcast_add: bool = False) -> onnx.ModelProto:
    """Conv → ReLU → Conv → Add(shortcut) → ReLU → Conv(stride 2) → ReLU → pool → Gemm, with
    ``channels`` channels (not a multiple of the block: padded lanes); optionally an Add that
    broadcasts a pooled [N, C, 1, 1] over [N, C, H, W] (must stay in the plain layout)."""
    c = channels
    nodes = [oh.make_node("Conv", ["x", "W1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"]),
             oh.make_node("Conv", ["r1", "W2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             oh.make_node("Add", ["c2", "r1"], ["s"]),
             oh.make_node("Relu", ["s"], ["r2"])]
    if broadcast_add:
        nodes += [oh.make_node("GlobalAveragePool", ["r2"], ["g"]),
                  oh.make_node("Conv", ["r2", "W2", "b2"], ["c2b"], pads=[1, 1, 1, 1]),
                  oh.make_node("Add", ["c2b", "g"], ["s2"]),
                  oh.make_node("Relu", ["s2"], ["r2b"])]
    last = "r2b" if broadcast_add else "r2"
    nodes += [oh.make_node("Conv", [last, "W3", "b3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
              oh.make_node("Relu", ["c3"], ["r3"]),
              oh.make_node("GlobalAveragePool", ["r3"], ["p"]),
              oh.make_node("Flatten", ["p"], ["f"]),
              oh.make_node("Gemm", ["f", "Wf", "bf"], ["y"], transB=1)]
    init = {"W1": rng_array(c, 3, 3, 3, seed=1) * 0.5, "b1": rng_array(c, seed=2, low=0.0, high=0.2),
            "W2": rng_array(c, c, 3, 3, seed=3) * 0.2, "b2": rng_array(c, seed=4) * 0.1,
            "W3": rng_array(c, c, 3, 3, seed=5) * 0.2, "b3": rng_array(c, seed=6) * 0.1,
            "Wf": rng_array(5, c, seed=7), "bf": rng_array(5, seed=8)}
    return make_model(nodes, [("x", ["N", 3, 12, 12])], [("y", ["N", 5])], init)


def _check_exact(snn: onnx.ModelProto, feeds: dict, neurons: int) -> None:
    before = snn.SerializeToString()
    opts = ort.SessionOptions()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed rewrite warns and falls back: not here
        blocked = onnx2snn.InferenceSession(snn, opts)
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # restored
    plain = onnx2snn.InferenceSession(snn, blocked_layout=False)
    assert plain.onnx2snn_blocked_neurons == 0
    assert blocked.onnx2snn_blocked_neurons == (neurons if BLOCKED_CPU else 0)
    names = [o.name for o in plain.get_outputs()]
    for name, got, want in zip(names, blocked.run(names, feeds), plain.run(names, feeds)):
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert snn.SerializeToString() == before  # the model given is never modified


@pytest.mark.parametrize("channels", [16, 20])
@pytest.mark.parametrize("config", [
    dict(timesteps=4, channel_wise=True, v_init="half"),
    dict(timesteps=3, reset="zero"),
    dict(timesteps=4, channel_wise=True, v_init="half", neuron="bif"),
], ids=["if-channelwise-vinit", "if-reset-zero", "bif"])
def test_session_blocked_equals_plain(channels, config):
    ann = _ann(channels)
    calib = rng_array(16, 3, 12, 12, seed=9)
    snn = onnx2snn.convert(ann, {"x": calib}, onnx2snn.ConvertConfig(**config)).model
    _check_exact(snn, {"x": rng_array(6, 3, 12, 12, seed=10)}, neurons=3)


def test_broadcasting_add_stays_plain_and_exact():
    ann = _ann(16, broadcast_add=True)
    snn = onnx2snn.convert(ann, {"x": rng_array(16, 3, 12, 12, seed=11)},
                           onnx2snn.ConvertConfig(timesteps=4, channel_wise=True)).model
    # 4 neurons; the one after the broadcasting Add reads a plain tensor and stays plain
    _check_exact(snn, {"x": rng_array(5, 3, 12, 12, seed=12)}, neurons=3)


def test_bundled_mnist_snn_blocked_equals_plain():
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    data = np.load(MODELS / "data" / "mnist_calib.npz")
    name = model.graph.input[0].name
    calib = next(iter(data.values()))
    snn = onnx2snn.convert(model, {name: calib[:64]}, onnx2snn.ConvertConfig(timesteps=8, channel_wise=True)).model
    _check_exact(snn, {name: calib[64:80]}, neurons=3)


def test_not_used_off_the_default_optimisation_level():
    snn = onnx2snn.convert(_ann(16), {"x": rng_array(8, 3, 12, 12)}, onnx2snn.ConvertConfig(timesteps=2)).model
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert onnx2snn.InferenceSession(snn, opts).onnx2snn_blocked_neurons == 0


@pytest.mark.parametrize("op", ["IFNeuron", "BIFNeuron"])
@pytest.mark.parametrize("b", [0, 16])
def test_kernel_second_input_is_added_like_the_add_it_replaces(op, b):
    T, N, C = 4, 2, 16
    x = rng_array(T * N, C, 9, 9, seed=13)
    x2 = rng_array(T * N, C, 9, 9, seed=14)
    theta = rng_array(C, seed=15, low=0.2, high=1.0)
    extra = {"levels": T} if op == "BIFNeuron" else {}
    ref = bif_neuron if op == "BIFNeuron" else if_neuron
    want = ref(x + x2, theta, timesteps=T, **extra)  # numpy's float32 add: the Add node's
    layout = {"channel_block": b} if b else {}
    blocked = (lambda a: to_blocked(a, b)) if b else (lambda a: a)
    got = neuron_session(op, ["X", "threshold", "", "X2"], timesteps=T, **layout, **extra).run(
        None, {"X": blocked(x), "threshold": theta, "X2": blocked(x2)})[0]
    np.testing.assert_array_equal(got, blocked(want))
    with pytest.raises(Exception, match="X2 must have the shape of X"):
        neuron_session(op, ["X", "threshold", "", "X2"], timesteps=T, **extra).run(
            None, {"X": x, "threshold": theta, "X2": x2[:N]})


@pytest.mark.skipif(not BLOCKED_CPU, reason="onnxruntime uses no blocked layout on this CPU")
def test_residual_add_read_only_by_its_neuron_is_fused():
    from onnx2snn._library import get_library_path
    from onnx2snn.runtime.blocked_layout import _optimized, rewrite_blocked
    from onnx2snn.core.shapes import model_shapes
    snn = onnx2snn.convert(_ann(16), {"x": rng_array(16, 3, 12, 12, seed=9)},
                           onnx2snn.ConvertConfig(timesteps=4)).model
    rewritten, count = rewrite_blocked(_optimized(snn.SerializeToString(), get_library_path()),
                                       model_shapes(snn), block_size())
    neurons = [n for n in rewritten.graph.node if n.op_type == "IFNeuron"]
    assert count == 3 and [len(n.input) for n in neurons] == [2, 4, 2]  # the second reads Add(c2, r1)
    assert not any(n.op_type == "Add" for n in rewritten.graph.node)
