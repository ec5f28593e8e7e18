"""Bad input from issue 15: one `error:` line (exit 2) naming the problem, no output file, input untouched."""
import os
import signal

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import onnx2snn
from conftest import MODELS, make_model
from onnx2snn import io as o2s_io
from onnx2snn.cli import main

MODEL = str(MODELS / "mnist_cnn.onnx")
CALIB = str(MODELS / "data" / "mnist_calib.npz")
TEST = str(MODELS / "data" / "mnist_test.npz")


def convert_args(out, model=MODEL, calib=CALIB, *extra):
    return ["convert", model, "-o", str(out), "--calibration-data", calib, "-q", "-T", "2", *extra]


def expect_error(capsys, argv, *fragments, absent=()):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
    for f in absent:
        assert f not in err, err
    return err


def no_tmp(directory):
    return not [p for p in os.listdir(directory) if p.endswith(".tmp")]


# 1. an output directory that cannot be written: refused before any work

def test_output_under_a_file_refused_before_calibration(tmp_path, capsys, monkeypatch):
    import onnx2snn.pipeline
    monkeypatch.setattr(onnx2snn.pipeline, "convert", lambda *a, **k: pytest.fail("calibration ran"))
    blocker = tmp_path / "plain.txt"
    blocker.write_text("a file")
    expect_error(capsys, convert_args(blocker / "snn.onnx"), "is a file, not a directory")
    assert blocker.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0555 directory")
