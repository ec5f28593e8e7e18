"""IFNeuron CUDA kernel against the numpy reference, bit for bit.

Runs only where onnxruntime has the CUDAExecutionProvider and the op library
was built with -DONNX2SNN_USE_CUDA=ON; skipped otherwise.
"""
import numpy as np
import onnxruntime as ort
import pytest

from onnx2snn._library import register
from onnx2snn.neurons import if_neuron
from test_if_neuron_kernel import _if_model

pytestmark = pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                                reason="onnxruntime has no CUDAExecutionProvider here")
F32 = np.float32


def _cuda_run(x, threshold, v_init=None, *, timesteps, reset="subtract"):
    options = register(ort.SessionOptions())
    model = _if_model(timesteps, reset, v_init=v_init is not None)
    sess = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    feeds = {"X": np.ascontiguousarray(x, F32), "threshold": np.asarray(threshold, F32)}
    if v_init is not None:
        feeds["v_init"] = np.asarray(v_init, F32)
    got = sess.run(None, feeds)[0]
    np.testing.assert_array_equal(got, if_neuron(feeds["X"], feeds["threshold"], v_init, timesteps=timesteps,
                                                 reset=reset))
    return got


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("timesteps, step_shape", [(1, (3, 10)), (5, (2, 4, 6)), (8, (2, 3, 5, 7)),
                                                   (16, (4, 64, 33, 17))])
def test_random(reset, timesteps, step_shape):
    rng = np.random.default_rng(timesteps)
    x = rng.normal(0.3, 0.8, size=(timesteps * step_shape[0],) + step_shape[1:])
    _cuda_run(x, rng.uniform(0.5, 1.5, size=step_shape[1]), timesteps=timesteps, reset=reset)
    _cuda_run(x, F32(0.75), timesteps=timesteps, reset=reset)


@pytest.mark.parametrize("v0_shape", [(), (1, 4, 1, 1), (3, 4, 5, 6), (1, 1, 5, 1), (3, 1, 5, 6)])
def test_v_init_broadcasts(v0_shape):
    rng = np.random.default_rng(len(v0_shape))
    x = rng.normal(0.2, 0.7, size=(4 * 3, 4, 5, 6))
    _cuda_run(x, rng.uniform(0.5, 1.5, size=4), rng.uniform(-1, 1, size=v0_shape), timesteps=4)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_edge_values():
    theta = np.array([0.5, 1.0, 3.0], F32)
    x = np.broadcast_to(theta.reshape(1, 3, 1, 1), (6 * 2, 3, 2, 2))  # exactly at threshold
    np.testing.assert_array_equal(_cuda_run(x, theta, timesteps=6), x)
    x = np.array([[np.inf, -np.inf, np.nan, 1e38, -1e38, 0.0, -0.0, 2.0]] * 3, F32)
    _cuda_run(x, F32(1.0), timesteps=3)
    _cuda_run(np.zeros((0, 4, 3), F32), F32(1.0), timesteps=2)
