"""IFNeuron: the C++ CPU kernel (through onnxruntime) against the numpy reference.

Kernel and reference must agree bit for bit (``assert_array_equal``); the
reference itself is checked on hand-computed spike trains.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnx2snn._library import register
from onnx2snn.neurons import if_neuron

F32 = np.float32
ONE = np.array(1.0, F32)  # onnxruntime feeds need arrays, not numpy scalars


def _if_model(timesteps, reset=None, *, v_init=False, empty_v_init_name=False,
              threshold=None) -> onnx.ModelProto:
    """One IFNeuron node; inputs X, threshold (input or initializer), optional v_init."""
    inputs = ["X", "threshold"]
    if v_init:
        inputs.append("v_init")
    elif empty_v_init_name:
        inputs.append("")  # optional input given as an empty name
    attrs = {} if timesteps is None else {"timesteps": timesteps}
    if reset is not None:
        attrs["reset"] = reset
    node = helper.make_node("IFNeuron", inputs, ["Y"], domain="onnx2snn", name="if0", **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                    for n in inputs if n and not (n == "threshold" and threshold is not None)]
    initializers = []
    if threshold is not None:
        initializers.append(onnx.numpy_helper.from_array(np.asarray(threshold, F32), "threshold"))
    graph = helper.make_graph(
        [node], "if_neuron", graph_inputs,
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2snn", 1)],
        ir_version=8,  # onnx 1.23 writes IR 14 by default; onnxruntime 1.31 loads <= 13
    )


@pytest.fixture
def make_session():
    """Build an InferenceSession of a one-IFNeuron model, with the op library registered."""

    def make(timesteps, reset=None, *, threads=0, **model_kwargs) -> ort.InferenceSession:
        options = register(ort.SessionOptions())
        options.intra_op_num_threads = threads
        model = _if_model(timesteps, reset, **model_kwargs)
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])

    return make


def _run_both(make_session, x, threshold, v_init=None, *, timesteps, reset="subtract",
              threads=0):
    x = np.ascontiguousarray(x, F32)
    threshold = np.asarray(threshold, F32)
    feeds = {"X": x, "threshold": threshold}
    if v_init is not None:
        feeds["v_init"] = np.asarray(v_init, F32)
    session = make_session(timesteps, reset, v_init=v_init is not None, threads=threads)
    (got,) = session.run(None, feeds)
    want = if_neuron(x, threshold, v_init, timesteps=timesteps, reset=reset)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    return got


# ---------------------------------------------------------------- kernel == reference

@pytest.mark.parametrize("timesteps", [1, 2, 5, 8])
@pytest.mark.parametrize("step_shape", [(3, 10), (2, 4, 6), (2, 3, 5, 7), (1, 8, 1, 1)])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_random_matches_reference(make_session, timesteps, step_shape, reset):
    rng = np.random.default_rng([timesteps, len(step_shape), reset == "zero"])
    x = rng.normal(0.3, 0.8, size=(timesteps * step_shape[0],) + step_shape[1:])
    y = _run_both(make_session, x, F32(1.0), timesteps=timesteps, reset=reset)
    assert set(np.unique(y)) <= {0.0, 1.0}


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_large_tensor_blocks_and_threads(make_session, threads, reset):
    # 4 steps x 3*12*37*29 = 38628 elements: 3 blocks of 16384, a partial last one, and
    # enough work to take the parallel path when the session has threads.
    rng = np.random.default_rng(7)
    x = rng.normal(0.2, 1.0, size=(4 * 3, 12, 37, 29))
    theta = rng.uniform(0.5, 1.5, size=12)
    v0 = rng.uniform(-0.5, 0.5, size=(1, 12, 1, 29))
    _run_both(make_session, x, theta, v0, timesteps=4, reset=reset, threads=threads)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_output_over_64_mib_streams_stores_bit_exact(make_session, reset):
    # Y of 4 x 4,194,375 floats (64 MiB + 12 bytes) takes the non-temporal store path; the step
    # size is odd, so steps start unaligned (scalar head and tail around the SSE loop).
    rng = np.random.default_rng(8)
    x = rng.normal(0.2, 1.0, size=(4 * 1, 3, 1398125)).astype(F32)
    assert x.nbytes >= 64 << 20
    theta = np.array([0.5, 1.0, 1.5], F32)
    _run_both(make_session, x, theta, np.array(0.25, F32), timesteps=4, reset=reset, threads=0)


@pytest.mark.parametrize("threshold_shape", [(), (1,), (6,)])
def test_threshold_shapes(make_session, threshold_shape):
    rng = np.random.default_rng(1)
    x = rng.normal(0.4, 1.0, size=(3 * 2, 6, 4, 4))
    theta = rng.uniform(0.25, 2.0, size=threshold_shape)
    y = _run_both(make_session, x, theta, timesteps=3)
    theta_c = np.broadcast_to(np.asarray(theta, F32).reshape(-1, 1, 1), (6, 4, 4))
    assert np.all((y == 0) | (y == theta_c))  # Y in {0, theta_c}


def test_channel_thresholds_rank2(make_session):
    rng = np.random.default_rng(2)
    x = rng.normal(0.5, 1.0, size=(5 * 4, 9))
    _run_both(make_session, x, rng.uniform(0.5, 1.5, size=9), timesteps=5)


def test_threshold_as_initializer(make_session):
    theta = np.array([0.5, 1.0, 2.0], F32)
    x = np.random.default_rng(3).normal(0.5, 1.0, size=(4 * 2, 3, 5)).astype(F32)
    session = make_session(4, threshold=theta)
    (got,) = session.run(None, {"X": x})
    np.testing.assert_array_equal(got, if_neuron(x, theta, timesteps=4))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_potential_exactly_at_threshold(make_session, reset):
    theta = np.array([0.5, 1.0, 3.0], F32)
    # x = theta at every step: v reaches theta exactly and must fire (v >= theta).
    x = np.broadcast_to(theta.reshape(1, 3, 1, 1), (6 * 2, 3, 2, 2))
    y = _run_both(make_session, x, theta, timesteps=6, reset=reset)
    np.testing.assert_array_equal(y, x)
    # 0.25 + 0.25 + 0.5 = 1 exactly in float32: a spike on the third step.
    x = np.tile(np.array([0.25, 0.25, 0.5], F32).reshape(3, 1, 1), (1, 2, 4))
    y = _run_both(make_session, x, F32(1.0), timesteps=3, reset=reset)
    np.testing.assert_array_equal(y[:2], 0.0)
    np.testing.assert_array_equal(y[2], 1.0)


def test_negative_currents(make_session):
    rng = np.random.default_rng(4)
    x = rng.normal(-0.3, 1.0, size=(6 * 3, 5, 3, 3))
    _run_both(make_session, x, rng.uniform(0.5, 1.0, size=5), timesteps=6)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_values(make_session):
    x = np.array([[np.inf, -np.inf, np.nan, 1e38, -1e38, 0.0, -0.0, 2.0]] * 3, F32)
    x[1] = [1.0, np.inf, 0.0, 1e38, -1e38, -0.0, 0.0, -np.inf]
    _run_both(make_session, x, F32(1.0), timesteps=3)
    _run_both(make_session, x, F32(1.0), timesteps=3, reset="zero")


@pytest.mark.parametrize("v0_shape", [(), (1,), (1, 4, 1, 1), (4, 1, 1), (3, 4, 5, 6),
                                      (1, 1, 5, 1), (6,), (3, 1, 5, 6)])
def test_v_init_broadcasts(make_session, v0_shape):
    rng = np.random.default_rng(len(v0_shape))
    x = rng.normal(0.2, 0.7, size=(4 * 3, 4, 5, 6))
    v0 = rng.uniform(-1.0, 1.0, size=v0_shape)
    _run_both(make_session, x, rng.uniform(0.5, 1.5, size=4), v0, timesteps=4)
    _run_both(make_session, x, F32(1.0), v0, timesteps=4, reset="zero")


def test_v_init_absent_as_empty_name(make_session):
    x = np.random.default_rng(5).normal(0.5, 1.0, size=(2 * 2, 3)).astype(F32)
    (got,) = make_session(2, empty_v_init_name=True).run(None, {"X": x, "threshold": ONE})
    np.testing.assert_array_equal(got, if_neuron(x, ONE, timesteps=2))


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (0, 2), (6, 3, 0), (6, 0, 2)])
def test_empty_tensors(make_session, shape):
    x = np.zeros(shape, F32)
    theta = np.ones(shape[1], F32) if shape[1] else F32(1.0)
    y = _run_both(make_session, x, theta, timesteps=3)
    assert y.size == 0


def test_empty_batch_with_v_init(make_session):
    x = np.zeros((0, 4, 3, 3), F32)
    y = _run_both(make_session, x, F32(1.0), np.ones((1, 4, 1, 1), F32), timesteps=2)
    assert y.shape == (0, 4, 3, 3)


def test_session_shared_between_threads(make_session):
    rng = np.random.default_rng(6)
    session = make_session(5, threads=2)
    xs = [rng.normal(0.3, 1.0, size=(5 * 2, 8, 16, 16)).astype(F32) for _ in range(8)]

    def run(x):
        return session.run(None, {"X": x, "threshold": np.array(0.75, F32)})[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, xs))
    for x, got in zip(xs, results):
        np.testing.assert_array_equal(got, if_neuron(x, F32(0.75), timesteps=5))


# ---------------------------------------------------------------- kernel errors

def _fails(session, feeds, *fragments):
    with pytest.raises(Exception, match="IFNeuron") as info:
        session.run(None, feeds)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_error_batch_not_divisible(make_session):
    session = make_session(3)
    _fails(session, {"X": np.zeros((7, 2), F32), "threshold": ONE},
           "not divisible by timesteps = 3")


def test_error_threshold_shape(make_session):
    session = make_session(2)
    x = np.zeros((4, 3, 2), F32)
    _fails(session, {"X": x, "threshold": np.ones(4, F32)}, "threshold", "[4]")
    _fails(session, {"X": x, "threshold": np.ones((1, 3), F32)}, "threshold")


def test_error_v_init_not_broadcastable(make_session):
    session = make_session(2, v_init=True)
    x = np.zeros((4, 3, 5), F32)
    for bad in (np.zeros((4, 3, 5), F32), np.zeros((3,), F32), np.zeros((1, 1, 3, 5), F32)):
        _fails(session, {"X": x, "threshold": ONE, "v_init": bad}, "v_init")


def test_error_rank_one_input(make_session):
    _fails(make_session(1), {"X": np.zeros(4, F32), "threshold": ONE}, "rank")


@pytest.mark.parametrize("timesteps", [0, -2])
def test_error_timesteps_below_one(make_session, timesteps):
    with pytest.raises(Exception, match="IFNeuron.*timesteps"):
        make_session(timesteps).run(None, {"X": np.zeros((2, 2), F32), "threshold": ONE})


def test_error_missing_timesteps(make_session):
    with pytest.raises(Exception, match="IFNeuron.*'timesteps' is missing"):
        make_session(None).run(None, {"X": np.zeros((2, 2), F32), "threshold": ONE})


@pytest.mark.parametrize("reset", ["hard", 1])
def test_error_unknown_reset(make_session, reset):
    with pytest.raises(Exception, match="IFNeuron.*reset"):
        make_session(2, reset).run(None, {"X": np.zeros((2, 2), F32), "threshold": ONE})


# ---------------------------------------------------------------- reference, by hand

def _train(currents, threshold=1.0, v_init=None, reset="subtract"):
    """Spike train of one neuron (N = C = 1) fed `currents`, one per step."""
    x = np.asarray(currents, F32).reshape(-1, 1)
    return if_neuron(x, F32(threshold), v_init, timesteps=len(currents), reset=reset)[:, 0]


def test_reference_constant_current_float32():
    # float32: v = 0.3, 0.6, 0.90000004, 1.2 -> fire (0.20000005), 0.50000006, 0.8000001,
    # 1.1000001 -> fire (0.10000014), 0.40000015, 0.70000017, 1.0000002 -> fire.
    np.testing.assert_array_equal(np.flatnonzero(_train([0.3] * 10)), [3, 6, 9])


def test_reference_reset_modes():
    # subtract: 0.75, 1.5 fire -> 0.5, 1.25 fire -> 0.25, 1.0 fire -> 0
    np.testing.assert_array_equal(_train([0.75] * 4), [0, 1, 1, 1])
    # zero: 0.75, 1.5 fire -> 0, 0.75, 1.5 fire -> 0
    np.testing.assert_array_equal(_train([0.75] * 4, reset="zero"), [0, 1, 0, 1])


def test_reference_exact_threshold_and_negative_current():
    np.testing.assert_array_equal(_train([0.25, 0.25, 0.5]), [0, 0, 1])
    np.testing.assert_array_equal(_train([2.0, 2.0], threshold=2.0), [2, 2])
    # 1.5 fire -> 0.5, -0.5, 0.0, 0.5: one spike, the negative current delays the rest
    np.testing.assert_array_equal(_train([1.5, -1.0, 0.5, 0.5]), [1, 0, 0, 0])


def test_reference_v_init():
    # v0 = 0.5: 1.0 fire -> 0, 0.5, 1.0 fire -> 0
    np.testing.assert_array_equal(_train([0.5] * 3, v_init=0.5), [1, 0, 1])
    np.testing.assert_array_equal(_train([0.0, 0.0], v_init=1.0), [1, 0])


def test_reference_time_major_layout_and_channels():
    # T = 2, N = 2, C = 2, theta = [1, 2]. Rows: (t0,n0), (t0,n1), (t1,n0), (t1,n1).
    # n0,c0: 0.6, 1.2 fire.  n0,c1: 1.0, 2.0 fire (amplitude 2).
    # n1,c0: 0.2, 0.4.       n1,c1: 2.0 fire -> 0, 0.0.
    x = np.array([[0.6, 1.0], [0.2, 2.0],
                  [0.6, 1.0], [0.2, 0.0]], F32)
    want = np.array([[0.0, 0.0], [0.0, 2.0],
                     [1.0, 2.0], [0.0, 0.0]], F32)
    np.testing.assert_array_equal(if_neuron(x, np.array([1.0, 2.0], F32), timesteps=2), want)


def test_reference_output_dtype_and_shape():
    y = if_neuron(np.ones((6, 2, 3), np.float64), 1.0, timesteps=3)
    assert y.dtype == np.float32 and y.shape == (6, 2, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": np.zeros((5, 2)), "threshold": 1.0, "timesteps": 2}, "not divisible"),
        ({"x": np.zeros((4, 2)), "threshold": np.ones(3), "timesteps": 2}, "threshold"),
        ({"x": np.zeros((4, 2)), "threshold": 1.0, "v_init": np.zeros((4, 2)), "timesteps": 2},
         "v_init"),
        ({"x": np.zeros(4), "threshold": 1.0, "timesteps": 2}, "rank"),
        ({"x": np.zeros((4, 2)), "threshold": 1.0, "timesteps": 0}, "timesteps"),
        ({"x": np.zeros((4, 2)), "threshold": 1.0, "timesteps": 2.0}, "timesteps"),
        ({"x": np.zeros((4, 2)), "threshold": 1.0, "timesteps": 2, "reset": "hard"}, "reset"),
    ],
)
def test_reference_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        if_neuron(**kwargs)
