import numpy as np
import onnx
import onnx.helper as oh

from conftest import make_model, rng_array, run
from onnx2snn.passes.fold_constants import FoldConstantsPass
from onnx2snn.core.graph import export_graph, import_model


def test_shape_subgraph_folds_and_outputs_match():
    # x.view(x.size(0), -1) as the TorchScript exporter writes it, plus Constant nodes
    nodes = [
        oh.make_node("Shape", ["x"], ["s"]),
        oh.make_node("Constant", [], ["i1"], value=onnx.numpy_helper.from_array(np.array(1, np.int64))),
        oh.make_node("Gather", ["s", "i1"], ["c"], axis=0),
        oh.make_node("Unsqueeze", ["c", "ax0"], ["c1"]),
        oh.make_node("Concat", ["minus1", "c1"], ["shape"], axis=0),
        oh.make_node("Mul", ["x", "two"], ["x2"]),
        oh.make_node("Reshape", ["x2", "shape"], ["y"]),
    ]
    model = make_model(nodes, [("x", ["N", 3, 4])], [("y", ["N", 3])],
                       {"ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
                        "two": np.array(2.0, np.float32)})
    graph = import_model(onnx.shape_inference.infer_shapes(model))
    result = FoldConstantsPass()(graph)
    out = export_graph(graph, like=model)
    onnx.checker.check_model(out)
    ops = [n.op_type for n in out.graph.node]
    assert result.modified
    assert ops == ["Mul", "Reshape"]
    x = rng_array(5, 3, 4)
    np.testing.assert_array_equal(run(model, {"x": x})[0], run(out, {"x": x})[0])


def test_initializers_listed_as_inputs_become_constants():
    model = make_model([oh.make_node("MatMul", ["x", "W"], ["y"])], [("x", [2, 3]), ("W", [3, 4])],
                       [("y", [2, 4])], {"W": rng_array(3, 4)}, ir_version=3, opset=9)
    graph = import_model(model)
    FoldConstantsPass()(graph)
    out = export_graph(graph, like=model)
    assert [i.name for i in out.graph.input] == ["x"]
    assert out.ir_version == 4 and out.opset_import[0].version == 9  # opset 9 needs IR >= 4
    x = rng_array(2, 3)
    np.testing.assert_array_equal(run(model, {"x": x})[0], run(out, {"x": x})[0])


def test_input_model_is_not_modified():
    model = make_model([oh.make_node("Add", ["a", "b"], ["c"]), oh.make_node("Add", ["x", "c"], ["y"])],
                       [("x", [1, 2])], [("y", [1, 2])], {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)})
    before = model.SerializeToString()
    graph = import_model(model)
    FoldConstantsPass()(graph)
    assert model.SerializeToString() == before
    assert [n.op for n in graph.nodes] == ["Add"]
