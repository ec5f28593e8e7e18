"""Temporal separation (``--neuron tsep``): the SNN equals the T-level quantised ANN.

Tolerances: tsep SNN output = the ANN with every ReLU replaced by
θ/T·clip(⌊T·x/θ + δ⌋, 0, T) within 1e-5 (the mode's guarantee, float rounding
only); portable form = folded form bit for bit. The op kernel itself is tested
in test_ts_neuron_kernel.py.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS, make_model, rng_array
from onnx2snn.cli.main import main
from onnx2snn.config import ConvertConfig, Form, Neuron, ThresholdSpec
from onnx2snn.errors import ConfigError, UnsupportedOpError
from onnx2snn.core.graph import export_graph, import_model
from onnx2snn.neurons.temporal_separation.quantize import QuantizeActivationsPass
from onnx2snn.pipeline import build_snn

F32 = np.float32


def _net(pool: bool = False, dynamic: bool = False, opset: int = 13, late_pool: bool = False) -> onnx.ModelProto:
    """Conv→Relu[→MaxPool]→Conv[→MaxPool]→Relu→(Flatten | GlobalAveragePool)→Gemm, with a residual Add."""
    nodes = [oh.make_node("Conv", ["x", "W1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"])]
    h = "r1"
    if pool:
        nodes.append(oh.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]))
        h = "p1"
    nodes += [oh.make_node("Conv", [h, "W2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
              oh.make_node("Add", ["c2", h], ["s2"])]
    if late_pool:  # max pooling of currents computed from spikes: not exact under tsep
        nodes.append(oh.make_node("MaxPool", ["s2"], ["s2p"], kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(oh.make_node("Relu", ["s2p" if late_pool else "s2"], ["r2"]))
    if dynamic:
        nodes += [oh.make_node("GlobalAveragePool", ["r2"], ["g"]), oh.make_node("Flatten", ["g"], ["f"])]
        features = 3
    else:
        nodes.append(oh.make_node("Flatten", ["r2"], ["f"]))
        features = 3 * (9 if pool or late_pool else 36)
    nodes.append(oh.make_node("Gemm", ["f", "Wf", "bf"], ["y"], transB=1))
    init = {"W1": rng_array(3, 2, 3, 3, seed=1), "b1": rng_array(3, seed=2, low=0.0),
            "W2": rng_array(3, 3, 3, 3, seed=3, low=-0.6, high=0.6), "b2": rng_array(3, seed=4),
            "Wf": rng_array(4, features, seed=5), "bf": rng_array(4, seed=6)}
    shape = ["N", 2, "H", "W"] if dynamic else ["N", 2, 6, 6]
    return make_model(nodes, [("x", shape)], [("y", ["N", 4])], init, opset=opset)


def _quantised_ann(result) -> onnx.ModelProto:
    graph = import_model(result.ann)
    QuantizeActivationsPass(result.thresholds, result.config.timesteps, result.config.v_init.value == "half")(graph)
    return export_graph(graph, like=result.ann)


def _run(model, x, library=False):
    if library:
        return onnx2snn.InferenceSession(model).run(None, {"x": x})
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


@pytest.mark.parametrize("threshold,channel_wise,v_init", [("mse", True, "half"), ("max", False, "zero"),
                                                           ("percentile:99", True, "zero")])
@pytest.mark.parametrize("timesteps", [1, 4, 9])
@pytest.mark.parametrize("pool", [False, True])
def test_snn_equals_quantised_ann(threshold, channel_wise, v_init, timesteps, pool):
    calib = rng_array(32, 2, 6, 6, seed=7)
    config = ConvertConfig(timesteps=timesteps, threshold=ThresholdSpec.parse(threshold), channel_wise=channel_wise,
                           v_init=v_init, neuron="tsep")
    result = onnx2snn.convert(_net(pool=pool), {"x": calib}, config)
    ops = [n.op_type for n in result.model.graph.node]
    assert ops.count("TSNeuron") == 2 and "IFNeuron" not in ops and "Relu" not in ops
    assert ("MaxPool" in ops) == pool  # kept after its neuron: pooling prefix trains is exact
    x = rng_array(16, 2, 6, 6, seed=8)
    mean, running = _run(result.model, x, library=True)
    (want,) = _run(_quantised_ann(result), x)
    np.testing.assert_allclose(mean, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(running[-1], mean)
    # the quantised activations are not a trivial all-zero / all-saturated code
    q = onnx2snn.InferenceSession(result.model).run(None, {"x": x})[0]
    assert np.ptp(q) > 0


def test_metadata_latency_and_depth():
    result = onnx2snn.convert(_net(), {"x": rng_array(8, 2, 6, 6)}, ConvertConfig(timesteps=5, neuron=Neuron.TSEP))
    meta = {p.key: p.value for p in result.model.metadata_props}
    assert meta["onnx2snn.neuron"] == "tsep"
    assert meta["onnx2snn.spiking_depth"] == "2" and meta["onnx2snn.latency_steps"] == str(3 * 5)


@pytest.mark.parametrize("opset,dynamic", [(13, False), (11, False), (13, True)])
def test_portable_form_is_bit_exact(opset, dynamic):
    model = _net(pool=not dynamic, dynamic=dynamic, opset=opset)
    config = ConvertConfig(timesteps=6, threshold=ThresholdSpec.parse("mse"), channel_wise=True, v_init="half",
                           neuron="tsep")
    result = onnx2snn.convert(model, {"x": rng_array(16, 2, 6, 6, seed=3)}, config)
    portable = build_snn(result.ann, result.thresholds, replace(config, form=Form.PORTABLE), result.v_init)
    onnx.checker.check_model(portable)
    assert not any(n.domain == "onnx2snn" for n in portable.graph.node)
    assert not any(n.op_type in ("Scan", "Loop") for n in portable.graph.node)
    x = rng_array(5, 2, 6, 6, seed=4)
    for got, want in zip(_run(portable, x), _run(result.model, x, library=True)):
        np.testing.assert_array_equal(got, want)


def test_portable_without_v_init():
    config = ConvertConfig(timesteps=3, threshold=ThresholdSpec.parse("max"), neuron="tsep", form="portable")
    result = onnx2snn.convert(_net(), {"x": rng_array(8, 2, 6, 6)}, config)
    folded = build_snn(result.ann, result.thresholds, replace(config, form=Form.FOLDED))
    x = rng_array(5, 2, 6, 6, seed=4)
    for got, want in zip(_run(result.model, x), _run(folded, x, library=True)):
        np.testing.assert_array_equal(got, want)


def test_max_pool_of_spike_derived_currents_refused():
    with pytest.raises(UnsupportedOpError, match="max pooling of a spike-derived current"):
        onnx2snn.convert(_net(late_pool=True), {"x": rng_array(8, 2, 6, 6)}, ConvertConfig(timesteps=4, neuron="tsep"))


@pytest.mark.parametrize("kwargs,fragment", [
    ({"form": "streaming"}, "--form streaming cannot run --neuron tsep"),
    ({"calibrate": ("bias",)}, "--calibrate"),
    ({"reset": "zero"}, "--reset does not apply"),
])
def test_config_refusals(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ConvertConfig(timesteps=4, neuron="tsep", **kwargs)


def test_cli_convert_then_evaluate(tmp_path, capsys):
    out = tmp_path / "tsep.onnx"
    calib, test = str(MODELS / "data" / "mnist_calib.npz"), str(MODELS / "data" / "mnist_test.npz")
    assert main(["convert", str(MODELS / "mnist_cnn.onnx"), "-o", str(out), "--calibration-data", calib, "-T", "8",
                 "--neuron", "tsep", "--threshold", "mse", "--channel-wise", "--v-init", "half", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "3 TSNeuron layer(s)" in printed and "first output after 32 steps" in printed
    model = onnx.load(out)
    assert [n.op_type for n in model.graph.node].count("TSNeuron") == 3
    assert main(["evaluate", str(MODELS / "mnist_cnn.onnx"), str(out), "--data", test, "--json", "-q"]) == 0
    import json
    res = json.loads(capsys.readouterr().out)
    assert res["snn_top1"]["8"] >= res["ann_top1"] - 2.0  # 8 levels per layer: close to the ANN


def test_cli_streaming_refused(tmp_path, capsys):
    out = tmp_path / "tsep.onnx"
    code = main(["convert", str(MODELS / "mnist_cnn.onnx"), "-o", str(out), "--calibration-data",
                 str(MODELS / "data" / "mnist_calib.npz"), "-T", "8", "--neuron", "tsep", "--form", "streaming", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("error: ") == 1
    assert "--form streaming cannot run --neuron tsep" in err
    assert not out.exists() and not list(tmp_path.iterdir())
