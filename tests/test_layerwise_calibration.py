"""Layer-wise calibration on graphs whose answer is known by hand, and end to end."""
import numpy as np
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2snn
from conftest import MODELS, make_model
from onnx2snn.config import ConvertConfig, ThresholdSpec


def one_neuron_model():
    """x -> Gemm(1·x + 0) -> Relu -> Gemm(1·r + 0): a single IF neuron."""
    nodes = [oh.make_node("Gemm", ["x", "w1", "b1"], ["z"], name="fc1"), oh.make_node("Relu", ["z"], ["a"]),
             oh.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2")]
    one, zero = np.ones((1, 1), np.float32), np.zeros(1, np.float32)
    return make_model(nodes, [("x", ["N", 1])], [("y", ["N", 1])], {"w1": one, "b1": zero, "w2": one, "b2": zero})


def bias_of(model, name="b1"):
    return numpy_helper.to_array(next(i for i in model.graph.initializer if i.name.startswith(name)))


# Calibration data: x = 0.3 and x = 1.0, so θ = max = 1. With T = 4 and v0 = 0 the
# first sample's potential is 0.3, 0.6, 0.9, 1.2 -> one spike -> r̄ = 0.25 (a = 0.3,
# error 0.05); the second fires every step (r̄ = 1 = a, error 0). Mean error 0.025.
DATA = {"x": np.array([[0.3], [1.0]], np.float32)}
CFG = dict(timesteps=4, threshold=ThresholdSpec.parse("max"))


def test_bias_calibration_by_hand():
    result = onnx2snn.convert(one_neuron_model(), DATA, ConvertConfig(**CFG, calibrate=("bias",)))
    fc1 = next(n for n in result.model.graph.node if n.name == "fc1")
    bias = numpy_helper.to_array(next(i for i in result.model.graph.initializer if i.name == fc1.input[2]))
    np.testing.assert_allclose(bias, [0.025], atol=1e-6)
    # the ANN returned is the uncalibrated one
    np.testing.assert_array_equal(bias_of(result.ann), [0.0])
    report = result.layer_reports[0]
    assert report.clip_err == 0.0
    # before: (0.3 - 0.25)^2 / (0.3^2 + 1)
    assert report.floor_before == pytest.approx(0.05 ** 2 / (0.09 + 1.0), rel=1e-4)


def test_potential_calibration_by_hand():
    """PC adds T·k·(mean error) to v0, k = 1 − s²/d² the part of the mean its samples tell from noise:
    three samples at 0.3 (error 0.05 each) and one at 1.0 (error 0): mean 0.0375, squared standard
    error var/(n − 1) = 0.00046875/3, so k = 1 − 0.00015625/0.00140625 = 8/9."""
    data = {"x": np.array([[0.3], [0.3], [0.3], [1.0]], np.float32)}
    result = onnx2snn.convert(one_neuron_model(), data, ConvertConfig(**CFG, calibrate=("potential",)))
    v0 = result.v_init["a"]
    np.testing.assert_allclose(np.asarray(v0).reshape(-1), [4 * 0.0375 * 8 / 9], atol=1e-6)
    neuron = next(n for n in result.model.graph.node if n.op_type == "IFNeuron")
    assert len(neuron.input) == 3  # v_init is wired into the op
    assert result.layer_reports[0].floor_after <= result.layer_reports[0].floor_before + 1e-9


def test_potential_calibration_leaves_what_is_noise():
    """Two samples with errors 0.05 and 0: the mean 0.025 is one standard error from 0, so the data
    cannot tell it from noise and PC leaves v0 at 0 (a correction fitted to it would not generalise)."""
    result = onnx2snn.convert(one_neuron_model(), DATA, ConvertConfig(**CFG, calibrate=("potential",)))
    np.testing.assert_allclose(np.asarray(result.v_init["a"]).reshape(-1), [0.0], atol=1e-7)


def test_half_init_is_theta_over_two():
    result = onnx2snn.convert(one_neuron_model(), DATA, ConvertConfig(**CFG, v_init="half"))
    np.testing.assert_allclose(np.asarray(result.v_init["a"]), 0.5)
    # with v0 = θ/2 the first sample spikes at 0.5+0.3·2 = 1.1 (t=1) and 1.1-1+0.9... : rounding, 1 spike
    logits, running = onnx2snn.InferenceSession(result.model).run(None, {"x": DATA["x"]})
    np.testing.assert_allclose(logits.reshape(-1), [0.25, 1.0], atol=1e-6)


@pytest.fixture(scope="module")
def mnist():
    test = np.load(MODELS / "data" / "mnist_test.npz")
    return onnx2snn.load_model(MODELS / "mnist_cnn.onnx"), test["x"], test["labels"]


def test_calibration_beats_plain_balancing_on_bundled_cnn(mnist):
    model, x, y = mnist
    T = 8
    base = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("mse"), channel_wise=True, v_init="half")
    calibrated = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("mse"), channel_wise=True,
                               v_init="half", calibrate=("weight", "bias", "potential"))
    calib = MODELS / "data" / "mnist_calib.npz"
    plain = onnx2snn.convert(model, calib, base)
    better = onnx2snn.convert(model, calib, calibrated)
    acc_plain = onnx2snn.evaluate(plain.ann, plain.model, {"input": x}, y, 250).snn_top1[T]
    acc_cal = onnx2snn.evaluate(better.ann, better.model, {"input": x}, y, 250).snn_top1[T]
    assert acc_cal > acc_plain + 1.0, (acc_plain, acc_cal)
    reports = better.layer_reports
    assert [r.output for r in reports] == [False, False, False, True]   # three neuron layers, the logits Gemm
    # weight calibration lowers its objective wherever it has something to fit
    # (not the first: it reads the analog image, so its mean current is already the ANN's)
    assert reports[0].notes == ["no WC: the layer reads the analog input, its mean current is the ANN's"]
    assert all(r.wc_after <= r.wc_before + 1e-9 for r in reports[1:3])
    # 256 samples are too few for the logits Gemm's 1,568 weights + bias per output
    assert reports[3].notes == ["output layer not fitted: 256 rows for 1569 weights per output "
                                "(it needs 10 rows per weight)"]
    assert any(r.floor_after < r.floor_before for r in reports)


