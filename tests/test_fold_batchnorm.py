import numpy as np
import onnx
import onnx.helper as oh
import pytest

from conftest import make_model, rng_array, run
from onnx2snn.passes.fold_batchnorm import FoldBatchNormPass
from onnx2snn.core.graph import export_graph, import_model


def bn_params(c, seed=1):
    r = np.random.default_rng(seed)
    return {"g": r.uniform(0.5, 1.5, c).astype(np.float32), "b": r.normal(size=c).astype(np.float32),
            "m": r.normal(size=c).astype(np.float32), "v": r.uniform(0.5, 2.0, c).astype(np.float32)}


def check_fold(model, feeds, expected_count=1, tol=1e-5):
    graph = import_model(model)
    result = FoldBatchNormPass()(graph)
    out = export_graph(graph, like=model)
    onnx.checker.check_model(out)
    assert result.count == expected_count
    assert sum(n.op_type == "BatchNormalization" for n in out.graph.node) == \
        sum(n.op_type == "BatchNormalization" for n in model.graph.node) - expected_count
    np.testing.assert_allclose(run(out, feeds)[0], run(model, feeds)[0], rtol=tol, atol=tol)
    return out


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("group", [1, 2])
def test_conv_bn(bias, group):
    inits = {"W": rng_array(4, 4 // group, 3, 3, seed=2), **bn_params(4)}
    if bias:
        inits["B"] = rng_array(4, seed=3)
    nodes = [oh.make_node("Conv", ["x", "W"] + (["B"] if bias else []), ["c"], group=group, pads=[1, 1, 1, 1]),
             oh.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], epsilon=1e-3)]
    model = make_model(nodes, [("x", ["N", 4, 5, 5])], [("y", ["N", 4, 5, 5])], inits)
    check_fold(model, {"x": rng_array(2, 4, 5, 5)})


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias", ["none", "vector", "row"])
def test_gemm_bn(trans_b, bias):
    inits = {"B": rng_array(*((3, 6) if trans_b else (6, 3)), seed=4), **bn_params(3)}
    ins = ["x", "B"]
    if bias != "none":
        inits["C"] = rng_array(*((3,) if bias == "vector" else (1, 3)), seed=5)
        ins.append("C")
    nodes = [oh.make_node("Gemm", ins, ["g1"], transB=trans_b, alpha=0.5, beta=2.0),
             oh.make_node("BatchNormalization", ["g1", "g", "b", "m", "v"], ["y"])]
    model = make_model(nodes, [("x", ["N", 6])], [("y", ["N", 3])], inits)
    check_fold(model, {"x": rng_array(4, 6)})


@pytest.mark.parametrize("with_add", [False, True])
def test_matmul_bn(with_add):
    inits = {"W": rng_array(6, 3, seed=6), "c": rng_array(3, seed=7), **bn_params(3)}
    nodes = [oh.make_node("MatMul", ["x", "W"], ["h"])]
    if with_add:
        nodes.append(oh.make_node("Add", ["h", "c"], ["h2"]))
    nodes.append(oh.make_node("BatchNormalization", ["h2" if with_add else "h", "g", "b", "m", "v"], ["y"]))
    model = make_model(nodes, [("x", ["N", 6])], [("y", ["N", 3])], inits)
    check_fold(model, {"x": rng_array(4, 6)})


def test_bn_not_folded_when_conv_output_is_shared():
    inits = {"W": rng_array(2, 2, 1, 1), **bn_params(2)}
    nodes = [oh.make_node("Conv", ["x", "W"], ["c"]),
             oh.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"]),
             oh.make_node("Add", ["c", "bn"], ["y"])]
    model = make_model(nodes, [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])], inits)
    check_fold(model, {"x": rng_array(1, 2, 3, 3)}, expected_count=0)


def test_bn_opset9_folded():
    inits = {"W": rng_array(3, 1, 3, 3), **bn_params(3)}
    nodes = [oh.make_node("Conv", ["x", "W"], ["c"]),
             oh.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"])]
    model = make_model(nodes, [("x", [2, 1, 6, 6])], [("y", [2, 3, 4, 4])], inits, opset=9, ir_version=4)
    out = check_fold(model, {"x": rng_array(2, 1, 6, 6)})
    assert out.opset_import[0].version == 9 and out.ir_version == 4
