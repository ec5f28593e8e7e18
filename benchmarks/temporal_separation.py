"""Temporal separation (--neuron tsep) against rate-coded IF neurons: accuracy and latency per T.

Both SNNs get the same calibration: mse thresholds, channel-wise, v_init = θ/2
(statistics collected once per model and neuron kind, thresholds per T). For
each T the table gives the ANN, the T-level quantised ANN q_T (every ReLU
replaced by θ/T·clip(⌊T·x/θ + ½⌋, 0, T), the model tsep must equal), the tsep
SNN and how many of its predictions equal q_T's, and the rate-coded IF SNN
after T steps; latency in time steps until the (first) complete output:
(D + 1)·T for tsep with D spiking layers on the longest path, T for IF (which
emits a running estimate from step 1). See onnx2snn/tsep.py.

    python benchmarks/temporal_separation.py                      # MNIST CNN + CIFAR-10 ResNet-32, T = 4, 8, 16
    python benchmarks/temporal_separation.py --test-images 2000 --timesteps 4,8

MNIST: the bundled CNN, calibrated on models/data/mnist_calib.npz, tested on the
2,000 held-out digits of ../shared/data/mnist10k.npz (the bundled 1,000 when
absent), as benchmarks/mnist_accuracy.py. CIFAR-10: ../shared/models/cifar10_resnet32.onnx,
calibrated on the first 1,024 images of cifar10_train_jpeg_2048.npz, tested on the
first --test-images JPEG test images, as benchmarks/calibration_cifar.py (skipped
when ../shared is absent).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import onnx2snn  # noqa: E402
from calibration_cifar import SHARED, preprocess  # noqa: E402
from mnist_accuracy import test_data  # noqa: E402
from onnx2snn.calibration import balance_thresholds, collect_statistics  # noqa: E402
from onnx2snn.config import ConvertConfig, Neuron, ThresholdSpec  # noqa: E402
from onnx2snn.data import ArrayDataReader  # noqa: E402
from onnx2snn.core.graph import export_graph, import_model  # noqa: E402
from onnx2snn.neurons.temporal_separation.quantize import QuantizeActivationsPass  # noqa: E402
from onnx2snn.calibration.thresholds import half_potentials  # noqa: E402
from onnx2snn.data import calibration_feeds  # noqa: E402
from onnx2snn.metadata import LATENCY as META_LATENCY  # noqa: E402
from onnx2snn.passes.activations import activation_names  # noqa: E402
from onnx2snn.pipeline import build_snn, prepare  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MSE = ThresholdSpec.parse("mse")


def predict(model, x: np.ndarray, batch: int = 100) -> np.ndarray:
    """Class predictions from the model's first output (the SNN's mean over T)."""
    sess = onnx2snn.InferenceSession(model)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0].argmax(-1) for i in range(0, len(x), batch)])


def snns_per_t(model, feeds, neuron: Neuron, steps: list[int]):
    """{T: (SNN, canonical ANN, thresholds)} with mse channel-wise thresholds and v_init θ/2."""
    ann = prepare(model, move_maxpool=neuron is not Neuron.TSEP)
    names = activation_names(ann)
    stats = collect_statistics(ann, names, ArrayDataReader(feeds, 64), channel_wise=True, progress=False)
    ranks = {n: len(stats[n].shape) + 1 for n in names}
    out = {}
    for T in steps:
        thresholds = balance_thresholds(stats, MSE, T, half_init=True)
        config = ConvertConfig(timesteps=T, threshold=MSE, channel_wise=True, v_init="half", neuron=neuron)
        out[T] = build_snn(ann, thresholds, config, half_potentials(thresholds, ranks)), ann, thresholds
    return out


def quantised_ann(ann, thresholds, timesteps: int):
    graph = import_model(ann)
    QuantizeActivationsPass(thresholds, timesteps, half=True)(graph)
    return export_graph(graph, like=ann)


def table(label: str, model, feeds, x, labels, steps: list[int]) -> None:
    start = time.perf_counter()
    acc = lambda pred: 100.0 * (pred == labels).mean()  # noqa: E731
    ann_top1 = acc(predict(model, x))
    tsep = snns_per_t(model, feeds, Neuron.TSEP, steps)
    rate = snns_per_t(model, feeds, Neuron.IF, steps)
    for T in steps:
        snn, ann, thresholds = tsep[T]
        ts_pred, q_pred = predict(snn, x), predict(quantised_ann(ann, thresholds, T), x)
        latency = {p.key: p.value for p in snn.metadata_props}[META_LATENCY]
        if_top1 = acc(predict(rate[T][0], x))
        print(f"| {label} | {T} | {ann_top1:.2f} | {acc(q_pred):.2f} | **{acc(ts_pred):.2f}** | "
              f"{(ts_pred == q_pred).sum()}/{len(labels)} | {latency} | {if_top1:.2f} | {T} |", flush=True)
    print(f"<!-- {label}: {time.perf_counter() - start:.0f} s -->", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", default="4,8,16")
    ap.add_argument("--test-images", type=int, default=500, help="CIFAR-10 test images (first N)")
    ap.add_argument("--calib-images", type=int, default=1024, help="CIFAR-10 calibration images (first N)")
    args = ap.parse_args()
    steps = [int(t) for t in args.timesteps.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}; "
          "calibration: mse channel-wise, v_init θ/2 (both SNNs)")
    print("| model | T | ANN | q_T ANN | tsep | tsep = q_T predictions | tsep latency (steps) | IF (rate) | "
          "IF latency (steps) |")
    print("|---|---|---|---|---|---|---|---|---|")

    mnist = onnx2snn.load_model(REPO / "models" / "mnist_cnn.onnx")
    x, labels, source = test_data(None)
    feeds = calibration_feeds(REPO / "models" / "data" / "mnist_calib.npz", mnist)
    table(f"MNIST CNN ({len(labels)} digits)", mnist, feeds, x, labels, steps)

    resnet = SHARED / "models" / "cifar10_resnet32.onnx"
    if not resnet.exists():
        print(f"(CIFAR-10 skipped: {resnet} not found)")
        return
    cal = np.load(SHARED / "data" / "cifar10_train_jpeg_2048.npz")
    test = np.load(SHARED / "data" / "cifar10_test_jpeg.npz")
    xc = preprocess(cal["images"][:args.calib_images])
    xt, yt = preprocess(test["images"][:args.test_images]), test["labels"][:args.test_images]
    table(f"CIFAR-10 ResNet-32 ({len(yt)} JPEG images)", onnx2snn.load_model(resnet), {"input": xc}, xt, yt, steps)


if __name__ == "__main__":
    main()
