"""TSNeuron: the C++ CPU kernel (through onnxruntime) against the numpy reference.

Kernel and reference must agree bit for bit; the reference itself is checked on
hand-computed spike trains and on its defining property: the count is
clip(floor((v_init + Σx)/θ), 0, T), emitted at the first steps (a prefix).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnx2snn._library import register
from onnx2snn.neurons import ts_neuron

F32 = np.float32


def _ts_model(timesteps, *, v_init=False, attrs=None) -> onnx.ModelProto:
    inputs = ["X", "threshold"] + (["v_init"] if v_init else [])
    attrs = {"timesteps": timesteps} if attrs is None else attrs
    node = helper.make_node("TSNeuron", inputs, ["Y"], domain="onnx2snn", name="ts0", **attrs)
    graph = helper.make_graph([node], "ts_neuron",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2snn", 1)],
                             ir_version=8)


def _session(model, threads=0):
    options = register(ort.SessionOptions())
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run_both(x, threshold, v_init=None, *, timesteps, threads=0):
    x = np.ascontiguousarray(x, F32)
    feeds = {"X": x, "threshold": np.asarray(threshold, F32)}
    if v_init is not None:
        feeds["v_init"] = np.asarray(v_init, F32)
    (got,) = _session(_ts_model(timesteps, v_init=v_init is not None), threads).run(None, feeds)
    want = ts_neuron(x, threshold, v_init, timesteps=timesteps)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    return got


def test_reference_hand_computed():
    # one neuron, θ = 1, T = 4: Σx = 2.5 → 2 spikes, at the first two steps, whatever the order of x
    for x in ([2.5, 0, 0, 0], [0, 0, 0, 2.5], [-1, 3, 1.5, -1]):
        y = ts_neuron(np.array(x, F32).reshape(4, 1), 1.0, timesteps=4)
        np.testing.assert_array_equal(y.ravel(), [1, 1, 0, 0])
    # clipped to [0, T]; v_init = θ/2 rounds (1.5 + 0.5 = 2 exactly: 2 spikes)
    np.testing.assert_array_equal(ts_neuron(np.full((3, 1), 9, F32), 1.0, timesteps=3).ravel(), [1, 1, 1])
    np.testing.assert_array_equal(ts_neuron(np.full((3, 1), -9, F32), 1.0, timesteps=3).ravel(), [0, 0, 0])
    np.testing.assert_array_equal(ts_neuron(np.array([[1.0], [0.5]], F32), 1.0, 0.5, timesteps=2).ravel(), [1, 1])
    # amplitude θ, per channel
    y = ts_neuron(np.array([[0.3, 3.0], [0.3, 3.0]], F32), np.array([0.5, 2.0], F32), timesteps=2)
    np.testing.assert_array_equal(y, [[0.5, 2.0], [0.0, 2.0]])


@pytest.mark.parametrize("timesteps", [1, 2, 5, 16])
def test_reference_count_is_clip_floor(timesteps):
    rng = np.random.default_rng(timesteps)
    N, theta, v0 = 300, F32(0.3), F32(0.15)
    x = rng.normal(0.1, 0.5, size=(timesteps, N, 3)).astype(F32)
    y = ts_neuron(x.reshape(timesteps * N, 3), theta, v0, timesteps=timesteps).reshape(timesteps, N, 3)
    v = np.full((N, 3), v0, F32)
    for t in range(timesteps):
        v = v + x[t]
    count = np.clip(np.floor(v / theta), 0, timesteps)
    fired = y > 0
    np.testing.assert_array_equal(fired.sum(0), count)
    assert np.all(fired[1:] <= fired[:-1])  # a prefix: no spike after the first silent step
    assert set(np.unique(y)) <= {F32(0), theta}


@pytest.mark.parametrize("timesteps", [1, 3, 8, 16])
def test_random(timesteps):
    rng = np.random.default_rng(timesteps)
    x = rng.normal(0, 1, size=(timesteps * 3, 5, 7, 6)).astype(F32)
    _run_both(x, 0.4, timesteps=timesteps)
    _run_both(x, 0.4, F32(0.2), timesteps=timesteps)


def test_channel_wise_thresholds_and_v_init():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, size=(8 * 2, 4, 33, 40)).astype(F32)  # several blocks, parallel path
    theta = np.array([0.1, 0.5, 1.0, 2.0], F32)
    _run_both(x, theta, (theta / 2).reshape(4, 1, 1), timesteps=8)
    _run_both(x, theta, rng.normal(size=(2, 4, 33, 40)).astype(F32), timesteps=8, threads=1)
    _run_both(x, theta[:1], None, timesteps=8)


def test_exact_boundaries():
    # q exactly at an integer fires that many spikes; just below does not
    theta = F32(0.25)
    below = np.nextafter(F32(0.5), F32(0))
    x = np.array([[0.5, below, 1.0, 0.0, -0.0]], F32).repeat(4, 0) / 4  # Σx = 0.5, <0.5, 1.0, 0, -0
    y = _run_both(x, theta, timesteps=4)
    np.testing.assert_array_equal((y > 0).sum(0), [2, 1, 4, 0, 0])


def test_empty_batch():
    _run_both(np.zeros((0, 3, 2), F32), np.ones(3, F32), timesteps=4)


def test_nonfinite():
    # NaN never fires, +inf fires every step, -inf never
    x = np.array([np.nan, np.inf, -np.inf, 1.0], F32).reshape(1, 4)
    y = _run_both(np.tile(x, (3, 1)), 1.0, timesteps=3)
    np.testing.assert_array_equal((y > 0).sum(0), [0, 3, 0, 3])


@pytest.mark.parametrize("attrs,match", [({}, "timesteps"), ({"timesteps": 0}, "timesteps")])
def test_bad_attributes(attrs, match):
    with pytest.raises(Exception, match=match):
        sess = _session(_ts_model(None, attrs=attrs))
        sess.run(None, {"X": np.zeros((2, 1), F32), "threshold": np.ones((), F32)})


def test_bad_shapes():
    sess = _session(_ts_model(3))
    with pytest.raises(Exception, match="divisible"):
        sess.run(None, {"X": np.zeros((4, 2), F32), "threshold": np.ones((), F32)})
    with pytest.raises(Exception, match="threshold"):
        sess.run(None, {"X": np.zeros((3, 2), F32), "threshold": np.ones(3, F32)})
    with pytest.raises(ValueError, match="timesteps"):
        ts_neuron(np.zeros((2, 1), F32), 1.0, timesteps=0)