def test_mse_threshold_on_exact_values():
    from onnx2snn.calibration import ActivationStats
    from onnx2snn.calibration.thresholds import mse_threshold, quantize
    s = ActivationStats(channel_wise=False, bins=512)
    s.update(np.full((10, 4), 2.0, np.float32))
    theta = mse_threshold(s, timesteps=4)
    # every value equal: the error-free θ is the value itself (up to the histogram's resolution)
    np.testing.assert_allclose(theta, [2.0], rtol=0.01)
    np.testing.assert_allclose(quantize(np.array([0.2, 0.9, 5.0]), 1.0, 4), [0.0, 0.75, 1.0])
    np.testing.assert_allclose(quantize(np.array([0.2, 0.9]), 1.0, 4, offset=0.5), [0.25, 1.0])


def test_ltb_thresholds_grow_towards_the_activation_range():
    from onnx2snn.calibration.ltb import ltb_thresholds
    from onnx2snn.data import ArrayDataReader
    nodes = [oh.make_node("Conv", ["x", "w"], ["z"]), oh.make_node("Relu", ["z"], ["a"]),
             oh.make_node("GlobalAveragePool", ["a"], ["y"])]
    w = np.array([1.0, 2.0], np.float32).reshape(2, 1, 1, 1)
    model = make_model(nodes, [("x", ["N", 1, 4, 4])], [("y", ["N", 2, 1, 1])], {"w": w})
    x = np.random.default_rng(0).uniform(0, 1, (64, 1, 4, 4)).astype(np.float32)
    reader = ArrayDataReader({"x": x}, 16)
    th = ltb_thresholds(model, ["a"], {"a": (2, 4, 4)}, reader, max_passes=4, channel_wise=True)["a"]
    assert th.shape == (2,) and np.all(th > 0)
    assert th[1] == pytest.approx(2 * th[0], rel=0.05)  # scales with the channel's range
    # the first step already jumps to 2·E[relu(z)] (= the max for a uniform [0, max]);
    # later steps add 2·E[(z − θ)⁺], which is small from there on
    assert 0.9 < th[0] < 1.2


