import numpy as np
import onnx.helper as oh
import pytest

from conftest import make_model
from onnx2snn import UnsupportedOpError, prepare
from onnx2snn.passes.check_support import find_unsupported
from onnx2snn.core.graph import import_model


def test_every_offending_node_is_named():
    """Between neurons (before the first, and after the last, any op runs once: passes/tail.py)."""
    nodes = [oh.make_node("Relu", ["x0"], ["x"], name="first"),
             oh.make_node("Sigmoid", ["x"], ["a"], name="/act/Sigmoid"),
             oh.make_node("Tanh", ["a"], ["b"], name="/act/Tanh"),
             oh.make_node("Mul", ["b", "x"], ["c"], name="gate"),
             oh.make_node("Relu", ["c"], ["y"], name="ok")]
    model = make_model(nodes, [("x0", ["N", 4])], [("y", ["N", 4])])
    with pytest.raises(UnsupportedOpError) as info:
        prepare(model)
    msg = str(info.value)
    for name, op in [("/act/Sigmoid", "Sigmoid"), ("/act/Tanh", "Tanh"), ("gate", "Mul")]:
        assert f"'{name}' ({op})" in msg
    assert "'ok'" not in msg
    assert len(info.value.offenders) == 3


@pytest.mark.parametrize("node, reason", [
    (oh.make_node("Concat", ["x", "x"], ["y"], axis=0), "batch axis"),
    (oh.make_node("Transpose", ["x"], ["y"], perm=[1, 0]), "batch axis"),
    (oh.make_node("Flatten", ["x"], ["y"], axis=0), "batch axis"),
    (oh.make_node("ReduceMean", ["x"], ["y"], axes=[0]), "batch axis"),
    (oh.make_node("Clip", ["x", "lo"], ["y"]), "not a ReLU"),
    (oh.make_node("LeakyRelu", ["x"], ["y"]), "no spiking equivalent"),
    (oh.make_node("Gather", ["x", "idx"], ["y"], axis=0), "batch axis"),
    (oh.make_node("Gather", ["x", "x"], ["y"], axis=1), "computed from activations"),
])
def test_batch_mixing_and_nonlinear_ops_rejected(node, reason):
    """Between two neurons; before the first or after the last the same ops run once (passes/tail.py)."""
    model = make_model([oh.make_node("Relu", ["x0"], ["x"]), node, oh.make_node("Relu", ["y"], ["z"])],
                       [("x0", ["N", 4])], [("z", ["N", 4])],
                       {"lo": np.array(-1.0, np.float32), "idx": np.array([0, 1, 2, 3], np.int64)})
    offenders = find_unsupported(import_model(model))
    assert len(offenders) == 1 and reason in offenders[0][2]


def test_final_softmax_accepted_inner_softmax_rejected():
    final = make_model([oh.make_node("Relu", ["x"], ["r"]), oh.make_node("Softmax", ["r"], ["y"])],
                       [("x", ["N", 4])], [("y", ["N", 4])])
    assert find_unsupported(import_model(final)) == []
    inner = make_model([oh.make_node("Relu", ["x"], ["r"]), oh.make_node("Softmax", ["r"], ["s"], name="sm"),
                        oh.make_node("Relu", ["s"], ["y"])], [("x", ["N", 4])], [("y", ["N", 4])])
    assert [o[:2] for o in find_unsupported(import_model(inner))] == [("sm", "Softmax")]


def test_linear_ops_with_constants_accepted():
    nodes = [oh.make_node("Mul", ["x", "s"], ["a"]), oh.make_node("Sub", ["a", "s"], ["b"]),
             oh.make_node("Div", ["b", "s"], ["c"]), oh.make_node("Clip", ["c", "zero", "six"], ["d"]),
             oh.make_node("Pad", ["d", "pads"], ["y"])]
    model = make_model(nodes, [("x", ["N", 4])], [("y", ["N", 6])],
                       {"s": np.array(2.0, np.float32), "zero": np.array(0.0, np.float32),
                        "six": np.array(6.0, np.float32), "pads": np.array([0, 1, 0, 1], np.int64)})
    assert find_unsupported(import_model(model)) == []
