"""Quantized activations → BIF neurons: detection of each pattern, exact equality with the
quantized ANN after the guaranteed number of steps, refusals, and the CLI."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from onnx2snn.cli.main import main
from onnx2snn.config import ConvertConfig
from onnx2snn.errors import ConfigError, UnsupportedOpError
from onnx2snn.core.graph import import_model
from onnx2snn.passes.quantizers import DetectQuantizedActivationsPass, quantizers_from_metadata

from conftest import make_model, run

F32 = np.float32
L, LAM = 4, 1.5


def _const(name, value, dtype=F32):
    return name, np.asarray(value, dtype)


def _quant(kind: str, p: str, x: str, out: str):
    """Nodes and initializers of one quantized activation ``out = q(x)`` written in style ``kind``."""
    if kind == "qcfs":  # QCFS as the TorchScript exporter writes it
        nodes = [oh.make_node("Div", [x, p + "lam"], [p + "a"]),
                 oh.make_node("Clip", [p + "a", p + "zero", p + "one"], [p + "b"]),
                 oh.make_node("Mul", [p + "b", p + "L"], [p + "c"]),
                 oh.make_node("Add", [p + "c", p + "half"], [p + "d"]),
                 oh.make_node("Floor", [p + "d"], [p + "e"], name=p + "floor"),
                 oh.make_node("Div", [p + "e", p + "L"], [p + "f"]),
                 oh.make_node("Mul", [p + "f", p + "lam"], [out])]
        inits = [_const(p + "lam", LAM), _const(p + "zero", 0), _const(p + "one", 1), _const(p + "L", L),
                 _const(p + "half", 0.5)]
    elif kind in ("relu_mul_floor", "gain"):  # Relu → Mul(L/λ) → Floor → Clip(0, L) → Mul(λ/L or other)
        out_step = LAM / L if kind == "relu_mul_floor" else 0.3
        nodes = [oh.make_node("Relu", [x], [p + "r"]),
                 oh.make_node("Mul", [p + "r", p + "in"], [p + "a"]),
                 oh.make_node("Floor", [p + "a"], [p + "b"], name=p + "floor"),
                 oh.make_node("Clip", [p + "b", p + "zero", p + "L"], [p + "c"]),
                 oh.make_node("Mul", [p + "out", p + "c"], [out])]
        inits = [_const(p + "in", L / LAM), _const(p + "zero", 0), _const(p + "L", L), _const(p + "out", out_step)]
    elif kind == "round":  # Div(λ/L) → Round → Clip(0, L) → Div(L/λ)
        nodes = [oh.make_node("Div", [x, p + "step"], [p + "a"]),
                 oh.make_node("Round", [p + "a"], [p + "b"], name=p + "round"),
                 oh.make_node("Clip", [p + "b", p + "zero", p + "L"], [p + "c"]),
                 oh.make_node("Div", [p + "c", p + "inv"], [out])]
        inits = [_const(p + "step", LAM / L), _const(p + "zero", 0), _const(p + "L", L),
                 _const(p + "inv", L / LAM)]
    elif kind in ("qdq", "qdq_channel"):  # Relu → QuantizeLinear(uint8, zp 0) → DequantizeLinear
        scale = np.float32(0.02) if kind == "qdq" else np.linspace(0.015, 0.03, 4, dtype=F32)
        zp = np.zeros(np.shape(scale), np.uint8)
        nodes = [oh.make_node("Relu", [x], [p + "r"]),
                 oh.make_node("QuantizeLinear", [p + "r", p + "s", p + "z"], [p + "q"], axis=1),
                 oh.make_node("DequantizeLinear", [p + "q", p + "s", p + "z"], [out], axis=1)]
        inits = [(p + "s", scale), (p + "z", zp)]
    else:
        raise ValueError(kind)
    return nodes, inits


def quantized_net(kind: str, seed: int = 0, qdq_weights: bool = False) -> onnx.ModelProto:
    """Conv → q → Conv (+ residual) → q → AveragePool → Flatten → Gemm, input [N, 1, 6, 6]."""
    rng = np.random.default_rng(seed)
    n1, i1 = _quant(kind, "q1", "c1", "a1")
    n2, i2 = _quant(kind, "q2", "s2", "a2")
    w1 = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(F32)
    inits = dict(i1 + i2, b1=rng.normal(0, 0.2, 4).astype(F32),
                 w2=rng.normal(0, 0.4, (4, 4, 3, 3)).astype(F32), b2=rng.normal(0, 0.2, 4).astype(F32),
                 w3=rng.normal(0, 0.3, (5, 4 * 3 * 3)).astype(F32), b3=rng.normal(0, 0.2, 5).astype(F32))
    nodes = []
    if qdq_weights:  # int8 weights with a per-channel scale, dequantized in the graph
        scale = (np.abs(w1).reshape(4, -1).max(1) / 127).astype(F32)
        inits.update(w1_q=np.round(w1 / scale[:, None, None, None]).astype(np.int8), w1_s=scale,
                     w1_z=np.zeros(4, np.int8))
        nodes.append(oh.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0))
    else:
        inits["w1"] = w1
    nodes += [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1])] + n1 + [
        oh.make_node("Conv", ["a1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        oh.make_node("Add", ["c2", "a1"], ["s2"])] + n2 + [
        oh.make_node("AveragePool", ["a2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        oh.make_node("Flatten", ["p"], ["f"]),
        oh.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    return make_model(nodes, [("x", ["N", 1, 6, 6])], [("y", ["N", 5])], inits)


KINDS = ["qcfs", "relu_mul_floor", "round", "gain", "qdq", "qdq_channel"]
LEVELS = {"qdq": 255, "qdq_channel": 255}


@pytest.mark.parametrize("kind", KINDS)
def test_detects_each_pattern(kind):
    graph = import_model(onnx.shape_inference.infer_shapes(quantized_net(kind)))
    detect = DetectQuantizedActivationsPass()
    result = detect(graph)
    assert len(detect.quantizers) == 2 and result.count == 2
    ops = {n.op for n in graph.nodes}
    assert not ops & {"Floor", "Round", "QuantizeLinear", "DequantizeLinear"}
    q = detect.quantizers["a1"]
    assert q.levels == LEVELS.get(kind, L)
    assert q.beta == (0.0 if kind in ("relu_mul_floor", "gain") else 0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_bif_snn_equals_quantized_ann(kind):
    model = quantized_net(kind, qdq_weights=kind == "qdq")
    x = np.random.default_rng(1).uniform(0, 1, (16, 1, 6, 6)).astype(F32)
    (want,) = run(model, {"x": x})
    levels = LEVELS.get(kind, L)
    T = 2 * levels + 2
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=T, neuron="bif"))
    assert result.exact_timesteps == 2 * levels  # two quantized layers on the longest path
    ops = [n.op_type for n in result.model.graph.node]
    assert ops.count("BIFNeuron") == 2 and "IFNeuron" not in ops
    onnx.checker.check_model(result.model)
    sess = onnx2snn.InferenceSession(result.model.SerializeToString())
    got, running = sess.run(None, {"x": x})
    t_star = result.exact_timesteps
    for t in range(t_star - 1, T):  # from step T* on, the running sum is the quantized ANN's output
        np.testing.assert_allclose(running[t], want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert np.abs(running[0] - want).max() > 1e-3  # one step is not enough


def _extended():
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return options


@pytest.mark.parametrize("kind", KINDS)
def test_cumulative_form_is_bit_exact(kind):
    """--form cumulative: the ANN's own ops on cumulative spike counts; from T* on, bit-exact."""
    model = quantized_net(kind, qdq_weights=kind == "qdq")
    x = np.random.default_rng(1).uniform(0, 1, (16, 1, 6, 6)).astype(F32)
    (want,) = ort.InferenceSession(model.SerializeToString(), _extended(),
                                   providers=["CPUExecutionProvider"]).run(None, {"x": x})
    levels = LEVELS.get(kind, L)
    T = 2 * levels + 2
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=T, neuron="bif", form="cumulative"))
    assert result.exact_timesteps == 2 * levels
    ops = [n.op_type for n in result.model.graph.node]
    assert ops.count("BIFCount") == 2 and "BIFNeuron" not in ops
    meta = {p.key: p.value for p in result.model.metadata_props}
    assert meta["onnx2snn.form"] == "cumulative" and meta["onnx2snn.readout"] == "last"
    onnx.checker.check_model(result.model)
    got, running = onnx2snn.InferenceSession(result.model, _extended()).run(None, {"x": x})
    for t in range(result.exact_timesteps - 1, T):
        np.testing.assert_array_equal(running[t], want)
    np.testing.assert_array_equal(got, want)
    # the same SNN as the spiking form: equal running outputs (up to float rounding) at every step
    folded = onnx2snn.convert(model, None, ConvertConfig(timesteps=T, neuron="bif"))
    spiking = onnx2snn.InferenceSession(folded.model).run(None, {"x": x})[1]
    np.testing.assert_allclose(running, spiking, rtol=0, atol=1e-4)


