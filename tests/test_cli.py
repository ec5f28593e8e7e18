"""CLI: the main job on the bundled model, and one clear error (exit 2, no file) per bad input."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx.helper as oh
import pytest

import onnx2snn
from conftest import MODELS, make_model
from onnx2snn.cli import main

MODEL = str(MODELS / "mnist_cnn.onnx")
CALIB = str(MODELS / "data" / "mnist_calib.npz")
TEST = str(MODELS / "data" / "mnist_test.npz")


def convert_args(out, model=MODEL, calib=CALIB, *extra):
    return ["convert", model, "-o", str(out), "--calibration-data", calib, "-q", *extra]


def expect_error(capsys, argv, *fragments, out=None):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("error: ") == 1
    for f in fragments:
        assert f in err, err
    if out is not None:
        assert not os.path.exists(out)
        assert not [p for p in os.listdir(os.path.dirname(out)) if p.endswith(".tmp")]
    return err


def test_convert_then_evaluate_json(tmp_path, capsys):
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out, MODEL, CALIB, "--timesteps", "16", "--threshold", "percentile:99.9")) == 0
    assert "3 IFNeuron layer(s)" in capsys.readouterr().out
    data = tmp_path / "small.npz"
    with np.load(TEST) as d:
        np.savez(data, x=d["x"][:64], labels=d["labels"][:64])
    assert main(["evaluate", MODEL, str(out), "--data", str(data), "--json", "--batch-size", "32"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["timesteps"] == 16 and sorted(res["snn_top1"], key=int) == [str(t) for t in range(1, 17)]
    assert 0 <= res["snn_top1"]["16"] <= 100 and res["ann_top1"] > 90


def test_evaluate_table(tmp_path, capsys):
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out, MODEL, CALIB, "--timesteps", "4", "--channel-wise")) == 0
    data = tmp_path / "small.npz"
    with np.load(TEST) as d:
        np.savez(data, images=d["x"][:32], y=d["labels"][:32])
    capsys.readouterr()
    assert main(["evaluate", MODEL, str(out), "--data", str(data), "--labels-key", "y", "-q"]) == 0
    table = capsys.readouterr().out
    assert "ANN" in table and table.count("SNN") == 4


def test_entry_point_installed(tmp_path):
    exe = shutil.which("onnx2snn")
    if exe is None:
        pytest.skip("package not installed with its console script")
    res = subprocess.run([exe, "inspect", MODEL], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "becomes IFNeuron" in res.stdout and "convertible" in res.stdout


def test_not_onnx(tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model")
    out = tmp_path / "o.onnx"
    expect_error(capsys, convert_args(out, str(bad), CALIB, "-T", "8"), "notes.onnx", out=str(out))


def test_truncated(tmp_path, capsys):
    data = open(MODEL, "rb").read()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.onnx"
    expect_error(capsys, convert_args(out, str(bad), CALIB, "-T", "8"), "cut.onnx", out=str(out))


def test_missing_model(tmp_path, capsys):
    out = tmp_path / "o.onnx"
    expect_error(capsys, convert_args(out, str(tmp_path / "nope.onnx"), CALIB, "-T", "8"), "does not exist",
                 out=str(out))


def test_unsupported_ops_all_named(tmp_path, capsys):
    nodes = [oh.make_node("Conv", ["x", "W"], ["c0"], name="/conv"), oh.make_node("Relu", ["c0"], ["c"], name="/r0"),
             oh.make_node("Sigmoid", ["c"], ["s"], name="/s1"),
             oh.make_node("Relu", ["s"], ["r"], name="/r"), oh.make_node("HardSwish", ["r"], ["h"], name="/hs"),
             oh.make_node("Relu", ["h"], ["y"], name="/r2")]  # both feed a neuron: inside the network
    model = make_model(nodes, [("x", ["N", 1, 4, 4])], [("y", ["N", 2, 4, 4])],
                       {"W": np.ones((2, 1, 1, 1), np.float32)}, opset=14)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    out = tmp_path / "o.onnx"
    calib = tmp_path / "c.npz"
    np.savez(calib, x=np.ones((2, 1, 4, 4), np.float32))
    expect_error(capsys, convert_args(out, str(path), str(calib), "-T", "8"),
                 "'/s1' (Sigmoid)", "'/hs' (HardSwish)", out=str(out))
    assert main(["inspect", str(path)]) == 1
    assert "UNSUPPORTED" in capsys.readouterr().out


@pytest.mark.parametrize("arrays, fragment", [
    ({"x": np.ones((4, 1, 27, 28), np.float32)}, "axis 2 is 27"),
    ({"x": np.ones((4, 28, 28), np.float32)}, "rank 4"),
    ({"a": np.ones((4, 1, 28, 28), np.float32), "b": np.ones((4, 1, 28, 28), np.float32)}, "name the array"),
    ({"x": np.ones((4, 1, 28, 28), np.uint8)}, "dtype uint8"),
    ({"x": np.full((4, 1, 28, 28), np.nan, np.float32)}, "NaN"),
    ({"x": np.array([1.0, np.inf] * 784, np.float32).reshape(2, 1, 28, 28)}, "NaN/Inf"),
])
def test_bad_calibration_data(tmp_path, capsys, arrays, fragment):
    calib = tmp_path / "bad.npz"
    np.savez(calib, **arrays)
    out = tmp_path / "o.onnx"
    expect_error(capsys, convert_args(out, MODEL, str(calib), "-T", "8"), fragment, out=str(out))


def test_calibration_not_npz(tmp_path, capsys):
    calib = tmp_path / "bad.npz"
    calib.write_text("nope")
    out = tmp_path / "o.onnx"
    expect_error(capsys, convert_args(out, MODEL, str(calib), "-T", "8"), "not a readable .npz", out=str(out))


@pytest.mark.parametrize("t", ["0", "-3", "x"])
def test_bad_timesteps(tmp_path, capsys, t):
    out = tmp_path / "o.onnx"
    with pytest.raises(SystemExit) as info:
        main(convert_args(out, MODEL, CALIB, "--timesteps", t))
    assert info.value.code == 2
    assert "timesteps" in capsys.readouterr().err
    assert not out.exists()


def test_bad_threshold_flag(tmp_path, capsys):
    out = tmp_path / "o.onnx"
    with pytest.raises(SystemExit) as info:
        main(convert_args(out, MODEL, CALIB, "-T", "8", "--threshold", "percentile:200"))
    assert info.value.code == 2 and "percentile" in capsys.readouterr().err


def test_output_equal_to_input_refused(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(MODEL, model)
    before = model.read_bytes()
    expect_error(capsys, convert_args(model, str(model), CALIB, "-T", "8"), "is the input file")
    assert model.read_bytes() == before


def test_evaluate_needs_snn_metadata(tmp_path, capsys):
    expect_error(capsys, ["evaluate", MODEL, MODEL, "--data", TEST], "onnx2snn metadata")


def test_evaluate_missing_labels(tmp_path, capsys):
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out, MODEL, CALIB, "-T", "2")) == 0
    data = tmp_path / "nolabels.npz"
    np.savez(data, x=np.ones((3, 1, 28, 28), np.float32))
    expect_error(capsys, ["evaluate", MODEL, str(out), "--data", str(data)], "no labels array 'labels'")


def test_python_module_entry(tmp_path):
    res = subprocess.run([sys.executable, "-m", "onnx2snn.cli", "inspect", MODEL], capture_output=True, text=True)
    assert res.returncode == 0 and "convertible" in res.stdout


def test_convert_preset_best_with_report(tmp_path, capsys):
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out, MODEL, CALIB, "-T", "4", "--preset", "best", "--report")) == 0
    text = capsys.readouterr().out
    assert "3 BIFNeuron layer(s)" in text
    assert "threshold mse channel-wise, v_init half, calibration bias,potential,weight" in text
    assert "floor before" in text and text.count("/relu") == 3
    # an explicit flag wins over the preset
    assert main(convert_args(out, MODEL, CALIB, "-T", "4", "--preset", "best", "--neuron", "if", "-q")) == 0
    assert "3 IFNeuron layer(s)" in capsys.readouterr().out


def test_convert_without_method_flags_runs_the_best_pipeline(tmp_path, capsys):
    """Calibration data and no method flag: --preset best (IF neurons where the form excludes bipolar
    ones); one method flag: that method, the rest at the plain defaults."""
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out, MODEL, CALIB, "-T", "4")) == 0
    text = capsys.readouterr().out
    assert "3 BIFNeuron layer(s)" in text and "calibration bias,potential,weight" in text
    assert "threshold mse channel-wise, v_init half" in text and "(the default pipeline: --preset best)" in text
    default = onnx2snn.load_model(out)
    assert main(convert_args(out, MODEL, CALIB, "-T", "4", "--preset", "best")) == 0
    assert "default pipeline" not in capsys.readouterr().out
    best = onnx2snn.load_model(out)
    assert [n.op_type for n in default.graph.node] == [n.op_type for n in best.graph.node]
    assert all(a == b for a, b in zip(default.graph.initializer, best.graph.initializer))
    assert main(convert_args(out, MODEL, CALIB, "-T", "4", "--form", "streaming")) == 0
    text = capsys.readouterr().out
    assert "3 IFNeuron layer(s)" in text and "calibration bias,potential,weight" in text and "streaming form" in text
    assert main(convert_args(out, MODEL, CALIB, "-T", "4", "--channel-wise")) == 0
    text = capsys.readouterr().out
    assert "3 IFNeuron layer(s)" in text and "threshold percentile:99.99 channel-wise" in text
    assert "calibration none" in text and "default pipeline" not in text


@pytest.mark.parametrize("flags, fragment", [
    (["--calibrate", "bias,colour"], "unknown step"),
    (["--v-init", "quarter"], "invalid choice"),
    (["--threshold", "median"], "not known"),
])
def test_bad_calibration_flags(tmp_path, capsys, flags, fragment):
    out = tmp_path / "o.onnx"
    with pytest.raises(SystemExit) as info:
        main(convert_args(out, MODEL, CALIB, "-T", "4", *flags))
    assert info.value.code == 2 and fragment in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("threshold", ["mse", "ltb"])
def test_convert_mse_and_ltb_thresholds(tmp_path, capsys, threshold):
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out, MODEL, CALIB, "-T", "8", "--threshold", threshold, "--channel-wise")) == 0
    assert f"threshold {threshold} channel-wise" in capsys.readouterr().out
