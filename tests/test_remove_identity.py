import numpy as np
import onnx
import onnx.helper as oh

from conftest import make_model, rng_array, run
from onnx2snn.passes.remove_identity import RemoveIdentityPass
from onnx2snn.core.graph import export_graph, import_model


def test_identity_and_dropout_removed_output_name_kept():
    nodes = [oh.make_node("Identity", ["x"], ["a"]), oh.make_node("Dropout", ["a"], ["b"]),
             oh.make_node("Relu", ["b"], ["c"]), oh.make_node("Identity", ["c"], ["y"])]
    model = make_model(nodes, [("x", ["N", 4])], [("y", ["N", 4])])
    graph = import_model(model)
    result = RemoveIdentityPass()(graph)
    out = export_graph(graph, like=model)
    onnx.checker.check_model(out)
    assert result.count == 2
    assert [n.op_type for n in out.graph.node] == ["Relu", "Identity"]
    assert out.graph.output[0].name == "y"
    x = rng_array(3, 4)
    np.testing.assert_array_equal(run(model, {"x": x})[0], run(out, {"x": x})[0])
