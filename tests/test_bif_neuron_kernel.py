"""BIFNeuron: the C++ CPU kernel (through onnxruntime) against the numpy reference.

Kernel and reference must agree bit for bit; the reference itself is checked on
hand-computed spike trains and on its settling property (the total output is
θ·clip(floor((v_init + Σx)/θ), 0, L) once the input has been quiet for L steps).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnx2snn._library import register
from onnx2snn.neurons import bif_neuron

F32 = np.float32


def _bif_model(timesteps, levels, *, v_init=False, attrs=None) -> onnx.ModelProto:
    inputs = ["X", "threshold"] + (["v_init"] if v_init else [])
    attrs = {"timesteps": timesteps, "levels": levels} if attrs is None else attrs
    node = helper.make_node("BIFNeuron", inputs, ["Y"], domain="onnx2snn", name="bif0", **attrs)
    graph = helper.make_graph([node], "bif_neuron",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2snn", 1)],
                             ir_version=8)


def _session(model, threads=0):
    options = register(ort.SessionOptions())
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run_both(x, threshold, v_init=None, *, timesteps, levels, threads=0):
    x = np.ascontiguousarray(x, F32)
    feeds = {"X": x, "threshold": np.asarray(threshold, F32)}
    if v_init is not None:
        feeds["v_init"] = np.asarray(v_init, F32)
    (got,) = _session(_bif_model(timesteps, levels, v_init=v_init is not None), threads).run(None, feeds)
    want = bif_neuron(x, threshold, v_init, timesteps=timesteps, levels=levels)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    return got


def test_reference_hand_computed():
    # one neuron, θ = 1, L = 2: input 2.5 at t=0 then -1.2 at t=2
    x = np.array([2.5, 0, -1.2, 0, 0], F32).reshape(5, 1)
    y = bif_neuron(x, 1.0, timesteps=5, levels=2)
    # v: 2.5→1.5(+1) | 1.5→0.5(+1) | -0.7→0.3(-1) | 0.3 | 0.3
    np.testing.assert_array_equal(y.ravel(), [1, 1, -1, 0, 0])
    # count capped at L: a huge input fires L spikes only
    y = bif_neuron(np.array([[100.0], [0], [0], [0]], F32), 1.0, timesteps=4, levels=3)
    np.testing.assert_array_equal(y.ravel(), [1, 1, 1, 0])
    # negative currents never fire below a count of 0
    y = bif_neuron(np.array([[-5.0], [0], [7.0]], F32), 1.0, timesteps=3, levels=4)
    np.testing.assert_array_equal(y.ravel(), [0, 0, 1])


@pytest.mark.parametrize("levels", [1, 2, 4, 15])
def test_reference_settles_to_clip_floor(levels):
    rng = np.random.default_rng(levels)
    N, T = 200, 3 + 2 * levels
    theta = F32(0.25)
    parts = rng.normal(0, 0.6, size=(3, N, 4)).astype(F32)  # current in the first 3 steps only
    x = np.concatenate([parts, np.zeros((T - 3, N, 4), F32)]).reshape(T * N, 4)
    v0 = theta / 2
    y = bif_neuron(x, theta, v0, timesteps=T, levels=levels).reshape(T, N, 4)
    total = y.sum(0) / theta
    want = np.clip(np.floor((v0 + parts.astype(np.float64).sum(0)) / theta), 0, levels)
    np.testing.assert_array_equal(total, want)
    # the count stays in [0, L] at every step
    running = np.cumsum(y, 0) / theta
    assert running.min() >= 0 and running.max() <= levels


@pytest.mark.parametrize("timesteps,levels", [(1, 1), (1, 4), (3, 2), (8, 4), (16, 255)])
def test_random(timesteps, levels):
    rng = np.random.default_rng(timesteps * 100 + levels)
    x = rng.normal(0, 1, size=(timesteps * 3, 5, 7, 6)).astype(F32)
    _run_both(x, 0.4, timesteps=timesteps, levels=levels)
    _run_both(x, 0.4, F32(0.2), timesteps=timesteps, levels=levels)


def test_channel_wise_thresholds_and_v_init():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, size=(8 * 2, 4, 65, 70)).astype(F32)  # 36400 per step: 3 blocks, parallel path
    theta = np.array([0.1, 0.5, 1.0, 2.0], F32)
    _run_both(x, theta, (theta / 2).reshape(4, 1, 1), timesteps=8, levels=4)
    _run_both(x, theta, rng.normal(size=(2, 4, 65, 70)).astype(F32), timesteps=8, levels=4, threads=1)
    _run_both(x, theta[:1], None, timesteps=8, levels=3)


def test_exactly_at_threshold_and_zero():
    # v == θ fires; v == 0 with a count does not take a spike back (v < 0 is needed)
    x = np.array([0.5, 0.5, -0.5, 0, -0.5, -1e-8], F32).reshape(6, 1)
    y = _run_both(x, 0.5, timesteps=6, levels=2)
    np.testing.assert_array_equal(y.ravel(), [0.5, 0.5, -0.5, 0, -0.5, 0])


def test_count_hits_zero_and_levels():
    x = np.array([10, 0, 0, 0, -10, 0, 0, 0, 0], F32).reshape(9, 1)
    y = _run_both(x, 1.0, timesteps=9, levels=3)
    np.testing.assert_array_equal(y.ravel(), [1, 1, 1, 0, -1, -1, -1, 0, 0])


def test_empty_batch():
    _run_both(np.zeros((0, 3, 2), F32), np.ones(3, F32), timesteps=4, levels=2)


def test_nonfinite():
    x = np.array([np.nan, np.inf, -np.inf, 1.0], F32).reshape(4, 1)
    _run_both(np.tile(x, (2, 1)), 1.0, timesteps=2, levels=2)


@pytest.mark.parametrize("attrs,match", [
    ({"timesteps": 2}, "levels"),
    ({"timesteps": 2, "levels": 0}, "levels"),
    ({"levels": 2}, "timesteps"),
    ({"timesteps": 0, "levels": 2}, "timesteps"),
])
def test_bad_attributes(attrs, match):
    with pytest.raises(Exception, match=match):
        sess = _session(_bif_model(None, None, attrs=attrs))
        sess.run(None, {"X": np.zeros((2, 1), F32), "threshold": np.ones((), F32)})


def test_bad_shapes():
    sess = _session(_bif_model(3, 2))
    with pytest.raises(Exception, match="divisible"):
        sess.run(None, {"X": np.zeros((4, 2), F32), "threshold": np.ones((), F32)})
    with pytest.raises(Exception, match="threshold"):
        sess.run(None, {"X": np.zeros((3, 2), F32), "threshold": np.ones(3, F32)})
    with pytest.raises(ValueError, match="levels"):
        bif_neuron(np.zeros((2, 1), F32), 1.0, timesteps=2, levels=0)


@pytest.mark.parametrize("timesteps,levels,lowest", [(6, 2, -3), (16, 127, -128)])
def test_signed_counts(timesteps, levels, lowest):
    """min_level m < 0: the count runs over [m, L] and settles to clip(floor(·), m, L)."""
    rng = np.random.default_rng(timesteps)
    x = rng.normal(0, 3, (timesteps * 5, 4, 3)).astype(F32)
    x[5:] = 0  # all input at step 0: the count settles within L − m steps
    attrs = {"timesteps": timesteps, "levels": levels, "min_level": lowest}
    (got,) = _session(_bif_model(timesteps, levels, attrs=attrs)).run(None, {"X": x, "threshold": np.array(0.5, F32)})
    want = bif_neuron(x, 0.5, timesteps=timesteps, levels=levels, min_level=lowest)
    np.testing.assert_array_equal(got, want)
    counts = want.reshape(timesteps, 5, 4, 3).sum(0) / F32(0.5)
    assert counts.min() >= lowest and counts.max() <= levels
    if timesteps >= levels - lowest:
        np.testing.assert_array_equal(counts, np.clip(np.floor(x[:5] / F32(0.5)), lowest, levels))