def three_layer_model():
    """x[4] -> Gemm -> Relu (a1) -> Gemm -> Relu (a2) -> Gemm -> Relu (a3) -> Gemm -> y, mixed-sign
    weights: layer 2's input arrives unevenly, so its bipolar neurons emit negative spikes, which
    layer 3 reads."""
    rng = np.random.default_rng(3)
    nodes, inits, prev = [], {}, "x"
    sizes = [4, 6, 5, 5, 3]
    for k in range(1, 5):
        nodes.append(oh.make_node("Gemm", [prev, f"w{k}", f"b{k}"], [f"z{k}"], name=f"fc{k}"))
        inits[f"w{k}"] = rng.uniform(-1, 1, (sizes[k - 1], sizes[k])).astype(np.float32)
        inits[f"b{k}"] = np.full(sizes[k], 0.1 if k > 1 else 0.0, np.float32)
        if k < 4:
            nodes.append(oh.make_node("Relu", [f"z{k}"], [f"a{k}"]))
            prev = f"a{k}"
    nodes[-1].output[0] = "y"
    return make_model(nodes, [("x", ["N", 4])], [("y", ["N", 3])], inits)


def neuron_outputs(snn, feeds, names):
    """The SNN's intermediate tensors ``names`` (neuron outputs, [T·N, C]) under onnxruntime."""
    from onnx2snn.calibration.collect import augment_outputs
    return onnx2snn.InferenceSession(augment_outputs(snn, names)).run(list(names), feeds)


def test_bipolar_neurons_on_a_float_ann_match_the_reference():
    from onnx2snn.neurons.bipolar.reference import bif_neuron
    model, T = three_layer_model(), 6
    x = np.random.default_rng(4).uniform(-1, 1, (32, 4)).astype(np.float32)
    result = onnx2snn.convert(model, {"x": x}, ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("max"),
                                                              v_init="half", neuron="bif"))
    neurons = [n for n in result.model.graph.node if n.op_type == "BIFNeuron"]
    assert len(neurons) == 3 and not any(n.op_type == "IFNeuron" for n in result.model.graph.node)
    assert all(oh.get_attribute_value(a) == T for n in neurons for a in n.attribute if a.name == "levels")
    s1, s2 = neuron_outputs(result.model, {"x": x}, ["a1", "a2"])
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    th = result.thresholds
    ref1 = bif_neuron(np.tile(x @ w["w1"] + w["b1"], (T, 1)), th["a1"], th["a1"] / 2, timesteps=T, levels=T)
    ref2 = bif_neuron(ref1 @ w["w2"] + w["b2"], th["a2"], th["a2"] / 2, timesteps=T, levels=T)
    np.testing.assert_allclose(s1, ref1, atol=1e-6)
    np.testing.assert_allclose(s2, ref2, atol=1e-5)
    assert (s2 < 0).any(), "the example should exercise negative spikes"


def test_bipolar_bias_calibration_sees_the_snns_own_spikes():
    """Layer 3's BC shift is the mean error of the SNN as built (layers 1-2 calibrated, layer 2's
    negative spikes included): rebuilt from the converted model with layer 3's bias put back."""
    model, T = three_layer_model(), 6
    x = np.random.default_rng(5).uniform(-1, 1, (64, 4)).astype(np.float32)
    cfg = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("max"), v_init="half", neuron="bif",
                        calibrate=("bias",))
    result = onnx2snn.convert(model, {"x": x}, cfg)
    b3 = bias_of(model, "b3")
    fc3 = next(n for n in result.model.graph.node if n.name == "fc3")
    shifted = next(i for i in result.model.graph.initializer if i.name == fc3.input[2])
    delta = numpy_helper.to_array(shifted) - b3
    shifted.CopyFrom(numpy_helper.from_array(b3, shifted.name))      # layer 3 as it was before its BC
    s2, s3 = neuron_outputs(result.model, {"x": x}, ["a2", "a3"])
    assert (s2 < 0).any(), "layer 3 should read negative spikes"
    ann_a3 = np.maximum(neuron_outputs(result.ann, {"x": x}, ["z3"])[0], 0)   # θ = max: no clipping
    np.testing.assert_allclose(delta, (ann_a3 - s3.reshape(T, len(x), -1).mean(0)).mean(0), atol=1e-5)