def test_cumulative_form_is_for_bif_only():
    from conftest import MODELS
    with pytest.raises(ConfigError, match="cumulative"):
        onnx2snn.convert(onnx2snn.load_model(str(MODELS / "mnist_cnn.onnx")), MODELS / "data" / "mnist_calib.npz",
                         ConvertConfig(timesteps=4, neuron="if", form="cumulative"))


def test_auto_picks_bif_and_metadata():
    result = onnx2snn.convert(quantized_net("qcfs"), None, ConvertConfig(timesteps=8))
    meta = {p.key: p.value for p in result.model.metadata_props}
    assert meta["onnx2snn.neuron"] == "bif" and meta["onnx2snn.exact_after_timesteps"] == "8"
    assert set(quantizers_from_metadata(result.model)) == {"a1", "a2"}
    np.testing.assert_allclose(result.thresholds["a1"], np.float32(LAM / L))


def test_if_mode_on_a_quantized_graph_calibrates():
    model = quantized_net("qcfs")
    calib = {"x": np.random.default_rng(2).uniform(0, 1, (32, 1, 6, 6)).astype(F32)}
    result = onnx2snn.convert(model, calib, ConvertConfig(timesteps=8, neuron="if"))
    ops = [n.op_type for n in result.model.graph.node]
    assert ops.count("IFNeuron") == 2 and result.exact_timesteps is None
    assert all(float(np.max(t)) <= LAM + 1e-6 for t in result.thresholds.values())  # capped at λ


