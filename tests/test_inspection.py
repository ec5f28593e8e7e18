"""onnx2snn.inspection: the data behind `onnx2snn inspect` (the CLI only prints it)."""
import numpy as np
import onnx.helper as oh

from conftest import make_model
from onnx2snn.inspection import Row, inspect_model
from test_rnn import qrnn


def test_unsupported_node_is_named_with_its_op_type():
    nodes = [oh.make_node("Conv", ["x", "W"], ["c"], name="/conv"), oh.make_node("Relu", ["c"], ["r"], name="/relu"),
             oh.make_node("HardSwish", ["r"], ["h"], name="/hs"), oh.make_node("Relu", ["h"], ["y"], name="/relu2")]
    model = make_model(nodes, [("x", ["N", 1, 4, 4])], [("y", ["N", 2, 4, 4])],
                       {"W": np.ones((2, 1, 1, 1), np.float32)}, opset=14)
    report = inspect_model(model)
    assert not report.convertible and not report.recurrent and report.cells == []
    assert (report.nodes, report.opset) == (4, 14)
    assert list(report.offenders) == ["/hs"] and "HardSwish" in report.offenders["/hs"]
    assert report.statuses["/relu"] == "becomes IFNeuron"
    bad = [row for row in report.rows if row.unsupported]
    assert [(row.op, row.count) for row in bad] == [("HardSwish", 1)]
    assert report.rows[-1] is bad[0]  # unsupported rows come last
    assert Row("Relu", "becomes IFNeuron", 2) in report.rows


def test_recurrent_cell_with_a_float_activation():
    assert inspect_model(qrnn()).convertible
    report = inspect_model(qrnn(act="relu"))
    assert report.recurrent and [cell.scan for cell in report.cells] == ["rnn"]
    (cell,) = report.cells
    assert cell.error is None and any(row.op == "Relu" and row.unsupported for row in cell.rows)
    assert list(report.offenders) == ["rnn/q_relu"] and "float activation" in report.offenders["rnn/q_relu"]


def test_ops_after_the_last_layer_are_said_to_run_once_after_the_readout():
    nodes = [oh.make_node("Conv", ["x", "W"], ["c"], name="/conv"), oh.make_node("Relu", ["c"], ["r"], name="/relu"),
             oh.make_node("Conv", ["r", "W2"], ["z"], name="/head"), oh.make_node("Sigmoid", ["z"], ["y"], name="/sig")]
    model = make_model(nodes, [("x", ["N", 1, 4, 4])], [("y", ["N", 2, 4, 4])],
                       {"W": np.ones((2, 1, 1, 1), np.float32), "W2": np.ones((2, 2, 1, 1), np.float32)}, opset=14)
    report = inspect_model(model)
    assert report.convertible
    assert report.statuses["/sig"] == "runs once after the readout, on the averaged values"
    assert report.statuses["/head"] == "kept (runs on every step)"


def test_input_side_ops_are_said_to_run_once_before_the_time_axis():
    from test_analog_head import embedding_model

    report = inspect_model(embedding_model())
    assert report.convertible
    assert report.statuses["/emb/Gather"] == "runs once per sample before the time axis (input-side)"
    assert report.statuses["/fc1"] == "kept (runs on every step)"