def test_reused_currents_equal_recomputed_ones(monkeypatch):
    """Pass B's reuse of pass-A currents (plus the bias shift) gives the recomputed result."""
    from onnx2snn.calibration import layerwise
    model = three_layer_model()
    x = np.random.default_rng(6).uniform(-1, 1, (64, 4)).astype(np.float32)
    cfg = ConvertConfig(timesteps=5, threshold=ThresholdSpec.parse("mse"), v_init="half", neuron="bif",
                        calibrate=("bias", "potential"), batch_size=16)
    kept = onnx2snn.convert(model, {"x": x}, cfg)
    monkeypatch.setattr(layerwise, "KEEP_BYTES", 0)
    recomputed = onnx2snn.convert(model, {"x": x}, cfg)
    for name in ("b1", "b2", "b3"):
        np.testing.assert_allclose(bias_of(kept.model, name), bias_of(recomputed.model, name), atol=1e-6)
    for name in kept.v_init:
        np.testing.assert_allclose(kept.v_init[name], recomputed.v_init[name], atol=1e-5)


def test_layerwise_calibration_caps_sample_steps(monkeypatch):
    """With a budget of T sample-steps only the first sample is simulated: the BC shift is its
    error alone, 0.3 − 0.25 = 0.05 (thresholds still come from all the data: θ = max = 1)."""
    from onnx2snn.calibration import layerwise
    monkeypatch.setattr(layerwise, "SAMPLE_STEPS", 4)
    result = onnx2snn.convert(one_neuron_model(), DATA, ConvertConfig(**CFG, calibrate=("bias",)))
    fc1 = next(n for n in result.model.graph.node if n.name == "fc1")
    bias = numpy_helper.to_array(next(i for i in result.model.graph.initializer if i.name == fc1.input[2]))
    np.testing.assert_allclose(bias, [0.05], atol=1e-6)
    np.testing.assert_allclose(result.thresholds["a"], 1.0)


def test_a_tiny_memory_limit_chooses_smaller_batches_with_the_same_result(mnist, caplog):
    """--max-memory bounds the statistics phase and layer-wise calibration: under 24 MiB the bundled CNN
    runs both in batches of a few samples (each said in a warning), and the calibrated SNN is the one a
    large limit gives (the histograms do not depend on the batches; the sums only change their order)."""
    import logging

    model, x, _ = mnist
    calib = {"input": x[:64]}
    cfg = dict(timesteps=8, threshold=ThresholdSpec.parse("mse"), channel_wise=True, v_init="half",
               calibrate=("weight", "bias", "potential"), batch_size=64)
    large = onnx2snn.convert(model, calib, ConvertConfig(**cfg, max_memory=8 << 30))
    with caplog.at_level(logging.WARNING):
        small = onnx2snn.convert(model, calib, ConvertConfig(**cfg, max_memory=24 << 20))
    said = [r.getMessage() for r in caplog.records if "layer-wise calibration ran batches of" in r.getMessage()]
    assert said and "--max-memory 24.0 MiB" in said[0]
    assert not [r for r in caplog.records if "on the first" in r.getMessage()]  # all 64 samples are held
    stats = [r.getMessage() for r in caplog.records if "activation statistics ran batches of" in r.getMessage()]
    assert stats and 1 <= int(stats[0].split("batches of ")[1].split()[0]) < 64, stats
    batch = int(said[0].split("batches of ")[1].split()[0])
    assert 1 <= batch < 64
    for name in large.v_init:
        np.testing.assert_allclose(small.v_init[name], large.v_init[name], rtol=1e-4, atol=1e-5)
    for a, b in zip(large.model.graph.initializer, small.model.graph.initializer):
        np.testing.assert_allclose(numpy_helper.to_array(b), numpy_helper.to_array(a), rtol=1e-4, atol=1e-5)
    out_l = onnx2snn.InferenceSession(large.model).run(["logits"], {"input": x[:32]})[0]
    out_s = onnx2snn.InferenceSession(small.model).run(["logits"], {"input": x[:32]})[0]
    assert (out_l.argmax(1) == out_s.argmax(1)).mean() >= 0.97