def _floor_only():
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"]),
             oh.make_node("Mul", ["c", "k"], ["m"]),
             oh.make_node("Floor", ["m"], ["f"], name="my_floor"),
             oh.make_node("Mul", ["f", "k2"], ["y0"]),
             oh.make_node("Flatten", ["y0"], ["y"])]
    return make_model(nodes, [("x", ["N", 1, 2, 2])], [("y", ["N", 8])],
                      {"w": np.ones((2, 1, 1, 1), F32), "k": np.float32(4), "k2": np.float32(0.25)})


def _qdq_signed(zero_point, dtype, relu):
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"])]
    src = "c"
    if relu:
        nodes.append(oh.make_node("Relu", ["c"], ["r"]))
        src = "r"
    nodes += [oh.make_node("QuantizeLinear", [src, "s", "z"], ["q"], name="act_quant"),
              oh.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
              oh.make_node("Flatten", ["d"], ["y"])]
    return make_model(nodes, [("x", ["N", 1, 2, 2])], [("y", ["N", 8])],
                      {"w": np.ones((2, 1, 1, 1), F32), "s": np.float32(0.1), "z": np.array(zero_point, dtype)})


@pytest.mark.parametrize("model,node,reason", [
    (_floor_only, "my_floor", "lowest level"),
    (lambda: _qdq_signed(255, np.uint8, False), "act_quant", "positive level"),
])
def test_unsupported_patterns_are_refused(model, node, reason):
    with pytest.raises(UnsupportedOpError, match=reason) as info:
        onnx2snn.convert(model(), None, ConvertConfig(timesteps=4, neuron="bif"))
    assert any(name == node for name, _, _ in info.value.offenders)
    assert node in str(info.value)


