"""The shipped S-MNIST and PS-MNIST quantized IndRNNs (models/make_smnist_qrnn.py), the BasicMotions one
(models/make_har_qrnn.py) and their recurrent BIF SNNs.

On the 300 bundled test digits (``models/data/smnist_test.npz``, the first 300 of the MNIST test
split): the SNN at T_s = T* sub-steps per element, in the exact (cumulative) form, reproduces the
quantized RNN's logits bit for bit; the models have the interface of ``seqmnist_qrnn.onnx`` and
score what a trained model scores. (The folded, spiking form equals the quantized RNN in real
arithmetic; in float32 a pre-activation within rounding of a level boundary can round the other
way, and these models have such ties: see docs/recurrent.md.) The full 10,000-digit comparison
is ``benchmarks/sequence_mnist.py``.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx2snn
from onnx2snn.config import ConvertConfig

from conftest import MODELS, run

N_DIGITS = 300


def digits():
    d = np.load(MODELS / "data" / "smnist_test.npz")
    return d["images"][:N_DIGITS].reshape(-1, 784).astype(np.float32) / 255.0, d["labels"][:N_DIGITS]


def scans(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == "Scan"]


@pytest.mark.parametrize("name,min_accuracy", [("smnist", 0.6), ("psmnist", 0.3)])
def test_exact_snn_equals_quantized_rnn_bit_for_bit(name, min_accuracy):
    model = onnx2snn.load_model(str(MODELS / f"{name}_qrnn.onnx"))
    x, labels = digits()
    (want,) = run(model, {"image": x})
    assert (want.argmax(1) == labels).mean() >= min_accuracy  # a trained model, not a random one
    t_star = onnx2snn.convert(model, None, ConvertConfig(timesteps=1)).exact_timesteps
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=t_star, form="cumulative"))
    recs = result.recurrences
    assert len(recs) == len(scans(model)) >= 2  # stacked layers, each Scan converted on its own
    assert all(r.substeps == r.exact_substeps == t_star and r.sequence_length == 784 for r in recs)
    got = onnx2snn.InferenceSession(result.model.SerializeToString()).run(["logits"], {"image": x})[0]
    assert got.shape == want.shape == (N_DIGITS, 10)
    assert (got.argmax(1) == want.argmax(1)).all()
    assert (got == want).all(), f"{int((got != want).any(1).sum())} digits with logits that differ"


@pytest.mark.parametrize("name", ["smnist", "psmnist"])
def test_interface_and_recurrent_cell(name):
    model = onnx.load(str(MODELS / f"{name}_qrnn.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 13 and [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "image" and [d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [784]
    assert out.name == "logits" and [d.dim_value for d in out.type.tensor_type.shape.dim][1:] == [10]
    for scan in scans(model):  # IndRNN: the recurrent weight is a Mul by a constant vector, |u| <= 1
        body = next(a.g for a in scan.attribute if a.name == "body")
        consts = {t.name: onnx.numpy_helper.to_array(t) for t in body.initializer}
        (mul,) = [n for n in body.node if n.op_type == "Mul" and body.input[0].name in n.input]
        u = consts[next(i for i in mul.input if i in consts)]
        assert u.ndim == 1 and np.abs(u).max() <= 1
    gathers = [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == "image"]
    if name == "psmnist":  # the permutation is applied inside the graph, as a constant Gather on the pixels
        (gather,) = gathers
        perm = next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == gather.input[1])
        assert sorted(perm.tolist()) == list(range(784)) and (perm != np.arange(784)).any()
    else:
        assert not gathers


def test_activity_recognition_snn_equals_quantized_rnn_bit_for_bit():
    """The second sequence case (models/make_har_qrnn.py): BasicMotions, 100 elements × 6 IMU channels."""
    model = onnx2snn.load_model(str(MODELS / "har_qrnn.onnx"))
    d = np.load(MODELS / "data" / "basicmotions.npz")
    x, labels = d["x_test"], d["y_test"]
    assert x.shape == (40, 100, 6)
    (want,) = run(model, {"x": x})
    assert (want.argmax(1) == labels).mean() >= 0.9
    for form in ("cumulative", "folded"):  # here both forms are bit-identical (no boundary ties)
        result = onnx2snn.convert(model, None, ConvertConfig(timesteps=16, form=form))
        assert [(r.substeps, r.exact_substeps, r.sequence_length) for r in result.recurrences] == [(16, 16, 100)] * 2
        got = onnx2snn.InferenceSession(result.model.SerializeToString()).run(["logits"], {"x": x})[0]
        assert (got == want).all(), form