def test_a_memory_limit_below_what_all_samples_hold_spills_them_to_disk(mnist, caplog):
    """Under 8 MiB the spike trains of all 64 samples (63 KB each at T = 8) cannot be held in memory
    beside the simulation: the rest goes to a temporary file, every sample is still used (said on
    stderr), and the calibrated SNN is the one a large limit gives."""
    import logging

    model, x, _ = mnist
    cfg = dict(timesteps=8, threshold=ThresholdSpec.parse("mse"), channel_wise=True, v_init="half",
               calibrate=("bias",), batch_size=8)
    large = onnx2snn.convert(model, {"input": x[:64]}, ConvertConfig(**cfg, max_memory=8 << 30))
    with caplog.at_level(logging.INFO):
        small = onnx2snn.convert(model, {"input": x[:64]}, ConvertConfig(**cfg, max_memory=8 << 20))
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "on the first" in m]
    assert [m for m in messages if "more in a temporary file" in m], messages
    wrote = [m for m in messages if "wrote" in m and "temporary files" in m]
    assert wrote and float(wrote[0].split("wrote ")[1].split()[0]) > 0
    for a, b in zip(large.model.graph.initializer, small.model.graph.initializer):
        np.testing.assert_allclose(numpy_helper.to_array(b), numpy_helper.to_array(a), rtol=1e-4, atol=1e-5)


def test_the_calibration_data_itself_counts_against_the_memory_limit(mnist, caplog):
    """What layer-wise calibration keeps in memory is 3/8 of the limit less the calibration data, which
    is held throughout: stderr says both figures."""
    import logging

    from onnx2snn.sizes import format_size

    model, x, _ = mnist
    cfg = dict(timesteps=8, threshold=ThresholdSpec.parse("mse"), calibrate=("bias",), batch_size=8)
    limit = 8 << 20
    with caplog.at_level(logging.INFO):
        onnx2snn.convert(model, {"input": x[:64]}, ConvertConfig(**cfg, max_memory=limit))
    said = [r.getMessage() for r in caplog.records if "more in a temporary file" in r.getMessage()]
    data = x[:64].astype(np.float32).nbytes
    assert said and f"{format_size(limit * 3 // 8 - data)} in memory (3/8 of --max-memory less the " \
        f"{format_size(data)} of calibration data)" in said[0], said


def test_without_disk_for_the_samples_calibration_uses_the_first_that_fit(mnist, caplog, monkeypatch):
    """No free disk in the temporary directory: layer-wise calibration uses the first samples that fit
    in memory, and says how many and why."""
    import logging

    from onnx2snn.calibration import layerwise

    monkeypatch.setattr(layerwise, "disk_free", lambda: 0)
    model, x, _ = mnist
    cfg = dict(timesteps=8, threshold=ThresholdSpec.parse("mse"), channel_wise=True, v_init="half",
               calibrate=("bias",), batch_size=64)
    with caplog.at_level(logging.WARNING):
        small = onnx2snn.convert(model, {"input": x[:64]}, ConvertConfig(**cfg, max_memory=8 << 20))
    said = [r.getMessage() for r in caplog.records if "layer-wise calibration on the first" in r.getMessage()]
    assert len(said) == 1 and "raise --max-memory" in said[0] and "free disk" in said[0], said
    used = int(said[0].split("on the first ")[1].split()[0])
    assert 1 <= used < 64
    assert len(small.layer_reports) == 3 and all(r.floor_after <= r.floor_before + 1e-3 for r in small.layer_reports)


