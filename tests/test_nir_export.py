"""NIR export: the exported graph, read back with ``nir.read``, gives onnxruntime's SNN.

Checked by the numpy simulator of :mod:`onnx2snn.nir.reference` (discrete time, the reading of
:mod:`onnx2snn.nir.semantics`) and by an independent reader, nirtorch with snnTorch's neuron
(``tests/nir_torch_reader.py``):

* graphs whose arithmetic is exact in float32 (dyadic weights, inputs and thresholds: every sum is
  exact in any order, and potentials hit the threshold exactly): spikes and logits bit-identical;
* the bundled MNIST CNN (real weights): spike counts of every layer equal, logits within float
  rounding (numpy's and onnxruntime's convolutions sum in different orders);
* every SNN NIR cannot express exactly refused with one error naming each node and the flags.
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnx.helper as oh
import pytest

from conftest import MODELS, make_model

nir = pytest.importorskip("nir")
pytest.importorskip("h5py")

import onnx2snn  # noqa: E402
from onnx2snn.calibration.collect import augment_outputs  # noqa: E402
from onnx2snn.cli import main  # noqa: E402
from onnx2snn.config import ConvertConfig  # noqa: E402
from onnx2snn.nir import export_nir, simulate, to_nir  # noqa: E402
from onnx2snn.nir.semantics import firing_threshold  # noqa: E402

CNN = str(MODELS / "mnist_cnn.onnx")
CALIB = str(MODELS / "data" / "mnist_calib.npz")
TEST_X = np.load(MODELS / "data" / "mnist_test.npz")["x"]


# -- helpers ------------------------------------------------------------------------------------

def onnxruntime_spikes(snn: onnx.ModelProto, x: np.ndarray) -> tuple[dict, dict]:
    """onnxruntime's run of the SNN on ``x`` (its one input): ({ANN tensor of each neuron layer: spikes
    per neuron summed over the T steps [N, ...]}, {output: value})."""
    meta = onnx2snn.metadata.read(snn)
    tensors = [t for t, _ in meta.neurons]
    sess = onnx2snn.InferenceSession(augment_outputs(snn, tensors))
    values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
    T, n = meta.timesteps, x.shape[0]
    counts = {t: (values[t].reshape((T, n) + values[t].shape[1:]) != 0).sum(0) for t in tensors}
    return counts, values


def read_back(snn: onnx.ModelProto, tmp_path) -> "nir.NIRGraph":
    path = tmp_path / "snn.nir"
    export_nir(snn, path)
    return nir.read(path)


def compare(graph, snn, x):
    """(per layer: neurons whose spike count differs, max |Δ logits|, logits bit-identical)."""
    counts, values = onnxruntime_spikes(snn, x)
    sim = simulate(graph, x, int(graph.metadata["onnx2snn.timesteps"]))
    layers = json.loads(graph.metadata["onnx2snn.neurons"])
    diff = {t: int((counts[t] != sim.spikes[node].reshape(counts[t].shape)).sum()) for t, node in layers}
    (node, out), = json.loads(graph.metadata["onnx2snn.outputs"]).items()
    mean = sim.mean(node)
    return diff, float(np.abs(mean - values[out]).max()), bool(np.array_equal(mean, values[out])), sim, counts


def dyadic(rng, shape, scale=8, bound=1.0):
    """Multiples of 1/scale in [−bound, bound]: sums of a few hundred stay exact in float32."""
    return (rng.integers(-int(bound * scale), int(bound * scale) + 1, size=shape) / scale).astype(np.float32)


def dyadic_cnn(seed=0, residual=True):
    """Conv → ReLU → Conv (stride 2, groups 2) → [+ skip] → ReLU → AveragePool → Flatten → Gemm, dyadic."""
    rng = np.random.default_rng(seed)
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=2,
                          name="conv2")]
    inits = {"w1": dyadic(rng, (4, 1, 3, 3)), "b1": dyadic(rng, (4,)), "w2": dyadic(rng, (4, 2, 3, 3)),
             "b2": dyadic(rng, (4,)), "wf": dyadic(rng, (10, 4 * 2 * 2)), "bf": dyadic(rng, (10,))}
    last = "c2"
    if residual:
        nodes += [oh.make_node("Conv", ["r1", "wskip"], ["skip"], strides=[2, 2], name="skip"),
                  oh.make_node("Add", ["c2", "skip"], ["sum"], name="add")]
        inits["wskip"] = dyadic(rng, (4, 4, 1, 1))
        last = "sum"
    nodes += [oh.make_node("Relu", [last], ["r2"], name="relu2"),
              oh.make_node("AveragePool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
              oh.make_node("Flatten", ["p"], ["f"], name="flatten"),
              oh.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="fc")]
    return make_model(nodes, [("x", ["n", 1, 8, 8])], [("y", ["n", 10])], inits)


def dyadic_snn(ann, thresholds, timesteps=8, **config):
    """The SNN of ``ann`` with the given power-of-two thresholds (no calibration)."""
    canonical = onnx2snn.prepare(ann)
    return onnx2snn.build_snn(canonical, thresholds, ConvertConfig(timesteps=timesteps, **config))


def dyadic_input(n=16, seed=1):
    return dyadic(np.random.default_rng(seed), (n, 1, 8, 8), scale=4, bound=2.0)


# -- semantics ----------------------------------------------------------------------------------

def test_firing_threshold_turns_geq_into_nirs_strict_greater():
    theta = np.array([0.5, 1.0, 3.0e-3, 11.1379], np.float32)
    t = firing_threshold(theta)
    below = np.nextafter(theta, np.float32(-np.inf))
    assert np.all(theta > t) and np.all(t == below)
    for v in (theta, below, np.nextafter(theta, np.float32(np.inf))):
        assert np.array_equal(v > t, v >= theta)


# -- bit-exact on graphs of exact arithmetic ----------------------------------------------------

@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("residual", [True, False])
def test_dyadic_cnn_bit_identical(tmp_path, reset, residual):
    ann = dyadic_cnn(residual=residual)
    snn = dyadic_snn(ann, {"r1": np.float32(1.0), "r2": np.array([0.5, 1.0, 2.0, 0.25], np.float32)},
                     reset=reset)
    graph = read_back(snn, tmp_path)
    x = dyadic_input()
    counts, values = onnxruntime_spikes(snn, x)
    sim = simulate(graph, x, 8)
    for tensor, node in json.loads(graph.metadata["onnx2snn.neurons"]):
        assert np.array_equal(counts[tensor], sim.spikes[node].reshape(counts[tensor].shape)), tensor
    assert sum(int(c.sum()) for c in counts.values()) > 100
    assert np.array_equal(sim.mean("y"), values["y"])
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert ({"I", "Threshold"} <= kinds) == (reset == "subtract") and ("IF" in kinds) == (reset == "zero")
    into = [type(graph.nodes[s]).__name__ for s, d in graph.edges if d == "relu2"]
    assert into.count("Conv2d") == (2 if residual else 1)  # the Add: two edges into the neuron


def test_potentials_at_the_threshold_fire_as_in_onnx2snn(tmp_path):
    """An input current of exactly θ: onnx2snn fires at every step (v ≥ θ); NIR's ``>`` against θ
    itself would fire one step late (7 of 8). The exported prev(θ) keeps every spike."""
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], name="conv"), oh.make_node("Relu", ["c"], ["r"], name="relu"),
             oh.make_node("Flatten", ["r"], ["f"], name="flatten"),
             oh.make_node("Gemm", ["f", "wf"], ["y"], transB=1, name="fc")]
    ann = make_model(nodes, [("x", ["n", 1, 2, 2])], [("y", ["n", 1])],
                     {"w": np.ones((1, 1, 1, 1), np.float32), "wf": np.ones((1, 4), np.float32)})
    snn = dyadic_snn(ann, {"r": np.float32(0.375)})
    x = np.full((1, 1, 2, 2), 0.375, np.float32)
    graph = read_back(snn, tmp_path)
    counts, values = onnxruntime_spikes(snn, x)
    sim = simulate(graph, x, 8)
    (tensor, node), = json.loads(graph.metadata["onnx2snn.neurons"])
    assert np.all(counts[tensor] == 8) and np.array_equal(sim.spikes[node].reshape(1, 1, 2, 2), counts[tensor])
    assert np.array_equal(sim.mean("y"), values["y"])
    graph.nodes[node].threshold = np.full((1, 2, 2), 0.375, np.float32)  # θ itself, strict >
    assert np.all(simulate(graph, x, 8).spikes[node] == 7)


def test_conv1d_matmul_and_bias_add_bit_identical(tmp_path):
    rng = np.random.default_rng(3)
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1], dilations=[2], name="conv1d"),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Flatten", ["r1"], ["f"], name="flatten"),
             oh.make_node("MatMul", ["f", "wm"], ["m"], name="matmul"),
             oh.make_node("Add", ["m", "bm"], ["y"], name="bias")]
    inits = {"w1": dyadic(rng, (3, 2, 3)), "b1": dyadic(rng, (3,)), "wm": dyadic(rng, (3 * 10, 5)),
             "bm": dyadic(rng, (5,))}
    ann = make_model(nodes, [("x", ["n", 2, 12])], [("y", ["n", 5])], inits)
    snn = dyadic_snn(ann, {"r1": np.array([0.5, 1.0, 0.25], np.float32)})
    graph = read_back(snn, tmp_path)
    kinds = {name: type(n).__name__ for name, n in graph.nodes.items()}
    assert "Conv1d" in kinds.values() and "Affine" in kinds.values()
    x = dyadic(np.random.default_rng(4), (16, 2, 12), scale=4, bound=2.0)
    counts, values = onnxruntime_spikes(snn, x)
    sim = simulate(graph, x, 8)
    (tensor, node), = json.loads(graph.metadata["onnx2snn.neurons"])
    assert counts[tensor].sum() > 50
    assert np.array_equal(counts[tensor], sim.spikes[node].reshape(counts[tensor].shape))
    assert np.array_equal(sim.mean("y"), values["y"])


def option_a_resnet(seed=5):
    """A ResNet block with the option-A shortcut (x[:, :, ::2, ::2], zero channels padded), then
    GlobalAveragePool, a Reshape to a vector, a Mul by a constant and a Gemm; dyadic."""
    rng = np.random.default_rng(seed)
    big = np.iinfo(np.int64).max
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
             oh.make_node("Slice", ["r1", "zero", "end", "two", "two"], ["s1"], name="slice_h"),
             oh.make_node("Slice", ["s1", "zero", "end", "three", "two"], ["s2"], name="slice_w"),
             oh.make_node("Pad", ["s2", "pads"], ["shortcut"], name="pad"),
             oh.make_node("Add", ["c2", "shortcut"], ["sum"], name="add"),
             oh.make_node("Relu", ["sum"], ["r2"], name="relu2"),
             oh.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             oh.make_node("Reshape", ["g", "flat"], ["v"], name="reshape"),
             oh.make_node("Mul", ["v", "gain"], ["m"], name="mul"),
             oh.make_node("Gemm", ["m", "wf", "bf"], ["y"], transB=1, name="fc")]
    inits = {"w1": dyadic(rng, (2, 1, 3, 3)), "b1": dyadic(rng, (2,)), "w2": dyadic(rng, (4, 2, 3, 3)),
             "b2": dyadic(rng, (4,)), "zero": np.array([0]), "end": np.array([big]), "two": np.array([2]),
             "three": np.array([3]), "pads": np.array([0, 1, 0, 0, 0, 1, 0, 0]), "flat": np.array([0, -1]),
             "gain": np.array([0.5, 2.0, 1.0, 0.25], np.float32), "wf": dyadic(rng, (3, 4)), "bf": dyadic(rng, (3,))}
    return make_model(nodes, [("x", ["n", 1, 8, 8])], [("y", ["n", 3])], inits)


def test_option_a_shortcut_gap_reshape_mul_bit_identical(tmp_path):
    snn = dyadic_snn(option_a_resnet(), {"r1": np.float32(0.5), "r2": np.array([1.0, 0.5, 0.25, 2.0], np.float32)})
    graph = read_back(snn, tmp_path)
    roles = [n.metadata["onnx2snn_role"] for n in graph.nodes.values()]
    assert sum("selection Conv2d" in r for r in roles) == 3  # two Slices, one Pad
    assert "Scale" in {type(n).__name__ for n in graph.nodes.values() if n.metadata["onnx_node"] == "mul"}
    x = dyadic_input()
    counts, values = onnxruntime_spikes(snn, x)
    sim = simulate(graph, x, 8)
    for tensor, node in json.loads(graph.metadata["onnx2snn.neurons"]):
        assert counts[tensor].sum() > 50
        assert np.array_equal(counts[tensor], sim.spikes[node].reshape(counts[tensor].shape)), tensor
    assert np.array_equal(sim.mean("y"), values["y"])


# -- the bundled MNIST CNN ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_snn():
    model = onnx2snn.load_model(CNN)
    return onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=32)).model


def test_mnist_cnn_round_trip(mnist_snn, tmp_path):
    graph = read_back(mnist_snn, tmp_path)
    diff, max_abs, _, sim, counts = compare(graph, mnist_snn, TEST_X[:16])
    assert len(diff) == 3 and all(int(c.sum()) > 1000 for c in counts.values())
    assert diff == {t: 0 for t in diff}, diff  # same spike counts, every layer, every neuron
    assert max_abs < 1e-4  # float summation order of the convolutions and the readout
    kinds = sorted(type(n).__name__ for n in graph.nodes.values())
    assert kinds.count("I") == 3 and kinds.count("Threshold") == 3 and kinds.count("Scale") == 4  # 3 resets + skip


def test_mnist_cnn_channel_wise_with_initial_potential(tmp_path):
    model = onnx2snn.load_model(CNN)
    snn = onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=8, channel_wise=True, v_init="half")).model
    graph = read_back(snn, tmp_path)
    diff, max_abs, _, _, counts = compare(graph, snn, TEST_X[:16])
    assert all(int(c.sum()) > 1000 for c in counts.values())
    # v_init folded into the threshold: exact in real arithmetic; float32 may move a spike at the threshold
    assert sum(diff.values()) <= 2, diff
    assert max_abs < (1e-4 if not sum(diff.values()) else 0.1)


def test_independent_reader_nirtorch_on_mnist_cnn(mnist_snn, tmp_path):
    torch_reader = pytest.importorskip("nir_torch_reader")
    graph = read_back(mnist_snn, tmp_path)
    x = TEST_X[:4]
    spiking = [node for _, node in json.loads(graph.metadata["onnx2snn.neurons"])]
    per_step, spikes = torch_reader.run(nir.read(tmp_path / "snn.nir"), x, 32, spiking)
    counts, values = onnxruntime_spikes(mnist_snn, x)
    for tensor, node in json.loads(graph.metadata["onnx2snn.neurons"]):
        assert np.array_equal(counts[tensor].reshape(4, -1), spikes[node]), tensor
    assert np.abs(per_step.mean(0) - values["logits"]).max() < 1e-4


def test_independent_reader_snntorch_if_on_mnist_vgg(tmp_path):
    """Reset to zero: NIR's own IF node, read by snnTorch's Leaky (β = 1, reset to zero)."""
    torch_reader = pytest.importorskip("nir_torch_reader")
    model = onnx2snn.load_model(str(MODELS / "mnist_vgg.onnx"))
    snn = onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=16, reset="zero")).model
    graph = read_back(snn, tmp_path)
    assert sum(type(n).__name__ == "IF" for n in graph.nodes.values()) == 8
    assert not any(type(n).__name__ == "Scale" for n in graph.nodes.values())  # θ folded into the weights
    x = TEST_X[:4]
    layers = json.loads(graph.metadata["onnx2snn.neurons"])
    per_step, spikes = torch_reader.run(nir.read(tmp_path / "snn.nir"), x, 16, [n for _, n in layers])
    counts, values = onnxruntime_spikes(snn, x)
    sim = simulate(graph, x, 16)
    for tensor, node in layers:
        assert np.array_equal(counts[tensor].reshape(4, -1), spikes[node]), tensor
        assert np.array_equal(counts[tensor].reshape(4, -1), sim.spikes[node].reshape(4, -1)), tensor
    assert np.abs(per_step.mean(0) - values["logits"]).max() < 1e-4


# -- refusals -----------------------------------------------------------------------------------

def expect_refusal(snn, *fragments):
    with pytest.raises(onnx2snn.ConversionError) as info:
        to_nir(snn)
    text = str(info.value)
    assert "\n" not in text
    for f in fragments:
        assert f in text, text
    return text


def test_bipolar_neurons_refused_naming_every_node():
    model = onnx2snn.load_model(CNN)
    snn = onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=4, neuron="bif")).model
    expect_refusal(snn, "'/relu1/Relu', '/relu2/Relu', '/relu3/Relu' (BIFNeuron)", "bipolar", "--neuron if")


def test_temporal_separation_refused():
    model = onnx2snn.load_model(CNN)
    snn = onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=4, neuron="tsep")).model
    expect_refusal(snn, "(TSNeuron)", "not tsep")


@pytest.mark.parametrize("form", ["streaming", "portable"])
def test_other_forms_refused(form):
    model = onnx2snn.load_model(CNN)
    snn = onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=4, form=form)).model
    expect_refusal(snn, f"{form} form", "--form folded")


def test_maxpool_and_zero_reset_with_initial_potential_refused_together():
    rng = np.random.default_rng(0)
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             oh.make_node("Relu", ["c"], ["r"], name="relu"),
             oh.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="maxpool"),
             oh.make_node("Flatten", ["p"], ["f"], name="flatten"),
             oh.make_node("Gemm", ["f", "wf"], ["y"], transB=1, name="fc")]
    ann = make_model(nodes, [("x", ["n", 1, 8, 8])], [("y", ["n", 3])],
                     {"w": dyadic(rng, (2, 1, 3, 3)), "wf": dyadic(rng, (3, 2 * 4 * 4))})
    snn = onnx2snn.convert(ann, {"x": rng.uniform(0, 1, (8, 1, 8, 8)).astype(np.float32)},
                           ConvertConfig(timesteps=4, reset="zero", v_init="half")).model
    text = expect_refusal(snn, "(MaxPool)", "AveragePool", "(IFNeuron)", "--v-init zero")
    assert "2 node(s)" in text


# -- the command --------------------------------------------------------------------------------

def test_cli_writes_the_graph(mnist_snn, tmp_path, capsys):
    snn_path, out = tmp_path / "snn.onnx", tmp_path / "model.nir"
    onnx2snn.save_model(mnist_snn, snn_path)
    assert main(["export-nir", str(snn_path), "-o", str(out)]) == 0
    assert "3 spiking layer(s), T=32" in capsys.readouterr().out
    graph = nir.read(out)
    assert int(graph.metadata["onnx2snn.timesteps"]) == 32 and graph.metadata["onnx2snn.reset"] == "subtract"


def test_cli_refusal_is_one_error_line_and_no_file(tmp_path, capsys):
    model = onnx2snn.load_model(CNN)
    snn_path, out = tmp_path / "bif.onnx", tmp_path / "model.nir"
    onnx2snn.save_model(onnx2snn.convert(model, CALIB, ConvertConfig(timesteps=4, neuron="bif")).model, snn_path)
    assert main(["export-nir", str(snn_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "BIFNeuron" in err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cli_refuses_an_ann(tmp_path, capsys):
    out = tmp_path / "model.nir"
    assert main(["export-nir", CNN, "-o", str(out)]) == 2
    assert "no onnx2snn metadata" in capsys.readouterr().err and not out.exists()


def test_missing_nir_package_is_one_clear_error(mnist_snn, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nir", None)
    with pytest.raises(onnx2snn.ConfigError, match=r"pip install 'onnx2snn\[nir\]'"):
        export_nir(mnist_snn, tmp_path / "model.nir")
    assert not list(tmp_path.iterdir())


def test_final_softmax_recorded_for_after_the_mean(tmp_path):
    rng = np.random.default_rng(6)
    nodes = [oh.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
             oh.make_node("Relu", ["h"], ["r"], name="relu"),
             oh.make_node("Gemm", ["r", "w2"], ["z"], transB=1, name="fc2"),
             oh.make_node("Softmax", ["z"], ["p"], axis=1, name="softmax")]
    ann = make_model(nodes, [("x", ["n", 6])], [("p", ["n", 3])],
                     {"w1": dyadic(rng, (5, 6)), "w2": dyadic(rng, (3, 5))})
    snn = dyadic_snn(ann, {"r": np.float32(0.5)})
    graph = read_back(snn, tmp_path)
    assert json.loads(graph.metadata["onnx2snn.after_mean"]) == {"p": "Softmax"}
    x = dyadic(np.random.default_rng(7), (8, 6), scale=4, bound=2.0)
    _, values = onnxruntime_spikes(snn, x)
    z = simulate(graph, x, 8).mean("p")
    e = np.exp(z - z.max(1, keepdims=True))
    assert np.allclose(e / e.sum(1, keepdims=True), values["p"], atol=1e-6)
