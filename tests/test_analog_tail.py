"""The ops after the last layer (snn/analog_tail.py): they run once on the averaged values, and the
SNN keeps every output of the ANN with its name, type and meaning."""
import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from onnx2snn import ConvertConfig, metadata
from onnx2snn.errors import ConversionError
from onnx2snn.snn.analog_tail import split

RNG = np.random.default_rng(0)
F = onnx.TensorProto.FLOAT


def _const(name, shape, scale=0.5):
    return onnx.numpy_helper.from_array(RNG.normal(0, scale, shape).astype(np.float32), name)


def detector(opset=13):
    """Gemm → ReLU → two heads: box offsets (regression, [N, 4]) and Sigmoid scores [N, 3]; plus the
    ArgMax label of the scores and a Softmax that another node reads (so it is no final Softmax)."""
    nodes = [oh.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="/fc1"), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("Gemm", ["r", "Wb", "bb"], ["boxes"], name="/box_head"),
             oh.make_node("Gemm", ["r", "Ws", "bs"], ["logits"], name="/score_head"),
             oh.make_node("Sigmoid", ["logits"], ["scores"], name="/head/Sigmoid"),
             oh.make_node("Softmax", ["logits"], ["p"], axis=1, name="/head/Softmax"),
             oh.make_node("Mul", ["p", "two"], ["p2"], name="/head/Mul"),
             oh.make_node("ArgMax", ["p2"], ["label"], axis=1, keepdims=0, name="/head/ArgMax")]
    inits = [_const("W1", (6, 16)), _const("b1", (16,)), _const("Wb", (16, 4)), _const("bb", (4,)),
             _const("Ws", (16, 3)), _const("bs", (3,)), onnx.numpy_helper.from_array(np.float32(2.0), "two")]
    graph = oh.make_graph(nodes, "det", [oh.make_tensor_value_info("x", F, ["N", 6])],
                          [oh.make_tensor_value_info("scores", F, ["N", 3]),
                           oh.make_tensor_value_info("boxes", F, ["N", 4]),
                           oh.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ann(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


X = RNG.uniform(-1, 1, (64, 6)).astype(np.float32)


def test_split_takes_off_what_runs_after_the_readout():
    body, tail = split(onnx2snn.prepare(detector()))
    assert [n.op_type for n in tail.graph.node] == ["Sigmoid", "Softmax", "Mul", "ArgMax"]
    assert tail.crossing == ["logits"] and tail.row_wise()
    assert [o.name for o in body.graph.output] == ["boxes", "logits"]
    assert split(onnx2snn.prepare(onnx2snn.load_model("models/mnist_cnn.onnx")))[1] is None


@pytest.mark.parametrize("form", ["folded", "portable"])
def test_every_output_keeps_its_name_type_and_meaning(form):
    model = detector()
    want = _ann(model, X)
    snn = onnx2snn.convert(model, {"x": X}, ConvertConfig(timesteps=512, form=form)).model
    names = [o.name for o in snn.graph.output]
    assert names[:3] == ["scores", "boxes", "label"]
    assert names[3:] == ["scores_running_mean", "boxes_running_mean", "label_running_mean"]
    assert list(metadata.read(snn).running_outputs) == names[3:]
    got = onnx2snn.InferenceSession(snn).run(None, {"x": X})
    for g, w in zip(got[:3], want):
        assert g.shape == w.shape and g.dtype == w.dtype
    np.testing.assert_allclose(got[0], want[0], atol=0.02)  # Sigmoid of the averaged logits
    np.testing.assert_allclose(got[1], want[1], atol=0.05)  # a regression output: the averaged offsets
    assert (got[2] == want[2]).mean() >= 0.95
    for final, running in zip(got[:3], got[3:]):  # the tail on the running means: its last step is the output
        assert running.shape[:2] == (512, 64)
        np.testing.assert_array_equal(running[-1], final)


def test_the_tail_runs_on_the_averages_not_per_step():
    """Sigmoid(mean z) differs from mean(Sigmoid z): the SNN computes the first, as the ANN's meaning asks."""
    model = detector()
    snn = onnx2snn.convert(model, {"x": X}, ConvertConfig(timesteps=16)).model
    sig = [n for n in snn.graph.node if n.op_type == "Sigmoid"]
    assert len(sig) == 2  # on the mean, and on the running means
    outs = {o.name for o in snn.graph.output}
    assert "logits" not in outs and "logits_running_mean" not in outs  # averaged for the tail only
    got = dict(zip([o.name for o in snn.graph.output], onnx2snn.InferenceSession(snn).run(None, {"x": X})))
    z = got["scores_running_mean"]
    assert np.all((z >= 0) & (z <= 1))


def test_streaming_form_applies_the_tail_after_each_step():
    model = detector()
    folded = onnx2snn.convert(model, {"x": X}, ConvertConfig(timesteps=8)).model
    stream = onnx2snn.convert(model, {"x": X}, ConvertConfig(timesteps=8, form="streaming")).model
    assert [o.name for o in stream.graph.output][:3] == ["scores", "boxes", "label"]
    got = onnx2snn.StreamingSession(stream).run({"x": X}, 8)
    want = dict(zip([o.name for o in folded.graph.output], onnx2snn.InferenceSession(folded).run(None, {"x": X})))
    np.testing.assert_allclose(got["scores"], want["scores_running_mean"], atol=1e-5)


def test_evaluate_scores_the_first_class_output_after_the_tail(tmp_path):
    from onnx2snn.runtime.evaluate import check_pair

    model = detector()
    snn = onnx2snn.convert(model, {"x": X}, ConvertConfig(timesteps=8)).model
    assert check_pair(model, snn) == ("scores", "scores_running_mean")


def test_a_tail_that_is_not_row_wise_runs_once_and_has_no_running_output():
    """NonMaxSuppression on the averaged boxes and scores: the ANN's selected indices, computed once."""
    nodes = [oh.make_node("Conv", ["x", "W"], ["c"]), oh.make_node("Relu", ["c"], ["r"]),
             oh.make_node("Conv", ["r", "Wb"], ["bflat"]), oh.make_node("Reshape", ["bflat", "bshape"], ["boxes"]),
             oh.make_node("Conv", ["r", "Ws"], ["sflat"]), oh.make_node("Reshape", ["sflat", "sshape"], ["slog"]),
             oh.make_node("Sigmoid", ["slog"], ["scores"]),
             oh.make_node("NonMaxSuppression", ["boxes", "scores", "maxk", "iou"], ["selected"])]
    inits = [_const("W", (4, 1, 1, 1)), _const("Wb", (4, 4, 1, 1)), _const("Ws", (1, 4, 1, 1)),
             onnx.numpy_helper.from_array(np.array([-1, 9, 4], np.int64), "bshape"),
             onnx.numpy_helper.from_array(np.array([-1, 1, 9], np.int64), "sshape"),
             onnx.numpy_helper.from_array(np.array([3], np.int64), "maxk"),
             onnx.numpy_helper.from_array(np.array([0.5], np.float32), "iou")]
    graph = oh.make_graph(nodes, "nms", [oh.make_tensor_value_info("x", F, ["N", 1, 3, 3])],
                          [oh.make_tensor_value_info("selected", onnx.TensorProto.INT64, [None, 3]),
                           oh.make_tensor_value_info("boxes", F, ["N", 9, 4])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    x = RNG.uniform(0, 1, (4, 1, 3, 3)).astype(np.float32)
    snn = onnx2snn.convert(model, {"x": x}, ConvertConfig(timesteps=4)).model
    names = [o.name for o in snn.graph.output]
    assert names[:2] == ["selected", "boxes"] and "selected_running_mean" not in names
    got = onnx2snn.InferenceSession(snn).run(["selected", "boxes"], {"x": x})
    assert got[0].dtype == np.int64 and got[0].shape[1] == 3 and got[1].shape == (4, 9, 4)


def test_the_cumulative_form_refuses_a_tail():
    from test_quantized import quantized_net  # a quantized network, lossless BIF

    model = quantized_net("qcfs")
    out = model.graph.output[0]
    model.graph.node.append(oh.make_node("Sigmoid", [out.name], ["prob"]))
    out.name = "prob"
    with pytest.raises(ConversionError, match="cumulative form has no average"):
        onnx2snn.convert(model, None, ConvertConfig(timesteps=4, neuron="bif", form="cumulative"))


def test_a_recurrent_cell_keeps_refusing_what_does_not_convert():
    """Inside a Scan's cell nothing comes after a readout: an unquantized Tanh there is still refused."""
    from test_rnn import qrnn

    with pytest.raises(onnx2snn.UnsupportedOpError, match="Tanh has no spiking equivalent"):
        onnx2snn.convert(qrnn(act="tanh"), None, ConvertConfig(timesteps=4))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_torch_detector_with_a_sigmoid_head_and_a_regression_head(dynamo):
    """Conv → ReLU → two 1×1 conv heads: Sigmoid scores and box offsets, exported by torch."""
    import io
    import warnings

    torch = pytest.importorskip("torch")

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
            self.scores = torch.nn.Conv2d(8, 2, 1)
            self.boxes = torch.nn.Conv2d(8, 4, 1)

        def forward(self, x):
            h = self.body(x)
            return torch.sigmoid(self.scores(h)).flatten(1), self.boxes(h).flatten(1)

    torch.manual_seed(0)
    net = Detector().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(dynamo=True) if dynamo else dict(dynamo=False, opset_version=13,
                                                       dynamic_axes={"x": {0: "n"}, "scores": {0: "n"},
                                                                     "boxes": {0: "n"}})
        torch.onnx.export(net, (torch.randn(1 if dynamo else 2, 3, 6, 6),), buf, input_names=["x"],
                          output_names=["scores", "boxes"], **kwargs)
    model = onnx.load_from_string(buf.getvalue())
    model.ir_version = min(model.ir_version, 10)
    batch = 1 if dynamo else 16
    x = np.random.default_rng(3).uniform(-1, 1, (16, 3, 6, 6)).astype(np.float32)
    result = onnx2snn.convert(model, {"x": x}, ConvertConfig(timesteps=256))
    names = [o.name for o in result.model.graph.output]
    assert names[:2] == ["scores", "boxes"] and "scores_running_mean" in names
    sess = onnx2snn.InferenceSession(result.model)
    ann = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for k in range(0, 16, batch):
        got = sess.run(["scores", "boxes"], {"x": x[k:k + batch]})
        want = ann.run(["scores", "boxes"], {"x": x[k:k + batch]})
        np.testing.assert_allclose(got[0], want[0], atol=0.05)
        np.testing.assert_allclose(got[1], want[1], atol=0.1)
