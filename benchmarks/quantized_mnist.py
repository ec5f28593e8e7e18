"""Lossless conversion of the quantized MNIST CNN (QCFS, L = 4) with BIF neurons.

Converts ``models/mnist_qcnn.onnx`` (written by ``models/make_mnist_qcnn.py``)
with ``--neuron bif`` (no calibration data) at T = T*, the step count after
which the SNN's output equals the quantized ANN's, and compares them on every
test digit: identical predictions, max |logit difference| (target ≤ 1e-4), and
the same figures after each step t < T*.

    python benchmarks/quantized_mnist.py [--model models/mnist_qcnn.onnx] [--timesteps T]

Test data: the 2,000 held-out digits of ../shared/data/mnist10k.npz when that
file exists (indices 8000-9999), else the 1,000 bundled in models/data.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnx2snn
from onnx2snn.config import ConvertConfig
from onnx2snn.runtime import running_output_name

REPO = Path(__file__).resolve().parents[1]


def test_data():
    shared = REPO.parent / "shared" / "data" / "mnist10k.npz"
    if shared.exists():
        d = np.load(shared)
        return (d["images"][8000:].astype(np.float32) / 255.0)[:, None], d["labels"][8000:], str(shared)
    d = np.load(REPO / "models" / "data" / "mnist_test.npz")
    return d["x"].astype(np.float32), d["labels"], "models/data/mnist_test.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mnist_qcnn.onnx"))
    ap.add_argument("--timesteps", type=int, default=None, help="default: T*, the guaranteed step count")
    ap.add_argument("--batch-size", type=int, default=250)
    args = ap.parse_args()

    x, labels, source = test_data()
    ann = onnx2snn.load_model(args.model)
    probe = onnx2snn.convert(ann, None, ConvertConfig(timesteps=1, neuron="bif"))
    t_star = probe.exact_timesteps
    T = args.timesteps or t_star
    start = time.perf_counter()
    result = onnx2snn.convert(ann, None, ConvertConfig(timesteps=T, neuron="bif"))
    convert_s = time.perf_counter() - start
    levels = sorted({int(n.attribute[[a.name for a in n.attribute].index("levels")].i)
                     for n in result.model.graph.node if n.op_type == "BIFNeuron"})
    print(f"{args.model}: {len(result.thresholds)} quantized layers, L = {levels}, "
          f"T* = {t_star}; converted at T = {T} in {convert_s:.2f} s (no calibration data)")

    ann_sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    snn_sess = onnx2snn.InferenceSession(result.model.SerializeToString())
    in_name = ann_sess.get_inputs()[0].name
    running_name = running_output_name(result.model)
    ann_logits, running = [], []
    start = time.perf_counter()
    for i in range(0, len(x), args.batch_size):
        feed = {in_name: x[i:i + args.batch_size]}
        ann_logits.append(ann_sess.run(None, feed)[0])
        running.append(snn_sess.run([running_name], feed)[0])
    run_s = time.perf_counter() - start
    ann_logits, running = np.concatenate(ann_logits), np.concatenate(running, axis=1)  # [N, K], [T, N, K]
    ann_pred = ann_logits.argmax(1)
    print(f"{len(x)} test digits from {source}; SNN runs {run_s:.1f} s")
    print(f"quantized ANN top-1: {100 * (ann_pred == labels).mean():.2f}%")
    print(f"{'t':>4} {'SNN top-1 %':>12} {'same prediction as ANN':>23} {'max |logit diff|':>17} "
          f"{'digits with diff > 1e-4':>24}")
    for t in range(T):
        diff = np.abs(running[t] - ann_logits).max(1)
        pred = running[t].argmax(1)
        print(f"{t + 1:>4} {100 * (pred == labels).mean():>12.2f} {int((pred == ann_pred).sum()):>17d}/{len(x)} "
              f"{diff.max():>17.2e} {int((diff > 1e-4).sum()):>24d}")
    final = np.abs(running[min(T, t_star) - 1] - ann_logits)
    ok = final.max() <= 1e-4 and (running[min(T, t_star) - 1].argmax(1) == ann_pred).all()
    print(f"at t = {min(T, t_star)}: predictions identical on {int((running[min(T, t_star) - 1].argmax(1) == ann_pred).sum())}"
          f"/{len(x)}, max |logit diff| {final.max():.2e} (mean |ANN logit| {np.abs(ann_logits).mean():.2f}) -> "
          f"{'LOSSLESS' if ok else 'NOT lossless'}")


if __name__ == "__main__":
    main()
