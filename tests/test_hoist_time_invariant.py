"""HoistTimeInvariantPass: the head before the first neuron runs once, outputs bit-exact."""
import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS, SHARED, make_model, rng_array, run
from onnx2snn.snn.time_axis import AddTimeAxisPass
from onnx2snn.snn.hoist_time_invariant import HoistTimeInvariantPass
from onnx2snn.snn.readout import ReadoutPass
from onnx2snn.snn.spike import SpikeActivationsPass
from onnx2snn.core.graph import export_graph, import_model
from onnx2snn.passes.activations import activation_names
from onnx2snn.pipeline import prepare

T = 5


def _snn(ann: onnx.ModelProto, hoist: bool, timesteps: int = T, theta: float = 0.5):
    graph = import_model(ann)
    SpikeActivationsPass({n: np.float32(theta) for n in activation_names(ann)}, timesteps)(graph)
    AddTimeAxisPass(timesteps)(graph)
    count = HoistTimeInvariantPass(timesteps)(graph).count if hoist else 0
    ReadoutPass(timesteps)(graph)
    return export_graph(graph, like=ann), count


def _ops_before_tile(model: onnx.ModelProto) -> list[str]:
    """Op types computed on the untiled input, i.e. before the first Tile in topological order."""
    ops = [n.op_type for n in model.graph.node]
    return ops[:ops.index("Tile")]


def _check_exact(ann, feeds, threads=(1, 2)):
    hoisted, count = _snn(ann, True)
    plain, _ = _snn(ann, False)
    onnx.checker.check_model(hoisted)
    for n in threads:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n
        got = onnx2snn.InferenceSession(hoisted, opts).run(None, feeds)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n
        want = onnx2snn.InferenceSession(plain, opts).run(None, feeds)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    return hoisted, count


