"""Folded SNN runs split into chunks of samples (onnx2snn/chunking.py).

A chunked run must return exactly what one run over the whole batch returns, for
every output (batch on axis 0, the running mean's batch on axis 1), a batch that
is not a multiple of the chunk, a batch smaller than it, several inputs, BIF
neurons and the plain layout; runs that cannot be split without guessing (a fixed
batch, an output without a declared batch axis) run whole.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import onnx2snn
from conftest import MODELS, make_model, rng_array
from onnx2snn.runtime.chunking import chunk_samples
from onnx2snn.errors import ConfigError
from onnx2snn.runtime.memory import estimate


def _mnist_snn(T: int = 4, **config) -> tuple[onnx.ModelProto, str, np.ndarray]:
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    calib = next(iter(np.load(MODELS / "data" / "mnist_calib.npz").values()))
    name = model.graph.input[0].name
    snn = onnx2snn.convert(model, {name: calib[:64]}, onnx2snn.ConvertConfig(timesteps=T, **config)).model
    return snn, name, calib[64:]


def _assert_same_runs(chunked, whole, feeds: dict, names=None) -> None:
    names = names or [o.name for o in whole.get_outputs()]
    for name, got, want in zip(names, chunked.run(names, feeds), whole.run(names, feeds)):
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def _count_runs(monkeypatch) -> list:
    import onnxruntime as ort
    calls, run = [], ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, *a, **k: calls.append(1) or run(self, *a, **k))
    return calls


@pytest.mark.parametrize("blocked", [True, False])
def test_chunked_runs_equal_one_run_on_the_bundled_mnist_snn(blocked, monkeypatch):
    snn, name, x = _mnist_snn(T=4, channel_wise=True)
    per_sample = estimate(snn).largest
    assert per_sample == 4 * 16 * 28 * 28 * 4  # T rows of the first layer's [16, 28, 28] output
    whole = onnx2snn.InferenceSession(snn, blocked_layout=blocked, chunk_bytes=None)
    assert whole.onnx2snn_chunk == 0
    for chunk in (1, 3):
        chunked = onnx2snn.InferenceSession(snn, blocked_layout=blocked, chunk_bytes=chunk * per_sample + 7)
        assert chunked.onnx2snn_chunk == chunk
        calls = _count_runs(monkeypatch)
        chunked.run(None, {name: x[:10]})
        assert len(calls) == -(-10 // chunk)  # really split
        monkeypatch.undo()
        _assert_same_runs(chunked, whole, {name: x[:10]})                        # 10 = 3 + 3 + 3 + 1
        _assert_same_runs(chunked, whole, {name: x[:10]}, ["logits_running_mean"])  # batch on axis 1
        _assert_same_runs(chunked, whole, {name: x[:1]})                         # nothing to split


def test_default_chunk_follows_the_session_threads():
    import onnxruntime as ort
    snn, _, _ = _mnist_snn(T=4)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = onnx2snn.InferenceSession(snn, opts)
    assert session.onnx2snn_chunk == chunk_samples(snn, 2 * 2 * 1024**2) == 4 * 1024**2 // estimate(snn).largest


def test_bif_snn_with_two_inputs_and_slashes_in_names_chunks_exactly():
    c = 8
    nodes = [oh.make_node("Conv", ["in/a", "W1", "b1"], ["/c/a"], pads=[1, 1, 1, 1], name="/conv/a"),
             oh.make_node("Conv", ["in/b", "W1", "b1"], ["/c/b"], pads=[1, 1, 1, 1], name="/conv/b"),
             oh.make_node("Add", ["/c/a", "/c/b"], ["/s"], name="/add"),
             oh.make_node("Relu", ["/s"], ["/r"], name="/relu"),
             oh.make_node("GlobalAveragePool", ["/r"], ["/p"]),
             oh.make_node("Flatten", ["/p"], ["/f"]),
             oh.make_node("Gemm", ["/f", "Wf", "bf"], ["out/y"], transB=1)]
    init = {"W1": rng_array(c, 3, 3, 3, seed=1) * 0.5, "b1": rng_array(c, seed=2) * 0.1,
            "Wf": rng_array(4, c, seed=3), "bf": rng_array(4, seed=4)}
    ann = make_model(nodes, [("in/a", ["B", 3, 10, 10]), ("in/b", ["B", 3, 10, 10])], [("out/y", ["B", 4])], init)
    calib = {"in/a": rng_array(16, 3, 10, 10, seed=5), "in/b": rng_array(16, 3, 10, 10, seed=6)}
    snn = onnx2snn.convert(ann, calib, onnx2snn.ConvertConfig(timesteps=3, neuron="bif")).model
    chunked = onnx2snn.InferenceSession(snn, chunk_bytes=2 * estimate(snn).largest)
    assert chunked.onnx2snn_chunk == 2
    feeds = {"in/a": rng_array(7, 3, 10, 10, seed=7), "in/b": rng_array(7, 3, 10, 10, seed=8)}
    _assert_same_runs(chunked, onnx2snn.InferenceSession(snn, chunk_bytes=None), feeds)


def test_fixed_batch_is_never_split():
    snn, name, x = _mnist_snn(T=2)
    fixed = onnx.ModelProto()
    fixed.CopyFrom(snn)
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 6
    session = onnx2snn.InferenceSession(fixed, chunk_bytes=1)
    assert session.onnx2snn_chunk == 0
    _assert_same_runs(session, onnx2snn.InferenceSession(snn, chunk_bytes=None), {name: x[:6]})


def test_output_without_a_declared_batch_axis_runs_the_whole_batch():
    snn, name, x = _mnist_snn(T=2)
    probe = onnx.ModelProto()
    probe.CopyFrom(snn)
    neuron = next(n.output[0] for n in probe.graph.node if n.op_type == "IFNeuron")
    probe.graph.output.extend([oh.make_empty_tensor_value_info(neuron)])  # [T*N, ...]: time-major rows
    session = onnx2snn.InferenceSession(probe, chunk_bytes=1)
    assert session.onnx2snn_chunk == 1
    got, logits = session.run([neuron, "logits"], {name: x[:5]})
    want = onnx2snn.InferenceSession(probe, chunk_bytes=None).run([neuron, "logits"], {name: x[:5]})
    np.testing.assert_array_equal(got, want[0])
    np.testing.assert_array_equal(logits, want[1])
    _assert_same_runs(session, onnx2snn.InferenceSession(snn, chunk_bytes=None), {name: x[:5]}, ["logits"])


@pytest.mark.parametrize("bad", [0, -5, 1.5, "big", True])
def test_bad_chunk_bytes_is_refused(bad):
    snn, _, _ = _mnist_snn(T=2)
    with pytest.raises(ConfigError, match="chunk_bytes"):
        onnx2snn.InferenceSession(snn, chunk_bytes=bad)


def test_evaluate_reports_its_chunk():
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    data = np.load(MODELS / "data" / "mnist_test.npz")
    name = model.graph.input[0].name
    calib = next(iter(np.load(MODELS / "data" / "mnist_calib.npz").values()))
    snn = onnx2snn.convert(model, {name: calib[:64]}, onnx2snn.ConvertConfig(timesteps=4)).model
    res = onnx2snn.evaluate(model, snn, {name: data["x"][:40]}, data["labels"][:40], batch_size=40)
    assert res.chunk == onnx2snn.InferenceSession(snn).onnx2snn_chunk > 0
    assert res.as_dict()["chunk"] == res.chunk


def test_recurrent_snn_is_never_split():
    from test_rnn import _x, qrnn
    result = onnx2snn.convert(qrnn(), None, onnx2snn.ConvertConfig(timesteps=4, neuron="bif"))
    session = onnx2snn.InferenceSession(result.model, chunk_bytes=1)
    assert session.onnx2snn_chunk == 0  # its input could be sequence-major
    _assert_same_runs(session, onnx2snn.InferenceSession(result.model, chunk_bytes=None), {"x": _x()})


@pytest.mark.parametrize("blocked", [True, False])
def test_path_with_every_tensor_in_external_data(tmp_path, blocked):
    snn, name, x = _mnist_snn(T=2)
    saved = onnx.ModelProto()
    saved.CopyFrom(snn)  # save_model moves the tensors of the proto it is given out
    onnx.save_model(saved, str(tmp_path / "snn.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)  # even Tile's repeats: onnxruntime cannot shape-infer from a path then
    session = onnx2snn.InferenceSession(str(tmp_path / "snn.onnx"), blocked_layout=blocked)
    assert session.onnx2snn_chunk > 0
    _assert_same_runs(session, onnx2snn.InferenceSession(snn, chunk_bytes=None), {name: x[:9]})
