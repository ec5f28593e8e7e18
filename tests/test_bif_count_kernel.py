"""BIFCount: the C++ CPU kernel (through onnxruntime) against the numpy reference,
and the reference against BIFNeuron (the same neuron in count form)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnx2snn._library import register
from onnx2snn.neurons import bif_count, bif_neuron

F32 = np.float32


def _session(timesteps, levels, lowest=0):
    node = helper.make_node("BIFCount", ["X"], ["Y"], domain="onnx2snn", name="count0",
                            timesteps=timesteps, levels=levels, **({"min_level": lowest} if lowest else {}))
    graph = helper.make_graph([node], "bif_count", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2snn", 1)],
                              ir_version=8)
    return ort.InferenceSession(model.SerializeToString(), register(ort.SessionOptions()),
                                providers=["CPUExecutionProvider"])


def test_reference_hand_computed():
    # targets 3, 3, 1, 5, 5 with L = 4: the count walks one step per step, capped at L
    y = bif_count(np.array([3, 3, 1, 5, 5, 5, 5], F32).reshape(7, 1), timesteps=7, levels=4)
    np.testing.assert_array_equal(y.ravel(), [1, 2, 1, 2, 3, 4, 4])
    y = bif_count(np.array([-2, np.nan, 1], F32).reshape(3, 1), timesteps=3, levels=2)
    np.testing.assert_array_equal(y.ravel(), [0, 0, 1])
    y = bif_count(np.array([-5, -5, -5, 0], F32).reshape(4, 1), timesteps=4, levels=2, min_level=-2)
    np.testing.assert_array_equal(y.ravel(), [-1, -2, -2, -1])


@pytest.mark.parametrize("shape,timesteps,levels,lowest", [((6, 3), 3, 2, 0), ((8, 4, 5, 5), 8, 4, 0),
                                                            ((16, 70, 33), 4, 8, -3), ((2, 1), 1, 1, 0)])
def test_kernel_matches_reference(shape, timesteps, levels, lowest):
    rng = np.random.default_rng(sum(shape))
    x = np.floor(rng.uniform(lowest - 2, levels + 2, shape)).astype(F32)
    x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf][: x.size]
    (got,) = _session(timesteps, levels, lowest).run(None, {"X": x})
    np.testing.assert_array_equal(got, bif_count(x, timesteps=timesteps, levels=levels, min_level=lowest))
    assert got.min() >= lowest and got.max() <= levels


def test_same_spikes_as_bif_neuron():
    """Count form ≡ BIFNeuron (θ = 1, v_init = ½) on integer-valued currents, where float is exact."""
    rng = np.random.default_rng(0)
    T, N, L = 12, 500, 4
    x = rng.integers(-3, 4, (T, N)).astype(F32) / 4  # multiples of 1/4: all sums exact
    spikes = bif_neuron(x, 1.0, 0.5, timesteps=T, levels=L)
    target = np.floor(np.cumsum(x, axis=0) + F32(0.5))
    counts = bif_count(target, timesteps=T, levels=L)
    np.testing.assert_array_equal(counts, np.cumsum(spikes, axis=0))


def test_bad_input_is_one_clear_error():
    with pytest.raises(Exception, match="divisible by timesteps"):
        _session(3, 2).run(None, {"X": np.zeros((4, 2), F32)})
    with pytest.raises(ValueError, match="levels"):
        bif_count(np.zeros((2, 1), F32), timesteps=1, levels=0)


@pytest.mark.parametrize("attrs, message", [
    ({"timesteps": 2}, r"BIFCount node 'count0': required int attribute 'levels' is missing"),
    ({"timesteps": 0, "levels": 2}, r"BIFCount node 'count0': attribute 'timesteps' must be >= 1, got 0"),
    ({"timesteps": 2, "levels": 2 ** 25}, r"'levels' must be in \[1, 16777216\], got 33554432"),
    ({"timesteps": 2, "levels": 2, "min_level": 1}, r"'min_level' must be in \[-16777216, 0\], got 1"),
    ({"timesteps": 2, "levels": 2, "min_level": 0.5}, r"'min_level' must be an int"),
])
def test_bad_attribute_is_one_clear_error(attrs, message):
    node = helper.make_node("BIFCount", ["X"], ["Y"], domain="onnx2snn", name="count0", **attrs)
    graph = helper.make_graph([node], "bif_count", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2snn", 1)],
                              ir_version=8)
    with pytest.raises(Exception, match=message):
        ort.InferenceSession(model.SerializeToString(), register(ort.SessionOptions()),
                             providers=["CPUExecutionProvider"])
