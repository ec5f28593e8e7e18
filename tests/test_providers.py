"""--provider cpu | cuda | auto: which execution providers the evaluation sessions get.

Without onnxruntime's CUDA provider (this machine) auto is the CPU and cuda is refused, naming what is
missing; where the provider and the op library's CUDA kernel are there, the CUDA evaluation agrees
with the CPU's (within float rounding, so on nearly every sample).
"""
import numpy as np
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS
from onnx2snn.errors import ConfigError
from onnx2snn.runtime.providers import CPU, CUDA, cuda_missing, session_providers

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_is_always_the_cpu_and_a_bad_name_is_refused():
    assert session_providers("cpu") == CPU
    with pytest.raises(ConfigError, match="provider must be one of auto, cpu, cuda"):
        session_providers("gpu")


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has a CUDA provider here")
def test_without_cuda_auto_is_the_cpu_and_cuda_says_what_is_missing(tmp_path, capsys):
    assert session_providers("auto") == session_providers("auto", snn=False) == CPU
    with pytest.raises(ConfigError, match="no CUDAExecutionProvider.*onnxruntime-gpu.*--provider cpu"):
        session_providers("cuda")
    from onnx2snn.cli.main import main
    ann = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    snn = onnx2snn.convert(ann, MODELS / "data" / "mnist_calib.npz", onnx2snn.ConvertConfig(timesteps=2)).model
    onnx2snn.save_model(snn, tmp_path / "snn.onnx")
    assert main(["evaluate", str(MODELS / "mnist_cnn.onnx"), str(tmp_path / "snn.onnx"), "--data",
                 str(MODELS / "data" / "mnist_test.npz"), "--provider", "cuda", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --provider cuda: this onnxruntime has no CUDAExecutionProvider")


@pytest.mark.skipif(not HAS_CUDA or cuda_missing() is not None, reason="no CUDA provider, or no CUDA kernel")
def test_on_cuda_the_evaluation_agrees_with_the_cpu():
    assert session_providers("auto") == CUDA
    ann = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    snn = onnx2snn.convert(ann, MODELS / "data" / "mnist_calib.npz",
                           onnx2snn.ConvertConfig(timesteps=16, channel_wise=True)).model
    d = np.load(MODELS / "data" / "mnist_test.npz")
    cpu = onnx2snn.evaluate(ann, snn, {"input": d["x"]}, d["labels"], 100, provider="cpu")
    cuda = onnx2snn.evaluate(ann, snn, {"input": d["x"]}, d["labels"], 100, provider="cuda")
    assert cuda.ann_top1 == pytest.approx(cpu.ann_top1, abs=0.2)
    assert all(abs(cuda.snn_top1[t] - cpu.snn_top1[t]) <= 0.5 for t in cpu.snn_top1)
