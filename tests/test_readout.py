import numpy as np
import onnx
import onnx.helper as oh
import pytest

from conftest import make_model, rng_array, run
from onnx2snn.snn.readout import ReadoutPass
from onnx2snn.core.graph import export_graph, import_model
from onnx2snn.snn.readout import running_mean_matrix


def test_running_mean_matrix():
    L = running_mean_matrix(3)
    np.testing.assert_allclose(L, [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-7)


@pytest.mark.parametrize("opset", [9, 13, 18])
@pytest.mark.parametrize("softmax", [False, True])
def test_readout_averages_steps_and_applies_softmax_after(opset, softmax):
    T, N, K = 4, 3, 5
    nodes = [oh.make_node("Gemm", ["x", "W", "C"], ["z" if softmax else "y"])]
    if softmax:
        nodes.append(oh.make_node("Softmax", ["z"], ["y"], axis=1))
    model = make_model(nodes, [("x", ["N", 2])], [("y", ["N", K])], {"W": rng_array(2, K), "C": np.zeros(K, np.float32)},
                       opset=opset, ir_version=4 if opset == 9 else 8)
    graph = import_model(model)
    ReadoutPass(T)(graph)
    out = export_graph(graph, like=model)
    onnx.checker.check_model(out)
    assert [o.name for o in out.graph.output] == ["y", "y_running_mean"]
    assert all(n.op_type != "CumSum" for n in out.graph.node)
    x = rng_array(T * N, 2, seed=3)  # already time-folded input: T steps of N samples
    mean, running = run(out, {"x": x})
    per_step = (x @ onnx.numpy_helper.to_array(model.graph.initializer[0])).reshape(T, N, K)
    expect = np.cumsum(per_step, axis=0) / np.arange(1, T + 1)[:, None, None]
    if softmax:
        expect = np.exp(expect) / np.exp(expect).sum(-1, keepdims=True)
    assert running.shape == (T, N, K) and mean.shape == (N, K)
    np.testing.assert_allclose(running, expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mean, running[-1])


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_long_readout_uses_cumsum_in_linear_memory(monkeypatch, reduce):
    """Beyond MATRIX_BYTES the T×T matrix is not built: CumSum (÷ t for the mean), same values."""
    import onnx2snn.snn.readout as readout
    monkeypatch.setattr(readout, "MATRIX_BYTES", 4 * 5 * 5)  # T = 6 > 5: the long path
    T, N, K = 6, 2, 3
    model = make_model([oh.make_node("Gemm", ["x", "W", "C"], ["y"])], [("x", ["N", 2])], [("y", ["N", K])],
                       {"W": rng_array(2, K), "C": np.zeros(K, np.float32)})
    graph = import_model(model)
    ReadoutPass(T, reduce=reduce)(graph)
    out = export_graph(graph, like=model)
    assert any(n.op_type == "CumSum" for n in out.graph.node)
    assert all(n.op_type != "MatMul" for n in out.graph.node)
    x = rng_array(T * N, 2, seed=3)
    mean, running = run(out, {"x": x})
    per_step = (x @ onnx.numpy_helper.to_array(model.graph.initializer[0])).reshape(T, N, K)
    expect = np.cumsum(per_step, axis=0)
    if reduce == "mean":
        expect = expect / np.arange(1, T + 1)[:, None, None]
    np.testing.assert_allclose(running, expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mean, running[-1])


def test_long_readout_below_opset_11_is_refused_before_work(monkeypatch):
    import onnx2snn.snn.readout as readout
    from onnx2snn.errors import ConversionError
    monkeypatch.setattr(readout, "MATRIX_BYTES", 4 * 5 * 5)
    model = make_model([oh.make_node("Gemm", ["x", "W", "C"], ["y"])], [("x", ["N", 2])], [("y", ["N", 3])],
                       {"W": rng_array(2, 3), "C": np.zeros(3, np.float32)}, opset=9, ir_version=4)
    with pytest.raises(ConversionError, match="opset 11"):
        ReadoutPass(6)(import_model(model))
