"""End to end on real models: the bundled MNIST CNN, and (when ../shared is
present) the given CIFAR-10 ResNets with their Slice/Pad shortcuts."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS, SHARED


@pytest.fixture(scope="module")
def mnist():
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    test = np.load(MODELS / "data" / "mnist_test.npz")
    return model, test["x"], test["labels"]


def test_bundled_cnn_snn_close_to_ann(mnist, tmp_path):
    model, x, labels = mnist
    config = onnx2snn.ConvertConfig(timesteps=64, channel_wise=True)
    result = onnx2snn.convert(model, MODELS / "data" / "mnist_calib.npz", config)
    path = onnx2snn.save_model(result.model, tmp_path / "snn.onnx")
    snn = onnx2snn.load_model(path)
    ops = [n.op_type for n in snn.graph.node]
    assert ops.count("IFNeuron") == 3 and "BatchNormalization" not in ops and "Relu" not in ops
    res = onnx2snn.evaluate(result.ann, snn, {"input": x}, labels, batch_size=250)
    assert res.ann_top1 > 97.5
    # measured 98.2 / 98.2 / 98.2 on these 1,000 digits (benchmarks/mnist_accuracy.py for the figures)
    assert res.snn_top1[32] >= res.ann_top1 - 1.0
    assert res.snn_top1[64] >= res.ann_top1 - 0.5
    assert res.snn_top1[4] < res.snn_top1[64]  # accuracy builds up over time


def test_plain_onnxruntime_session_with_library(mnist, tmp_path):
    model, x, _ = mnist
    result = onnx2snn.convert(model, {"input": x[:32]}, onnx2snn.ConvertConfig(timesteps=8))
    path = tmp_path / "snn.onnx"
    onnx2snn.save_model(result.model, path)
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(onnx2snn.get_library_path())
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    logits, running = sess.run(None, {"input": x[:5]})
    assert logits.shape == (5, 10) and running.shape == (8, 5, 10)
    np.testing.assert_array_equal(logits, running[-1])


def test_input_model_file_untouched(tmp_path):
    src = MODELS / "mnist_cnn.onnx"
    before = src.read_bytes()
    onnx2snn.convert(onnx2snn.load_model(src), MODELS / "data" / "mnist_calib.npz",
                     onnx2snn.ConvertConfig(timesteps=2))
    assert src.read_bytes() == before


@pytest.mark.parametrize("name", ["cifar10_resnet32.onnx", "cifar10_resnet44_bn.onnx"])
def test_given_cifar_resnets_convert(name):
    path = SHARED / "models" / name
    if not path.exists():
        pytest.skip("../shared/models is not beside this checkout")
    model = onnx2snn.load_model(path)
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    ann = onnx2snn.prepare(model)
    ops = {n.op_type for n in ann.graph.node}
    assert not ops & {"BatchNormalization", "Shape", "Gather", "Constant", "ConstantOfShape"}
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    got = ort.InferenceSession(ann.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    result = onnx2snn.convert(model, {"input": x}, onnx2snn.ConvertConfig(timesteps=4))
    onnx.checker.check_model(result.model)
    logits, running = onnx2snn.InferenceSession(result.model).run(None, {"input": x})
    assert running.shape == (4, 4, 10) and np.all(np.isfinite(logits))


def test_model_written_with_ir14_converts(tmp_path):
    """onnx 1.23 writes IR 14 by default; onnxruntime 1.31 loads at most IR 13."""
    model = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    model.ir_version = 14
    path = tmp_path / "ir14.onnx"
    onnx.save(model, path)
    result = onnx2snn.convert(onnx2snn.load_model(path), MODELS / "data" / "mnist_calib.npz",
                              onnx2snn.ConvertConfig(timesteps=2))
    assert result.model.ir_version <= 10
    onnx2snn.InferenceSession(result.model)
