import numpy as np
import onnx
import onnx.helper as oh

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
