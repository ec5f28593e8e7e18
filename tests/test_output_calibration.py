"""Weight calibration of the analog output layers (the last Conv/Gemm before each graph output)."""
import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2snn
from conftest import make_model
from onnx2snn.calibration import layerwise
from onnx2snn.calibration.layerwise import output_layers
from onnx2snn.config import ConvertConfig, ThresholdSpec
from test_layerwise_calibration import depthwise_model

CFG = ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max"), calibrate=("weight",))


def data(n, seed=2):
    return {"x": np.random.default_rng(seed).uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32)}


def init(model, name):
    return numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == name))


def test_output_layers_are_the_last_conv_or_gemm_of_each_head():
    """Two heads on one neuron layer (one through Reshape, one through Softmax) are output layers; a Conv
    on the graph input alone (no neuron upstream) and two Convs sharing one weight are not."""
    w = np.ones((2, 2, 1, 1), np.float32)
    nodes = [oh.make_node("Conv", ["x", "w1"], ["c1"], name="c1"), oh.make_node("Relu", ["c1"], ["a1"]),
             oh.make_node("Conv", ["a1", "wh1", "bh1"], ["h1"], name="head1"),
             oh.make_node("Reshape", ["h1", "shape"], ["boxes"]),
             oh.make_node("Conv", ["a1", "wh2"], ["h2"], name="head2"),
             oh.make_node("Softmax", ["h2"], ["scores"], axis=1),
             oh.make_node("Conv", ["x", "wx"], ["direct"], name="direct"),
             oh.make_node("Conv", ["a1", "ws"], ["s1"], name="shared1"),
             oh.make_node("Conv", ["a1", "ws"], ["s2"], name="shared2"),
             oh.make_node("Add", ["s1", "s2"], ["shared"])]
    model = make_model(nodes, [("x", ["N", 2, 4, 4])],
                       [(n, ["N", 2, 4, 4]) for n in ("scores", "direct", "shared")] + [("boxes", ["N", 32])],
                       {"w1": w, "wh1": w, "bh1": np.zeros(2, np.float32), "wh2": w, "wx": w, "ws": w,
                        "shape": np.array([0, -1], np.int64)})
    assert [n.name for n in output_layers(model, {"a1"})] == ["head1", "head2"]


def test_the_output_layer_is_fitted_to_the_anns_output(monkeypatch):
    """With 64 samples for the Gemm's 4 weights + bias per output, its weights get the ridge fit, and the
    SNN's output on the calibration data comes closer to the ANN's than without it."""
    feeds = data(64)
    fitted = onnx2snn.convert(depthwise_model(), feeds, CFG)
    report = fitted.layer_reports[-1]
    assert report.output and report.name == "y" and not report.notes
    assert report.wc_after < report.wc_before
    assert not np.array_equal(init(fitted.model, "w3"), init(depthwise_model(), "w3"))
    monkeypatch.setattr(layerwise, "OUTPUT_ROWS_PER_WEIGHT", 10 ** 9)
    plain = onnx2snn.convert(depthwise_model(), feeds, CFG)
    np.testing.assert_array_equal(init(plain.model, "w3"), init(depthwise_model(), "w3"))
    ann = onnx2snn.InferenceSession(depthwise_model()).run(["y"], feeds)[0]
    err = {name: np.mean((onnx2snn.InferenceSession(r.model).run(["y"], feeds)[0] - ann) ** 2)
           for name, r in (("fitted", fitted), ("plain", plain))}
    assert err["fitted"] < err["plain"], err
    # the fit's own objective is the mean squared error of the time-averaged output per sample
    assert report.wc_after == pytest.approx(3 * err["fitted"], rel=1e-3)


def test_an_output_layer_with_too_few_rows_per_weight_is_left_as_it_is():
    """20 samples for 5 weights per output: under 10 rows per weight, so the output layer is not fitted
    (nothing downstream would correct what it fitted to these samples' noise) and the report says why."""
    result = onnx2snn.convert(depthwise_model(), data(20), CFG)
    report = result.layer_reports[-1]
    assert report.output and report.notes == [
        "output layer not fitted: 20 rows for 5 weights per output (it needs 10 rows per weight)"]
    np.testing.assert_array_equal(init(result.model, "w3"), init(depthwise_model(), "w3"))


def test_an_output_layer_without_a_bias_gets_one():
    model = depthwise_model()
    fc = next(n for n in model.graph.node if n.name == "fc")
    del fc.input[2:]
    del model.graph.initializer[[i.name for i in model.graph.initializer].index("b3")]
    result = onnx2snn.convert(model, data(64), CFG)
    fc = next(n for n in result.model.graph.node if n.op_type == "Gemm")
    assert len(fc.input) == 3 and init(result.model, fc.input[2]).shape == (3,)
    assert np.any(init(result.model, fc.input[2]) != 0)
    out = onnx2snn.InferenceSession(result.model).run(["y"], data(8, seed=5))[0]
    assert out.shape == (8, 3) and np.all(np.isfinite(out))


