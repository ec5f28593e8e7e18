"""The input-side head (snn/analog_head.py): ops before the first neuron that are no per-step layer
run once per sample before the time axis, on the model inputs of any dtype."""
import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from onnx2snn import ConvertConfig
from onnx2snn.snn.analog_head import split

RNG = np.random.default_rng(1)
F = onnx.TensorProto.FLOAT


def embedding_model(opset=13):
    """An Embedding lookup (Gather from int64 token ids) concatenated with float features, then an MLP."""
    inits = [onnx.numpy_helper.from_array(RNG.normal(0, 1, (10, 3)).astype(np.float32), "E"),
             onnx.numpy_helper.from_array(RNG.normal(0, 0.5, (17, 16)).astype(np.float32), "W1"),
             onnx.numpy_helper.from_array(RNG.normal(0, 0.5, (16, 3)).astype(np.float32), "W2")]
    nodes = [oh.make_node("Gather", ["E", "tokens"], ["emb"], axis=0, name="/emb/Gather"),
             oh.make_node("Flatten", ["emb"], ["embf"], axis=1, name="/emb/Flatten"),
             oh.make_node("Concat", ["embf", "features"], ["h0"], axis=1, name="/cat"),
             oh.make_node("MatMul", ["h0", "W1"], ["h"], name="/fc1"), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("MatMul", ["r", "W2"], ["logits"], name="/fc2")]
    graph = oh.make_graph(nodes, "emb", [oh.make_tensor_value_info("tokens", onnx.TensorProto.INT64, ["N", 4]),
                                         oh.make_tensor_value_info("features", F, ["N", 5])],
                          [oh.make_tensor_value_info("logits", F, ["N", 3])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


FEEDS = {"tokens": RNG.integers(0, 10, (64, 4)).astype(np.int64),
         "features": RNG.uniform(-1, 1, (64, 5)).astype(np.float32)}


def _ann(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_split_takes_off_the_head_and_its_frontier():
    body, head = split(onnx2snn.prepare(embedding_model()))
    assert [n.op_type for n in head.model.graph.node] == ["Gather"]
    assert head.frontier == ["emb"] and head.inputs == ("tokens", "features")
    assert [i.name for i in body.graph.input] == ["features", "emb"]
    assert split(onnx2snn.prepare(onnx2snn.load_model("models/mnist_cnn.onnx")))[1] is None


@pytest.mark.parametrize("form", ["folded", "streaming", "portable"])
def test_an_embedding_lookup_runs_once_before_the_time_axis(form):
    model = embedding_model()
    (want,) = _ann(model, FEEDS)
    snn = onnx2snn.convert(model, FEEDS, ConvertConfig(timesteps=256, form=form)).model
    inputs = [(i.name, i.type.tensor_type.elem_type) for i in snn.graph.input][:2]
    assert inputs == [("tokens", onnx.TensorProto.INT64), ("features", F)]
    gathers = [n for n in snn.graph.node if n.op_type == "Gather" and "E" in n.input]
    assert len(gathers) == 1 and snn.graph.node[0].op_type == "Gather"  # in front, once
    if form == "streaming":
        got = onnx2snn.StreamingSession(snn).run(FEEDS, 256)["logits"][-1]
    else:
        got = onnx2snn.InferenceSession(snn).run(["logits"], FEEDS)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=0.1)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_the_head_computes_what_the_ann_computes_for_the_calibration():
    """Thresholds from the body's statistics on the head's outputs equal those of the whole ANN."""
    model = embedding_model()
    ann = onnx2snn.prepare(model)
    body, head = split(ann)
    feeds = head.feeds(FEEDS, ann)
    assert set(feeds) == {"emb", "features"} and feeds["emb"].shape == (64, 4, 3)
    want = onnx.numpy_helper.to_array(next(i for i in ann.graph.initializer if i.name == "E"))[FEEDS["tokens"]]
    np.testing.assert_array_equal(feeds["emb"], want)
    got = onnx2snn.convert(model, FEEDS, ConvertConfig(timesteps=8)).thresholds
    assert set(got) == {"r"} and np.all(np.asarray(got["r"]) > 0)


def test_calibration_data_of_the_wrong_dtype_for_an_index_input_is_refused():
    from onnx2snn.errors import DataError

    bad = dict(FEEDS, tokens=FEEDS["tokens"].astype(np.float32))
    with pytest.raises(DataError, match="input 'tokens' has dtype float32; the model expects int64"):
        onnx2snn.convert(embedding_model(), bad, ConvertConfig(timesteps=8))