def test_read_only_directory_refused_before_calibration(tmp_path, capsys, monkeypatch):
    import onnx2snn.pipeline
    monkeypatch.setattr(onnx2snn.pipeline, "convert", lambda *a, **k: pytest.fail("calibration ran"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        expect_error(capsys, convert_args(ro / "snn.onnx"), "not writable")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


# 2. Ctrl-C: one line, exit 130, nothing left

def test_ctrl_c_during_convert(tmp_path, capsys, monkeypatch):
    import onnx2snn.pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(onnx2snn.pipeline, "convert", interrupted)
    out = tmp_path / "snn.onnx"
    assert main(convert_args(out)) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted") and err.count("\n") == 1 and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_ctrl_c_during_evaluate(tmp_path, capsys, monkeypatch):
    import sys

    import onnx2snn.runtime.evaluate  # noqa: F401  (the package exports a function of that name)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(sys.modules["onnx2snn.runtime.evaluate"], "evaluate", interrupted)
    snn = tmp_path / "snn.onnx"
    assert main(convert_args(snn)) == 0
    capsys.readouterr()
    assert main(["evaluate", MODEL, str(snn), "--data", TEST, "-q"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted") and err.count("\n") == 1


# 3. save_model's atomic write leaves no temporary file

def tiny():
    return make_model([oh.make_node("Relu", ["x"], ["y"])], [("x", ["N", 4])], [("y", ["N", 4])])


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(o2s_io.os, "replace", broken)
    with pytest.raises(OSError):
        o2s_io.save_model(tiny(), tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_sigterm_during_write_cleans_up_and_restores_handler(tmp_path, monkeypatch):
    seen = []

    def previous(signum, frame):
        seen.append(signum)
    old = signal.signal(signal.SIGTERM, previous)
    real_fchmod = os.fchmod

    def fchmod_then_term(fd, mode):
        real_fchmod(fd, mode)
        signal.raise_signal(signal.SIGTERM)
    try:
        monkeypatch.setattr(o2s_io.os, "fchmod", fchmod_then_term)
        with pytest.raises(KeyboardInterrupt):
            o2s_io.save_model(tiny(), tmp_path / "m.onnx")
        assert os.listdir(tmp_path) == []
        assert seen == [signal.SIGTERM]                 # delivered to the previous handler
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)


# 4. file mode: what open() gives, or the replaced file's own

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = o2s_io.save_model(tiny(), tmp_path / "m.onnx")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == mode


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    path.chmod(0o444)
    o2s_io.save_model(tiny(), path)
    assert os.stat(path).st_mode & 0o777 == 0o444
    assert onnx.load(str(path)).graph.node[0].op_type == "Relu"


# 5. a directory given as model or data

def test_directory_as_model(tmp_path, capsys):
    expect_error(capsys, convert_args(tmp_path / "o.onnx", str(tmp_path)), "is a directory",
                 absent=("does not exist",))


def test_directory_as_data(tmp_path, capsys):
    d = tmp_path / "data.npz"
    d.mkdir()
    expect_error(capsys, convert_args(tmp_path / "o.onnx", MODEL, str(d)), "is a directory",
                 absent=("does not exist",))


# 6. a data file that is not an .npz of arrays

def test_pickled_data_refused_without_numpy_advice(tmp_path, capsys):
    bad = tmp_path / "objects.npz"
    np.savez(bad, x=np.array([{"a": 1}, None], dtype=object))
    expect_error(capsys, convert_args(tmp_path / "o.onnx", MODEL, str(bad)), "not an .npz archive of arrays",
                 absent=("allow_pickle",))
    bad.write_bytes(b"\x80\x04K\x01.")  # a bare pickle
    expect_error(capsys, convert_args(tmp_path / "o.onnx", MODEL, str(bad)), "not an .npz archive of arrays",
                 absent=("allow_pickle",))
    assert not (tmp_path / "o.onnx").exists()


# 7. --labels-key naming a missing array

def test_missing_labels_key_named(tmp_path, capsys):
    snn = tmp_path / "snn.onnx"
    assert main(convert_args(snn)) == 0
    capsys.readouterr()
    expect_error(capsys, ["evaluate", MODEL, str(snn), "--data", TEST, "--labels-key", "nope"],
                 "no labels array 'nope'", "'labels'", "'x'", absent=("exactly one array",))


# 8. evaluate: several outputs, mismatched models, labels that are not class indices

def two_outputs(scores_rank2=True):
    """x [N, 4] -> relu(x W1) -> boxes [N, 1, 4] and scores [N, 3] (or [N, 1, 3])."""
    rng = np.random.default_rng(0)
    nodes = [oh.make_node("MatMul", ["x", "W1"], ["a"]), oh.make_node("Relu", ["a"], ["h"]),
             oh.make_node("MatMul", ["h", "Wb"], ["b"]), oh.make_node("Reshape", ["b", "sb"], ["boxes"]),
             oh.make_node("MatMul", ["h", "Ws"], ["s" if not scores_rank2 else "scores"])]
    inits = {"W1": rng.normal(size=(4, 8)).astype(np.float32), "Wb": rng.normal(size=(8, 4)).astype(np.float32),
             "Ws": rng.normal(size=(8, 3)).astype(np.float32), "sb": np.array([0, 1, 4], np.int64)}
    if not scores_rank2:
        nodes.append(oh.make_node("Reshape", ["s", "ss"], ["scores"]))
        inits["ss"] = np.array([0, 1, 3], np.int64)
    shape = ["N", 3] if scores_rank2 else ["N", 1, 3]
    return make_model(nodes, [("x", ["N", 4])], [("boxes", ["N", 1, 4]), ("scores", shape)], inits)


@pytest.fixture
def pair(tmp_path, capsys):
    ann = tmp_path / "ann.onnx"
    onnx.save(two_outputs(), str(ann))
    x = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    snn = tmp_path / "snn.onnx"
    assert main(["convert", str(ann), "-o", str(snn), "--calibration-data", str(tmp_path / "calib.npz"),
                 "-T", "4", "-q"]) == 0
    capsys.readouterr()
    return ann, snn, x


def test_two_outputs_scores_the_first_2d_one(tmp_path, capsys, pair):
    ann, snn, x = pair
    np.savez(tmp_path / "d.npz", x=x, labels=np.arange(16) % 3)
    assert main(["evaluate", str(ann), str(snn), "--data", str(tmp_path / "d.npz"), "--json", "-q"]) == 0
    err = capsys.readouterr().err
    assert "output 'scores'" in err and "'boxes'" in err


def test_no_2d_output_refused(tmp_path, capsys):
    ann = tmp_path / "ann.onnx"
    onnx.save(two_outputs(scores_rank2=False), str(ann))
    x = np.ones((4, 4), np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=np.zeros(4, np.int64))
    snn = tmp_path / "snn.onnx"
    assert main(["convert", str(ann), "-o", str(snn), "--calibration-data", str(tmp_path / "d.npz"),
                 "-T", "2", "-q"]) == 0
    capsys.readouterr()
    expect_error(capsys, ["evaluate", str(ann), str(snn), "--data", str(tmp_path / "d.npz")],
                 "[N, K]", "'boxes' [N, 1, 4]", "'scores' [N, 1, 3]")


def test_mismatched_ann_refused(tmp_path, capsys, pair):
    ann, snn, x = pair
    np.savez(tmp_path / "d.npz", x=np.ones((4, 1, 28, 28), np.float32), labels=np.zeros(4, np.int64))
    expect_error(capsys, ["evaluate", MODEL, str(snn), "--data", str(tmp_path / "d.npz")],
                 "do not match", "'input' [N, 1, 28, 28]", "'x' [N, 4]")


@pytest.mark.parametrize("labels, fragment", [
    (np.linspace(0, 1, 16).astype(np.float32), "not class indices"),            # a regression target
    (np.full((16, 3), 1 / 3, np.float32), "not one-hot"),                        # soft targets
    (np.arange(16), "outside the range [0, 3)"),                                 # out of range
    (-np.ones(16, np.int64), "negative class index"),
])
def test_labels_not_class_indices(tmp_path, capsys, pair, labels, fragment):
    ann, snn, x = pair
    np.savez(tmp_path / "d.npz", x=x, labels=labels)
    expect_error(capsys, ["evaluate", str(ann), str(snn), "--data", str(tmp_path / "d.npz")], fragment)


def test_exact_one_hot_labels_accepted(tmp_path, capsys, pair):
    ann, snn, x = pair
    np.savez(tmp_path / "d.npz", x=x, labels=np.eye(3, dtype=np.float32)[np.arange(16) % 3])
    assert main(["evaluate", str(ann), str(snn), "--data", str(tmp_path / "d.npz"), "--json", "-q"]) == 0


def test_api_refuses_out_of_range_labels(pair):
    ann, snn, x = pair
    with pytest.raises(onnx2snn.Onnx2SnnError, match=r"\[0, 3\)"):
        onnx2snn.evaluate(onnx.load(str(ann)), onnx.load(str(snn)), {"x": x}, np.full(16, 7))


# 9. a --max-memory bound that batch 1 cannot meet

def test_max_memory_unmet_warns(tmp_path, capsys):
    snn = tmp_path / "snn.onnx"
    assert main(convert_args(snn)) == 0
    data = tmp_path / "small.npz"
    with np.load(TEST) as d:
        np.savez(data, x=d["x"][:4], labels=d["labels"][:4])
    capsys.readouterr()
    assert main(["evaluate", MODEL, str(snn), "--data", str(data), "--max-memory", "1KiB", "--json", "-q"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1.0 KiB" in warning[0] and "cannot be met" in warning[0], err


def test_constant_calibration_data_is_warned_about():
    import onnx2snn
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    zeros = {"input": np.zeros((8, 1, 28, 28), np.float32)}
    with pytest.warns(UserWarning, match="holds one value"):
        onnx2snn.convert(model, zeros, onnx2snn.ConvertConfig(timesteps=2))
