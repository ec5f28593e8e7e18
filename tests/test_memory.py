"""Memory-bounded evaluation: the estimate, the batch it picks, and the CLI line."""
import numpy as np
import pytest

import onnx2snn
from conftest import MODELS
from onnx2snn.cli.main import main
from onnx2snn.errors import ConfigError
from onnx2snn.runtime.memory import MemoryEstimate, batch_for_memory, estimate
from onnx2snn.sizes import parse_size


@pytest.mark.parametrize("text, value", [("4GiB", 4 * 2**30), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9),
                                         ("1.5 kib", 1536), ("1000", 1000)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "4 parsecs", "-1GiB", "0"])
def test_parse_size_errors(text):
    with pytest.raises(ConfigError, match="memory size"):
        parse_size(text)


@pytest.fixture(scope="module")
def mnist():
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    x = np.load(MODELS / "data" / "mnist_test.npz")
    return model, x["x"][:100], x["labels"][:100]


def test_estimate_scales_with_timesteps(mnist):
    model, x, _ = mnist
    per = {T: estimate(onnx2snn.convert(model, {"input": x[:16]}, onnx2snn.ConvertConfig(timesteps=T)).model)
           for T in (4, 16)}
    ann = estimate(onnx2snn.prepare(model))
    # conv1 16x28x28, conv2/conv3/Add/IF 32x14x14 ...: the ANN holds ~236 KiB per sample
    assert 200 * 1024 < ann.per_sample < 300 * 1024
    assert 3.5 < per[16].per_sample / per[4].per_sample < 4.1  # all but the hoisted conv scale with T
    assert per[4].per_sample > 3 * ann.per_sample and per[4].fixed == pytest.approx(ann.fixed, rel=0.1)


def test_batch_for_memory():
    e = MemoryEstimate(fixed=1000, per_sample=100)
    assert batch_for_memory([e], 1000 + 100 * 50, None, 10_000) == (50, 1000 + 100 * 50)
    assert batch_for_memory([e], 10**9, None, 30)[0] == 30          # no more than the samples
    assert batch_for_memory([e], 10**9, 8, 30)[0] == 8              # no more than asked
    assert batch_for_memory([e], 10, None, 30)[0] == 1              # at least one
    assert batch_for_memory([e, e], 2000 + 200 * 7, None, 100)[0] == 7
    # run in chunks of 4: beyond 4 samples only inputs and outputs (twice) grow
    c = MemoryEstimate(fixed=1000, per_sample=100, io_per_sample=5, chunk=4)
    assert c.peak(3) == 1000 + 300 and c.peak(100) == 1000 + 400 + 2 * 5 * 100
    assert batch_for_memory([e, c], 2000 + 100 * 20 + 400 + 10 * 20, None, 1000) == (20, 4600)


def test_chunked_snn_estimate_bounds_its_runs(mnist):
    from onnx2snn.runtime.chunking import chunk_samples, default_chunk_bytes
    from onnx2snn.runtime.evaluate import evaluation_estimates
    model, x, _ = mnist
    result = onnx2snn.convert(model, {"input": x[:16]}, onnx2snn.ConvertConfig(timesteps=8))
    ann, snn = evaluation_estimates(result.ann, result.model)
    assert snn.chunk == chunk_samples(result.model, default_chunk_bytes(None)) > 0
    assert 0 < snn.io_per_sample < snn.per_sample // 100  # one digit in, T + 1 logit vectors out
    assert snn.peak(256) < estimate(result.model).peak(256) // 10


def test_evaluate_picks_batch_under_limit(mnist):
    model, x, labels = mnist
    result = onnx2snn.convert(model, {"input": x[:16]}, onnx2snn.ConvertConfig(timesteps=8))
    estimates = [estimate(result.ann), estimate(result.model).chunked(0)]
    estimates[1] = estimates[1].chunked(onnx2snn.InferenceSession(result.model).onnx2snn_chunk)
    limit = sum(e.peak(10) for e in estimates) + 1
    res = onnx2snn.evaluate(result.ann, result.model, {"input": x}, labels, None, max_memory=limit)
    assert res.batch_size == 10 and 0 < res.memory_estimate <= limit
    full = onnx2snn.evaluate(result.ann, result.model, {"input": x}, labels, 64)
    assert full.snn_top1 == res.snn_top1 and full.batch_size == 64


def test_cli_says_the_batch(tmp_path, capsys):
    out = tmp_path / "snn.onnx"
    assert main(["convert", str(MODELS / "mnist_cnn.onnx"), "-o", str(out), "--calibration-data",
                 str(MODELS / "data" / "mnist_calib.npz"), "-T", "4", "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(MODELS / "mnist_cnn.onnx"), str(out), "--data",
                 str(MODELS / "data" / "mnist_test.npz"), "--max-memory", "20MiB", "--json", "-q"]) == 0
    captured = capsys.readouterr()
    line = [ln for ln in captured.err.splitlines() if ln.startswith("batch size")]
    assert len(line) == 1 and "(--max-memory 20.0 MiB)" in line[0]
    batch = int(line[0].split()[2].rstrip(":"))
    assert 1 <= batch < 64


def test_cli_bad_memory_flag(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "a.onnx", "b.onnx", "--data", "d.npz", "--max-memory", "lots"])
    assert "memory size 'lots'" in capsys.readouterr().err


def test_a_timestep_count_the_folded_snn_cannot_hold_is_refused_before_work(tmp_path, capsys, monkeypatch):
    """T = 100,000 on the MNIST CNN: its largest tensor alone is 4.7 GiB (over onnxruntime's 4 GiB
    per tensor); refused before calibration with what to do; the streaming form converts."""
    import onnx2snn.recipes.rate as rate

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibration ran before the memory check")

    out = tmp_path / "snn.onnx"
    args = ["convert", str(MODELS / "mnist_cnn.onnx"), "-o", str(out), "--calibration-data",
            str(MODELS / "data" / "mnist_calib.npz"), "-q"]
    with monkeypatch.context() as m:
        m.setattr(rate.RateRecipe, "calibrate", no_calibration)
        assert main(args + ["--timesteps", "100000"]) == 2
        err = capsys.readouterr().err
        assert "at T=100000 one run of the folded SNN needs at least" in err and "--form streaming" in err
        assert main(args + ["--timesteps", "1000", "--max-memory", "10MiB"]) == 2
        err = capsys.readouterr().err
        assert "over the memory limit 10.0 MiB" in err and "at most T=" in err
    assert not out.exists()
    # (a method flag: the default pipeline's layer-wise calibration does not fit at this T)
    assert main(args + ["--timesteps", "100000", "--form", "streaming", "--channel-wise"]) == 0 and out.exists()


def test_the_largest_timestep_count_said_to_fit_does_fit():
    """The T the refusal names passes the same check; one more step does not."""
    import re

    model = onnx2snn.load_model(str(MODELS / "mnist_cnn.onnx"))
    from onnx2snn.runtime.memory import check_folded_fits

    with pytest.raises(ConfigError) as info:
        check_folded_fits(model, 1000, 10 * 2**20)
    fits = int(re.search(r"at most T=(\d+)", str(info.value)).group(1))
    check_folded_fits(model, fits, 10 * 2**20)
    with pytest.raises(ConfigError):
        check_folded_fits(model, fits + 1, 10 * 2**20)