def test_a_memory_limit_layerwise_calibration_cannot_meet_is_refused_before_work(mnist, monkeypatch):
    """Batch 1 of the largest layer already needs more than the limit: one error naming the layer."""
    from onnx2snn.errors import ConfigError
    from onnx2snn.recipes import rate

    def no_statistics(*args, **kwargs):
        raise AssertionError("the statistics ran before the memory check")

    monkeypatch.setattr(rate, "collect_statistics", no_statistics)
    model, x, _ = mnist
    cfg = ConvertConfig(timesteps=8, calibrate=("bias",), max_memory=1 << 20)
    with pytest.raises(ConfigError, match=r"layer-wise calibration at T=8 needs about .* largest layer '.*' .*"
                                          r"over half of --max-memory"):
        onnx2snn.convert(model, {"input": x[:16]}, cfg)


def test_grouped_weight_fit_is_one_ridge_fit_per_group():
    """A depthwise conv's weight calibration solves one least-squares problem per channel over its
    kh·kw inputs: the grouped sums give what numpy's solve gives on each group's rows alone."""
    from onnx2snn.calibration.layerwise import RIDGE, _LeastSquares

    rng = np.random.default_rng(0)
    G, K, P, out = 3, 4, 200, 2
    X = rng.normal(size=(P, G * K)).astype(np.float32)
    R = rng.normal(size=(P, G * out)).astype(np.float32)
    fit = _LeastSquares(G)
    fit.add(X[:100], R[:100], valid=1, first=0)
    fit.add(X[100:], R[100:], valid=1, first=1)
    dW, before, after = fit.solve()
    assert dW.shape == (G, K + 1, out)
    for g in range(G):
        Xa = np.concatenate([X[:, g * K:(g + 1) * K], np.ones((P, 1), np.float32)], 1).astype(np.float64)
        A = Xa.T @ Xa
        reg = RIDGE * np.mean(np.diag(A)[:-1]) * np.eye(K + 1)
        reg[-1, -1] = 0
        np.testing.assert_allclose(dW[g], np.linalg.solve(A + reg, Xa.T @ R[:, g * out:(g + 1) * out]),
                                   rtol=1e-4, atol=1e-6)  # the sums are float32 products
    resid = sum(np.sum((R[:, g * out:(g + 1) * out] - np.concatenate(
        [X[:, g * K:(g + 1) * K], np.ones((P, 1))], 1) @ dW[g]) ** 2) for g in range(G))
    assert before == pytest.approx(np.sum(R.astype(np.float64) ** 2) / P, rel=1e-6)
    assert after == pytest.approx(resid / P, rel=1e-4)


def test_subsampled_weight_fit_does_not_depend_on_the_batching(monkeypatch):
    """Where a sample's positions cost more than WC_MACS, each sample keeps the same positions (drawn
    by its index in the set) whatever batches it arrives in, so the sums, and the fit, are the same."""
    from onnx2snn.calibration import layerwise
    from onnx2snn.calibration.layerwise import _LeastSquares

    monkeypatch.setattr(layerwise, "WC_MACS", 5 * 6 * 70)   # 70 of 100 positions per sample
    monkeypatch.setattr(layerwise, "WC_MIN_POSITIONS", 1)
    rng = np.random.default_rng(3)
    N, positions, K, out = 6, 100, 4, 1
    X = rng.normal(size=(N * positions, K)).astype(np.float32)
    R = rng.normal(size=(N * positions, out)).astype(np.float32)
    fits = []
    for batch in (1, 2, 4, 6):
        fit = _LeastSquares(1)
        for first in range(0, N, batch):
            valid = min(batch, N - first)
            rows = slice(first * positions, (first + valid) * positions)
            fit.add(X[rows], R[rows], valid=valid, first=first)
        assert fit.kept == (70, 100)
        fits.append(fit)
    for fit in fits[1:]:
        np.testing.assert_allclose(fit.gram, fits[0].gram, rtol=1e-5)
        np.testing.assert_allclose(fit.cross, fits[0].cross, rtol=1e-5)
        np.testing.assert_allclose(fit.solve()[0], fits[0].solve()[0], rtol=1e-4, atol=1e-6)
    full = X.astype(np.float64)
    assert fits[0].rows[0, -1] == pytest.approx(N * positions)   # scaled up: an unbiased count of rows
    assert not np.allclose(fits[0].gram[0, :-1, :-1], full.T @ full, rtol=1e-3)  # it did subsample