def test_a_neuron_layers_pre_activation_as_graph_output_is_fitted_once():
    """The depthwise Conv's output is also a graph output: it is fitted as the neuron layer it feeds,
    not a second time as an output layer; the Gemm is still the one output layer."""
    model = depthwise_model()
    model.graph.output.append(oh.make_tensor_value_info("c2", onnx.TensorProto.FLOAT, ["N", 4, 8, 8]))
    result = onnx2snn.convert(model, data(64), CFG)
    assert [(r.name, r.output) for r in result.layer_reports] == [("a1", False), ("a2", False), ("y", True)]


def matmul_mlp():
    """The dense layers as skl2onnx and tf2onnx write them: MatMul by a constant, then Add of the bias;
    the last MatMul has no Add."""
    rng = np.random.default_rng(3)
    nodes = [oh.make_node("MatMul", ["x", "w1"], ["m1"]), oh.make_node("Add", ["m1", "b1"], ["c1"]),
             oh.make_node("Relu", ["c1"], ["a1"]),
             oh.make_node("MatMul", ["a1", "w2"], ["m2"]), oh.make_node("Add", ["b2", "m2"], ["c2"]),
             oh.make_node("Relu", ["c2"], ["a2"]),
             oh.make_node("MatMul", ["a2", "w3"], ["y"], name="last")]
    inits = {"w1": rng.normal(0, 0.5, (16, 8)).astype(np.float32), "b1": np.full(8, 0.1, np.float32),
             "w2": rng.normal(0, 0.5, (8, 8)).astype(np.float32), "b2": np.full((1, 8), 0.1, np.float32),
             "w3": rng.normal(0, 0.5, (8, 3)).astype(np.float32)}
    return make_model(nodes, [("x", ["N", 16])], [("y", ["N", 3])], inits)


def test_matmul_add_layers_get_weight_and_bias_calibration():
    """A hidden MatMul + Add is fitted like a Gemm (its bias in the Add); the last MatMul, 128 samples for
    8 weights + bias, gets an Add of a fitted bias; the SNN's output comes closer to the ANN's."""
    feeds = {"x": np.random.default_rng(4).uniform(0, 1, (128, 16)).astype(np.float32)}
    cfg = ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max"), calibrate=("weight", "bias"))
    result = onnx2snn.convert(matmul_mlp(), feeds, cfg)
    first, second, last = result.layer_reports
    assert first.notes == ["no WC: the layer reads the analog input, its mean current is the ANN's"]
    assert not second.notes and second.wc_after < second.wc_before
    assert last.output and not last.notes and last.wc_after < last.wc_before
    assert not np.array_equal(init(result.model, "b2"), np.full(8, 0.1, np.float32))   # BC went into the Add
    adds = [n for n in result.model.graph.node if n.op_type == "Add" and any(i.startswith("y") for i in n.input)]
    assert len(adds) == 1 and np.any(init(result.model, adds[0].input[1]) != 0)
    ann = onnx2snn.InferenceSession(matmul_mlp()).run(["y"], feeds)[0]
    plain = onnx2snn.convert(matmul_mlp(), feeds, ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max")))
    err = [np.mean((onnx2snn.InferenceSession(r.model).run(["y"], feeds)[0] - ann) ** 2) for r in (result, plain)]
    assert err[0] < err[1], err


def test_a_rank_3_matmul_gets_wc_and_its_bias_calibration_goes_into_the_initial_potential():
    """[N, 8, 8] @ W [8, 8] + b [8] (a dense layer over a sequence, as torch exports Linear on [N, S, C]):
    WC fits one row per sample and position; the per-channel error runs along axis 1, the bias along the
    last, so BC is the initial potential (here both axes have 8 entries). The first neuron layer reads the graph input itself (its current: the input tiled over the
    time steps)."""
    rng = np.random.default_rng(5)
    nodes = [oh.make_node("Relu", ["x"], ["a0"]), oh.make_node("MatMul", ["a0", "w"], ["m"]),
             oh.make_node("Add", ["m", "b"], ["c"]), oh.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, [("x", ["N", 8, 8])], [("y", ["N", 8, 8])],
                       {"w": rng.normal(0, 0.5, (8, 8)).astype(np.float32), "b": np.full(8, 0.1, np.float32)})
    feeds = {"x": rng.uniform(-1, 1, (32, 8, 8)).astype(np.float32)}
    cfg = ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max"), calibrate=("weight", "bias"))
    result = onnx2snn.convert(model, feeds, cfg)
    report = result.layer_reports[1]
    assert report.notes == ["BC applied as initial potential (no bias to shift)"]
    assert report.wc_after < report.wc_before
    wc_only = onnx2snn.convert(model, feeds, ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max"),
                                                           calibrate=("weight",)))
    assert not np.array_equal(init(result.model, "b"), np.full(8, 0.1, np.float32))   # WC's bias row
    # BC as initial potential, from the error WC leaves, brings the output closer still
    ann = onnx2snn.InferenceSession(model).run(["y"], feeds)[0]
    err = [np.mean((onnx2snn.InferenceSession(r.model).run(["y"], feeds)[0] - ann) ** 2) for r in (result, wc_only)]
    assert err[0] < err[1], err