def test_signed_qdq_behind_a_relu_converts():
    model = _qdq_signed(0, np.int8, True)  # int8, zero point 0: the ReLU keeps it in [0, 127]
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=130, neuron="bif"))
    assert result.exact_timesteps == 127
    x = np.random.default_rng(0).uniform(-1, 2, (8, 1, 2, 2)).astype(F32)
    (want,) = run(model, {"x": x})
    got = onnx2snn.InferenceSession(result.model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("zero_point,dtype", [(128, np.uint8), (0, np.int8), (-100, np.int8)])
@pytest.mark.parametrize("form", ["folded", "cumulative"])
def test_signed_qdq_converts_to_bipolar_counts_below_zero(zero_point, dtype, form):
    """A zero point inside the range gives levels [qmin − z, qmax − z]: BIF counts go negative."""
    model = _qdq_signed(zero_point, dtype, False)
    info = np.iinfo(dtype)
    lo, hi = info.min - zero_point, info.max - zero_point
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=hi - lo + 2, neuron="auto", form=form))
    assert result.exact_timesteps == hi - lo
    op = "BIFNeuron" if form == "folded" else "BIFCount"
    (node,) = [n for n in result.model.graph.node if n.op_type == op]
    assert {a.name: a.i for a in node.attribute}["min_level"] == lo
    x = np.random.default_rng(0).uniform(-40, 40, (8, 1, 2, 2)).astype(F32)  # reaches both clips
    (want,) = run(model, {"x": x})
    assert want.min() < 0
    got = onnx2snn.InferenceSession(result.model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # (a sum of up to 255 spikes ±θ)
    with pytest.raises(ConfigError, match="signed quantized"):
        onnx2snn.convert(model, {"x": x}, ConvertConfig(timesteps=4, neuron="if"))


def test_unquantized_relu_needs_calibration_data_in_bif_mode():
    """A float ANN converts to bipolar neurons only with calibrated thresholds: without data the
    error names every unquantized activation."""
    from onnx2snn.errors import CalibrationError
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"]), oh.make_node("Relu", ["c"], ["r"], name="plain_relu"),
             oh.make_node("Flatten", ["r"], ["y"])]
    model = make_model(nodes, [("x", ["N", 1, 2, 2])], [("y", ["N", 8])], {"w": np.ones((2, 1, 1, 1), F32)})
    with pytest.raises(CalibrationError, match="'plain_relu' \\(Relu\\)"):
        onnx2snn.convert(model, None, ConvertConfig(timesteps=4, neuron="bif"))
    x = np.random.default_rng(0).uniform(-1, 1, (16, 1, 2, 2)).astype(F32)
    for bad in (dict(form="streaming"), dict(form="portable"), dict(form="cumulative"), dict(reset="zero")):
        with pytest.raises(ConfigError, match="form|reset"):
            onnx2snn.convert(model, {"x": x}, ConvertConfig(timesteps=4, neuron="bif", **bad))


def test_max_pool_after_a_quantized_layer_is_refused():
    model = quantized_net("qcfs")
    for node in model.graph.node:
        if node.op_type == "AveragePool":
            node.op_type, node.name = "MaxPool", "pool_on_spikes"
    with pytest.raises(UnsupportedOpError, match="pool_on_spikes"):
        onnx2snn.convert(model, None, ConvertConfig(timesteps=8, neuron="bif"))


