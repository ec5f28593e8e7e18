"""ANN vs SNN top-1 of small MNIST CNNs with LeakyReLU and with per-channel PReLU.

Each net (Conv 1→8, act, MaxPool 2; Conv 8→16, act, AvgPool 2; Linear 784→32, act;
Linear 32→10) is trained with torch for a few seconds on the 256 bundled calibration
digits (models/data/mnist_calib.npz), exported with torch.onnx.export (TorchScript,
``dynamo=False``, and the default dynamo exporter with ``--dynamo``), converted
(every LeakyRelu / PRelu becomes two IF populations, on x and on −x:
onnx2snn/passes/leaky_relu.py) with thresholds calibrated on those 256 digits, and
evaluated on the 1,000 bundled test digits (models/data/mnist_test.npz): one SNN run
at the largest T gives the top-1 after every step. "ANN, slope 0" is the same ANN with
every slope set to 0 (a ReLU net): what the negative population is worth.

    python benchmarks/leaky_relu.py                  # default config and --preset best
    python benchmarks/leaky_relu.py --dynamo --timesteps 8,16,32,64,128

tests/test_leaky_relu.py trains the same nets (``train``) and checks the T = 64 figure.
torch is needed by this script only.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's onnx2snn, not an older installed one
CALIB = REPO / "models" / "data" / "mnist_calib.npz"
TEST = REPO / "models" / "data" / "mnist_test.npz"
KINDS = ("leaky", "prelu")
NEGATIVE_SLOPE = 0.1


def net(kind: str):
    """The CNN with LeakyReLU(0.1) (``leaky``) or PReLU with one slope per channel (``prelu``)."""
    import torch.nn as nn

    def act(channels: int):
        return nn.LeakyReLU(NEGATIVE_SLOPE) if kind == "leaky" else nn.PReLU(channels)

    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), act(8), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), act(16), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 32), act(32), nn.Linear(32, 10))


def train(kind: str, epochs: int = 30, seed: int = 0):
    """The net trained on the 256 calibration digits (Adam, batch 32, one thread: seconds), in eval mode."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is several times faster on a shared CPU
    try:
        return _train(kind, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train(kind: str, epochs: int, seed: int):
    import torch

    torch.manual_seed(seed)
    d = np.load(CALIB)
    x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["labels"])
    model = net(kind)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    if kind == "prelu":  # learned slopes differ per channel (what the per-channel path must carry)
        slopes = [m.weight.detach().numpy() for m in model.modules() if isinstance(m, torch.nn.PReLU)]
        assert all(s.size > 1 and np.ptp(s) > 0 for s in slopes), slopes
    return model.eval()


def export(model, path: Path, dynamo: bool = False) -> onnx.ModelProto:
    """torch.onnx.export with a dynamic batch (TorchScript) or torch's default (dynamo) exporter."""
    import torch

    x = torch.zeros(1, 1, 28, 28)
    if dynamo:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
            torch.onnx.export(model, (x,), str(path), dynamo=True)
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    return onnx.load(str(path))


def convert(ann: onnx.ModelProto, timesteps: int, config: dict | None = None, preset: str | None = None):
    """(the SNN calibrated on the 256 calibration digits, seconds it took)."""
    import onnx2snn
    from onnx2snn.config import preset_config

    cfg = preset_config(preset, timesteps=timesteps, **(config or {})) if preset else \
        onnx2snn.ConvertConfig(timesteps=timesteps, **(config or {}))
    start = time.perf_counter()
    result = onnx2snn.convert(ann, {ann.graph.input[0].name: np.load(CALIB)["x"]}, cfg)
    return result.model, time.perf_counter() - start


def top1(ann: onnx.ModelProto, snn: onnx.ModelProto) -> tuple[float, dict[int, float]]:
    """(ANN top-1 %, {t: SNN top-1 % after t steps}) on the 1,000 bundled test digits."""
    import onnx2snn

    test = np.load(TEST)
    ev = onnx2snn.evaluate(ann, snn, {ann.graph.input[0].name: test["x"]}, test["labels"], batch_size=100)
    return ev.ann_top1, dict(ev.snn_top1)


def without_negative(ann: onnx.ModelProto) -> onnx.ModelProto:
    """The ANN with every LeakyRelu/PRelu slope set to 0 (a ReLU net: what the negative population adds)."""
    model = onnx.ModelProto()
    model.CopyFrom(ann)
    slopes = {n.input[1] for n in model.graph.node if n.op_type == "PRelu"}
    for node in model.graph.node:
        for a in node.attribute:
            if node.op_type == "LeakyRelu" and a.name == "alpha":
                a.f = 0.0
    for init in model.graph.initializer:
        if init.name in slopes:
            init.CopyFrom(onnx.numpy_helper.from_array(0 * onnx.numpy_helper.to_array(init), init.name))
    return model


def ann_top1(ann: onnx.ModelProto) -> float:
    import onnxruntime as ort

    test = np.load(TEST)
    sess = ort.InferenceSession(ann.SerializeToString(), providers=["CPUExecutionProvider"])
    name, batch = ann.graph.input[0].name, ann.graph.input[0].type.tensor_type.shape.dim[0].dim_value or 100
    logits = np.concatenate([sess.run(None, {name: test["x"][i:i + batch]})[0]
                             for i in range(0, len(test["x"]), batch)])
    return 100.0 * float((logits.argmax(1) == test["labels"]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", default="2,4,8,16,32,64,128", help="T columns (one SNN run at the largest)")
    ap.add_argument("--dynamo", action="store_true", help="also export with torch's default (dynamo) exporter")
    ap.add_argument("--out", default=None, help="folder for the exported ANNs (default: a new temporary one)")
    args = ap.parse_args()
    steps = [int(t) for t in args.timesteps.split(",")]
    out = Path(args.out or tempfile.mkdtemp(prefix="onnx2snn_leaky_relu_"))
    out.mkdir(parents=True, exist_ok=True)
    configs = [("percentile, channel-wise", dict(channel_wise=True), None), ("--preset best", {}, "best")]
    exporters = [False, True] if args.dynamo else [False]
    columns = " | ".join(f"T={t}" for t in steps)
    print(f"| model | exporter | config | ANN | ANN, slope 0 | {columns} | convert s |")
    print("|---|---|---|---|---|" + "---|" * len(steps) + "---|")
    for kind in KINDS:
        model = train(kind)
        for dynamo in exporters:
            ann_model = export(model, out / f"{kind}_{'dynamo' if dynamo else 'torchscript'}.onnx", dynamo)
            relu_only = ann_top1(without_negative(ann_model))
            for label, config, preset in configs:
                snn_model, seconds = convert(ann_model, max(steps), config, preset)
                ann, snn = top1(ann_model, snn_model)
                cells = " | ".join(f"{snn[t]:.1f}" for t in steps)
                exporter = "dynamo" if dynamo else "TorchScript"
                print(f"| {kind} | {exporter} | {label} | {ann:.1f} | {relu_only:.1f} | {cells} | {seconds:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
