import numpy as np
import onnx
import onnx.helper as oh

from conftest import make_model, rng_array, run
from onnx2snn.passes.move_maxpool import MoveMaxPoolPass
from onnx2snn.core.graph import export_graph, import_model


def test_relu_maxpool_swapped_exactly():
    nodes = [oh.make_node("Relu", ["x"], ["r"]),
             oh.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             oh.make_node("Add", ["p", "p"], ["y"]),
             oh.make_node("GlobalAveragePool", ["r"], ["g"])]  # the Relu keeps another consumer
    model = make_model(nodes, [("x", ["N", 2, 4, 4])], [("y", ["N", 2, 2, 2]), ("g", ["N", 2, 1, 1])])
    graph = import_model(model)
    result = MoveMaxPoolPass()(graph)
    out = export_graph(graph, like=model)
    onnx.checker.check_model(out)
    assert result.count == 1
    pool = next(n for n in out.graph.node if n.op_type == "MaxPool")
    assert pool.input[0] == "x"
    x = rng_array(3, 2, 4, 4)
    for a, b in zip(run(model, {"x": x}), run(out, {"x": x})):
        np.testing.assert_array_equal(a, b)
