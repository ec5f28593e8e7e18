"""Output shape inference of the library's ops, registered with onnxruntime.

Every op (IFNeuron, BIFNeuron, TSNeuron, BIFCount) gives its output the shape of
input 0 (IFNeuron and BIFNeuron with repeat_input = 1: dim 0 times timesteps), so
onnxruntime knows the shapes after an onnx2snn op where the model declares none. A
shape that is not fully known stays unknown rather than becoming a wrong one.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

from onnx2snn import register

T = 2
OPS = {  # op: (inputs, attributes)
    "IFNeuron": (["X", "threshold"], {"timesteps": T}),
    "BIFNeuron": (["X", "threshold"], {"timesteps": T, "levels": 2}),
    "TSNeuron": (["X", "threshold"], {"timesteps": T}),
    "BIFCount": (["X"], {"timesteps": T, "levels": 2}),
}


def _session(op, x_shape, inputs=None, **extra) -> ort.InferenceSession:
    """X of ``x_shape`` -> op -> Relu -> Z, no shape declared for the op's output or Z."""
    names, attrs = OPS[op]
    names = inputs or names
    node = oh.make_node(op, names, ["Y"], domain="onnx2snn", name="n0", **attrs, **extra)
    graph = oh.make_graph(
        [node, oh.make_node("Relu", ["Y"], ["Z"])], "shapes",
        [oh.make_tensor_value_info("X", onnx.TensorProto.FLOAT, x_shape)]
        + [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names[1:] if n],
        [oh.make_tensor_value_info("Z", onnx.TensorProto.FLOAT, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13), oh.make_opsetid("onnx2snn", 1)],
                          ir_version=8)
    return ort.InferenceSession(model.SerializeToString(), register(ort.SessionOptions()),
                                providers=["CPUExecutionProvider"])


def _feeds(session, x):
    return {i.name: (x if i.name == "X" else np.ones((), np.float32)) for i in session.get_inputs()}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("x_shape", [[6, 3, 4], ["TN", 3, 4], [4, "C", 5, 5]])
def test_output_has_the_shape_of_input_0(op, x_shape):
    session = _session(op, x_shape)
    assert session.get_outputs()[0].shape == x_shape
    concrete = [d if isinstance(d, int) else 4 for d in x_shape]
    (z,) = session.run(None, _feeds(session, np.zeros(concrete, np.float32)))
    assert list(z.shape) == concrete


@pytest.mark.parametrize("op", ["IFNeuron", "BIFNeuron"])
def test_repeat_input_multiplies_dim_0_by_timesteps(op):
    session = _session(op, [3, 2, 4, 4], repeat_input=1)
    assert session.get_outputs()[0].shape == [T * 3, 2, 4, 4]
    (z,) = session.run(None, _feeds(session, np.zeros((3, 2, 4, 4), np.float32)))
    assert z.shape == (T * 3, 2, 4, 4)
    assert _session(op, ["N", 2, 4, 4], repeat_input=1).get_outputs()[0].shape == []  # T*N: no symbol for it


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("x_shape", [None, [6, None, 4]])
def test_a_shape_not_fully_known_stays_unknown(op, x_shape):
    # [] is how onnxruntime shows "no shape"; never a -1 or a rank-0 shape taken for known
    assert _session(op, x_shape).get_outputs()[0].shape == []


def test_missing_optional_input_before_a_given_one():
    session = _session("IFNeuron", ["TN", 3], inputs=["X", "threshold", "", "X2"])
    assert session.get_outputs()[0].shape == ["TN", 3]
    x = np.ones((4, 3), np.float32)
    (z,) = session.run(None, {"X": x, "threshold": np.ones((), np.float32), "X2": x})
    assert z.shape == (4, 3)