def depthwise_model():
    """Conv 1→4 -> Relu -> depthwise 3×3 (group 4) -> Relu -> GlobalAveragePool -> Gemm 4→3."""
    rng = np.random.default_rng(1)
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             oh.make_node("Relu", ["c1"], ["a1"]),
             oh.make_node("Conv", ["a1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=4, name="dw"),
             oh.make_node("Relu", ["c2"], ["a2"]),
             oh.make_node("GlobalAveragePool", ["a2"], ["g"]), oh.make_node("Flatten", ["g"], ["f"]),
             oh.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    inits = {"w1": rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "b1": np.full(4, 0.1, np.float32),
             "w2": rng.normal(0, 0.5, size=(4, 1, 3, 3)).astype(np.float32), "b2": np.full(4, 0.2, np.float32),
             "w3": rng.normal(size=(3, 4)).astype(np.float32), "b3": np.zeros(3, np.float32)}
    return make_model(nodes, [("x", ["N", 1, 8, 8])], [("y", ["N", 3])], inits)


def test_weight_calibration_fits_depthwise_convs():
    x = np.random.default_rng(2).uniform(0, 1, size=(64, 1, 8, 8)).astype(np.float32)
    cfg = ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max"), calibrate=("weight",))
    result = onnx2snn.convert(depthwise_model(), {"x": x}, cfg)
    dw = next(r for r in result.layer_reports if r.name == "a2")
    assert not dw.notes, dw.notes
    assert dw.wc_after < dw.wc_before   # the depthwise layer's fit found something to correct
    before = numpy_helper.to_array(next(i for i in result.ann.graph.initializer if i.name == "w2"))
    node = next(n for n in result.model.graph.node if n.op_type == "Conv" and n.input[1].startswith("w2"))
    after = numpy_helper.to_array(next(i for i in result.model.graph.initializer if i.name == node.input[1]))
    assert after.shape == before.shape and not np.array_equal(after, before)


def test_weight_calibration_on_too_few_samples_warns_with_the_number_needed(caplog):
    """The Gemm after the pool fits 4 weights + a bias per output: 3 samples are too few."""
    import logging

    x = np.random.default_rng(3).uniform(0, 1, size=(3, 1, 8, 8)).astype(np.float32)
    cfg = ConvertConfig(timesteps=4, threshold=ThresholdSpec.parse("max"), calibrate=("weight",))
    model = depthwise_model()
    nodes = list(model.graph.node)
    del model.graph.node[:]   # a Relu after the Gemm makes it a neuron layer whose weights are fitted
    model.graph.node.extend(nodes[:-1] + [oh.make_node("Gemm", ["f", "w3", "b3"], ["h"], transB=1, name="fc"),
                                          oh.make_node("Relu", ["h"], ["y"])])
    with caplog.at_level(logging.WARNING):
        result = onnx2snn.convert(model, {"x": x}, cfg)
    said = [r.getMessage() for r in caplog.records if "weight calibration of layer" in r.getMessage()]
    assert len(said) == 1 and "'y'" in said[0] and "give at least 5 calibration samples" in said[0], said
    assert result.layer_reports[-1].notes == ["WC underdetermined: at least 5 samples needed"]


def test_calibration_sessions_do_not_spin_between_runs():
    """Layer-wise calibration alternates onnxruntime runs with numpy work on their outputs: threads that
    spin after a run would take the core that numpy work needs."""
    from onnx2snn.calibration.collect import calibration_session
    from onnx2snn.calibration.layerwise import LayerwiseCalibrator

    model = one_neuron_model()
    key = "session.intra_op.allow_spinning"
    assert calibration_session(model).get_session_options().get_session_config_entry(key) == "0"
    cal = LayerwiseCalibrator(model, {"a": np.ones(1, np.float32)}, {}, 4, "subtract", ())
    assert cal._neuron_session.get_session_options().get_session_config_entry(key) == "0"
