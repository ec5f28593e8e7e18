"""--mirror-calibration: the calibration set and its left-right mirror images (calibration/mirror.py)."""
import subprocess
import sys

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import onnx2snn
from conftest import MODELS, REPO, make_model, rng_array
from onnx2snn.calibration.mirror import mirrored, width_axis
from onnx2snn.config import ConvertConfig, ThresholdSpec
from onnx2snn.errors import ConfigError


def conv_net(nhwc: bool = False) -> onnx.ModelProto:
    """[N, 2, 5, 6] (or NHWC [N, 5, 6, 2] behind a Transpose) → Conv 3×3 → Relu → Conv 1×1: a width-asymmetric
    kernel, so a mirrored image gives other activations."""
    w1 = rng_array(4, 2, 3, 3, seed=1)
    w1[:, :, :, 0] += 1.0  # left column heavier than the right one
    nodes = ([oh.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2])] if nhwc else []) + [
        oh.make_node("Conv", ["x_nchw" if nhwc else "x", "w1", "b1"], ["z"], pads=[1, 1, 1, 1]),
        oh.make_node("Relu", ["z"], ["a"]),
        oh.make_node("Conv", ["a", "w2", "b2"], ["y"])]
    inits = {"w1": w1, "b1": np.zeros(4, np.float32), "w2": rng_array(3, 4, 1, 1, seed=2),
             "b2": np.zeros(3, np.float32)}
    shape = ["N", 5, 6, 2] if nhwc else ["N", 2, 5, 6]
    return make_model(nodes, [("x", shape)], [("y", ["N", 3, 5, 6])], inits)


def images(n: int = 6, nhwc: bool = False) -> np.ndarray:
    x = rng_array(n, 2, 5, 6, seed=3, low=0.0, high=1.0)
    x[..., :3] *= 0.2   # left halves dark, right halves bright: the mirror images differ
    return x.transpose(0, 2, 3, 1).copy() if nhwc else x


def test_mirrored_appends_the_mirror_images_in_order():
    x = images()
    before = x.copy()
    out = mirrored({"x": x}, conv_net())["x"]
    assert out.shape == (12, 2, 5, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:6], x)
    np.testing.assert_array_equal(out[6:], x[:, :, :, ::-1])
    np.testing.assert_array_equal(x, before)   # the given arrays are not modified


def test_nhwc_input_is_mirrored_along_the_axis_the_conv_reads_as_width():
    model = conv_net(nhwc=True)
    assert width_axis(model, "x") == 2
    x = images(nhwc=True)
    out = mirrored({"x": x}, model)["x"]
    np.testing.assert_array_equal(out[6:], x[:, :, ::-1, :])


def test_an_input_that_is_not_an_image_batch_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"'x' \[4, 7\].*leave the flag out"):
        mirrored({"x": np.zeros((4, 7), np.float32)}, conv_net())


def test_convert_with_mirror_equals_convert_on_the_doubled_set():
    cfg = dict(timesteps=4, threshold=ThresholdSpec.parse("max"), calibrate=("weight", "bias", "potential"))
    x = images()
    got = onnx2snn.convert(conv_net(), {"x": x}, ConvertConfig(**cfg, mirror_calibration=True))
    want = onnx2snn.convert(conv_net(), {"x": np.concatenate([x, x[..., ::-1]])}, ConvertConfig(**cfg))
    plain = onnx2snn.convert(conv_net(), {"x": x}, ConvertConfig(**cfg))
    for name, theta in want.thresholds.items():
        np.testing.assert_array_equal(got.thresholds[name], theta)
    inits = lambda r: {i.name: onnx.numpy_helper.to_array(i) for i in r.model.graph.initializer}  # noqa: E731
    g, w, p = inits(got), inits(want), inits(plain)
    assert g.keys() == w.keys()
    for k in g:
        np.testing.assert_array_equal(g[k], w[k])
    assert any(not np.array_equal(g[k], p[k]) for k in g)   # the mirror images changed the calibration


def test_mirror_without_data_or_on_a_lossless_conversion_is_refused():
    with pytest.raises(ConfigError, match="give --calibration-data"):
        onnx2snn.convert(conv_net(), None, ConvertConfig(timesteps=4, mirror_calibration=True))
    qcnn = onnx.load(str(MODELS / "mnist_qcnn.onnx"))
    x = np.zeros((2, 1, 28, 28), np.float32)
    with pytest.raises(ConfigError, match="calibrates nothing on data"):
        onnx2snn.convert(qcnn, {"input": x}, ConvertConfig(timesteps=4, neuron="bif", mirror_calibration=True))


def test_cli_flag_keeps_the_default_pipeline_and_says_so(tmp_path):
    model, data, out = tmp_path / "m.onnx", tmp_path / "cal.npz", tmp_path / "snn.onnx"
    onnx.save(conv_net(), str(model))
    np.savez(data, x=images())
    p = subprocess.run([sys.executable, "-m", "onnx2snn", "convert", str(model), "-o", str(out), "-T", "4",
                        "--calibration-data", str(data), "--mirror-calibration", "-q"],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "(images and their mirror images)" in p.stdout and "the default pipeline" in p.stdout
