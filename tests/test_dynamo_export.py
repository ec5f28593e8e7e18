"""Models as torch's default (dynamo) exporter writes them convert to SNNs that run (issue 15).

torch.onnx.export(model, (x,), path) fixes the batch at 1 and writes the flatten as
Reshape([1, -1] or [1, F], allowzero=1); the time axis must make it follow the T·B rows.
And convert never returns an SNN that onnxruntime cannot run.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx2snn
from onnx2snn import ConversionError, ConvertConfig

T = 32


def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):  # inverted residual: expand, depthwise, project, + x
        def __init__(self, c, e=2):
            super().__init__()
            h = c * e
            self.body = nn.Sequential(
                nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            return x + self.body(x)

    class MobileNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU6())
            self.block = Block(8)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.c = nn.Sequential(nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            return self.c(torch.flatten(self.f(x), 1))

    class Conv1dNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.AvgPool1d(2),
                                   nn.Conv1d(8, 8, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(8 * 16, 5)

        def forward(self, x):
            return self.fc(self.f(x).flatten(1))

    return torch, {"mobilenet": (MobileNet, (3, 16, 16)), "vgg": (VGG, (3, 16, 16)),
                   "conv1d": (Conv1dNet, (2, 32))}


def _export(torch, model, x, path):
    try:
        torch.onnx.export(model, (x,), str(path))  # the default exporter (dynamo in torch >= 2.9)
    except Exception as e:  # pragma: no cover - exporter dependencies missing
        pytest.skip(f"torch's default ONNX exporter is unavailable here: {e}")
    return onnx.load(str(path))


@pytest.mark.parametrize("name", ["mobilenet", "vgg", "conv1d"])
def test_default_torch_export_converts_and_runs(name, tmp_path):
    torch, models = _torch_models()
    cls, shape = models[name]
    torch.manual_seed(0)
    net = cls().eval()
    for m in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    xs = np.random.default_rng(0).random((16,) + shape, dtype=np.float32)
    ann = _export(torch, net, torch.from_numpy(xs[:1]), tmp_path / "ann.onnx")
    flattens = [n for n in ann.graph.node if n.op_type == "Reshape"]
    assert ann.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # what torch writes
    assert any(a.name == "allowzero" and a.i == 1 for n in flattens for a in n.attribute)
    in_name = ann.graph.input[0].name

    result = onnx2snn.convert(ann, {in_name: xs[:8]}, ConvertConfig(timesteps=T))
    path = tmp_path / "snn.onnx"
    onnx2snn.save_model(result.model, path)
    sess = onnx2snn.InferenceSession(str(path))
    out_name = ann.graph.output[0].name
    agree, errors = 0, []
    with torch.no_grad():
        for x in xs:
            want = net(torch.from_numpy(x[None])).numpy()
            got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {in_name: x[None]})))[out_name]
            assert got.shape == want.shape
            agree += int(got.argmax() == want.argmax())
            errors.append(np.abs(got - want).max() / (np.abs(want).max() + 1e-6))
    assert agree >= 12, (agree, errors)
    assert np.median(errors) < 0.3, errors


def _depth_to_space_model(batch: int) -> onnx.ModelProto:
    """Conv → ReLU → DepthToSpace as its ONNX function body (Shape(x) arithmetic, allowzero=1
    Reshapes) → Conv → ReLU → GlobalAveragePool → Flatten → Gemm, with a fixed batch."""
    rng = np.random.default_rng(1)
    init = [numpy_helper.from_array(rng.standard_normal((8, 2, 3, 3)).astype(np.float32) * 0.3, "w1"),
            numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.3, "w2"),
            numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "wf"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([2], np.int64), "two"),
            numpy_helper.from_array(np.array([3], np.int64), "three"),
            numpy_helper.from_array(np.array([4], np.int64), "four")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Shape", ["r1"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["N"]),
             helper.make_node("Slice", ["s", "one", "two"], ["C"]),
             helper.make_node("Slice", ["s", "two", "three"], ["H"]),
             helper.make_node("Slice", ["s", "three", "four"], ["W"]),
             helper.make_node("Mul", ["H", "two"], ["H2"]),
             helper.make_node("Mul", ["W", "two"], ["W2"]),
             helper.make_node("Div", ["C", "four"], ["C4"]),
             helper.make_node("Concat", ["N", "two", "two", "C4", "H", "W"], ["tmp_shape"], axis=0),
             helper.make_node("Reshape", ["r1", "tmp_shape"], ["tmp"], allowzero=1),
             helper.make_node("Transpose", ["tmp"], ["tt"], perm=[0, 3, 4, 1, 5, 2]),
             helper.make_node("Concat", ["N", "C4", "H2", "W2"], ["out_shape"], axis=0),
             helper.make_node("Reshape", ["tt", "out_shape"], ["d2s"], allowzero=1),
             helper.make_node("Conv", ["d2s", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "d2s", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("batch", [1, 2])
def test_expanded_depth_to_space_with_fixed_batch(batch):
    import onnxruntime as ort
    ann = _depth_to_space_model(batch)
    xs = np.random.default_rng(2).random((6, 2, 4, 4), dtype=np.float32)
    result = onnx2snn.convert(ann, {"x": xs}, ConvertConfig(timesteps=T))
    sess = onnx2snn.InferenceSession(result.model.SerializeToString())
    ref = ort.InferenceSession(ann.SerializeToString(), providers=["CPUExecutionProvider"])
    x = xs[:batch]
    got = sess.run(["y"], {"x": x})[0]
    want = ref.run(["y"], {"x": x})[0]
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got, want, atol=0.25 * np.abs(want).max() + 1e-3)


@pytest.mark.parametrize("form", ["folded", "portable", "streaming"])
def test_convert_refuses_an_snn_that_cannot_run(monkeypatch, form):
    """A pass that writes a bad reshape: convert raises one ConversionError naming the node
    (the streaming form is run for one step from its initial state)."""
    from dataclasses import replace

    from onnx2snn.recipes import RateRecipe
    from onnx2snn.snn import time_axis

    def broken(self, node, b):  # the old bug: leave the hard-coded batch in place
        return False

    build = RateRecipe.build

    def bad_reshape(self, params, config):  # a streaming step has the batch B: break it elsewhere
        built = build(self, params, config)
        graph = built.model.graph
        graph.initializer.append(numpy_helper.from_array(np.array([7, 7, 7], np.int64), "bad_shape"))
        graph.node.append(helper.make_node("Reshape", [graph.output[0].name, "bad_shape"], ["bad"], name="bad_reshape"))
        graph.output.append(helper.make_tensor_value_info("bad", TensorProto.FLOAT, None))
        return replace(built, running=built.running_outputs())

    if form == "streaming":
        monkeypatch.setattr(RateRecipe, "build", bad_reshape)
    else:
        monkeypatch.setattr(time_axis.AddTimeAxisPass, "_fold_reshape", broken)
    ann = _depth_to_space_model(2)
    xs = np.random.default_rng(2).random((4, 2, 4, 4), dtype=np.float32)
    returned = None
    with pytest.raises(ConversionError) as info:
        returned = onnx2snn.convert(ann, {"x": xs}, ConvertConfig(timesteps=4, form=form))
    assert returned is None
    message = str(info.value)
    assert "does not run in onnxruntime" in message and "bug" in message and "report" in message
    assert "node '" in message and "Reshape" in message
    if form == "streaming":
        assert "'bad_reshape'" in message


@pytest.mark.parametrize("form", ["portable", "streaming"])
def test_other_forms_of_a_fixed_batch_model_run(form):
    import onnxruntime as ort
    ann = _depth_to_space_model(2)
    xs = np.random.default_rng(2).random((4, 2, 4, 4), dtype=np.float32)
    result = onnx2snn.convert(ann, {"x": xs}, ConvertConfig(timesteps=8, form=form))
    if form == "streaming":
        got = onnx2snn.StreamingSession(result.model).run({"x": xs[:2]})["y"]
        assert got.shape == (8, 2, 3)
    else:
        sess = ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])
        assert sess.run(["y"], {"x": xs[:2]})[0].shape == (2, 3)


def test_build_snn_is_checked_on_synthetic_inputs(monkeypatch):
    """Without data (build_snn) the SNN runs on synthetic inputs of the declared shapes."""
    from onnx2snn.recipes import verify

    seen = {}
    real = verify.check_runs

    def spy(snn, sample=None, source=None):
        seen["sample"] = sample
        real(snn, sample, source)
        seen["ran"] = True

    config = ConvertConfig(timesteps=4)
    result = onnx2snn.convert(_depth_to_space_model(1), {"x": np.ones((2, 2, 4, 4), np.float32)}, config)
    monkeypatch.setattr(verify, "check_runs", spy)
    onnx2snn.build_snn(result.ann, result.thresholds, config)
    assert seen == {"sample": None, "ran": True}


def test_linear_layers_over_a_sequence_are_weight_calibrated(tmp_path):
    """torch exports nn.Linear on [N, S, C] as MatMul + Add; the default pipeline (layer-wise weight,
    bias and potential calibration) fits them as dense layers, and the SNN stays close to the ANN."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class FrameMLP(nn.Module):   # a keyword-spotter-like head over 8 frames of 12 features
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
            self.out = nn.Linear(16, 4)

        def forward(self, x):
            return self.out(self.f(x).mean(1))

    torch.manual_seed(0)
    net = FrameMLP().eval()
    xs = np.random.default_rng(1).random((64, 1, 8, 12), dtype=np.float32)
    ann = _export(torch, net, torch.from_numpy(xs[0]), tmp_path / "ann.onnx")
    assert [n.op_type for n in ann.graph.node].count("MatMul") == 2   # the two hidden Linear layers
    name = ann.graph.input[0].name
    result = onnx2snn.convert(ann, {name: xs[:, 0]}, onnx2snn.config.preset_config("best", timesteps=8))
    hidden = [r for r in result.layer_reports if not r.output]
    # BC goes into the initial potential: the bias runs along the last axis, the channels along axis 1
    bc = "BC applied as initial potential (no bias to shift)"
    assert hidden[0].notes == ["no WC: the layer reads the analog input, its mean current is the ANN's", bc]
    assert hidden[1].wc_after < hidden[1].wc_before and hidden[1].notes == [bc]
    sess = onnx2snn.InferenceSession(result.model)
    out = ann.graph.output[0].name
    with torch.no_grad():
        want = np.concatenate([net(torch.from_numpy(x)).numpy() for x in xs[:16]])
    got = np.concatenate([sess.run([out], {name: x})[0] for x in xs[:16]])
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max(), np.abs(got - want).max()