def test_bif_needs_the_folded_form():
    with pytest.raises(ConfigError, match="folded"):
        onnx2snn.convert(quantized_net("qcfs"), None, ConvertConfig(timesteps=8, neuron="bif", form="streaming"))
    with pytest.raises(ConfigError, match="neuron"):
        ConvertConfig(timesteps=8, neuron="lif")


def test_cli_neuron_bif(tmp_path, capsys):
    ann = tmp_path / "q.onnx"
    onnx.save(quantized_net("qcfs"), ann)
    out = tmp_path / "snn.onnx"
    assert main(["convert", str(ann), "-o", str(out), "--neuron", "bif", "--timesteps", "8", "-q"]) == 0
    assert "equal to the quantized ANN from t=8" in capsys.readouterr().out
    x = np.random.default_rng(3).uniform(0, 1, (4, 1, 6, 6)).astype(F32)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, labels=np.zeros(4, np.int64))
    assert main(["evaluate", str(ann), str(out), "--data", str(data), "--json", "-q"]) == 0
    # IF neurons need calibration data; the error says so
    assert main(["convert", str(ann), "-o", str(tmp_path / "if.onnx"), "--neuron", "if", "-T", "8", "-q"]) == 2
    assert "calibration data" in capsys.readouterr().err


def test_max_pool_right_after_the_first_layer_is_exact():
    model = quantized_net("qcfs")
    nodes = list(model.graph.node)
    conv2 = next(i for i, n in enumerate(nodes) if n.op_type == "Conv" and n.input[0] == "a1")
    pool = oh.make_node("MaxPool", ["a1"], ["a1p"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1])
    for n in nodes[conv2:]:
        for i, name in enumerate(n.input):
            if name == "a1":
                n.input[i] = "a1p"
    del model.graph.node[:]
    model.graph.node.extend(nodes[:conv2] + [pool] + nodes[conv2:])
    x = np.random.default_rng(4).uniform(0, 1, (16, 1, 6, 6)).astype(F32)
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=8, neuron="bif"))
    got = onnx2snn.InferenceSession(result.model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cli_inspect_reports_quantized_activations(tmp_path, capsys):
    good, bad = tmp_path / "q.onnx", tmp_path / "bad.onnx"
    onnx.save(quantized_net("qcfs"), good)
    onnx.save(_qdq_signed(255, np.uint8, False), bad)
    assert main(["inspect", str(good)]) == 0
    assert "quantized activation (4 levels" in capsys.readouterr().out
    assert main(["inspect", str(bad)]) == 1
    assert "positive level" in capsys.readouterr().out


def test_bundled_quantized_mnist_cnn_is_lossless():
    from conftest import MODELS
    model = onnx2snn.load_model(str(MODELS / "mnist_qcnn.onnx"))
    x = np.load(MODELS / "data" / "mnist_test.npz")["x"][:200]
    (want,) = run(model, {"input": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=12))
    assert result.exact_timesteps == 12 and len(result.thresholds) == 3
    got = onnx2snn.InferenceSession(result.model.SerializeToString()).run(None, {"input": x})[0]
    assert (got.argmax(1) == want.argmax(1)).all()
    assert np.mean(np.abs(got - want).max(1) <= 1e-4) >= 0.99  # float32 boundary flips aside
    exact = onnx2snn.convert(model, None, ConvertConfig(timesteps=12, form="cumulative"))
    (want,) = ort.InferenceSession(model.SerializeToString(), _extended(),
                                   providers=["CPUExecutionProvider"]).run(None, {"input": x})
    got = onnx2snn.InferenceSession(exact.model, _extended()).run(None, {"input": x})[0]
    np.testing.assert_array_equal(got, want)


def test_quantized_input_is_the_encoding_not_a_neuron():
    """QDQ on the graph input quantizes the analog input: kept as ops, no neuron, no steps added."""
    model = quantized_net("qdq")
    for node in model.graph.node:
        node.input[:] = ["xq" if i == "x" else i for i in node.input]
    model.graph.node.insert(0, oh.make_node("QuantizeLinear", ["x", "in_s", "in_z"], ["xq8"], name="in_q"))
    model.graph.node.insert(1, oh.make_node("DequantizeLinear", ["xq8", "in_s", "in_z"], ["xq"], name="in_dq"))
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(1 / 255, F32), "in_s"),
                                    onnx.numpy_helper.from_array(np.array(0, np.uint8), "in_z")])
    x = np.random.default_rng(5).uniform(0, 1, (8, 1, 6, 6)).astype(F32)
    for form in ("folded", "cumulative"):
        result = onnx2snn.convert(model, None, ConvertConfig(timesteps=2 * 255, neuron="bif", form=form))
        assert result.exact_timesteps == 2 * 255 and len(result.thresholds) == 2
        assert {"in_q", "in_dq"} <= {n.name for n in result.model.graph.node}
        got = onnx2snn.InferenceSession(result.model, _extended()).run(None, {"x": x})[0]
        if form == "cumulative":  # the ANN's ops: equal under the same optimisations
            (want,) = ort.InferenceSession(model.SerializeToString(), _extended(),
                                           providers=["CPUExecutionProvider"]).run(None, {"x": x})
            np.testing.assert_array_equal(got, want)
        else:  # float semantics of the ONNX graph (onnxruntime's QDQ rewrites change a level here)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            (want,) = ort.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"]).run(None, {"x": x})
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_onnxruntime_static_qdq_mnist_cnn_converts_exactly():
    """models/mnist_cnn_qdq.onnx (onnxruntime quantize_static, uint8 QDQ, signed before the
    residual Add and on the logits): T* from the graph; the cumulative form is bit-exact."""
    from conftest import MODELS
    model = onnx2snn.load_model(str(MODELS / "mnist_cnn_qdq.onnx"))
    x = np.load(MODELS / "data" / "mnist_test.npz")["x"][:3]
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=300, neuron="auto", form="cumulative"))
    assert result.exact_timesteps == 7 * 255  # 7 neurons of 255 levels on the longest path
    lows = [{a.name: a.i for a in n.attribute}["min_level"] for n in result.model.graph.node
            if n.op_type == "BIFCount"]
    assert len(lows) == 7 and sum(low < 0 for low in lows) == 2  # before the residual Add, logits
    (want,) = ort.InferenceSession(model.SerializeToString(), _extended(),
                                   providers=["CPUExecutionProvider"]).run(None, {"input": x})
    got = onnx2snn.InferenceSession(result.model, _extended()).run(None, {"input": x})[0]
    np.testing.assert_array_equal(got, want)  # settled well before T* on these digits


@pytest.mark.parametrize("form", ["folded", "cumulative"])
def test_fixed_batch_and_slashed_names(form):
    """A fixed batch size (also hard-coded in a Reshape) and node names with '/' convert."""
    model = quantized_net("qcfs")
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = 16
    for i, node in enumerate(model.graph.node):
        if node.op_type == "Flatten":
            node.op_type = "Reshape"
            del node.attribute[:]
            node.input.append("shape16")
        node.name = f"block/{i}/{node.op_type}"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([16, -1], np.int64), "shape16"))
    x = np.random.default_rng(0).uniform(0, 1, (16, 1, 6, 6)).astype(F32)
    (want,) = ort.InferenceSession(model.SerializeToString(), _extended(),
                                   providers=["CPUExecutionProvider"]).run(None, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=10, neuron="bif", form=form))
    got = onnx2snn.InferenceSession(result.model, _extended()).run(None, {"x": x})[0]
    if form == "cumulative":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
