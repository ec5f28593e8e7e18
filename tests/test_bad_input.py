"""Bad input from issue 15: one `error:` line (exit 2) naming the problem, no output file, input untouched."""
import os
import signal

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import onnx2snn  # noqa: F401  (used by the evaluate tests)
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
