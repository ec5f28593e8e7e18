import numpy as np
import onnx
import onnx.helper as oh
import pytest

from conftest import make_model, rng_array, run
from onnx2snn.snn.time_axis import AddTimeAxisPass
from onnx2snn.core.graph import export_graph, import_model


def test_inputs_tiled_time_major_and_fixed_batch_reshape_follows():
    # fixed batch 2: the exporter hard-coded [2, -1] in the Reshape
    nodes = [oh.make_node("Reshape", ["x", "shape"], ["y"])]
    model = make_model(nodes, [("x", [2, 3, 2])], [("y", [2, 6])], {"shape": np.array([2, -1], np.int64)})
    graph = import_model(model)
    result = AddTimeAxisPass(4)(graph)
    out = export_graph(graph, like=model)
    onnx.checker.check_model(out)
    assert result.count == 2  # one Tile, one Reshape fixed
    x = rng_array(2, 3, 2)
    y = run(out, {"x": x})[0]
    assert y.shape == (8, 6)
    for t in range(4):  # row t*N + n is step t of sample n
        np.testing.assert_array_equal(y[t * 2:(t + 1) * 2], x.reshape(2, 6))


def _per_sample_constant_model(op: str, relu: bool):
    """x [2, 3] (fixed batch 2) meets a constant with one row per sample: Add or Concat(axis=1)."""
    c = oh.make_tensor("C", onnx.TensorProto.FLOAT, [2, 3], [-1.0, 0.5, 2.0, 0.25, -0.5, 1.0])
    w = oh.make_tensor("W", onnx.TensorProto.FLOAT, [6 if op == "Concat" else 3, 2], list(np.linspace(-1, 1, 12 if op == "Concat" else 6)))
    first = (oh.make_node("Concat", ["x", "C"], ["h"], axis=1) if op == "Concat"
             else oh.make_node("Add", ["x", "C"], ["h"]))
    nodes = [first] + ([oh.make_node("Relu", ["h"], ["r"])] if relu else []) + [
        oh.make_node("MatMul", ["r" if relu else "h", "W"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 2])], [c, w])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    return model



@pytest.mark.parametrize("op", ["Add", "Concat"])
def test_a_constant_with_one_row_per_sample_of_a_fixed_batch_is_tiled(op):
    """Row t·B + b of the folded batch meets the constant's row b: without neurons the SNN is the
    ANN itself (exact); with a neuron between, each sample gets its own row's current."""
    import onnx2snn

    x = rng_array(8, 3, seed=3)
    exact = _per_sample_constant_model(op, relu=False)
    snn = onnx2snn.convert(exact, {"x": x}, onnx2snn.ConvertConfig(timesteps=4)).model
    assert any(n.op_type == "Tile" and n.input[0] == "C" for n in snn.graph.node) or \
        any(n.op_type == op and "C" in n.input for n in snn.graph.node)  # hoisted: the op reads C once
    np.testing.assert_allclose(onnx2snn.InferenceSession(snn).run(["y"], {"x": x[:2]})[0],
                               run(exact, {"x": x[:2]})[0], rtol=1e-6, atol=1e-6)
    spiking = _per_sample_constant_model(op, relu=True)
    snn = onnx2snn.convert(spiking, {"x": x}, onnx2snn.ConvertConfig(timesteps=512)).model
    got = onnx2snn.InferenceSession(snn).run(["y"], {"x": x[:2]})[0]
    np.testing.assert_allclose(got, run(spiking, {"x": x[:2]})[0], atol=0.05)


def test_a_batch_dependent_constant_of_a_dynamic_batch_is_refused():
    import onnx2snn
    from onnx2snn.errors import UnsupportedOpError

    model = _per_sample_constant_model("Add", relu=True)
    model.graph.node.insert(0, oh.make_node("Relu", ["x0"], ["x"]))  # between neurons: before the first it runs once
    model.graph.input[0].name = "x0"
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    with pytest.raises(UnsupportedOpError, match="constant operand 'C' has 2 rows along the batch axis"):
        onnx2snn.convert(model, {"x0": rng_array(2, 3)}, onnx2snn.ConvertConfig(timesteps=4))


@pytest.mark.parametrize("target", [[1, 6], [6], [3, 2], [2, -1], [-1]], ids=str)
def test_a_reshape_that_merges_or_splits_the_fixed_batch_keeps_each_step_block(target):
    """Block t of the folded tensor is the ANN's tensor at step t: a constant target's first entry
    k becomes T·k, so the SNN (no neuron: exact) gives the ANN's output whatever the target."""
    import onnx2snn

    shape = [abs(d) if d != -1 else 6 // int(np.prod([e for e in target if e != -1])) for d in target]
    nodes = [oh.make_node("Reshape", ["x", "shape"], ["y"])]
    model = make_model(nodes, [("x", [2, 3])], [("y", shape)], {"shape": np.array(target, np.int64)})
    x = rng_array(2, 3, seed=4)
    snn = onnx2snn.convert(model, {"x": x}, onnx2snn.ConvertConfig(timesteps=4)).model
    got = onnx2snn.InferenceSession(snn).run(["y"], {"x": x})[0]
    np.testing.assert_array_equal(got, run(model, {"x": x})[0])
