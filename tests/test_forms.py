"""Runtime forms: streaming and portable against the folded custom-op model.

Tolerances: portable = folded bit for bit (all outputs); streaming per-step
outputs = folded per-step outputs bit for bit; streaming running mean = folded
running mean within float rounding (Σy/t against the folded MatMul readout).
"""
from dataclasses import replace

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS, make_model, rng_array
from onnx2snn.config import Form
from onnx2snn.errors import ConfigError, ConversionError
from onnx2snn.passes.activations import activation_names
from onnx2snn.pipeline import build_snn, prepare
from onnx2snn.runtime.streaming import StreamingSession


def _plain(model, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _with_outputs(model: onnx.ModelProto, names) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend([oh.make_empty_tensor_value_info(n) for n in names])
    return out


def _check_forms(ann, thresholds, config, feeds, v_init=None, per_step=("y_per_step",)):
    """Folded vs portable (exact) and streaming (exact per step, running mean within rounding)."""
    folded = build_snn(ann, thresholds, config, v_init)
    portable = build_snn(ann, thresholds, replace(config, form=Form.PORTABLE), v_init)
    streaming = build_snn(ann, thresholds, replace(config, form=Form.STREAMING), v_init)
    for model in (portable, streaming):
        onnx.checker.check_model(model)
        assert not any(n.domain == "onnx2snn" for n in model.graph.node)
        assert all(o.domain != "onnx2snn" for o in model.opset_import)
    T = config.timesteps
    n = next(iter(feeds.values())).shape[0]
    sess = onnx2snn.InferenceSession(_with_outputs(folded, per_step))
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    got = dict(zip([o.name for o in _plain(portable).get_outputs()], _plain(portable, 2).run(None, feeds)))
    assert got.keys() <= want.keys()
    for name, value in got.items():
        np.testing.assert_array_equal(value, want[name], err_msg=name)
    stream = StreamingSession(streaming).run(feeds)
    for name in per_step:
        base = name[:-len("_per_step")]
        steps = stream[base + "_step"]
        np.testing.assert_array_equal(steps, want[name].reshape((T, n) + steps.shape[2:]))
        np.testing.assert_allclose(stream[base], want[base + "_running_mean"], rtol=1e-5, atol=1e-6)
    return folded, portable, streaming


def _tiny(softmax=False, clip=False):
    nodes = [oh.make_node("Conv", ["x", "W1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             oh.make_node("Clip", ["c1", "lo", "hi"], ["r1"]) if clip else oh.make_node("Relu", ["c1"], ["r1"]),
             oh.make_node("Conv", ["r1", "W2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             oh.make_node("Add", ["c2", "r1"], ["s"]),
             oh.make_node("Relu", ["s"], ["r2"]),
             oh.make_node("GlobalAveragePool", ["r2"], ["p"]),
             oh.make_node("Flatten", ["p"], ["f"]),
             oh.make_node("Gemm", ["f", "Wf", "bf"], ["z" if softmax else "y"], transB=1)]
    if softmax:
        nodes.append(oh.make_node("Softmax", ["z"], ["y"], axis=1))
    init = {"W1": rng_array(3, 2, 3, 3, seed=1), "b1": rng_array(3, seed=2, low=0.0),
            "W2": rng_array(3, 3, 3, 3, seed=3), "b2": rng_array(3, seed=4), "Wf": rng_array(4, 3, seed=5),
            "bf": rng_array(4, seed=6), "lo": np.array(0.0, np.float32), "hi": np.array(0.4, np.float32)}
    return prepare(make_model(nodes, [("x", ["N", 2, 5, 5])], [("y", ["N", 4])], init))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("channel_wise", [False, True])
def test_tiny_graph_forms_agree(reset, channel_wise):
    ann = _tiny()
    rng = np.random.default_rng(1)
    thresholds = {n: (rng.uniform(0.3, 1.0, 3) if channel_wise else np.float32(0.6)).astype(np.float32)
                  for n in activation_names(ann)}
    config = onnx2snn.ConvertConfig(timesteps=7, reset=reset)
    _check_forms(ann, thresholds, config, {"x": rng_array(5, 2, 5, 5, seed=9, low=-0.5)})


def test_softmax_clip_and_v_init():
    ann = _tiny(softmax=True, clip=True)
    names = activation_names(ann)
    thresholds = {n: np.float32(0.7) for n in names}
    v_init = {names[0]: np.full((1, 3, 1, 1), 0.35, np.float32), names[1]: np.float32(0.2)}
    folded, _, streaming = _check_forms(ann, thresholds, onnx2snn.ConvertConfig(timesteps=6),
                                        {"x": rng_array(4, 2, 5, 5, seed=3)}, v_init, per_step=())
    x = rng_array(4, 2, 5, 5, seed=3)
    mean, running = onnx2snn.InferenceSession(folded).run(None, {"x": x})
    got = StreamingSession(streaming).run({"x": x})["y"]
    np.testing.assert_allclose(got, running, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)  # Softmax applied after the averaging
    meta = {p.key: p.value for p in streaming.metadata_props}
    assert meta["onnx2snn.form"] == "streaming" and names[0] + "_v" in meta["onnx2snn.state_init"]


@pytest.fixture(scope="module")
def mnist():
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    result = onnx2snn.convert(model, MODELS / "data" / "mnist_calib.npz",
                              onnx2snn.ConvertConfig(timesteps=12, channel_wise=True))
    return result, np.load(MODELS / "data" / "mnist_test.npz")["x"][:64]


def test_mnist_forms_agree(mnist):
    result, x = mnist
    _check_forms(result.ann, result.thresholds, result.config, {"input": x}, per_step=("logits_per_step",))


def test_streaming_state_in_metadata(mnist):
    result, x = mnist
    model = build_snn(result.ann, result.thresholds, replace(result.config, form=Form.STREAMING))
    meta = {p.key: p.value for p in model.metadata_props}
    s = StreamingSession(model)
    assert len(s.state_inputs) == len(s.state_outputs) == 3 + 2  # 3 neurons, step counter, logits sum
    assert set(s.state_inputs) <= {i.name for i in model.graph.input}
    assert meta["onnx2snn.timesteps"] == "12" and s.outputs == ["logits", "logits_step"]
    state = s.initial_state(2)
    assert state["/relu1/Relu_output_0_v"].shape == (2, 16, 28, 28)
    outs, state = s.step({"input": x[:2]}, state)
    assert outs["logits"].shape == (2, 10) and float(state["onnx2snn_steps"]) == 1.0


def test_streaming_refuses_folded_model(mnist):
    with pytest.raises(ConversionError, match="not a streaming"):
        StreamingSession(mnist[0].model)


def test_low_opset_refused():
    nodes = [oh.make_node("Gemm", ["x", "W", "b"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("Gemm", ["r", "W2", "b2"], ["y"])]
    init = {"W": rng_array(3, 4), "b": rng_array(4), "W2": rng_array(4, 2), "b2": rng_array(2)}
    ann = make_model(nodes, [("x", ["N", 3])], [("y", ["N", 2])], init, opset=9, ir_version=4)
    with pytest.raises(ConversionError, match="opset >= 11"):
        build_snn(ann, {"r": np.float32(1.0)}, onnx2snn.ConvertConfig(timesteps=2, form="streaming"))


def test_config_form():
    assert onnx2snn.ConvertConfig(timesteps=2).form is Form.FOLDED
    assert onnx2snn.ConvertConfig(timesteps=2, form="portable").form is Form.PORTABLE
    with pytest.raises(ConfigError, match="form"):
        onnx2snn.ConvertConfig(timesteps=2, form="unrolled")


@pytest.mark.parametrize("form", ["streaming", "portable"])
def test_cli_form_then_evaluate(tmp_path, capsys, form):
    from onnx2snn.cli.main import main

    out = tmp_path / "snn.onnx"
    assert main(["convert", str(MODELS / "mnist_cnn.onnx"), "-o", str(out), "--calibration-data",
                 str(MODELS / "data" / "mnist_calib.npz"), "-T", "4", "--form", form, "-q"]) == 0
    assert f"{form} form" in capsys.readouterr().out
    model = onnx2snn.load_model(out)
    assert {p.key: p.value for p in model.metadata_props}["onnx2snn.form"] == form
    assert main(["evaluate", str(MODELS / "mnist_cnn.onnx"), str(out), "--data",
                 str(MODELS / "data" / "mnist_test.npz"), "--json", "-q"]) == 0
    assert '"timesteps": 4' in capsys.readouterr().out