def test_conv_branches_add_hoisted():
    nodes = [oh.make_node("Conv", ["x", "W1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             oh.make_node("Conv", ["x", "W2"], ["b"], pads=[1, 1, 1, 1]),
             oh.make_node("Add", ["a", "b"], ["s"]),
             oh.make_node("Mul", ["s", "k"], ["m"]),
             oh.make_node("Relu", ["m"], ["r"]),
             oh.make_node("Flatten", ["r"], ["f"], axis=1),
             oh.make_node("Gemm", ["f", "Wf"], ["y"], transB=1)]
    init = {"W1": rng_array(4, 2, 3, 3, seed=1), "b1": rng_array(4, seed=2), "W2": rng_array(4, 2, 3, 3, seed=3),
            "k": rng_array(1, 4, 1, 1, seed=4, low=0.5), "Wf": rng_array(3, 4 * 5 * 5, seed=5)}
    ann = make_model(nodes, [("x", ["N", 2, 5, 5])], [("y", ["N", 3])], init)
    hoisted, count = _check_exact(ann, {"x": rng_array(6, 2, 5, 5, seed=6)})
    assert count == 4  # Conv, Conv, Add, Mul; the Relu (now IFNeuron) stops it
    assert sorted(_ops_before_tile(hoisted)) == ["Add", "Conv", "Conv", "Mul"]
    assert [n.op_type for n in hoisted.graph.node].count("Tile") == 1


def test_reshape_gemm_head_and_pooling():
    nodes = [oh.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             oh.make_node("Reshape", ["p", "shape"], ["f"]),
             oh.make_node("Gemm", ["f", "W", "c"], ["h"]),
             oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("Gemm", ["r", "W2"], ["y"])]
    init = {"shape": np.array([-1, 8], np.int64), "W": rng_array(8, 6, seed=1), "c": rng_array(6, seed=2),
            "W2": rng_array(6, 3, seed=3)}
    ann = make_model(nodes, [("x", ["N", 2, 4, 4])], [("y", ["N", 3])], init)
    hoisted, count = _check_exact(ann, {"x": rng_array(7, 2, 4, 4, seed=4)})
    assert count == 3 and _ops_before_tile(hoisted) == ["MaxPool", "Reshape", "Gemm"]


def test_no_neuron_everything_runs_once():
    nodes = [oh.make_node("Gemm", ["x", "W"], ["y"])]
    ann = make_model(nodes, [("x", ["N", 4])], [("y", ["N", 2])], {"W": rng_array(4, 2)})
    hoisted, count = _check_exact(ann, {"x": rng_array(3, 4, seed=1)})
    assert count == 1 and _ops_before_tile(hoisted) == ["Gemm"]


def _tiled_graph(nodes, init, out_shape):
    """A graph that already holds a time Tile of x, as AddTimeAxisPass writes it."""
    nodes = [oh.make_node("Tile", ["x", "reps"], ["xt"])] + nodes
    init = dict(init, reps=np.array([T, 1, 1], np.int64))
    return make_model(nodes, [("x", ["N", 2, 3])], [("y", out_shape)], init)


@pytest.mark.parametrize("node, init", [
    (oh.make_node("Concat", ["xt", "xt"], ["y"], axis=0), {}),                 # mixes rows
    (oh.make_node("Transpose", ["xt"], ["y"], perm=[1, 0, 2]), {}),            # moves axis 0
    (oh.make_node("ReduceSum", ["xt", "axes"], ["y"], keepdims=1), {"axes": np.array([0], np.int64)}),
    (oh.make_node("Flatten", ["xt"], ["y"], axis=0), {}),
    (oh.make_node("Shape", ["xt"], ["y"]), {}),                                # sees T·N
    (oh.make_node("Reshape", ["xt", "s"], ["y"]), {"s": np.array([2, -1], np.int64)}),
])
def test_row_mixing_ops_stop_the_hoisting(node, init):
    model = _tiled_graph([node], init, ["?"])
    graph = import_model(model)
    assert HoistTimeInvariantPass(T)(graph).count == 0


def test_elementwise_with_batch_sized_constant_not_hoisted():
    model = _tiled_graph([oh.make_node("Add", ["xt", "c"], ["y"])], {"c": rng_array(T * 2, 2, 3)}, ["TN", 2, 3])
    assert HoistTimeInvariantPass(T)(import_model(model)).count == 0


def test_slice_and_split_on_feature_axes():
    nodes = [oh.make_node("Slice", ["xt", "st", "en", "ax"], ["a"]),
             oh.make_node("Split", ["xt"], ["b", "c"], axis=1),
             oh.make_node("Concat", ["a", "b", "c"], ["y"], axis=1)]
    init = {"st": np.array([1], np.int64), "en": np.array([2], np.int64), "ax": np.array([1], np.int64)}
    model = _tiled_graph(nodes, init, ["TN", 3, 3])
    x = rng_array(3, 2, 3, seed=1)
    want = run(model, {"x": x})
    graph = import_model(model)
    assert HoistTimeInvariantPass(T)(graph).count == 3
    out = export_graph(graph, like=model)
    assert [n.op_type for n in out.graph.node][-1] == "Tile"
    np.testing.assert_array_equal(run(out, {"x": x})[0], want[0])


@pytest.fixture(scope="module")
def mnist_ann():
    return prepare(onnx2snn.load_model(MODELS / "mnist_cnn.onnx"))


def test_mnist_first_conv_runs_once_bit_exact(mnist_ann):
    x = np.load(MODELS / "data" / "mnist_test.npz")["x"][:40]
    hoisted, count = _check_exact(mnist_ann, {"input": x})
    assert count == 1 and _ops_before_tile(hoisted) == ["Conv"]


def test_pipeline_hoists(mnist_ann):
    snn = onnx2snn.build_snn(mnist_ann, {n: np.float32(1.0) for n in activation_names(mnist_ann)},
                             onnx2snn.ConvertConfig(timesteps=3))
    assert _ops_before_tile(snn) == ["Conv"]


def test_cifar_resnet_bit_exact():
    path = SHARED / "models" / "cifar10_resnet32.onnx"
    if not path.exists():
        pytest.skip("../shared/models is not beside this checkout")
    ann = prepare(onnx2snn.load_model(path))
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    hoisted, count = _check_exact(ann, {"input": x}, threads=(2,))
    assert count >= 1 and _ops_before_tile(hoisted)[0] == "Conv"
