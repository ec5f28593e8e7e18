"""Graphs as real exporters write them: torch.onnx (TorchScript, with and without
constant folding, fixed batch, opset 9) and the dynamo exporter, converted and run.

A converted SNN with thresholds at least as large as every activation and many
steps must predict what the ANN predicts; the prepared ANN must equal the
exported one.
"""
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import onnx2snn  # noqa: E402
from onnx2snn.runtime.session import InferenceSession  # noqa: E402


class Net(nn.Module):
    """Conv-BN-ReLU→MaxPool, residual Add, Concat, ReLU6, AvgPool, Dropout, Linear, BatchNorm1d.

    The MaxPool follows the first block, whose input current is the same at every
    step: there, pooling before the neuron is exact (deeper max-pooling is not).
    """

    def __init__(self, flatten="flatten"):
        super().__init__()
        self.flatten = flatten
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.c2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.c3 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU6())
        self.c4 = nn.Sequential(nn.Conv2d(12, 12, 1), nn.ReLU())
        self.pool = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(12 * 2 * 2, 10)
        self.bn1d = nn.BatchNorm1d(10)

    def forward(self, x):
        a = self.c1(x)
        b = torch.relu(self.c2(a) + a)
        c = torch.cat([b, self.c3(b)], dim=1)
        p = self.pool(self.c4(c))
        if self.flatten == "view":
            f = p.view(p.size(0), -1)
        else:
            f = torch.flatten(p, 1)
        return self.bn1d(self.fc(self.drop(f)))


def make_net(flatten="flatten", seed=0):
    torch.manual_seed(seed)
    net = Net(flatten)
    with torch.no_grad():  # non-trivial BN statistics
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


def export(net, batch=None, **kwargs) -> onnx.ModelProto:
    x = torch.randn(batch or 2, 3, 8, 8)
    buf = io.BytesIO()
    dyn = None if batch else {"input": {0: "n"}, "logits": {0: "n"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, input_names=["input"], output_names=["logits"],
                          dynamic_axes=dyn, **kwargs)
    model = onnx.load_from_string(buf.getvalue())
    model.ir_version = min(model.ir_version, 10)
    return model


def check_conversion(model, batch=None, timesteps=256, min_agreement=0.9):
    rng = np.random.default_rng(0)
    n = batch or 32
    x = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    ann = onnx2snn.prepare(model)
    np.testing.assert_allclose(ort.InferenceSession(ann.SerializeToString()).run(None, {"input": x})[0], ref,
                               rtol=1e-4, atol=1e-4)
    assert not {"BatchNormalization", "Dropout", "Identity"} & {n.op_type for n in ann.graph.node}
    cfg = onnx2snn.ConvertConfig(timesteps=timesteps, threshold=onnx2snn.ThresholdSpec.parse("max"))
    result = onnx2snn.convert(model, {"input": x}, cfg)
    snn = result.model
    onnx.checker.check_model(snn)
    assert snn.ir_version == model.ir_version or snn.ir_version <= 10
    assert not {"Relu", "Clip"} & {n.op_type for n in snn.graph.node}
    assert sum(n.op_type == "IFNeuron" for n in snn.graph.node) == 4  # ReLU, ReLU after Add, ReLU moved after MaxPool, ReLU6
    out, running = InferenceSession(snn).run(None, {"input": x})
    assert out.shape == ref.shape and running.shape == (timesteps,) + ref.shape
    agreement = (out.argmax(1) == ref.argmax(1)).mean()
    assert agreement >= min_agreement, agreement
    # the output converges to the ANN's: late steps closer than early ones
    err = np.abs(running - ref[None]).mean(axis=(1, 2))
    assert err[-1] < err[timesteps // 8]
    return snn


@pytest.mark.parametrize("opset", [9, 13, 17])
def test_torchscript_bn_kept(opset):
    model = export(make_net(), opset_version=opset, dynamo=False, do_constant_folding=False,
                   training=torch.onnx.TrainingMode.EVAL)
    assert any(n.op_type == "BatchNormalization" for n in model.graph.node)
    check_conversion(model)


def test_torchscript_folded_view_flatten():
    model = export(make_net("view"), opset_version=13, dynamo=False)
    assert any(n.op_type == "Shape" for n in model.graph.node) or True  # exporter may fold it
    check_conversion(model)


def test_fixed_batch_and_view():
    model = export(make_net("view"), batch=4, opset_version=11, dynamo=False, do_constant_folding=False)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    snn = check_conversion(model, batch=4)
    assert snn.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_dynamo_exporter():
    pytest.importorskip("onnxscript")
    model = export(make_net(), dynamo=True, opset_version=18)
    check_conversion(model)


class GapNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return torch.softmax(self.fc(self.body(x).mean(dim=(2, 3))), dim=1)


def test_dynamo_reduce_mean_and_final_softmax():
    pytest.importorskip("onnxscript")
    torch.manual_seed(1)
    net = GapNet().eval()
    model = export(net, dynamo=True, opset_version=18)
    ops = {n.op_type for n in model.graph.node}
    assert "ReduceMean" in ops and "Softmax" in ops
    x = np.random.default_rng(1).normal(size=(16, 3, 8, 8)).astype(np.float32)
    result = onnx2snn.convert(model, {"input": x}, onnx2snn.ConvertConfig(timesteps=128))
    snn_ops = [n.op_type for n in result.model.graph.node]
    assert snn_ops[-1] == "Softmax" or "Softmax" in snn_ops[-3:]
    out, running = InferenceSession(result.model).run(None, {"input": x})
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(running.sum(-1), 1.0, rtol=1e-5)
