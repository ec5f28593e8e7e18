"""Shared test helpers: tiny ONNX graphs and onnxruntime runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHARED = REPO.parent / "shared"


def make_model(nodes, inputs, outputs, initializers=(), opset=13, ir_version=8) -> onnx.ModelProto:
    """A model from helper-made nodes; ``inputs``/``outputs`` are (name, shape) pairs (float32)."""
    graph = oh.make_graph(
        nodes, "tiny",
        [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs],
        [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs],
        [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, feeds: dict, session_factory=None) -> list[np.ndarray]:
    if session_factory is None:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    else:
        sess = session_factory(model)
    return sess.run(None, feeds)


def rng_array(*shape, seed=0, low=-1.0, high=1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
